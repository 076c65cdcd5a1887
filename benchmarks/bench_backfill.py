"""Backfilling 30 daily partitions of one exchange source through Dagster: wall time and peak
memory, next to the same work done without Dagster, in the same run.

The source is ``raw/binance/agg_trades`` (Binance aggregate trades of ETH/BTC and LTC/BTC) from
its replay client: deterministic synthetic trades priced inside the bundled real 5-minute
candles, about 5,000 a day. Every measured phase runs in a fresh child process against the same
throwaway embedded PostgreSQL, so each peak RSS is that phase's own (``ru_maxrss`` of the child)
and nothing is cached between phases:

* ``dagster single-run backfill``: the asset's job executed over the partition range
  2018-01-10..2018-02-08 as one run (the asset's ``BackfillPolicy.single_run()``), exactly what a
  backfill launched from the UI or the CLI runs: the replay client, fetch/parse, the window IO
  manager's DELETE + COPY, and the Great Expectations suite run as the asset's check.
* ``baseline fetch+parse+COPY``: the same module functions and ``replace_window`` called
  directly for the same 30-day window, without Dagster and without the quality suite.
* ``baseline + GX suite``: the same, plus the asset's Great Expectations suite on the rows
  (``orchestration.quality.validate_frame``), so that what remains of the Dagster figure is
  Dagster's own cost.
* ``baseline COPY only``: the rows prepared untimed, then only ``replace_window`` timed.
* ``dagster 30 partition runs`` (``--per-partition``): one run per day, what a backfill without
  the single-run policy would launch.

After each phase the table must hold exactly the rows the baseline wrote: the backfill neither
loses nor duplicates anything. Run from the repo root::

    .venv/bin/python benchmarks/bench_backfill.py [--days 30] [--per-partition] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

FIRST_DAY = datetime(2018, 1, 10, tzinfo=UTC)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
ASSET_KEY = ["raw", "binance", "agg_trades"]
TABLE = "raw.binance_agg_trades"


@dataclass(frozen=True)
class Phase:
    name: str
    wall_s: float
    rows: int
    peak_rss_mb: float
    rss_after_imports_mb: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _window(days: int) -> tuple[datetime, datetime]:
    return FIRST_DAY, FIRST_DAY + timedelta(days=days)


def _count(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"select count(*) from {TABLE}")).scalar_one())
    finally:
        engine.dispose()


def _truncate(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"truncate {TABLE}"))
    finally:
        engine.dispose()


def _feed() -> Any:
    from assets.ingest.registry import TABLE_FEEDS

    return next(f for f in TABLE_FEEDS if f.key == ASSET_KEY)


def _fetch_parse(days: int) -> Any:
    import pandas as pd

    from orchestration.resources.replay import BinanceReplayClient

    feed = _feed()
    client = BinanceReplayClient()
    start, end = _window(days)
    frames = [feed.module.parse(feed.module.fetch(client, s, start, end), s) for s in feed.subjects]
    return pd.concat(frames, ignore_index=True).sort_values(list(feed.module.KEY_COLUMNS))


def _phase(name: str, url: str, home: str, days: int, queue: multiprocessing.Queue) -> None:
    """One measured phase, in a fresh process; puts its Phase (or an error) on ``queue``."""
    os.environ["COINSWARM_HOME"] = home
    try:
        import dagster as dg

        from assets.ingest.factory import raw_assets
        from orchestration.io_managers.postgres_window import (
            PostgresWindowIOManager,
            replace_window,
        )
        from orchestration.partitions import daily_partitions
        from orchestration.resources.postgres import PostgresResource, engine_for_url
        from orchestration.resources.replay import BinanceReplayClient

        _truncate(url)
        after_imports = _rss_mb()
        start, end = _window(days)
        if name.startswith("baseline"):
            engine = engine_for_url(url)
            prepared = _fetch_parse(days) if name == "baseline COPY only" else None
            began = time.perf_counter()
            frame = prepared if prepared is not None else _fetch_parse(days)
            rows = replace_window(
                engine, TABLE, frame, partition_expr="trade_time", start=start, end=end
            )
            if name == "baseline + GX suite":
                from assets.ingest.factory import _with_window_flag
                from orchestration.quality import validate_frame

                feed = _feed()
                checked = validate_frame(
                    _with_window_flag(frame, feed.time_column, start, end),
                    feed.suite,
                    asset_name=feed.asset_path,
                    partition_key="baseline",
                    docs="failures",
                )
                if not checked.passed:
                    raise RuntimeError(f"{name}: the suite failed: {checked.failures}")
            wall = time.perf_counter() - began
        else:
            asset = next(a for a in raw_assets if a.key == dg.AssetKey(ASSET_KEY))
            postgres = PostgresResource(url=url)
            job = dg.Definitions(
                assets=[asset],
                jobs=[dg.define_asset_job("backfill", selection=[asset.key])],
                resources={
                    "postgres": postgres,
                    "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
                    "binance_client": BinanceReplayClient(),
                },
            ).resolve_job_def("backfill")
            keys = daily_partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(
                    start.date().isoformat(), (end - timedelta(days=1)).date().isoformat()
                )
            )
            with dg.DagsterInstance.ephemeral() as instance:
                began = time.perf_counter()
                if name == "dagster single-run backfill":
                    results = [
                        job.execute_in_process(
                            instance=instance,
                            run_config=QUIET,
                            tags={
                                "dagster/asset_partition_range_start": keys[0],
                                "dagster/asset_partition_range_end": keys[-1],
                            },
                        )
                    ]
                else:
                    results = [
                        job.execute_in_process(
                            instance=instance, partition_key=key, run_config=QUIET
                        )
                        for key in keys
                    ]
                wall = time.perf_counter() - began
            if not all(r.success for r in results):
                raise RuntimeError(f"{name}: a run failed")
            checks = [e for r in results for e in r.get_asset_check_evaluations()]
            if not checks or not all(c.passed for c in checks):
                raise RuntimeError(f"{name}: the quality check did not pass")
            rows = _count(url)
        queue.put(asdict(Phase(name, wall, int(rows), _rss_mb(), after_imports)))
    except BaseException as error:  # the parent reports it
        queue.put({"error": f"{name}: {type(error).__name__}: {error}"})


def _run_phase(name: str, url: str, home: str, days: int) -> Phase:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_phase, args=(name, url, home, days, queue))
    process.start()
    outcome = queue.get()
    process.join()
    if "error" in outcome:
        raise SystemExit(outcome["error"])
    return Phase(**outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-partition", action="store_true", help="also time one run per day")
    parser.add_argument("--out", type=Path, help="write the figures as JSON too")
    args = parser.parse_args()

    from orchestration.embedded import ensure_postgres, stop_postgres
    from orchestration.migrations import upgrade_to_head

    root = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/tmp"))
    try:
        url = ensure_postgres(root / "pg", database="bench")
        upgrade_to_head(url)
        names = [
            "baseline COPY only",
            "baseline fetch+parse+COPY",
            "baseline + GX suite",
            "dagster single-run backfill",
        ]
        if args.per_partition:
            names.append("dagster 30 partition runs")
        phases = []
        for name in names:
            phases.append(_run_phase(name, url, str(root / "home"), args.days))
            print(f"  {name}: {phases[-1].wall_s:.2f}s", file=sys.stderr, flush=True)
        expected = phases[0].rows
        for phase in phases:
            if phase.rows != expected:
                raise SystemExit(f"{phase.name} left {phase.rows} rows, expected {expected}")
    finally:
        stop_postgres(root / "pg")
        shutil.rmtree(root, ignore_errors=True)

    start, end = _window(args.days)
    baseline = next(p for p in phases if p.name == "baseline fetch+parse+COPY")
    print(
        f"backfill of {args.days} daily partitions of {'/'.join(ASSET_KEY)} "
        f"({start.date()}..{(end - timedelta(days=1)).date()}), {expected:,} rows, "
        f"python {platform.python_version()}, dagster {version('dagster')}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'phase':<30} {'wall s':>8} {'rows/s':>9} {'peak RSS MB':>12} {'after imports':>14} "
        f"{'wall / baseline':>16}"
    )
    for p in phases:
        print(
            f"{p.name:<30} {p.wall_s:8.2f} {p.rows_per_s:9,.0f} {p.peak_rss_mb:12.0f} "
            f"{p.rss_after_imports_mb:14.0f} {p.wall_s / baseline.wall_s:15.2f}x"
        )
    if args.out:
        args.out.write_text(json.dumps([asdict(p) for p in phases], indent=2))


if __name__ == "__main__":
    main()
