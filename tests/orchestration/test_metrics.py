"""The metrics collectors against real stores holding rows the pipeline's own code wrote.

One database of the session's embedded PostgreSQL is filled for the module by the real raw
assets, run by Dagster on a SQLite instance like the local deployment's:

- Binance candles through the candle gate, with one day that fails it on a genuine gap;
- a partition the replay cannot serve;
- the Fear & Greed index;
- NewsAPI documents in MongoDB.

A trading session over the bundled candles, with the PostgreSQL memory, adds the trading rows.
Every value the collector serves is checked against SQL (or MongoDB, or Dagster) on the same
stores. A store that fails must yield error series, not a 500.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pymongo
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from cli.metrics import (
    CachedInstance,
    ingest_sources,
    quality_checks,
    raw_asset_steps,
    trading_limits,
)
from orchestration.deployment import PROJECT_ROOT
from orchestration.io_managers.postgres_window import PostgresWindowIOManager, replace_window_in
from orchestration.memory_store import PostgresMemoryStore
from orchestration.metrics import (
    STORE_METRICS,
    STREAM_METRICS,
    DagsterReader,
    MongoReader,
    PostgresReader,
    StoreCollector,
    StreamCollector,
    exported_metric_names,
    exporter_registry,
    metrics_engine,
)
from orchestration.migrations import upgrade_to_head
from orchestration.resources.market_stats import FearGreedReplayClient
from orchestration.resources.mongo import MongoResource
from orchestration.resources.postgres import PostgresResource, dispose_engine
from orchestration.resources.replay import BinanceReplayClient
from orchestration.resources.text_sources import NewsApiReplayClient
from orchestration.resources.ticks import ParquetTickStore
from orchestration.streaming.replay import read_recording
from orchestration.streaming.service import Recording, StreamService
from trading.backtest.data import load_dataset
from trading.config import build_session, load_committee_config
from trading.features import compute_features
from trading.regime import classify_regimes
from trading.risk import RiskState
from trading.session import SessionResult
from trading.snapshots import build_snapshots

pytestmark = pytest.mark.integration

RECORDED_CANDLES = PROJECT_ROOT / "assets" / "ingest" / "recorded" / "binance"
TRADED_PAIRS = {"ETHBTC": "ETH/BTC", "LTCBTC": "LTC/BTC"}
PASSING_DAY, GAP_DAY, UNSERVED_DAY = "2018-01-14", "2018-01-15", "2018-02-20"
"""2018-01-15 has real ADA/BTC gaps the candle gate fails; the recording ends 2018-01-30."""
TRADED_WINDOW = (datetime(2018, 1, 14, tzinfo=UTC), datetime(2018, 1, 16, tzinfo=UTC))
TEST_JOB = "__ephemeral_asset_job__"  # what dg.materialize names its runs
BINANCE = "raw/binance/ohlcv"
PLANTED_PASSWORD = "metricsPLANTED-pw-7c1d"
EPSILON = 1e-6


# ------------------------------------------------------------------------------ what is written


def trade_days(engine: sa.Engine, start: datetime, end: datetime) -> SessionResult:
    """Trade ``[start, end)`` of the bundled ETH/BTC and LTC/BTC candles with the packaged
    committee and the PostgreSQL memory, and store the tables as the trading job does."""
    config = load_committee_config()
    candles = pd.concat(
        [
            load_dataset(RECORDED_CANDLES / f"binance-{pair}-5m-2018-01.csv.gz", symbol).frame
            for pair, symbol in TRADED_PAIRS.items()
        ],
        ignore_index=True,
    )
    candles = candles[(candles["ts"] >= start - timedelta(days=1)) & (candles["ts"] < end)]
    features = compute_features(candles, config.features)
    regimes = classify_regimes(
        features,
        volatile_ratio=config.regime.volatile_ratio,
        trend_threshold=config.regime.trend_threshold,
    )
    snapshots = [s for s in build_snapshots(candles, features, regimes) if s.ts >= start]
    session = build_session(config, memory_store=PostgresMemoryStore(engine))
    result = session.run(snapshots)
    window = {"start": start, "end": end}
    with engine.begin() as conn:
        for table, rows, expr in (
            ("trading.decisions", result.decision_rows(), "ts"),
            ("trading.orders", result.order_rows(), "ts"),
            ("trading.fills", result.fill_rows(), "ts"),
            ("trading.positions", result.daily_positions, "partition_date"),
            ("trading.pnl", result.daily_pnl, "partition_date"),
        ):
            replace_window_in(conn, table, pd.DataFrame(rows), partition_expr=expr, **window)
    return result


def create_database(server_url: str, prefix: str) -> str:
    """A new database on the session's server, migrated to head; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade_to_head(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    dispose_engine(url)
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@dataclass(frozen=True)
class Stores:
    pg_url: str
    mongo_uri: str
    mongo_database: str
    dagster_home: Path
    traded: SessionResult


