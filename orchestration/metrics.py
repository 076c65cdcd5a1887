"""Prometheus metrics: every name Coinswarm exports, and the collectors that fill them.

Dagster runs each step in a short-lived process, so a counter kept by a run would vanish before
Prometheus could scrape it. :class:`StoreCollector` therefore reads what the runs left behind
when Prometheus scrapes: the PostgreSQL tables (raw sources, quality verdicts, trading, memory),
MongoDB's raw documents and Dagster's own run and check storage. Each scrape runs inside one
time budget (PostgreSQL's ``statement_timeout``, MongoDB's ``maxTimeMS``, a deadline between
Dagster reads). A part that cannot be read reports ``coinswarm_scrape_success{part} 0`` and
``coinswarm_scrape_errors_total{part}``, and its series are left out; the rest of the scrape
is served, never a 500.

The stream service is one long-running process. Its :class:`StreamStats` already counts per
venue in plain integers where each message is handled, and :class:`StreamCollector` turns
them into counters at scrape time. A prometheus-client ``Counter.inc`` takes a lock and cost
0.34 us per call on the 2-core machine, against 0.05 us for an integer increment, and the hot
path would pay it several times per message.

Labels carry asset keys, check names, venues, statuses and part names only: never a URL, a
host or an error message, which may name a server or a user.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestration.resources.postgres import parse_postgres_url
from trading.risk import RiskState

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from pymongo.database import Database

    from orchestration.streaming.service import StreamService

log = logging.getLogger(__name__)

PREFIX = "coinswarm_"
DEFAULT_SCRAPE_BUDGET_S = 5.0
"""Half of Prometheus's default 10 s scrape timeout, so a slow store still yields an answer."""

MetricKind = Literal["gauge", "counter"]
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its name as PromQL sees it (counters end in ``_total``)."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith(PREFIX) or not _NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} must be {PREFIX}<snake_case>")
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")

    def family(self) -> Metric:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


def _gauge(name: str, help_text: str, *labels: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "gauge", help_text, labels)


def _counter(name: str, help_text: str, *labels: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "counter", help_text, labels)


# -------------------------------------------------------------------------- the store's metrics

