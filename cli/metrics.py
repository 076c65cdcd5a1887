"""``coinswarm metrics``: serve ``/metrics`` for Prometheus, read from the stores at each scrape.

Dagster runs are short-lived processes, so nothing they count survives for a scrape: this
exporter reads what they stored instead (``orchestration.metrics``, docs/observability.md).

Where it reads is the deployment's. Locally it attaches to the embedded PostgreSQL and MongoDB
under ``$COINSWARM_HOME`` while they run. It never starts them: an exporter must not start what
it watches, and ``coinswarm demo`` or ``make ui`` start them. It reads the Dagster instance in
``$DAGSTER_HOME`` (default ``$COINSWARM_HOME/dagster``). In prod it reads
``COINSWARM_POSTGRES_URL``, ``COINSWARM_MONGO_URL`` and the instance of ``DAGSTER_HOME``. A store
it cannot read shows as ``coinswarm_scrape_success{part="..."} 0``, and the scrape still answers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.deployment import Deployment, coinswarm_home, current_deployment, dagster_home
from orchestration.metrics import (
    DEFAULT_SCRAPE_BUDGET_S,
    CheckRef,
    DagsterReader,
    IngestCollection,
    IngestTable,
    MongoReader,
    PostgresReader,
    StoreCollector,
    StoreReader,
    TradingLimits,
    exporter_registry,
    metrics_engine,
)
from orchestration.resources.postgres import POSTGRES_URL_VAR

if TYPE_CHECKING:
    import sqlalchemy as sa
    from dagster import DagsterInstance
    from pymongo.database import Database

DEFAULT_PORT = 9464
EXIT_USAGE = 64
DAILY_SOURCE_LAG = timedelta(days=2, hours=6)
"""A daily partition lands once its UTC day has closed (the schedule runs at 00:15), so the
newest row of a healthy daily source is at most two days old when the next run starts; six
hours cover that run."""
TOLERATED_LAG = {"raw/fred/observations": timedelta(days=7)}
"""FRED's daily series (the fed funds rate) skip weekends and holidays and are published a
business day late; its monthly series are older still but never the newest row."""
MONGO_TIMEOUT_MS = 2_000

log = logging.getLogger("coinswarm.metrics")


class StoreNotRunning(RuntimeError):
    """An embedded store is not running; the exporter reports it instead of starting it."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "metrics",
        help="serve Prometheus metrics read from the stores (ingestion, quality, trading)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    parser.add_argument(
        "--scrape-budget",
        type=float,
        default=DEFAULT_SCRAPE_BUDGET_S,
        metavar="SECONDS",
        help="longest one scrape may spend reading the stores (default %(default)s)",
    )
    parser.add_argument("--no-mongo", action="store_true", help="do not read MongoDB")
    parser.add_argument("--no-dagster", action="store_true", help="do not read Dagster's storage")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    parser.set_defaults(func=cmd_metrics)


# ---------------------------------------------------------------------- what there is to report


def ingest_sources() -> tuple[list[IngestTable], list[IngestCollection]]:
    """Every raw asset of the source registry, plus the stream's minute bars."""
    from assets.ingest.registry import (
        CANDLE_FEEDS,
        DOCUMENT_FEEDS,
        MACRO_FEEDS,
        TABLE_FEEDS,
    )
    from assets.ingest.ticks import BARS_TABLE

    def lag(asset: str) -> timedelta:
        return TOLERATED_LAG.get(asset, DAILY_SOURCE_LAG)

    tables = [
        IngestTable(f.asset_path, f.table, "open_time", lag(f.asset_path)) for f in CANDLE_FEEDS
    ]
    tables += [
        IngestTable(f.asset_path, f.table, "observation_date", lag(f.asset_path))
        for f in MACRO_FEEDS
    ]
    for feed in TABLE_FEEDS:
        # Snapshot tables are partitioned by date; taken_at is when the snapshot was taken.
        columns = {name for name, *_ in feed.module.COLUMNS}
        event = "taken_at" if "taken_at" in columns else feed.time_column
        tables.append(IngestTable(feed.asset_path, feed.table, event, lag(feed.asset_path)))
    tables.append(IngestTable("raw/ticks/bars_1m", BARS_TABLE, "bar_time", DAILY_SOURCE_LAG))
    collections = [
        IngestCollection(f.asset_path, f.destination, f.source_name, lag(f.asset_path))
        for f in DOCUMENT_FEEDS
    ]
    return tables, collections


def raw_asset_steps() -> dict[str, str]:
    """Step key -> asset path of every raw asset (Dagster names an asset's op after its key)."""
    import dagster as dg

    from assets.ingest.registry import FEEDS

    return {dg.AssetKey(feed.key).to_python_identifier(): feed.asset_path for feed in FEEDS}


def quality_checks() -> list[CheckRef]:
    from assets.ingest.registry import FEEDS

    return [CheckRef(feed.asset_path, feed.check_name) for feed in FEEDS]


def job_names() -> list[str]:
    """The project's jobs, and ``__ASSET_JOB``: materialisations launched from the asset graph."""
    from orchestration import jobs

    named = [jobs.ingest_job, jobs.daily_pipeline_job, jobs.trading_job, jobs.backtest_job]
    return [job.name for job in named] + ["__ASSET_JOB"]


def trading_limits() -> TradingLimits:
    """From the packaged committee config, the one the trading job loads unless overridden."""
    from trading.config import load_committee_config

    config = load_committee_config()
    return TradingLimits(
        initial_equity=config.initial_cash,
        drawdown_limit=config.risk.max_drawdown_fraction,
        gross_exposure_limit=config.risk.max_gross_exposure_fraction,
    )


