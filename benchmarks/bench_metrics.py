"""How long one scrape of ``coinswarm metrics`` takes over the demo's volume of rows, against the
same SQL run raw and against an empty exposition.

The store collector reads PostgreSQL at every scrape, so its cost is what each Prometheus scrape
pays. A throwaway embedded PostgreSQL 18 is loaded with about the demo's volume of rows:

* every raw table of the source registry. Each table is loaded from its replay client over the
  demo's 21 days (2018-01-10..30) by the source module's own ``fetch``/``parse`` and
  ``replace_window``. That is what the raw assets write, without Dagster and the quality suites.
* ``trading.*``: one trading session of the packaged committee over the four bundled pairs for
  those 21 days, stored as the trading job stores it.
* ``memory.*``: synthetic rows at the demo's counts: 19,160 proposals, 57,480 votes, 19,158
  memories and 51 patterns. The quorum would take about a minute to write them, and the
  collector only counts them.

Four ways are timed, taking turns in every round:

* ``generate_latest``: the exporter's registry (the store collector's PostgreSQL reader, plus
  prometheus-client's process collector), rendered by ``generate_latest`` as ``/metrics`` does.
* ``HTTP GET /metrics``: the same registry served by ``start_http_server`` and fetched with
  urllib, which is what Prometheus pays.
* ``raw psycopg``: the very statements the collector sent in one scrape (recorded from the
  engine), run raw through one psycopg connection. This is the store's own cost.
* ``empty registry``: ``generate_latest(CollectorRegistry())``, the exposition's floor.

Each figure is the median (and P90) of ``--repeats`` rounds after ``--warmup`` untimed ones.
The script checks that the served decision and fill counts equal the tables'.

Run from the repo root::

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 50] [--out results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd
import psycopg
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from orchestration.deployment import PROJECT_ROOT
from orchestration.embedded import ensure_postgres, stop_postgres
from orchestration.io_managers.postgres_window import replace_window, replace_window_in
from orchestration.metrics import PostgresReader, StoreCollector, exporter_registry, metrics_engine
from orchestration.migrations import upgrade_to_head
from orchestration.resources.postgres import dispose_engine, engine_for_url

WINDOW = (datetime(2018, 1, 10, tzinfo=UTC), datetime(2018, 1, 31, tzinfo=UTC))
RECORDED_CANDLES = PROJECT_ROOT / "assets" / "ingest" / "recorded" / "binance"
PAIRS = {"ETHBTC": "ETH/BTC", "ADABTC": "ADA/BTC", "LTCBTC": "LTC/BTC", "XMRBTC": "XMR/BTC"}
DEMO_MEMORY = {"proposals": 19_160, "committed": 19_158, "patterns": 51}
"""The demo's memory counts (README: rows per table)."""

OURS = "store collector, generate_latest"
HTTP = "store collector, HTTP GET /metrics"
RAW = "same SQL, raw psycopg"
EMPTY = "empty registry, generate_latest"


@dataclass(frozen=True)
class Figure:
    method: str
    repeats: int
    median_ms: float
    p90_ms: float
    ours_over_this: float
    samples_ms: list[float]


# ------------------------------------------------------------------------------------- loading


def load_raw_tables(engine: sa.Engine) -> dict[str, int]:
    """Every raw table from its replay client over the window: fetch, parse, replace_window."""
    from assets.ingest.registry import CANDLE_FEEDS, MACRO_FEEDS, TABLE_FEEDS
    from orchestration.resources.by_deployment import local_resources

    clients = local_resources()
    start, end = WINDOW
    loaded: dict[str, int] = {}
    for feed in CANDLE_FEEDS:
        client = clients[feed.client_key]
        frames = [
            feed.source.parse(
                feed.source.fetch(client, s, start, end, interval=feed.interval), s, feed.interval
            )
            for s in feed.symbols
        ]
        loaded[feed.table] = _replace(engine, feed.table, frames, "open_time")
    for feed in MACRO_FEEDS:
        client = clients[feed.client_key]
        last_day = (end - timedelta(days=1)).date()
        frames = [
            feed.source.parse(feed.source.fetch(client, s, start.date(), last_day), s)
            for s in feed.series
        ]
        loaded[feed.table] = _replace(engine, feed.table, frames, "observation_date")
    for feed in TABLE_FEEDS:
        client = clients[feed.client_key]
        frames = [
            feed.module.parse(feed.module.fetch(client, s, start, end), s) for s in feed.subjects
        ]
        loaded[feed.table] = _replace(engine, feed.table, frames, feed.time_column)
    return loaded