INGEST_ROWS = _gauge("ingest_rows", "Rows (documents) a raw asset has stored.", "asset")
INGEST_LAG = _gauge(
    "ingest_lag_seconds", "Seconds from the newest stored row's event time to now.", "asset"
)
INGEST_TOLERATED_LAG = _gauge(
    "ingest_tolerated_lag_seconds",
    "Lag a healthy raw asset stays under (daily partitions land after their day closes).",
    "asset",
)
INGEST_LAST_WRITE = _gauge(
    "ingest_last_write_timestamp_seconds",
    "When the newest row of a raw table was written (ingested_at), Unix time.",
    "asset",
)
INGEST_ERRORS = _counter(
    "ingest_errors_total",
    "Failed steps of a raw asset (after its retries) in Dagster's failed runs.",
    "asset",
)
QUALITY_CANDLE_VERDICTS = _gauge(
    "quality_candle_verdicts",
    "Daily verdicts of the candle gate, one per asset and UTC day (quality.candle_verdicts).",
    "asset",
    "verdict",
)
QUALITY_CHECK_PASSING = _gauge(
    "quality_check_passing",
    "1 if the latest evaluation of the asset check passed, 0 if it failed.",
    "asset",
    "check",
)
DAGSTER_RUNS = _gauge("dagster_runs", "Dagster runs by job and status.", "job", "status")
TRADING_DECISIONS = _gauge(
    "trading_decisions", "Committee decisions by outcome (trading.decisions).", "outcome"
)
TRADING_LAST_DECISION = _gauge(
    "trading_last_decision_timestamp_seconds", "Bar time of the newest decision, Unix time."
)
TRADING_ORDERS = _gauge(
    "trading_orders", "Orders sent to the broker by side and status.", "side", "status"
)
TRADING_FILLS = _gauge("trading_fills", "Fills reported by the broker, by side.", "side")
TRADING_FEES = _gauge("trading_fees", "Fees paid on every fill, in the quote currency.")
TRADING_LAST_DAY = _gauge(
    "trading_last_day_timestamp_seconds", "Start of the newest traded day (trading.pnl), Unix time."
)
TRADING_EQUITY = _gauge("trading_equity", "Equity at the end of the newest traded day (quote).")
TRADING_CASH = _gauge("trading_cash", "Cash at the end of the newest traded day (quote).")
TRADING_REALIZED_PNL = _gauge(
    "trading_realized_pnl", "Realised PnL up to the end of the newest traded day (quote)."
)
TRADING_UNREALIZED_PNL = _gauge(
    "trading_unrealized_pnl", "Unrealised PnL of the positions held at the end of that day."
)
TRADING_PEAK_EQUITY = _gauge(
    "trading_peak_equity", "Highest equity seen so far, intraday peaks included (quote)."
)
TRADING_DRAWDOWN = _gauge(
    "trading_drawdown_ratio", "1 - equity / peak equity at the end of the newest traded day."
)
TRADING_GROSS_EXPOSURE = _gauge(
    "trading_gross_exposure", "Sum of |position value| at the end of the newest day (quote)."
)
TRADING_NET_EXPOSURE = _gauge(
    "trading_net_exposure", "Sum of signed position values at the end of the newest day."
)
TRADING_POSITION_VALUE = _gauge(
    "trading_position_value", "Position value at the last mark of the newest day.", "symbol"
)
TRADING_RISK_STATE = _gauge(
    "trading_risk_state", "1 for the risk gate's state at the end of the newest day.", "state"
)
TRADING_INITIAL_EQUITY = _gauge(
    "trading_initial_equity", "Starting cash of the committee config (quote)."
)
TRADING_DRAWDOWN_LIMIT = _gauge(
    "trading_drawdown_limit_ratio", "Drawdown at which the risk gate halts (committee config)."
)
TRADING_GROSS_EXPOSURE_LIMIT = _gauge(
    "trading_gross_exposure_limit_ratio", "Largest gross exposure / equity the gate allows."
)
MEMORY_PROPOSALS = _gauge("memory_proposals", "Memory proposals by quorum outcome.", "status")
MEMORY_MEMORIES = _gauge("memory_memories", "Committed episodic memories.")
MEMORY_PATTERNS = _gauge("memory_patterns", "Recurring situations the memory tracks.")
SCRAPE_SUCCESS = _gauge(
    "scrape_success", "1 if this scrape read the part, 0 if it failed or ran out of time.", "part"
)
SCRAPE_ERRORS = _counter(
    "scrape_errors_total", "Scrapes in which a part could not be read, since the exporter began.",
    "part",
)  # fmt: skip
SCRAPE_DURATION = _gauge(
    "scrape_duration_seconds", "Seconds the last scrape spent reading the part.", "part"
)

STORE_METRICS: tuple[MetricSpec, ...] = (
    INGEST_ROWS, INGEST_LAG, INGEST_TOLERATED_LAG, INGEST_LAST_WRITE, INGEST_ERRORS,
    QUALITY_CANDLE_VERDICTS, QUALITY_CHECK_PASSING, DAGSTER_RUNS,
    TRADING_DECISIONS, TRADING_LAST_DECISION, TRADING_ORDERS, TRADING_FILLS, TRADING_FEES,
    TRADING_LAST_DAY, TRADING_EQUITY, TRADING_CASH, TRADING_REALIZED_PNL, TRADING_UNREALIZED_PNL,
    TRADING_PEAK_EQUITY, TRADING_DRAWDOWN, TRADING_GROSS_EXPOSURE, TRADING_NET_EXPOSURE,
    TRADING_POSITION_VALUE, TRADING_RISK_STATE, TRADING_INITIAL_EQUITY, TRADING_DRAWDOWN_LIMIT,
    TRADING_GROSS_EXPOSURE_LIMIT, MEMORY_PROPOSALS, MEMORY_MEMORIES, MEMORY_PATTERNS,
    SCRAPE_SUCCESS, SCRAPE_ERRORS, SCRAPE_DURATION,
)  # fmt: skip

