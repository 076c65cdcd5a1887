"""``coinswarm backtest``: the committee over OHLCV CSVs, with reports.

A thin shell over ``trading.backtest``: parse the arguments, load and check every file before
anything runs, show a progress bar on long runs, write the four output files, print a summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trading.backtest.data import DatasetError, load_dataset, parse_data_argument
from trading.backtest.engine import run_backtest
from trading.config import CommitteeConfigError, load_committee_config

PROGRESS_MIN_BARS = 5_000
"""Runs with at least this many timestamps show a progress bar (on stderr, when it is a tty)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "backtest",
        help="run the committee over OHLCV CSV files and write equity, trades, metrics, report",
        description=(
            "Runs the trading job's committee -> risk gate -> execution -> paper broker path "
            "over candles in the ../shared/data format (timestamp,open,high,low,close,volume). "
            "Several --data files trade several pairs at once; a second file of the same pair "
            "from another venue becomes its peer price for the Arbitrage agent."
        ),
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="FILE.csv[:BASE/QUOTE]",
        help="an OHLCV CSV; the pair comes from the name (binance-ETHBTC-5m-...) or after ':'",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="committee YAML (default: the packaged one)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--initial-cash",
        type=float,
        default=None,
        help="starting cash in the data's quote (default: the config's, or 10000 when the "
        "data is quoted in another currency than the config)",
    )
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    parser.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    # Imported here: the report's matplotlib adds a second to every other coinswarm command,
    # since building the command line imports this module.
    from trading.backtest.outputs import write_outputs

    try:
        config = load_committee_config(args.config)
        datasets = [load_dataset(*parse_data_argument(item)) for item in args.data]
    except (CommitteeConfigError, DatasetError) as exc:
        print(f"coinswarm backtest: {exc}", file=sys.stderr)
        return 2
    config_text = args.config.read_text(encoding="utf-8") if args.config is not None else None
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="bar", desc="backtest", file=sys.stderr, mininterval=0.5)
        bar.update(done - bar.n)

    show = not args.no_progress and sys.stderr.isatty()
    longest = max(len(d.frame) for d in datasets)
    try:
        result = run_backtest(
            datasets,
            config,
            initial_cash=args.initial_cash,
            progress=progress if show and longest >= PROGRESS_MIN_BARS else None,
        )
    except (DatasetError, ValueError) as exc:
        print(f"coinswarm backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    title = args.title or "Backtest: " + ", ".join(f"{d.venue} {d.symbol}" for d in datasets)
    paths = write_outputs(result, args.out, title=title, config_text=config_text)
    strategy, benchmark = result.metrics["strategy"], result.metrics["benchmark_buy_and_hold"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.2%}"

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    print(
        f"{result.metrics['bars']} bars of {', '.join(result.symbols)}: "
        f"return {pct(strategy['total_return'])} (buy-and-hold {pct(benchmark['total_return'])}), "
        f"Sharpe {num(strategy['sharpe_ratio'])} (buy-and-hold {num(benchmark['sharpe_ratio'])}), "
        f"max drawdown {pct(strategy['max_drawdown'])}, win rate "
        f"{'n/a' if strategy['win_rate'] is None else format(strategy['win_rate'], '.1%')} "
        f"over {strategy['n_trades']} exits"
    )
    for name, path in paths.items():
        print(f"  {name:13} {path}")
    return 0