# --------------------------------------------------------------------------- where the stores are


class CachedEngine:
    """The scrape engine for whatever URL ``url`` resolves to now (an embedded server may
    come back on another socket after a restart)."""

    def __init__(self, url: Callable[[], str]) -> None:
        self._url = url
        self._current: tuple[str, sa.Engine] | None = None

    def __call__(self) -> sa.Engine:
        url = self._url()
        if self._current is None or self._current[0] != url:
            self.dispose()
            self._current = (url, metrics_engine(url))
        return self._current[1]

    def dispose(self) -> None:
        if self._current is not None:
            self._current[1].dispose()
            self._current = None


def _from_environment(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise LookupError(f"{name} is not set")
    return value


def postgres_url_source(deployment: Deployment) -> Callable[[], str]:
    if deployment is Deployment.PROD:
        return lambda: _from_environment(POSTGRES_URL_VAR)
    from orchestration.embedded import ensure_postgres, postgres_dir, postgres_is_running

    def embedded() -> str:
        data_dir = postgres_dir(coinswarm_home())
        if not postgres_is_running(data_dir):
            raise StoreNotRunning(
                f"the embedded PostgreSQL under {data_dir} is not running "
                "(coinswarm demo or make ui starts it)"
            )
        return ensure_postgres(data_dir)  # attaches to the running server

    return embedded


class CachedMongo:
    """A MongoDB client per URL with short timeouts, so a dead server cannot eat the scrape."""

    def __init__(self, url: Callable[[], str], database: str) -> None:
        self._url = url
        self._database = database
        self._current: tuple[str, Any] | None = None

    def __call__(self) -> Database:
        import pymongo

        url = self._url()
        if self._current is None or self._current[0] != url:
            self.close()
            client = pymongo.MongoClient(
                url,
                serverSelectionTimeoutMS=MONGO_TIMEOUT_MS,
                connectTimeoutMS=MONGO_TIMEOUT_MS,
                socketTimeoutMS=MONGO_TIMEOUT_MS * 3,
                tz_aware=True,
                appname="coinswarm-metrics",
            )
            self._current = (url, client)
        return self._current[1][self._database]

    def close(self) -> None:
        if self._current is not None:
            self._current[1].close()
            self._current = None


def mongo_url_source(deployment: Deployment) -> Callable[[], str]:
    if deployment is Deployment.PROD:
        return lambda: _from_environment("COINSWARM_MONGO_URL")
    from orchestration.embedded import ensure_mongo, mongo_dir, mongo_is_running

    def embedded() -> str:
        data_dir = mongo_dir(coinswarm_home())
        if not mongo_is_running(data_dir):
            raise StoreNotRunning(
                f"the embedded MongoDB under {data_dir} is not running "
                "(coinswarm demo or make ui starts it)"
            )
        return ensure_mongo(data_dir)  # attaches to the running server

    return embedded


class CachedInstance:
    """The Dagster instance of :func:`dagster_home`, opened on the first scrape that finds it."""

    def __init__(self, home: Callable[[], Path] = dagster_home) -> None:
        self._home = home
        self._instance: DagsterInstance | None = None

    def __call__(self) -> DagsterInstance:
        if self._instance is None:
            import dagster as dg

            home = self._home()
            if not home.is_dir():
                raise LookupError(f"no Dagster instance at {home}: nothing has run there yet")
            self._instance = dg.DagsterInstance.from_config(str(home))
        return self._instance

    def dispose(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None


# ------------------------------------------------------------------------------------- the command


class StoreExporter:
    """The collector over the deployment's stores, and what must be closed with it."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        mongo: bool = True,
        dagster: bool = True,
        budget_s: float = DEFAULT_SCRAPE_BUDGET_S,
    ) -> None:
        from orchestration.resources.mongo import DEFAULT_DATABASE

        tables, collections = ingest_sources()
        self.engine = CachedEngine(postgres_url_source(deployment))
        readers: list[StoreReader] = [PostgresReader(self.engine, tables, trading_limits())]
        self.mongo = CachedMongo(mongo_url_source(deployment), DEFAULT_DATABASE) if mongo else None
        if self.mongo is not None:
            readers.append(MongoReader(self.mongo, collections))
        self.instance = CachedInstance() if dagster else None
        if self.instance is not None:
            readers.append(
                DagsterReader(
                    self.instance,
                    raw_steps=raw_asset_steps(),
                    checks=quality_checks(),
                    jobs=job_names(),
                )
            )
        self.collector = StoreCollector(readers, budget_s=budget_s)

    def close(self) -> None:
        self.engine.dispose()
        if self.mongo is not None:
            self.mongo.close()
        if self.instance is not None:
            self.instance.dispose()


def _quiet_dagster_api_notices() -> None:
    """Dagster flags beta/preview APIs as the registry loads; the exporter's user cannot act."""
    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def cmd_metrics(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    _quiet_dagster_api_notices()
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        deployment = current_deployment()
        exporter = StoreExporter(
            deployment,
            mongo=not args.no_mongo,
            dagster=not args.no_dagster,
            budget_s=args.scrape_budget,
        )
    except ValueError as exc:
        print(f"coinswarm metrics: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        server, _ = start_http_server(
            args.port, addr=args.host, registry=exporter_registry(exporter.collector)
        )
    except OSError as exc:
        exporter.close()
        print(f"coinswarm metrics: --port {args.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    host, port = server.server_address[:2]
    print(
        f"coinswarm metrics: serving http://{host}:{port}/metrics "
        f"({deployment.value} deployment); Ctrl-C stops",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        server.shutdown()
        server.server_close()
        exporter.close()
    print("coinswarm metrics: stopped", flush=True)
    return 0