@pytest.fixture(scope="module")
def stores(pg_server_url: str, mongo_uri: str) -> Iterator[Stores]:
    from assets.ingest.factory import (
        raw_candle_assets,
        raw_candle_checks,
        raw_document_assets,
        raw_table_assets,
    )

    def one(assets: list, path: str) -> dg.AssetsDefinition:
        return next(a for a in assets if a.key.to_user_string() == path)

    home = Path(tempfile.mkdtemp(prefix="cs-metrics-", dir="/tmp"))
    pg_url = create_database(pg_server_url, "metrics")
    mongo_database = f"metrics_{uuid.uuid4().hex[:12]}"
    postgres = PostgresResource(url=pg_url)
    resources = {
        "postgres": postgres,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
        "mongo": MongoResource(url=mongo_uri, database=mongo_database),
        "binance_client": BinanceReplayClient(),
        "fear_greed_client": FearGreedReplayClient(),
        "newsapi_client": NewsApiReplayClient(),
    }
    candles = [one(raw_candle_assets, BINANCE), raw_candle_checks[0]]
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("COINSWARM_HOME", str(home))  # the GX context and its reports
            (home / "dagster").mkdir()
            with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
                for day in (PASSING_DAY, GAP_DAY, UNSERVED_DAY):
                    dg.materialize(
                        candles,
                        partition_key=day,
                        resources=resources,
                        instance=instance,
                        raise_on_error=False,
                    )
                for asset in (
                    one(raw_table_assets, "raw/fear_greed/index"),
                    one(raw_document_assets, "raw/newsapi/articles"),
                ):
                    result = dg.materialize(
                        [asset], partition_key=PASSING_DAY, resources=resources, instance=instance
                    )
                    assert result.success
        engine = sa.create_engine(pg_url, connect_args={"options": "-c timezone=UTC"})
        traded = trade_days(engine, *TRADED_WINDOW)
        engine.dispose()
        yield Stores(pg_url, mongo_uri, mongo_database, home / "dagster", traded)
    finally:
        pymongo.MongoClient(mongo_uri).drop_database(mongo_database)
        drop_database(pg_server_url, pg_url)
        shutil.rmtree(home, ignore_errors=True)


# ----------------------------------------------------------------------------------- scraping


