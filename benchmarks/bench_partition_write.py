"""How fast a partition window is replaced in PostgreSQL, against the usual pandas/SQLAlchemy ways.

Every time-partitioned asset writes through ``replace_window`` (delete the window, then COPY the
new rows, in one transaction). This measures it on the real bundled Binance 5m candles, next to
two baselines run in the same process on the same server and the same rows, each also a DELETE of
the window followed by its insert in one transaction:

* ``DataFrame.to_sql(method="multi", chunksize=1000)``, the pandas idiom;
* SQLAlchemy ``conn.execute(insert(table), records)``, an executemany.

Cases: one daily partition (1,152 rows), the whole recorded window as one range (22,998 rows) and
a synthetic tenfold (the real rows repeated with timestamps shifted by 21 days per copy). Each
timed run replaces a window that is already present, so every run pays the delete too. It also
times ``replace_window`` into an emptied window (a first write) against a re-run, and checks
after every run that the table holds exactly the rows it held before: re-runs never duplicate.
Figures are medians of 5 timed runs after 1 warm-up; the synthetic case runs once by default, as
``to_sql`` alone needs about a minute per run there.

Run from the repo root::

    .venv/bin/python benchmarks/bench_partition_write.py [--out results.json] [--repeats 5]
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
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import pandas as pd
import sqlalchemy as sa

from orchestration.deployment import PROJECT_ROOT
from orchestration.embedded import ensure_postgres, stop_postgres
from orchestration.io_managers.postgres_window import replace_window
from orchestration.migrations import upgrade_to_head
from orchestration.resources.postgres import dispose_engine, engine_for_url

RECORDED_DIR = PROJECT_ROOT / "assets" / "ingest" / "recorded" / "binance"
TABLE = "raw.binance_ohlcv"
PARTITION_EXPR = "open_time"
COLUMNS = ["symbol", "interval", "open_time", "open", "high", "low", "close", "volume"]
PAIRS = {"ETHBTC": "ETH/BTC", "ADABTC": "ADA/BTC", "LTCBTC": "LTC/BTC", "XMRBTC": "XMR/BTC"}

WINDOW_START = datetime(2018, 1, 10, tzinfo=UTC)
WINDOW_END = datetime(2018, 1, 31, tzinfo=UTC)  # the recording ends 2018-01-30T04:50Z
DAY = datetime(2018, 1, 16, tzinfo=UTC)  # a full day (288 candles for each pair): the crash day
COPY_SHIFT = WINDOW_END - WINDOW_START  # whole days, so every copy stays day-aligned
DEFAULT_COPIES = 10

OURS = "replace_window: DELETE + COPY"
TO_SQL = "to_sql(multi, 1000) after DELETE"
EXECUTEMANY = "SA executemany after DELETE"


@dataclass(frozen=True)
class Case:
    name: str
    start: datetime
    end: datetime
    frame: pd.DataFrame
    synthetic: bool


@dataclass(frozen=True)
class Measurement:
    case: str
    rows: int
    method: str
    median_s: float
    rows_per_s: float
    repeats: int
    warmup: int
    samples_s: list[float]
    ours_over_this: float
    """rows/s of replace_window over rows/s of this method (1.0 for replace_window itself)."""


def load_recorded() -> pd.DataFrame:
    """The bundled real candles of the four pairs, in the common candle schema."""
    frames = []
    for path in sorted(RECORDED_DIR.glob("binance-*-5m-*.csv.gz")):
        pair = path.name.split("-")[1]
        raw = pd.read_csv(path)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": PAIRS[pair],
                    "interval": "5m",
                    "open_time": pd.to_datetime(raw["timestamp"], utc=True).astype(
                        "datetime64[ns, UTC]"
                    ),
                    **{c: raw[c].astype("float64") for c in COLUMNS[3:]},
                },
                columns=COLUMNS,
            )
        )
    if len(frames) != len(PAIRS):
        raise FileNotFoundError(f"expected {len(PAIRS)} recorded pairs in {RECORDED_DIR}")
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["open_time", "symbol"], kind="stable").reset_index(drop=True)


def synthetic_multiple(real: pd.DataFrame, copies: int) -> pd.DataFrame:
    """The real rows repeated ``copies`` times, each copy shifted by a whole window."""
    shifted = []
    for k in range(copies):
        copy = real.copy()
        copy["open_time"] = copy["open_time"] + pd.Timedelta(COPY_SHIFT * k)
        shifted.append(copy)
    return pd.concat(shifted, ignore_index=True)


def build_cases(real: pd.DataFrame, everything: pd.DataFrame, copies: int) -> list[Case]:
    def window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
        times = frame["open_time"]
        return frame[(times >= start) & (times < end)].reset_index(drop=True)

    day_end = DAY + timedelta(days=1)
    big_end = WINDOW_START + COPY_SHIFT * copies
    return [
        Case(f"day {DAY:%Y-%m-%d}", DAY, day_end, window(real, DAY, day_end), False),
        Case(
            f"window {WINDOW_START:%m-%d}..{WINDOW_END - timedelta(days=1):%m-%d}",
            WINDOW_START,
            WINDOW_END,
            window(real, WINDOW_START, WINDOW_END),
            False,
        ),
        Case(f"{copies}x synthetic", WINDOW_START, big_end, everything, True),
    ]


# -- the three writers: each deletes the window and inserts the frame in one transaction ------


def write_ours(engine: sa.Engine, case: Case) -> None:
    replace_window(
        engine, TABLE, case.frame, partition_expr=PARTITION_EXPR, start=case.start, end=case.end
    )


def _delete_window(conn: sa.Connection, case: Case) -> None:
    conn.execute(
        sa.text(f"DELETE FROM {TABLE} WHERE open_time >= :start AND open_time < :end"),
        {"start": case.start, "end": case.end},
    )


def write_to_sql(engine: sa.Engine, case: Case) -> None:
    with engine.begin() as conn:
        _delete_window(conn, case)
        case.frame.to_sql(
            "binance_ohlcv",
            conn,
            schema="raw",
            if_exists="append",
            index=False,
            method="multi",
            chunksize=1000,
        )


_CANDLES = sa.table(
    "binance_ohlcv",
    sa.column("symbol", sa.Text),
    sa.column("interval", sa.Text),
    sa.column("open_time", sa.DateTime(timezone=True)),
    *(sa.column(c, sa.Float) for c in ("open", "high", "low", "close", "volume")),
    schema="raw",
)


def write_executemany(engine: sa.Engine, case: Case) -> None:
    with engine.begin() as conn:
        _delete_window(conn, case)
        conn.execute(sa.insert(_CANDLES), case.frame.to_dict("records"))


WRITERS: dict[str, Callable[[sa.Engine, Case], None]] = {
    OURS: write_ours,
    TO_SQL: write_to_sql,
    EXECUTEMANY: write_executemany,
}


# -- measuring -----------------------------------------------------------------------------


def count_rows(
    engine: sa.Engine, start: datetime | None = None, end: datetime | None = None
) -> int:
    sql = f"SELECT count(*) FROM {TABLE}"
    params: dict[str, datetime] = {}
    if start is not None and end is not None:
        sql += " WHERE open_time >= :start AND open_time < :end"
        params = {"start": start, "end": end}
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar_one())


def vacuum(engine: sa.Engine) -> None:
    """Reclaim the previous run's dead rows so that no run pays for another's (not timed)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM (ANALYZE) {TABLE}"))