def _replace(engine: sa.Engine, table: str, frames: list[pd.DataFrame], expr: str) -> int:
    frame = pd.concat(frames, ignore_index=True)
    return replace_window(engine, table, frame, partition_expr=expr, start=WINDOW[0], end=WINDOW[1])


def load_trading(engine: sa.Engine) -> dict[str, int]:
    """One session of the packaged committee over the four pairs, stored like the trading job."""
    from trading.backtest.data import load_dataset
    from trading.config import build_session, load_committee_config
    from trading.features import compute_features
    from trading.regime import classify_regimes
    from trading.snapshots import build_snapshots

    config = load_committee_config()
    candles = pd.concat(
        [
            load_dataset(RECORDED_CANDLES / f"binance-{pair}-5m-2018-01.csv.gz", symbol).frame
            for pair, symbol in PAIRS.items()
        ],
        ignore_index=True,
    )
    candles = candles[(candles["ts"] >= WINDOW[0]) & (candles["ts"] < WINDOW[1])]
    features = compute_features(candles, config.features)
    regimes = classify_regimes(
        features,
        volatile_ratio=config.regime.volatile_ratio,
        trend_threshold=config.regime.trend_threshold,
    )
    result = build_session(config).run(build_snapshots(candles, features, regimes))
    window = {"start": WINDOW[0], "end": WINDOW[1]}
    written = {}
    with engine.begin() as conn:
        for table, rows, expr in (
            ("trading.decisions", result.decision_rows(), "ts"),
            ("trading.orders", result.order_rows(), "ts"),
            ("trading.fills", result.fill_rows(), "ts"),
            ("trading.positions", result.daily_positions, "partition_date"),
            ("trading.pnl", result.daily_pnl, "partition_date"),
        ):
            frame = pd.DataFrame(rows)
            written[table] = replace_window_in(conn, table, frame, partition_expr=expr, **window)
    return written


def load_memory(engine: sa.Engine) -> dict[str, int]:
    """Synthetic memory rows at the demo's counts (the collector only counts them)."""
    n, committed, patterns = (
        DEMO_MEMORY["proposals"],
        DEMO_MEMORY["committed"],
        DEMO_MEMORY["patterns"],
    )
    statements = [
        f"""
        INSERT INTO memory.proposals
        SELECT 'k' || i, 'default', 'ETH/BTC', t, t + interval '1 hour', 12, 'ranging',
               's' || (i % {patterns}), 0.5, 0.6, 'active', 0.001,
               CASE WHEN i <= {committed} THEN 'committed' ELSE 'rejected' END
        FROM generate_series(1, {n}) AS i,
             LATERAL (SELECT timestamptz '2018-01-10' + i * interval '5 minutes' AS t) AS ts
        """,
        """
        INSERT INTO memory.votes
        SELECT key, v, true, 'approved' FROM memory.proposals,
               unnest(ARRAY['safety', 'support', 'consistency']) AS v
        """,
        """
        INSERT INTO memory.memories (key, namespace, symbol, ts, matured_at, horizon_bars, regime,
            signature, embedding, direction, confidence, risk_state, vol_short, realised_return)
        SELECT key, namespace, symbol, ts, matured_at, horizon_bars, regime, signature,
               '[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]', direction, confidence, risk_state, 0.004,
               realised_return
        FROM memory.proposals WHERE status = 'committed'
        """,
        f"""
        INSERT INTO memory.patterns (namespace, regime, signature, count)
        SELECT 'default', 'ranging', 's' || i, 1 FROM generate_series(0, {patterns - 1}) AS i
        """,
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("memory.proposals", "memory.votes", "memory.memories", "memory.patterns")
        }


# ------------------------------------------------------------------------------------- timing