# ------------------------------------------------------------------------- the stream's metrics

STREAM_MESSAGES = _counter("stream_messages_total", "Websocket messages received.", "venue")
STREAM_BYTES = _counter("stream_received_bytes_total", "Bytes of the messages received.", "venue")
STREAM_TICKS = _counter("stream_ticks_total", "Ticks parsed from the messages.", "venue")
STREAM_DUPLICATES = _counter(
    "stream_duplicates_total", "Ticks dropped as already seen (reconnect overlaps).", "venue"
)
STREAM_MALFORMED = _counter("stream_malformed_total", "Messages that could not be read.", "venue")
STREAM_GAPS = _counter(
    "stream_gaps_total", "Sequence gaps: runs of ids that never arrived.", "venue"
)
STREAM_MISSING_IDS = _counter(
    "stream_missing_ids_total", "Ids missing in all the sequence gaps.", "venue"
)
STREAM_CONNECTIONS = _counter("stream_connections_total", "Websocket connections opened.", "venue")
STREAM_DISCONNECTS = _counter("stream_disconnects_total", "Websocket connections lost.", "venue")
STREAM_RECEIVE_LAG = _gauge(
    "stream_receive_lag_seconds",
    "Receive time minus the venue's event time, of the newest message with ticks.",
    "venue",
)
STREAM_LAST_MESSAGE = _gauge(
    "stream_last_message_timestamp_seconds", "Receive time of the newest message, Unix time.",
    "venue",
)  # fmt: skip
STREAM_TICKS_WRITTEN = _counter("stream_ticks_written_total", "Ticks the tick store accepted.")
STREAM_STORE_BATCHES = _counter("stream_store_batches_total", "Batches written to the tick store.")
STREAM_STORE_FAILURES = _counter(
    "stream_store_failures_total", "Tick store writes that failed (each is retried)."
)
STREAM_PUBLISHED_TICKS = _counter("stream_published_ticks_total", "Ticks published on NATS.")
STREAM_PUBLISH_FAILURES = _counter(
    "stream_publish_failures_total", "Batches whose NATS publish failed."
)
STREAM_PENDING_TICKS = _gauge(
    "stream_pending_ticks", "Ticks received but not yet stored and published (the backlog)."
)
STREAM_STORE_FAILING = _gauge(
    "stream_store_failing", "1 while the tick store's writes are failing and being retried."
)

STREAM_METRICS: tuple[MetricSpec, ...] = (
    STREAM_MESSAGES, STREAM_BYTES, STREAM_TICKS, STREAM_DUPLICATES, STREAM_MALFORMED,
    STREAM_GAPS, STREAM_MISSING_IDS, STREAM_CONNECTIONS, STREAM_DISCONNECTS, STREAM_RECEIVE_LAG,
    STREAM_LAST_MESSAGE, STREAM_TICKS_WRITTEN, STREAM_STORE_BATCHES, STREAM_STORE_FAILURES,
    STREAM_PUBLISHED_TICKS, STREAM_PUBLISH_FAILURES, STREAM_PENDING_TICKS, STREAM_STORE_FAILING,
)  # fmt: skip


def exporter_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry serving ``collectors`` plus the process's own CPU, memory and file metrics."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    for collector in collectors:
        registry.register(collector)
    return registry


def exported_metric_names() -> frozenset[str]:
    """Every series name the exporters serve: ours and prometheus-client's ``process_*``."""
    process = {
        sample.name
        for family in ProcessCollector(registry=None).collect()
        for sample in family.samples
    }
    return frozenset({spec.name for spec in (*STORE_METRICS, *STREAM_METRICS)} | process)


# -------------------------------------------------------------------------- what the store reads


@dataclass(frozen=True)
class IngestTable:
    """A raw asset stored in a PostgreSQL table: where its rows are and what dates them."""

    asset: str
    table: str
    event_column: str
    """The column giving each row's event time (a timestamptz or date)."""
    tolerated_lag: timedelta

    def __post_init__(self) -> None:
        # Both names are spliced into SQL: only plain identifiers pass.
        if not re.fullmatch(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*", self.table):
            raise ValueError(f"table {self.table!r} is not a plain schema.table")
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.event_column):
            raise ValueError(f"column {self.event_column!r} is not a plain identifier")


