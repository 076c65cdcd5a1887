"""How many bars per second a full committee backtest runs, against backtesting.py on the same bars.

Ours is ``trading.backtest.engine.run_backtest`` with the packaged default committee
(``trading/committee.yaml``, whatever agents it lists): features and regimes, a snapshot per
bar, every agent's vote, the committee, the risk gate, execution, the paper broker, and the
report's metrics, the same path as the trading job. The baseline is backtesting.py 0.6.6 running
a plain SMA cross (long while the fast SMA is above the slow one, flat otherwise) with the
config's SMA windows, fee and slippage, ``trade_on_close=True`` and fractional units, on the same
loaded candles in the same run. It does much less work per bar; the ratio says what our
per-bar committee path costs, not which engine is "better".

Cases, real recorded candles from ``../shared/data/ohlcv``:

* the four January 2018 5m alt/BTC pairs (ETH, ADA, LTC, XMR), one backtest of all four together
  for ours; backtesting.py trades one instrument per run, so it runs each pair separately and
  its times are summed. Bars are rows summed over the pairs.
* a month of 1m BTC perpetual candles (45,031 bars).

Each figure is the best of ``--repeats`` (3) runs; the engines take turns within each round, so
drift on a shared machine hits both alike. Every run happens in a forked child of the prepared
process (data loaded, modules imported), which times it and reports its peak RSS (``ru_maxrss``,
interpreter, libraries and loaded data included) and its RSS when it started; no run inherits
another's heap. Loading and checking the CSVs is not timed; a short untimed run of each engine
(500 bars) warms imports and caches in the parent first. The script checks that repeated runs
give identical results (final equity, trade counts): the backtests are deterministic.

Run from the repo root::

    .venv/bin/python benchmarks/bench_backtest.py [--json results.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import platform
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest

from trading.backtest.data import Dataset, load_dataset
from trading.backtest.engine import run_backtest
from trading.config import CommitteeConfig, load_committee_config

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "ohlcv"
CASES: dict[str, tuple[str, ...]] = {
    "alt/BTC 5m x4": (
        "binance-ETHBTC-5m-2018-01.csv",
        "binance-ADABTC-5m-2018-01.csv",
        "binance-LTCBTC-5m-2018-01.csv",
        "binance-XMRBTC-5m-2018-01.csv",
    ),
    "BTC/USD perp 1m": ("perp-BTCUSD-1m-2022-01.csv",),
}
OURS = "coinswarm committee"
PEER = "backtesting.py SMA cross"
FRACTIONAL_UNIT = 1e-8
PEER_CASH_NOT_IN_CONFIG_QUOTE = 10_000.0  # as run_backtest does for data in another quote
WARM_UP_BARS = 500


@dataclass(frozen=True)
class RunResult:
    elapsed_s: float
    rss_start_mib: float
    peak_rss_mib: float
    trades: int
    final_equity: float


@dataclass(frozen=True)
class Measurement:
    case: str
    engine: str
    bars: int
    best_s: float
    bars_per_s: float
    repeats: int
    samples_s: list[float]
    trades: int
    final_equity: float
    rss_start_mib: float
    peak_rss_mib: float
    ours_over_this: float
    """Bars/s of ours over bars/s of this engine (1.0 for ours)."""


# -- the two engines -----------------------------------------------------------------------


class SmaCross(Strategy):
    """Long all-in while the fast SMA is above the slow one, flat otherwise."""

    sma_fast = 12
    sma_slow = 48

    def init(self) -> None:
        close = pd.Series(self.data.Close)
        fast = close.rolling(self.sma_fast).mean()
        slow = close.rolling(self.sma_slow).mean()
        self.long = self.I(lambda: (fast > slow).to_numpy(dtype=float), name="fast>slow")

    def next(self) -> None:
        if self.long[-1] > 0:
            if not self.position:
                self.buy()
        elif self.position:
            self.position.close()


def peer_frame(dataset: Dataset) -> pd.DataFrame:
    frame = dataset.frame
    return pd.DataFrame(
        {
            "Open": frame["open"].to_numpy(),
            "High": frame["high"].to_numpy(),
            "Low": frame["low"].to_numpy(),
            "Close": frame["close"].to_numpy(),
            "Volume": frame["volume"].to_numpy(),
        },
        index=pd.DatetimeIndex(frame["ts"]),
    )


def run_ours(datasets: Sequence[Dataset], config: CommitteeConfig) -> tuple[int, float]:
    result = run_backtest(datasets, config)
    return len(result.trades), float(result.metrics["final_equity"])


def run_peer(
    frames: Sequence[tuple[pd.DataFrame, float]], config: CommitteeConfig
) -> tuple[int, float]:
    """Each pair in its own backtest; equity summed over the pairs."""
    trades, equity = 0, 0.0
    for frame, cash in frames:
        backtest = FractionalBacktest(
            frame,
            SmaCross,
            cash=cash,
            commission=config.fee_bps / 1e4,
            spread=config.slippage_bps / 1e4,
            trade_on_close=True,
            fractional_unit=FRACTIONAL_UNIT,
        )
        # No progress bars on the terminal, and open trades at the end are expected.
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = backtest.run(
                sma_fast=config.features.sma_fast, sma_slow=config.features.sma_slow
            )
        trades += int(stats["# Trades"])
        equity += float(stats["Equity Final [$]"])
    return trades, equity


# -- measuring -----------------------------------------------------------------------------


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _child(task: Callable[[], tuple[int, float]], out: Connection) -> None:
    try:
        start = _resident_mib()
        began = time.perf_counter()
        trades, equity = task()
        elapsed = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        out.send(RunResult(elapsed, start, peak, trades, equity))
    except BaseException as exc:  # report anything to the parent, which raises it
        out.send(f"{type(exc).__name__}: {exc}")
    finally:
        out.close()


def in_fresh_child(task: Callable[[], tuple[int, float]]) -> RunResult:
    """Run ``task`` once in a forked child, timed there, with its peak RSS."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(task, send))
    process.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = "the child died without a result"
    process.join()
    if not isinstance(result, RunResult) or process.exitcode != 0:
        raise RuntimeError(f"benchmark run failed (exit code {process.exitcode}): {result}")
    return result