def timed_write(
    engine: sa.Engine, writer: Callable[[sa.Engine, Case], None], case: Case, total: int
) -> float:
    vacuum(engine)
    began = time.perf_counter()
    writer(engine, case)
    elapsed = time.perf_counter() - began
    window_rows = count_rows(engine, case.start, case.end)
    table_rows = count_rows(engine)
    if window_rows != len(case.frame) or table_rows != total:
        raise AssertionError(
            f"{writer.__name__} on {case.name}: window holds {window_rows} rows (expected "
            f"{len(case.frame)}), table {table_rows} (expected {total}): duplicated or lost rows"
        )
    return elapsed


def measure_case(
    engine: sa.Engine, case: Case, total: int, repeats: int, warmup: int
) -> tuple[list[Measurement], dict[str, object]]:
    """Time the three writers on ``case``, and replace_window's first write into an emptied
    window, which shows what the delete part of a re-run costs.

    The writers take turns within each round, so drift (checkpoints, cache, neighbours on the
    machine) hits them all alike.
    """
    before = count_rows(engine)
    samples: dict[str, list[float]] = {name: [] for name in WRITERS}
    first_writes: list[float] = []
    for run in range(warmup + repeats):
        for name, writer in WRITERS.items():
            elapsed = timed_write(engine, writer, case, total)
            if run >= warmup:
                samples[name].append(elapsed)
        with engine.begin() as conn:
            _delete_window(conn, case)
        elapsed = timed_write(engine, write_ours, case, total)
        if run >= warmup:
            first_writes.append(elapsed)
    after = count_rows(engine)
    if after != before:
        raise AssertionError(f"re-runs of {case.name} changed the row count: {before} -> {after}")

    ours = statistics.median(samples[OURS])
    measurements = [
        Measurement(
            case=case.name,
            rows=len(case.frame),
            method=name,
            median_s=statistics.median(times),
            rows_per_s=len(case.frame) / statistics.median(times),
            repeats=repeats,
            warmup=warmup,
            samples_s=times,
            ours_over_this=statistics.median(times) / ours,
        )
        for name, times in samples.items()
    ]
    first = statistics.median(first_writes)
    rerun = {
        "case": case.name,
        "rows": len(case.frame),
        "first_write_median_s": first,
        "rerun_median_s": ours,
        "rerun_over_first": ours / first,
        "repeats": repeats,
        "warmup": warmup,
        "table_rows_before": before,
        "table_rows_after": after,
        "first_write_samples_s": first_writes,
        "rerun_samples_s": samples[OURS],
    }
    return measurements, rerun