@dataclass(frozen=True)
class IngestCollection:
    """A raw asset stored as MongoDB documents of one ``source`` in a collection."""

    asset: str
    collection: str
    source: str
    tolerated_lag: timedelta
    event_field: str = "published_at"


@dataclass(frozen=True)
class CheckRef:
    """An asset check to report, by asset path (``raw/binance/ohlcv``) and check name."""

    asset: str
    check: str


@dataclass(frozen=True)
class TradingLimits:
    """The committee config's figures the dashboards and alerts compare the book against."""

    initial_equity: float
    drawdown_limit: float | None
    gross_exposure_limit: float


Sample = tuple[MetricSpec, tuple[str, ...], float]


@dataclass
class PartReading:
    """One part of a scrape: its samples when it could be read, else the error."""

    part: str
    samples: list[Sample] = field(default_factory=list)
    error: BaseException | None = None
    seconds: float = 0.0


class ScrapeBudgetExceeded(TimeoutError):
    """The scrape's time budget ran out before this part was read."""


class StoreReader:
    """Reads one store into :class:`PartReading` s; subclasses name their parts."""

    parts: tuple[str, ...] = ()

    def read(self, deadline: float) -> list[PartReading]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (the exporter is stopping)."""


def _remaining_s(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ScrapeBudgetExceeded("the scrape's time budget ran out before this part")
    return remaining


def _timed(part: str, read: Callable[[], list[Sample]]) -> PartReading:
    started = time.monotonic()
    try:
        samples = read()
    except Exception as exc:  # noqa: BLE001 - any failure of a store is reported, not raised
        return PartReading(part, error=exc, seconds=time.monotonic() - started)
    return PartReading(part, samples, seconds=time.monotonic() - started)


# ------------------------------------------------------------------------------------ PostgreSQL


def metrics_engine(url: str | sa.URL, *, connect_timeout_s: int = 3) -> sa.Engine:
    """An engine for scrapes: one connection, read-only sessions, a bounded connect.

    Every statement also gets the rest of the scrape's budget as its ``statement_timeout``.
    """
    return sa.create_engine(
        parse_postgres_url(url),
        pool_size=1,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=connect_timeout_s,
        connect_args={
            "connect_timeout": connect_timeout_s,
            "application_name": "coinswarm-metrics",
            "options": "-c timezone=UTC -c default_transaction_read_only=on",
        },
    )


class PostgresReader(StoreReader):
    """The raw tables, the candle gate's verdicts, the trading tables and the memory."""

    parts = ("postgres_ingest", "postgres_quality", "postgres_trading", "postgres_memory")

    def __init__(
        self,
        engine: Callable[[], sa.Engine],
        tables: Sequence[IngestTable],
        limits: TradingLimits | None = None,
    ) -> None:
        self._engine = engine
        self._tables = tuple(tables)
        self._limits = limits

    def read(self, deadline: float) -> list[PartReading]:
        started = time.monotonic()
        try:
            _remaining_s(deadline)
            conn = self._engine().connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception as exc:  # noqa: BLE001 - unreachable server, wrong database, no URL
            seconds = time.monotonic() - started
            return [PartReading(part, error=exc, seconds=seconds) for part in self.parts]
        readers = {
            "postgres_ingest": self._ingest,
            "postgres_quality": self._quality,
            "postgres_trading": self._trading,
            "postgres_memory": self._memory,
        }
        with conn:
            return [
                _timed(part, lambda read=read: read(_Budgeted(conn, deadline)))
                for part, read in readers.items()
            ]

    def _ingest(self, db: _Budgeted) -> list[Sample]:
        samples: list[Sample] = []
        for table in self._tables:
            samples.append(
                (INGEST_TOLERATED_LAG, (table.asset,), table.tolerated_lag.total_seconds())
            )
        existing = set(
            db.scalars(
                "SELECT t FROM unnest(CAST(:tables AS text[])) AS t WHERE to_regclass(t) IS NOT "
                "NULL",
                tables=[t.table for t in self._tables],
            )
        )
        missing = [t.table for t in self._tables if t.table not in existing]
        present = [t for t in self._tables if t.table in existing]
        if present:
            # One statement for every table: one round trip and one timeout for the lot.
            union = " UNION ALL ".join(
                f"SELECT {index} AS i, count(*) AS n, "
                f"extract(epoch FROM now() - max({t.event_column})::timestamptz) AS lag, "
                f"extract(epoch FROM max(ingested_at)) AS written FROM {t.table}"
                for index, t in enumerate(present)
            )
            for index, rows, lag, written in db.rows(union):
                asset = present[index].asset
                samples.append((INGEST_ROWS, (asset,), rows))
                if lag is not None:
                    samples.append((INGEST_LAG, (asset,), lag))
                if written is not None:
                    samples.append((INGEST_LAST_WRITE, (asset,), written))
        if missing:
            raise LookupError(f"raw tables missing (migrations not applied?): {missing}")
        return samples

    def _quality(self, db: _Budgeted) -> list[Sample]:
        rows = db.rows(
            "SELECT asset, passed, count(*) FROM quality.candle_verdicts GROUP BY asset, passed"
        )
        counts = {(asset, passed): n for asset, passed, n in rows}
        return [
            (QUALITY_CANDLE_VERDICTS, (asset, verdict), counts.get((asset, verdict == "passed"), 0))
            for asset in sorted({asset for asset, _ in counts})
            for verdict in ("passed", "failed")
        ]

    def _trading(self, db: _Budgeted) -> list[Sample]:
        samples: list[Sample] = []
        newest_decision = None
        for outcome, n, newest in db.rows(
            "SELECT coalesce(outcome, 'none'), count(*), extract(epoch FROM max(ts)) "
            "FROM trading.decisions GROUP BY 1"
        ):
            samples.append((TRADING_DECISIONS, (outcome,), n))
            if newest is not None:
                newest_decision = max(newest, newest_decision or newest)
        if newest_decision is not None:
            samples.append((TRADING_LAST_DECISION, (), newest_decision))
        for side, status, n in db.rows(
            "SELECT side, coalesce(status, 'none'), count(*) FROM trading.orders GROUP BY 1, 2"
        ):
            samples.append((TRADING_ORDERS, (side, status), n))
        fees = 0.0
        for side, n, side_fees in db.rows(
            "SELECT side, count(*), coalesce(sum(fee), 0) FROM trading.fills GROUP BY side"
        ):
            samples.append((TRADING_FILLS, (side,), n))
            fees += side_fees
        samples.append((TRADING_FEES, (), fees))
        latest = db.rows(
            "SELECT extract(epoch FROM partition_date::timestamptz), equity, cash, realized_pnl, "
            "unrealized_pnl, greatest(peak_equity, equity), gross_exposure, net_exposure, "
            "risk_state FROM trading.pnl ORDER BY partition_date DESC LIMIT 1"
        )
        if latest:
            day, equity, cash, realized, unrealized, peak, gross, net, state = latest[0]
            for spec, value in (
                (TRADING_LAST_DAY, day),
                (TRADING_EQUITY, equity),
                (TRADING_CASH, cash),
                (TRADING_REALIZED_PNL, realized),
                (TRADING_UNREALIZED_PNL, unrealized),
                (TRADING_PEAK_EQUITY, peak),
                (TRADING_GROSS_EXPOSURE, gross),
                (TRADING_NET_EXPOSURE, net),
            ):
                if value is not None:
                    samples.append((spec, (), value))
            if equity is not None and peak:
                samples.append((TRADING_DRAWDOWN, (), max(0.0, 1.0 - equity / peak)))
            known = [s.value for s in RiskState]
            for name in [*known, *([state] if state not in known and state else [])]:
                samples.append((TRADING_RISK_STATE, (name,), 1.0 if name == state else 0.0))
        for symbol, value in db.rows(
            "SELECT symbol, quantity * mark_price FROM trading.positions "
            "WHERE partition_date = (SELECT max(partition_date) FROM trading.positions) "
            "AND quantity IS NOT NULL AND mark_price IS NOT NULL ORDER BY symbol"
        ):
            samples.append((TRADING_POSITION_VALUE, (symbol,), value))
        if self._limits is not None:
            samples.append((TRADING_INITIAL_EQUITY, (), self._limits.initial_equity))
            samples.append((TRADING_GROSS_EXPOSURE_LIMIT, (), self._limits.gross_exposure_limit))
            if self._limits.drawdown_limit is not None:
                samples.append((TRADING_DRAWDOWN_LIMIT, (), self._limits.drawdown_limit))
        return samples

    def _memory(self, db: _Budgeted) -> list[Sample]:
        samples: list[Sample] = [
            (MEMORY_PROPOSALS, (status,), n)
            for status, n in db.rows(
                "SELECT status, count(*) FROM memory.proposals GROUP BY status ORDER BY status"
            )
        ]
        memories, patterns = db.rows(
            "SELECT (SELECT count(*) FROM memory.memories), (SELECT count(*) FROM memory.patterns)"
        )[0]
        samples.append((MEMORY_MEMORIES, (), memories))
        samples.append((MEMORY_PATTERNS, (), patterns))
        return samples


