"""The ``coinswarm`` command: run the demo pipeline, backtest the committee, stop the stores.

A thin entry point over the packages: it sets up the local Dagster instance, launches the same
jobs and sensor the UI and daemon use, and prints what happened.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from orchestration.deployment import coinswarm_home, dagster_home
from orchestration.partitions import DEMO_WINDOW

DAGSTER_YAML = """\
# Local Dagster instance for Coinswarm (SQLite storage under this folder).
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def prepare_dagster_home() -> Path:
    """Point DAGSTER_HOME at the project's local instance unless the user chose one."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def partition_keys(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    if end < start:
        raise SystemExit(f"--to {last} is before --from {first}")
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _quiet_dagster_api_notices() -> None:
    """Dagster flags beta/preview/superseded APIs on import; the demo's user cannot act on it."""
    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning, dg.SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def cmd_demo(args: argparse.Namespace) -> int:
    prepare_dagster_home()
    _quiet_dagster_api_notices()
    from cli.demo import run_demo  # imported late: loading the definitions takes a few seconds

    summary = run_demo(
        partition_keys(args.start, args.end), progress=lambda m: print(f"==> {m}", flush=True)
    )
    print(summary.render())
    return 0 if summary.trades > 0 else 1


def cmd_stop(_: argparse.Namespace) -> int:
    from orchestration.embedded import stop_all

    stop_all(coinswarm_home())
    print(f"stopped the embedded stores under {coinswarm_home()}")
    return 0


def cmd_dagster_home(_: argparse.Namespace) -> int:
    print(prepare_dagster_home())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coinswarm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="backfill the whole pipeline over the bundled real-data window, then trade it",
    )
    demo.add_argument("--from", dest="start", default=DEMO_WINDOW[0], help="first partition")
    demo.add_argument("--to", dest="end", default=DEMO_WINDOW[1], help="last partition")
    demo.set_defaults(func=cmd_demo)
    stop = sub.add_parser("stop", help="stop the embedded PostgreSQL and MongoDB servers")
    stop.set_defaults(func=cmd_stop)
    home = sub.add_parser("dagster-home", help="create the local Dagster instance, print its path")
    home.set_defaults(func=cmd_dagster_home)
    from cli.backtest import add_parser as add_backtest

    add_backtest(sub)
    from cli.evaluate import add_parser as add_evaluate

    add_evaluate(sub)
    from cli.stream import add_parser as add_stream

    add_stream(sub)
    from cli.metrics import add_parser as add_metrics

    add_metrics(sub)
    from cli.control import add_parser as add_control

    add_control(sub)
    from cli.mcp import add_parser as add_mcp

    add_mcp(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    code = args.func(args)
    if args.command == "demo":
        print(f"wall time: {time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