# -- report --------------------------------------------------------------------------------


def render(
    measurements: list[Measurement], reruns: list[dict[str, object]], meta: dict[str, object]
) -> str:
    lines = [
        f"partition write benchmark, {meta['date']}, {meta['cpus']} cpus, Python {meta['python']},"
        f" PostgreSQL {meta['postgres']}, pandas {meta['pandas']}, SQLAlchemy"
        f" {meta['sqlalchemy']}, psycopg {meta['psycopg']}",
        "",
        f"{'case':<19} {'rows':>8}  {'method':<32} {'n':>5} {'median s':>9} {'rows/s':>8}"
        f" {'ours/this':>9}",
    ]
    previous = None
    for m in measurements:
        first_of_case = m.case != previous
        previous = m.case
        case, rows = (m.case, f"{m.rows:,}") if first_of_case else ("", "")
        lines.append(
            f"{case:<19} {rows:>8}  {m.method:<32} {m.repeats:>2}+{m.warmup:<2}"
            f" {m.median_s:>9.3f} {m.rows_per_s:>8,.0f} {m.ours_over_this:>8.2f}x"
        )
    lines += [
        "",
        "n = timed runs (median) + warm-up runs; ours/this = rows/s of replace_window over rows/s"
        " of the method",
        "",
        "replace_window re-run (window present: the row above) vs first write (window emptied,"
        " untimed, just before):",
        f"{'case':<19} {'rows':>8}  {'n':>5} {'first s':>9} {'re-run s':>9} {'re-run/first':>12}"
        "  table rows before -> after",
    ]
    for r in reruns:
        lines.append(
            f"{r['case']:<19} {r['rows']:>8,}  {r['repeats']:>2}+{r['warmup']:<2}"
            f" {r['first_write_median_s']:>9.3f} {r['rerun_median_s']:>9.3f}"
            f" {r['rerun_over_first']:>11.2f}x  {r['table_rows_before']:,} ->"
            f" {r['table_rows_after']:,}"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh embedded PostgreSQL, migrated, stopped and deleted afterwards whatever happens."""
    # Short path: the server's unix socket lives in the data directory (~107-byte limit).
    root = Path(tempfile.mkdtemp(prefix="cs-bench-", dir="/tmp"))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this path")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before those")
    parser.add_argument(
        "--scale-repeats",
        type=int,
        default=1,
        help="timed runs of the synthetic 230k case, without warm-up (to_sql alone takes ~50 s"
        " per run there; the default keeps the whole script near two minutes on 2 cores)",
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=DEFAULT_COPIES,
        help="size of the synthetic case, in copies of the recorded rows (the first is the"
        " recording itself)",
    )
    args = parser.parse_args(argv)
    if min(args.repeats, args.scale_repeats, args.copies) < 1 or args.warmup < 0:
        parser.error("--repeats, --scale-repeats and --copies must be >= 1, --warmup >= 0")

    real = load_recorded()
    everything = synthetic_multiple(real, args.copies)
    cases = build_cases(real, everything, args.copies)
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    with throwaway_postgres() as url:
        engine = engine_for_url(url)
        whole = cases[-1]
        total = replace_window(
            engine,
            TABLE,
            everything,
            partition_expr=PARTITION_EXPR,
            start=whole.start,
            end=whole.end,
        )
        with engine.connect() as conn:
            server_version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        measurements: list[Measurement] = []
        reruns: list[dict[str, object]] = []
        for case in cases:
            repeats, warmup = (
                (args.scale_repeats, 0) if case.synthetic else (args.repeats, args.warmup)
            )
            case_measurements, rerun = measure_case(engine, case, total, repeats, warmup)
            measurements += case_measurements
            reruns.append(rerun)
    meta: dict[str, object] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        # The machine may be shared: the 1-minute load average says how busy it was.
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "postgres": server_version,
        "pandas": version("pandas"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
        "recorded_rows": len(real),
        "synthetic_rows": len(everything),
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    print(render(measurements, reruns, meta))
    print(
        f"\n{meta['elapsed_s']} s with the server up; 1-min load average"
        f" {meta['load_1min_before']} before, {meta['load_1min_after']} after"
    )
    if args.out is not None:
        report = {
            "meta": meta,
            "cases": [
                {
                    "case": c.name,
                    "rows": len(c.frame),
                    "start": c.start.isoformat(),
                    "end": c.end.isoformat(),
                    "synthetic": c.synthetic,
                }
                for c in cases
            ],
            "methods": [asdict(m) for m in measurements],
            "reruns": reruns,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