class _Budgeted:
    """A connection whose every statement may run only for what is left of the budget."""

    def __init__(self, conn: sa.Connection, deadline: float) -> None:
        self._conn = conn
        self._deadline = deadline

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        timeout_ms = max(1, int(_remaining_s(self._deadline) * 1000))
        self._conn.exec_driver_sql(f"SET statement_timeout = {timeout_ms}")
        return [tuple(row) for row in self._conn.execute(sa.text(sql), params)]

    def scalars(self, sql: str, **params: Any) -> list[Any]:
        return [row[0] for row in self.rows(sql, **params)]


# --------------------------------------------------------------------------------------- MongoDB


class MongoReader(StoreReader):
    """Documents per text source in MongoDB (``raw_documents``), and the newest one's time."""

    parts = ("mongo_documents",)

    def __init__(self, database: Callable[[], Database], collections: Sequence[IngestCollection]):
        self._database = database
        self._collections = tuple(collections)

    def read(self, deadline: float) -> list[PartReading]:
        return [_timed("mongo_documents", lambda: self._documents(deadline))]

    def _documents(self, deadline: float) -> list[Sample]:
        database = self._database()
        samples: list[Sample] = []
        by_collection: dict[str, list[IngestCollection]] = {}
        for spec in self._collections:
            by_collection.setdefault(spec.collection, []).append(spec)
            samples.append(
                (INGEST_TOLERATED_LAG, (spec.asset,), spec.tolerated_lag.total_seconds())
            )
        now = time.time()
        for collection, specs in by_collection.items():
            fields = {spec.event_field for spec in specs}
            if len(fields) != 1:
                raise ValueError(f"{collection}: one event field per collection, got {fields}")
            pipeline = [
                {"$match": {"source": {"$in": [spec.source for spec in specs]}}},
                {
                    "$group": {
                        "_id": "$source",
                        "n": {"$sum": 1},
                        "newest": {"$max": f"${fields.pop()}"},
                    }
                },
            ]
            max_time_ms = max(1, int(_remaining_s(deadline) * 1000))
            found = {
                row["_id"]: row
                for row in database[collection].aggregate(pipeline, maxTimeMS=max_time_ms)
            }
            for spec in specs:
                row = found.get(spec.source)
                samples.append((INGEST_ROWS, (spec.asset,), row["n"] if row else 0))
                newest = row.get("newest") if row else None
                if newest is not None:
                    # pymongo returns naive UTC datetimes unless the client is tz_aware.
                    if newest.tzinfo is None:
                        newest = newest.replace(tzinfo=UTC)
                    stamp = newest.timestamp()
                    samples.append((INGEST_LAG, (spec.asset,), now - stamp))
        return samples