def record_statements(engine: sa.Engine, collect: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements (with parameters) one scrape sends, without the statement_timeout SETs."""
    sent: list[tuple[str, Any]] = []

    def listener(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001
        if not statement.startswith("SET statement_timeout"):
            sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        collect()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    return sent


def psycopg_connect(url: str) -> psycopg.Connection:
    parsed = sa.make_url(url)
    host = parsed.host or parsed.query.get("host")
    return psycopg.connect(
        host=host, port=parsed.port, user=parsed.username, dbname=parsed.database, autocommit=True
    )


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def measure(methods: dict[str, Callable[[], object]], repeats: int, warmup: int) -> list[Figure]:
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for round_index in range(warmup + repeats):
        names = list(methods)
        rotation = round_index % len(names)
        for name in names[rotation:] + names[:rotation]:  # take turns: drift hits all alike
            elapsed = timed(methods[name])
            if round_index >= warmup:
                samples[name].append(elapsed)
    ours = statistics.median(samples[OURS])
    figures = []
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else values[0]
        figures.append(Figure(name, len(values), median, p90, ours / median, values))
    return figures


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh embedded PostgreSQL, migrated, stopped and deleted afterwards whatever happens."""
    root = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/tmp"))  # short unix-socket path
    data_dir = root / "pgdata"

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    url: str | None = None
    try:
        url = ensure_postgres(data_dir, database="bench")
        upgrade_to_head(engine_for_url(url))
        yield url
    finally:
        if url is not None:
            dispose_engine(url)
        stop_postgres(data_dir)
        shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _served(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed rounds (median, P90)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds before those")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    if args.repeats < 2 or args.warmup < 0:
        parser.error("--repeats must be >= 2 and --warmup >= 0")
    warnings.simplefilter("ignore")  # Dagster's beta notices as the registry loads
    from cli.metrics import ingest_sources, trading_limits

    load_before = os.getloadavg()[0]
    with throwaway_postgres() as url:
        engine = engine_for_url(url)
        began = time.perf_counter()
        rows = {**load_raw_tables(engine), **load_trading(engine), **load_memory(engine)}
        load_s = time.perf_counter() - began
        with engine.connect() as conn:
            server_version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            decisions, fills = conn.execute(
                sa.text("SELECT (SELECT count(*) FROM trading.decisions), "
                        "(SELECT count(*) FROM trading.fills)")
            ).one()  # fmt: skip

        tables, _ = ingest_sources()
        scrape_engine = metrics_engine(url)
        reader = PostgresReader(lambda: scrape_engine, tables, trading_limits())
        registry = exporter_registry(StoreCollector([reader]))
        exposition = generate_latest(registry).decode()
        if (
            _served(exposition, "coinswarm_trading_decisions") != decisions
            or _served(exposition, "coinswarm_trading_fills") != fills
            or _served(exposition, "coinswarm_scrape_success") != len(reader.parts)
        ):
            raise SystemExit("the scrape does not match the tables: refusing to time it")
        statements = record_statements(scrape_engine, lambda: generate_latest(registry))
        raw = psycopg_connect(url)
        server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        metrics_url = f"http://127.0.0.1:{server.server_address[1]}/metrics"

        def raw_sql() -> None:
            with raw.cursor() as cursor:
                for statement, parameters in statements:
                    cursor.execute(statement, parameters)
                    cursor.fetchall()

        def http_get() -> None:
            with urllib.request.urlopen(metrics_url, timeout=10) as response:
                response.read()

        empty = CollectorRegistry()
        try:
            figures = measure(
                {
                    OURS: lambda: generate_latest(registry),
                    HTTP: http_get,
                    RAW: raw_sql,
                    EMPTY: lambda: generate_latest(empty),
                },
                args.repeats,
                args.warmup,
            )
            parts = {
                sample.labels["part"]: sample.value * 1000
                for family in text_string_to_metric_families(generate_latest(registry).decode())
                for sample in family.samples
                if sample.name == "coinswarm_scrape_duration_seconds"
            }
        finally:
            server.shutdown()
            server.server_close()
            raw.close()
            scrape_engine.dispose()
    load_after = os.getloadavg()[0]

    print(f"rows loaded in {load_s:.1f} s (PostgreSQL {server_version}):")
    for table, count in rows.items():
        print(f"  {table:<36} {count:>9,}")
    series = sum(1 for line in exposition.splitlines() if line and not line.startswith("#"))
    print(
        f"one scrape: {len(statements)} SQL statements, {series} series, "
        f"{len(exposition.encode()):,} bytes"
    )
    print()
    print(f"{'method':<38} {'n':>4} {'median ms':>10} {'P90 ms':>8} {'ours/this':>10}")
    for f in figures:
        print(
            f"{f.method:<38} {f.repeats:>4} {f.median_ms:>10.3f} {f.p90_ms:>8.3f}"
            f" {f.ours_over_this:>9.2f}x"
        )
    print("\none more scrape, per part (coinswarm_scrape_duration_seconds):")
    for part, ms in parts.items():
        print(f"  {part:<20} {ms:>8.3f} ms")
    print(f"\n1-minute load average {load_before:.1f} before, {load_after:.1f} after")
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "statements": len(statements),
                    "series": series,
                    "figures": [asdict(f) for f in figures],
                    "part_ms": parts,
                    "machine": {
                        "python": platform.python_version(),
                        "postgresql": server_version,
                        "prometheus_client": version("prometheus-client"),
                        "psycopg": version("psycopg"),
                        "sqlalchemy": version("sqlalchemy"),
                        "cpus": os.cpu_count(),
                        "load_before": load_before,
                        "load_after": load_after,
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