class Scrape:
    """One exposition, parsed back with prometheus-client's own parser."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.text = generate_latest(registry).decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in self.samples if s.name == name}

    def by(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(dict(key)[label] for label in labels): value
            for key, value in self.series(name).items()
        }

    def value(self, name: str, **labels: str) -> float:
        matches = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(matches) == 1, f"{name}{labels}: {len(matches)} samples"
        return matches[0]

    def has(self, name: str, **labels: str) -> bool:
        return any(
            s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
            for s in self.samples
        )


@dataclass
class Exporter:
    registry: CollectorRegistry
    collector: StoreCollector

    def scrape(self) -> Scrape:
        return Scrape(self.registry)


def _readers(
    stores: Stores, engine: sa.Engine, mongo: pymongo.MongoClient, instance: CachedInstance
) -> list:
    tables, collections = ingest_sources()
    return [
        PostgresReader(lambda: engine, tables, trading_limits()),
        MongoReader(lambda: mongo[stores.mongo_database], collections),
        DagsterReader(
            instance, raw_steps=raw_asset_steps(), checks=quality_checks(), jobs=[TEST_JOB]
        ),
    ]


@pytest.fixture
def exporter(stores: Stores) -> Iterator[Exporter]:
    engine = metrics_engine(stores.pg_url)
    mongo = pymongo.MongoClient(stores.mongo_uri, tz_aware=True)
    instance = CachedInstance(lambda: stores.dagster_home)
    collector = StoreCollector(_readers(stores, engine, mongo, instance), budget_s=30.0)
    try:
        yield Exporter(exporter_registry(collector), collector)
    finally:
        engine.dispose()
        mongo.close()
        instance.dispose()


def _sql(url: str, sql: str, **params: object) -> list[tuple]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()


# -------------------------------------------------------------------------------------- tests


def test_every_metric_is_served_and_every_part_read(exporter: Exporter) -> None:
    scrape = exporter.scrape()

    assert {s.name for s in STORE_METRICS} <= {
        f"{name}_total" if f.type == "counter" else name for name, f in scrape.families.items()
    }
    assert {s.name for s in scrape.samples} <= exported_metric_names()
    assert scrape.by("coinswarm_scrape_success", "part") == {
        (part,): 1.0
        for part in (
            "postgres_ingest",
            "postgres_quality",
            "postgres_trading",
            "postgres_memory",
            "mongo_documents",
            "dagster_runs",
            "dagster_failures",
            "dagster_checks",
        )
    }
    assert set(scrape.by("coinswarm_scrape_errors_total", "part").values()) == {0.0}


def test_promtool_accepts_the_exposition(exporter: Exporter) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's 'prometheus' package (make test does)")
    text = exporter.scrape().text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_ingest_rows_lag_and_last_write_match_the_stores(
    stores: Stores, exporter: Exporter
) -> None:
    tables, collections = ingest_sources()
    statements = {
        t.asset: f"SELECT count(*), extract(epoch FROM now() - max({t.event_column})::timestamptz),"
        f" extract(epoch FROM max(ingested_at)) FROM {t.table}"
        for t in tables
    }
    before = {asset: _sql(stores.pg_url, sql)[0] for asset, sql in statements.items()}
    mongo = pymongo.MongoClient(stores.mongo_uri, tz_aware=True)
    documents = mongo[stores.mongo_database][collections[0].collection]
    clock_before = datetime.now(UTC)
    scrape = exporter.scrape()
    clock_after = datetime.now(UTC)
    after = {asset: _sql(stores.pg_url, sql)[0] for asset, sql in statements.items()}

    rows = scrape.by("coinswarm_ingest_rows", "asset")
    lags = scrape.by("coinswarm_ingest_lag_seconds", "asset")
    written = scrape.by("coinswarm_ingest_last_write_timestamp_seconds", "asset")
    tolerated = scrape.by("coinswarm_ingest_tolerated_lag_seconds", "asset")
    for table in tables:
        count, lag_before, written_at = before[table.asset]
        assert rows[(table.asset,)] == count, table.asset
        assert tolerated[(table.asset,)] == table.tolerated_lag.total_seconds()
        if count == 0:
            assert (table.asset,) not in lags and (table.asset,) not in written
            continue
        lag_after = float(after[table.asset][1])
        assert float(lag_before) - EPSILON <= lags[(table.asset,)] <= lag_after + EPSILON
        assert written[(table.asset,)] == pytest.approx(float(written_at), abs=EPSILON)
    assert rows[(BINANCE,)] == 2 * 4 * 288 - 40 > 0  # two days of four pairs, the gap day short
    assert rows[("raw/fear_greed/index",)] > 0

    for spec in collections:
        stored = list(documents.find({"source": spec.source}, {"published_at": 1}))
        assert rows[(spec.asset,)] == len(stored), spec.asset
        if not stored:
            assert (spec.asset,) not in lags
            continue
        newest = max(d["published_at"] for d in stored)
        assert (clock_before - newest).total_seconds() - EPSILON <= lags[(spec.asset,)]
        assert lags[(spec.asset,)] <= (clock_after - newest).total_seconds() + EPSILON
    assert rows[("raw/newsapi/articles",)] > 0
    mongo.close()


def test_quality_results_match_the_verdicts_and_the_latest_check_runs(
    stores: Stores, exporter: Exporter
) -> None:
    scrape = exporter.scrape()

    verdicts = _sql(
        stores.pg_url,
        "SELECT asset, CASE WHEN passed THEN 'passed' ELSE 'failed' END, count(*) "
        "FROM quality.candle_verdicts GROUP BY 1, 2",
    )
    assert scrape.by("coinswarm_quality_candle_verdicts", "asset", "verdict") == {
        (asset, verdict): n for asset, verdict, n in verdicts
    }
    assert {(v, n) for _, v, n in verdicts} == {("passed", 1), ("failed", 1)}
    # The gap day was the candle gate's last evaluation (the unserved day's check never ran);
    # the Fear & Greed suite passed; checks never run are not reported.
    assert scrape.by("coinswarm_quality_check_passing", "asset", "check") == {
        (BINANCE, "candles_valid"): 0.0,
        ("raw/fear_greed/index", "fear_greed_valid"): 1.0,
        ("raw/newsapi/articles", "articles_valid"): 1.0,
    }


def _step_failures(instance: dg.DagsterInstance) -> list[tuple[str, str | None]]:
    return [
        (run.tags.get("dagster/partition", ""), event.step_key)
        for run in instance.get_runs()
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]


def test_ingest_errors_are_the_raw_steps_failures_and_grow_with_new_ones(
    stores: Stores, exporter: Exporter
) -> None:
    scrape = exporter.scrape()

    with dg.DagsterInstance.from_config(str(stores.dagster_home)) as instance:
        failures = _step_failures(instance)
    # The unserved day failed in the asset's step; the gap day in its check's step, which is a
    # quality failure, not an ingestion error.
    assert sorted(failures) == [
        (GAP_DAY, "raw__binance__ohlcv_candles_valid"),
        (UNSERVED_DAY, "raw__binance__ohlcv"),
    ]
    errors = scrape.by("coinswarm_ingest_errors_total", "asset")
    assert errors[(BINANCE,)] == 1
    assert set(errors) == {(asset,) for asset in raw_asset_steps().values()}
    assert sum(errors.values()) == 1
    runs = scrape.by("coinswarm_dagster_runs", "job", "status")
    assert runs[(TEST_JOB, "FAILURE")] == 2 and runs[(TEST_JOB, "SUCCESS")] == 3
    assert exporter.scrape().by("coinswarm_ingest_errors_total", "asset") == errors

    from assets.ingest.factory import raw_candle_assets

    with dg.DagsterInstance.from_config(str(stores.dagster_home)) as instance:
        failed = dg.materialize(
            [raw_candle_assets[0]],
            partition_key=UNSERVED_DAY,
            resources={
                "postgres_window_io_manager": PostgresWindowIOManager(
                    postgres=PostgresResource(url=stores.pg_url)
                ),
                "binance_client": BinanceReplayClient(),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert not failed.success
    assert exporter.scrape().value("coinswarm_ingest_errors_total", asset=BINANCE) == 2


def test_trading_and_memory_match_the_tables(stores: Stores, exporter: Exporter) -> None:
    scrape = exporter.scrape()
    url = stores.pg_url

    decisions = dict(_sql(url, "SELECT outcome, count(*) FROM trading.decisions GROUP BY 1"))
    assert scrape.by("coinswarm_trading_decisions", "outcome") == {
        (k,): v for k, v in decisions.items()
    }
    assert sum(decisions.values()) == len(stores.traded.decisions) > 0
    assert scrape.by("coinswarm_trading_orders", "side", "status") == {
        (side, status): n
        for side, status, n in _sql(
            url, "SELECT side, status, count(*) FROM trading.orders GROUP BY 1, 2"
        )
    }
    fills = _sql(url, "SELECT side, count(*), sum(fee) FROM trading.fills GROUP BY 1")
    assert scrape.by("coinswarm_trading_fills", "side") == {(side,): n for side, n, _ in fills}
    assert sum(n for _, n, _ in fills) == len(stores.traded.fills) > 0
    assert scrape.value("coinswarm_trading_fees") == pytest.approx(sum(f for *_, f in fills))
    newest = _sql(url, "SELECT extract(epoch FROM max(ts)) FROM trading.decisions")[0][0]
    assert scrape.value("coinswarm_trading_last_decision_timestamp_seconds") == float(newest)

    day, equity, cash, realized, unrealized, peak, gross, net, state = _sql(
        url,
        "SELECT partition_date, equity, cash, realized_pnl, unrealized_pnl, peak_equity, "
        "gross_exposure, net_exposure, risk_state FROM trading.pnl "
        "ORDER BY partition_date DESC LIMIT 1",
    )[0]
    assert str(day) == "2018-01-15"
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    assert scrape.value("coinswarm_trading_last_day_timestamp_seconds") == midnight
    for name, value in (
        ("equity", equity),
        ("cash", cash),
        ("realized_pnl", realized),
        ("unrealized_pnl", unrealized),
        ("peak_equity", max(peak, equity)),
        ("gross_exposure", gross),
        ("net_exposure", net),
        ("drawdown_ratio", 1 - equity / max(peak, equity)),
    ):
        assert scrape.value(f"coinswarm_trading_{name}") == pytest.approx(value), name
    assert scrape.by("coinswarm_trading_risk_state", "state") == {
        (s.value,): float(s.value == state) for s in RiskState
    }
    positions = _sql(
        url,
        "SELECT symbol, quantity * mark_price FROM trading.positions WHERE partition_date = :day",
        day=day,
    )
    assert scrape.by("coinswarm_trading_position_value", "symbol") == pytest.approx(
        {(symbol,): value for symbol, value in positions}
    )
    config = load_committee_config()
    assert scrape.value("coinswarm_trading_initial_equity") == config.initial_cash
    assert scrape.value("coinswarm_trading_drawdown_limit_ratio") == (
        config.risk.max_drawdown_fraction
    )

    proposals = dict(_sql(url, "SELECT status, count(*) FROM memory.proposals GROUP BY 1"))
    assert scrape.by("coinswarm_memory_proposals", "status") == {
        (k,): v for k, v in proposals.items()
    }
    memories, patterns = _sql(
        url, "SELECT (SELECT count(*) FROM memory.memories), (SELECT count(*) FROM memory.patterns)"
    )[0]
    assert scrape.value("coinswarm_memory_memories") == memories > 0
    assert scrape.value("coinswarm_memory_patterns") == patterns > 0


def test_the_risk_state_gauge_follows_the_newest_day(stores: Stores, exporter: Exporter) -> None:
    engine = sa.create_engine(stores.pg_url, poolclass=sa.pool.NullPool)
    newest = "(SELECT max(partition_date) FROM trading.pnl)"
    with engine.begin() as conn:
        kept = conn.execute(
            sa.text(f"SELECT risk_state FROM trading.pnl WHERE partition_date = {newest}")
        ).scalar_one()
        conn.execute(
            sa.text(f"UPDATE trading.pnl SET risk_state = 'halted' WHERE partition_date = {newest}")
        )
    try:
        states = exporter.scrape().by("coinswarm_trading_risk_state", "state")
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE trading.pnl SET risk_state = :s WHERE partition_date = {newest}"),
                {"s": kept},
            )
        engine.dispose()
    assert states == {("active",): 0.0, ("reducing",): 0.0, ("halted",): 1.0}


def test_an_unreachable_database_yields_error_series_not_a_500(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    missing = sa.make_url(stores.pg_url).set(database="no_such_database", password=PLANTED_PASSWORD)
    engine = metrics_engine(missing)
    tables, collections = ingest_sources()
    mongo = pymongo.MongoClient(stores.mongo_uri, tz_aware=True)
    collector = StoreCollector(
        [
            PostgresReader(lambda: engine, tables, trading_limits()),
            MongoReader(lambda: mongo[stores.mongo_database], collections),
        ]
    )
    registry = exporter_registry(collector)
    try:
        with caplog.at_level(logging.DEBUG, logger="orchestration.metrics"):
            first, second = Scrape(registry), Scrape(registry)
    finally:
        engine.dispose()
        mongo.close()

    postgres_parts = {"postgres_ingest", "postgres_quality", "postgres_trading", "postgres_memory"}
    assert second.by("coinswarm_scrape_success", "part") == {
        **{(p,): 0.0 for p in postgres_parts},
        ("mongo_documents",): 1.0,
    }
    assert first.value("coinswarm_scrape_errors_total", part="postgres_trading") == 1
    assert second.value("coinswarm_scrape_errors_total", part="postgres_trading") == 2
    assert second.value("coinswarm_scrape_errors_total", part="mongo_documents") == 0
    assert not second.has("coinswarm_ingest_rows", asset=BINANCE)
    assert not second.has("coinswarm_trading_decisions")
    assert second.value("coinswarm_ingest_rows", asset="raw/newsapi/articles") > 0
    assert "no_such_database" in caplog.text, "the log says what failed"
    for text in (first.text, second.text, caplog.text):
        assert PLANTED_PASSWORD not in text


def test_a_blocked_query_is_cut_by_the_scrape_budget(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    engine = metrics_engine(stores.pg_url)
    tables, _ = ingest_sources()
    collector = StoreCollector([PostgresReader(lambda: engine, tables)], budget_s=1.0)
    locker = sa.create_engine(stores.pg_url, poolclass=sa.pool.NullPool)
    try:
        with locker.connect() as conn, conn.begin():
            conn.execute(sa.text("LOCK TABLE trading.pnl IN ACCESS EXCLUSIVE MODE"))
            with caplog.at_level(logging.WARNING, logger="orchestration.metrics"):
                scrape = Scrape(exporter_registry(collector))
    finally:
        engine.dispose()
        locker.dispose()

    assert scrape.value("coinswarm_scrape_success", part="postgres_ingest") == 1
    assert scrape.value("coinswarm_scrape_success", part="postgres_trading") == 0
    assert not scrape.has("coinswarm_trading_decisions"), "a failed part serves none of its series"
    assert scrape.value("coinswarm_ingest_rows", asset=BINANCE) > 0
    assert "statement timeout" in caplog.text


def test_labels_carry_no_secret_host_or_path(stores: Stores) -> None:
    url = sa.make_url(stores.pg_url).set(password=PLANTED_PASSWORD)  # trust auth ignores it
    engine = metrics_engine(url)
    mongo = pymongo.MongoClient(stores.mongo_uri, tz_aware=True)
    instance = CachedInstance(lambda: stores.dagster_home)
    collector = StoreCollector(_readers(stores, engine, mongo, instance))
    try:
        scrape = Scrape(exporter_registry(collector))
    finally:
        engine.dispose()
        mongo.close()
        instance.dispose()

    assert scrape.value("coinswarm_scrape_success", part="postgres_ingest") == 1
    parsed = sa.make_url(stores.pg_url)
    forbidden = [
        PLANTED_PASSWORD,
        "://",
        "@",
        str(parsed.query.get("host")),  # the server's socket directory
        str(parsed.database),
        str(stores.dagster_home),
        stores.mongo_database,
        stores.mongo_uri.split("//")[1].rstrip("/"),
    ]
    for sample in scrape.samples:
        for value in sample.labels.values():
            assert not any(f in value for f in forbidden), (sample.name, value)
            assert re.fullmatch(r"[A-Za-z0-9_./-]+", value), (sample.name, value)
    assert PLANTED_PASSWORD not in scrape.text


# -------------------------------------------------------------------------------------- stream


def _bytes(payload: str | bytes) -> int:
    return len(payload if isinstance(payload, bytes) else payload.encode())


def test_the_stream_collector_counts_each_venue(shared_data: Path, tmp_path: Path) -> None:
    from assets.ingest.streams import binance, coinbase
    from tests.support.streaming import CRYPTOFEED_BINANCE, CRYPTOFEED_COINBASE

    recordings = {
        "binance": Recording(shared_data / CRYPTOFEED_BINANCE, binance),
        "coinbase": Recording(shared_data / CRYPTOFEED_COINBASE, coinbase),
    }
    service = StreamService(ParquetTickStore(tmp_path / "ticks"))
    registry = exporter_registry(StreamCollector(service))
    before = Scrape(registry)
    stats = asyncio.run(service.run(recordings=list(recordings.values())))
    scrape = Scrape(registry)

    assert not before.has("coinswarm_stream_messages_total"), "no venue before any message"
    assert {s.name for s in STREAM_METRICS} <= {
        f"{name}_total" if f.type == "counter" else name for name, f in scrape.families.items()
    }
    assert {s.name for s in scrape.samples} <= exported_metric_names()
    for venue, recording in recordings.items():
        messages = list(read_recording(recording.path))
        parsed = [(m, recording.feed.parse(m.payload, m.received_ns)) for m in messages]
        with_ticks = [(m, p) for m, p in parsed if p.ticks]
        assert scrape.value("coinswarm_stream_messages_total", venue=venue) == len(messages)
        assert scrape.value("coinswarm_stream_received_bytes_total", venue=venue) == sum(
            _bytes(m.payload) for m in messages
        )
        assert scrape.value("coinswarm_stream_ticks_total", venue=venue) == sum(
            len(p.ticks) for _, p in parsed
        )
        last_message, last_parsed = with_ticks[-1]
        assert scrape.value("coinswarm_stream_receive_lag_seconds", venue=venue) == (
            pytest.approx((last_message.received_ns - last_parsed.ticks[-1].ts) / 1e9)
        )
        assert scrape.value(
            "coinswarm_stream_last_message_timestamp_seconds", venue=venue
        ) == pytest.approx(messages[-1].received_ns / 1e9)
    for name, total in (
        ("messages", stats.messages),
        ("ticks", stats.ticks),
        ("duplicates", stats.duplicates),
        ("malformed", stats.malformed),
        ("gaps", stats.gaps),
        ("missing_ids", stats.missing_ids),
    ):
        assert sum(scrape.by(f"coinswarm_stream_{name}_total", "venue").values()) == total, name
    assert scrape.value("coinswarm_stream_ticks_written_total") == stats.writer.ticks_written > 0
    assert scrape.value("coinswarm_stream_store_batches_total") == stats.writer.batches
    assert scrape.value("coinswarm_stream_pending_ticks") == 0
    assert scrape.value("coinswarm_stream_store_failing") == 0