# ---------------------------------------------------------------------------------------- Dagster

RUN_STATUSES = ("QUEUED", "STARTED", "SUCCESS", "FAILURE", "CANCELED")


class DagsterReader(StoreReader):
    """Runs by job and status, raw assets' failed steps, and the latest result of each check.

    Dagster OSS records no ``ASSET_FAILED_TO_MATERIALIZE`` events, so an ingestion error is a
    ``STEP_FAILURE`` of the raw asset's step: what is left once the step's retries are spent.
    Such a step fails its run, so only failed runs are read, each once (a finished run's events
    never change) and remembered by id; a run deleted from the instance is forgotten.
    """

    parts = ("dagster_runs", "dagster_failures", "dagster_checks")

    def __init__(
        self,
        instance: Callable[[], DagsterInstance],
        *,
        raw_steps: Mapping[str, str],
        checks: Sequence[CheckRef],
        jobs: Sequence[str],
    ) -> None:
        self._instance = instance
        self._raw_steps = dict(raw_steps)
        """Step key (the raw asset's op name) -> asset path."""
        self._checks = tuple(checks)
        self._jobs = tuple(jobs)
        self._failed_steps: dict[str, Counter[str]] = {}

    def read(self, deadline: float) -> list[PartReading]:
        started = time.monotonic()
        try:
            instance = self._instance()
        except Exception as exc:  # noqa: BLE001 - no instance, unreadable dagster.yaml
            seconds = time.monotonic() - started
            return [PartReading(part, error=exc, seconds=seconds) for part in self.parts]
        return [
            _timed("dagster_runs", lambda: self._runs(instance, deadline)),
            _timed("dagster_failures", lambda: self._failures(instance, deadline)),
            _timed("dagster_checks", lambda: self._check_results(instance, deadline)),
        ]

    def _runs(self, instance: DagsterInstance, deadline: float) -> list[Sample]:
        import dagster as dg

        samples: list[Sample] = []
        for job in self._jobs:
            for status in RUN_STATUSES:
                _remaining_s(deadline)
                count = instance.get_runs_count(
                    dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus[status]])
                )
                samples.append((DAGSTER_RUNS, (job, status), count))
        return samples

    def _failures(self, instance: DagsterInstance, deadline: float) -> list[Sample]:
        import dagster as dg

        failed = instance.get_run_ids(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        present = set(failed)
        for run_id in [r for r in self._failed_steps if r not in present]:
            del self._failed_steps[run_id]
        for run_id in failed:
            if run_id in self._failed_steps:
                continue
            # Runs read so far stay remembered, so a long history is caught up over scrapes.
            _remaining_s(deadline)
            events = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            self._failed_steps[run_id] = Counter(
                event.step_key for event in events if event.step_key is not None
            )
        per_asset: Counter[str] = Counter({asset: 0 for asset in self._raw_steps.values()})
        for steps in self._failed_steps.values():
            for step, failures in steps.items():
                if step in self._raw_steps:
                    per_asset[self._raw_steps[step]] += failures
        return [(INGEST_ERRORS, (asset,), n) for asset, n in sorted(per_asset.items())]

    def _check_results(self, instance: DagsterInstance, deadline: float) -> list[Sample]:
        import dagster as dg
        from dagster._core.storage.asset_check_execution_record import (
            AssetCheckExecutionRecordStatus as Status,
        )

        samples: list[Sample] = []
        resolved = {Status.SUCCEEDED, Status.FAILED}
        for ref in self._checks:
            _remaining_s(deadline)
            key = dg.AssetCheckKey(dg.AssetKey(ref.asset.split("/")), ref.check)
            # The latest *resolved* execution: a check planned in a run whose asset then failed
            # stays PLANNED for ever and says nothing about the data.
            history = instance.event_log_storage.get_asset_check_execution_history(
                key, limit=1, status=resolved
            )
            if history:
                passing = history[0].status == Status.SUCCEEDED
                samples.append((QUALITY_CHECK_PASSING, (ref.asset, ref.check), float(passing)))
        return samples


# -------------------------------------------------------------------------------- the collectors


class StoreCollector(Collector):
    """Reads the stores at scrape time, one part at a time, inside one time budget."""

    def __init__(
        self, readers: Sequence[StoreReader], budget_s: float = DEFAULT_SCRAPE_BUDGET_S
    ) -> None:
        if budget_s <= 0:
            raise ValueError(f"the scrape budget must be positive, got {budget_s}")
        self._readers = tuple(readers)
        self._budget_s = budget_s
        self._errors: Counter[str] = Counter({p: 0 for r in self._readers for p in r.parts})
        self._failing: set[str] = set()
        # One scrape at a time: the readers keep one connection and Dagster's run cache.
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return [spec.family() for spec in STORE_METRICS]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            families = {spec.name: spec.family() for spec in STORE_METRICS}
            deadline = time.monotonic() + self._budget_s
            for reader in self._readers:
                for reading in reader.read(deadline):
                    self._report(families, reading)
            return list(families.values())

    def _report(self, families: dict[str, Metric], reading: PartReading) -> None:
        part = reading.part
        ok = reading.error is None
        if ok:
            for spec, labels, value in reading.samples:
                value = float(value)
                if math.isfinite(value):
                    families[spec.name].add_metric(list(labels), value)
            if part in self._failing:
                self._failing.discard(part)
                log.info("metrics: %s can be read again", part)
        else:
            self._errors[part] += 1
            # Logged when a part starts failing, not on every scrape while it stays down.
            level = logging.DEBUG if part in self._failing else logging.WARNING
            self._failing.add(part)
            log.log(level, "metrics: could not read %s: %s", part, _describe(reading.error))
        families[SCRAPE_SUCCESS.name].add_metric([part], 1.0 if ok else 0.0)
        families[SCRAPE_ERRORS.name].add_metric([part], float(self._errors[part]))
        families[SCRAPE_DURATION.name].add_metric([part], reading.seconds)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


def _describe(error: BaseException | None) -> str:
    """One line for the log: the error's type and first line (SQLAlchemy appends the SQL)."""
    if error is None:
        return ""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}"[:500]