def warm_up(datasets: Sequence[Dataset], config: CommitteeConfig) -> None:
    """One short untimed run of each engine in the parent, so every forked run starts with
    imports done and first-call caches filled."""
    head = [
        Dataset(path=d.path, venue=d.venue, symbol=d.symbol, frame=d.frame.head(WARM_UP_BARS))
        for d in datasets
    ]
    run_ours(head, config)
    run_peer([(peer_frame(d), PEER_CASH_NOT_IN_CONFIG_QUOTE) for d in head], config)


def measure_case(
    case: str,
    datasets: Sequence[Dataset],
    config: CommitteeConfig,
    repeats: int,
) -> list[Measurement]:
    bars = sum(len(d.frame) for d in datasets)
    peer_cash = [
        (config.initial_cash if d.quote == config.quote else PEER_CASH_NOT_IN_CONFIG_QUOTE)
        for d in datasets
    ]
    frames = [(peer_frame(d), cash) for d, cash in zip(datasets, peer_cash, strict=True)]
    tasks: dict[str, Callable[[], tuple[int, float]]] = {
        OURS: lambda: run_ours(datasets, config),
        PEER: lambda: run_peer(frames, config),
    }
    runs: dict[str, list[RunResult]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, task in tasks.items():
            runs[name].append(in_fresh_child(task))
    best = {name: min(r.elapsed_s for r in results) for name, results in runs.items()}
    measurements = []
    for name, results in runs.items():
        outcomes = {(r.trades, r.final_equity) for r in results}
        if len(outcomes) != 1:
            raise AssertionError(f"{name} on {case}: repeated runs differ: {sorted(outcomes)}")
        measurements.append(
            Measurement(
                case=case,
                engine=name,
                bars=bars,
                best_s=best[name],
                bars_per_s=bars / best[name],
                repeats=repeats,
                samples_s=[r.elapsed_s for r in results],
                trades=results[0].trades,
                final_equity=results[0].final_equity,
                rss_start_mib=max(r.rss_start_mib for r in results),
                peak_rss_mib=max(r.peak_rss_mib for r in results),
                ours_over_this=best[name] / best[OURS],
            )
        )
    return measurements


# -- report --------------------------------------------------------------------------------


def render(measurements: list[Measurement], meta: dict[str, Any]) -> str:
    lines = [
        f"backtest benchmark, {meta['date']}, {meta['cpus']} cpus, Python {meta['python']},"
        f" pandas {meta['pandas']}, numpy {meta['numpy']}, pydantic {meta['pydantic']},"
        f" backtesting.py {meta['backtesting']}",
        f"committee: {meta['config']} ({', '.join(meta['agents'])}), SMA"
        f" {meta['sma_fast']}/{meta['sma_slow']} for the peer",
        "",
        f"{'case':<17} {'bars':>7}  {'engine':<26} {'n':>2} {'best s':>8} {'bars/s':>9}"
        f" {'trades':>7} {'peak RSS MiB':>13} {'ours/this':>9}",
    ]
    previous = None
    for m in measurements:
        case, bars = (m.case, f"{m.bars:,}") if m.case != previous else ("", "")
        previous = m.case
        rss = f"{m.peak_rss_mib:,.0f} (+{m.peak_rss_mib - m.rss_start_mib:,.0f})"
        lines.append(
            f"{case:<17} {bars:>7}  {m.engine:<26} {m.repeats:>2} {m.best_s:>8.3f}"
            f" {m.bars_per_s:>9,.0f} {m.trades:>7,} {rss:>13} {m.ours_over_this:>8.3f}x"
        )
    lines += [
        "",
        "n = runs (best taken); trades = fills for ours, round trips for backtesting.py;"
        " peak RSS = the run's process peak (+ growth over its start);"
        " ours/this = bars/s of ours over bars/s of the engine",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine (best taken)")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the shared OHLCV directory"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if not sys.platform.startswith("linux"):
        parser.error("peak RSS is read from /proc and ru_maxrss in KiB: Linux only")

    # Risk-gate halts are logged as warnings; say where they come from.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    config = load_committee_config()
    cases = {
        case: [load_dataset(args.data_dir / name) for name in names]
        for case, names in CASES.items()
    }
    warm_up(cases[next(iter(cases))], config)
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    measurements: list[Measurement] = []
    for case, datasets in cases.items():
        measurements += measure_case(case, datasets, config, args.repeats)
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        # The machine may be shared: the 1-minute load average says how busy it was.
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "pandas": version("pandas"),
        "numpy": version("numpy"),
        "pydantic": version("pydantic"),
        "backtesting": version("backtesting"),
        "config": "trading/committee.yaml",
        "agents": [agent.name for agent in config.agents],
        "sma_fast": config.features.sma_fast,
        "sma_slow": config.features.sma_slow,
        "fee_bps": config.fee_bps,
        "slippage_bps": config.slippage_bps,
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    print(render(measurements, meta))
    print(
        f"\n{meta['elapsed_s']} s measuring; 1-min load average {meta['load_1min_before']}"
        f" before, {meta['load_1min_after']} after"
    )
    if args.json is not None:
        report = {
            "meta": meta,
            "cases": {case: list(names) for case, names in CASES.items()},
            "measurements": [asdict(m) for m in measurements],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