class StreamCollector(Collector):
    """The stream service's counts, read from its :class:`StreamStats` at scrape time."""

    def __init__(self, service: StreamService) -> None:
        self._service = service

    def describe(self) -> Iterable[Metric]:
        return [spec.family() for spec in STREAM_METRICS]

    def collect(self) -> Iterable[Metric]:
        service = self._service
        stats = service.stats
        families = {spec.name: spec.family() for spec in STREAM_METRICS}
        # A copy: the event loop may add a venue while this thread reads.
        for venue, counts in sorted(dict(stats.venues).items()):
            for spec, value in (
                (STREAM_MESSAGES, counts.messages),
                (STREAM_BYTES, counts.received_bytes),
                (STREAM_TICKS, counts.ticks),
                (STREAM_DUPLICATES, counts.duplicates),
                (STREAM_MALFORMED, counts.malformed),
                (STREAM_GAPS, counts.gaps),
                (STREAM_MISSING_IDS, counts.missing_ids),
                (STREAM_CONNECTIONS, counts.connections),
                (STREAM_DISCONNECTS, counts.disconnects),
            ):
                families[spec.name].add_metric([venue], float(value))
            if counts.last_received_ns:
                families[STREAM_LAST_MESSAGE.name].add_metric(
                    [venue], counts.last_received_ns / 1e9
                )
            if counts.last_tick_received_ns and counts.last_event_ns:
                families[STREAM_RECEIVE_LAG.name].add_metric(
                    [venue], (counts.last_tick_received_ns - counts.last_event_ns) / 1e9
                )
        writer = stats.writer
        for spec, value in (
            (STREAM_TICKS_WRITTEN, writer.ticks_written),
            (STREAM_STORE_BATCHES, writer.batches),
            (STREAM_STORE_FAILURES, writer.write_failures),
            (STREAM_PUBLISHED_TICKS, writer.published_ticks),
            (STREAM_PUBLISH_FAILURES, writer.publish_failures),
            (STREAM_PENDING_TICKS, service.pending_ticks),
            (STREAM_STORE_FAILING, float(service.store_failing)),
        ):
            families[spec.name].add_metric([], float(value))
        return list(families.values())
