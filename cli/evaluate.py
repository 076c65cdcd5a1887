"""``coinswarm evaluate``: the walk-forward evaluation table over a folder of datasets.

Runs ``coinswarm backtest`` once per OHLCV file (one pair each, the committee's weights learned
walk-forward from outcomes already realised, nothing tuned on the data) and writes, next to each
run's own files, ``evaluation.md`` and ``evaluation.json``: per dataset the Sharpe ratio, win
rate, maximum drawdown and return against buy-and-hold, the committee's hit rate and the mean
absolute correlation between agents' signals. A file that is not an OHLCV price series (e.g. a
funding-rate series) is listed with the reason it was skipped.

Without ``--config`` each file gets the committee made for its bar length, decided before any
run: the packaged default (5-minute windows) below an hour, ``trading/configs/swing.yaml`` from
an hour up.

``--memory-ab`` runs every dataset a second time with the same config but its memory switched
off, and writes ``memory_ab.md`` / ``memory_ab.json``: the walk-forward A/B of the committee
with quorum-governed memory against the committee without it (each run starts with an empty
memory and learns only from outcomes realised before each decision).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from trading.backtest.data import DatasetError, load_dataset
from trading.backtest.engine import run_backtest
from trading.config import CONFIGS_DIR, CommitteeConfig, CommitteeConfigError, load_committee_config

SWING_FROM_SECONDS = 3600.0
SWING_CONFIG = CONFIGS_DIR / "swing.yaml"


def config_for_bars(bar_seconds: float, explicit: Path | None) -> tuple[Path | None, str]:
    """(config path, label): the explicit one, or the default / swing one by bar length."""
    if explicit is not None:
        return explicit, str(explicit)
    if bar_seconds >= SWING_FROM_SECONDS:
        return SWING_CONFIG, "trading/configs/swing.yaml"
    return None, "trading/committee.yaml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="backtest every OHLCV CSV in a folder and write the evaluation table",
        description=__doc__,
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("../shared/data/ohlcv"), help="folder of CSVs"
    )
    parser.add_argument("--config", type=Path, default=None, help="committee YAML")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--memory-ab",
        action="store_true",
        help="also run every dataset with the memory off and write memory_ab.md",
    )
    parser.set_defaults(func=cmd_evaluate)


def _row(name: str, config: str, metrics: dict[str, Any]) -> dict[str, Any]:
    strategy, bench = metrics["strategy"], metrics["benchmark_buy_and_hold"]
    committee = metrics["per_agent"].get("committee", {})
    return {
        "dataset": name,
        "config": config,
        "symbols": metrics["symbols"],
        "bars": metrics["bars"],
        "total_return": strategy["total_return"],
        "buy_and_hold_return": bench["total_return"],
        "sharpe_ratio": strategy["sharpe_ratio"],
        "buy_and_hold_sharpe": bench["sharpe_ratio"],
        "win_rate": strategy["win_rate"],
        "n_trades": strategy["n_trades"],
        "max_drawdown": strategy["max_drawdown"],
        "buy_and_hold_max_drawdown": bench["max_drawdown"],
        "committee_hit_rate": committee.get("hit_rate"),
        "mean_abs_agent_correlation": metrics["mean_abs_agent_correlation"],
        "first_halt": metrics["first_halt"],
        "fees": metrics["fees"],
        "memory": metrics["learning"].get("memory"),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(rows: list[dict[str, Any]], skipped: dict[str, str], config: str) -> str:
    lines = [
        f"Committee config: {config}. Every figure is out of sample for the committee's "
        "weights (learned walk-forward from realised outcomes only); agent parameters were "
        "fixed before these runs.",
        "",
        "| dataset | config | bars | return | buy & hold | Sharpe | B&H Sharpe "
        "| win rate (exits) | max DD | B&H max DD | committee hit rate | mean abs agent corr |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        win = "n/a" if r["win_rate"] is None else f"{r['win_rate']:.1%}"
        hit = "n/a" if r["committee_hit_rate"] is None else f"{r['committee_hit_rate']:.1%}"
        lines.append(
            f"| {r['dataset']} | {Path(r['config']).stem} | {r['bars']:,} "
            f"| {_pct(r['total_return'])} "
            f"| {_pct(r['buy_and_hold_return'])} | {_num(r['sharpe_ratio'])} "
            f"| {_num(r['buy_and_hold_sharpe'])} | {win} ({r['n_trades']}) "
            f"| {_pct(r['max_drawdown'])} | {_pct(r['buy_and_hold_max_drawdown'])} | {hit} "
            f"| {_num(r['mean_abs_agent_correlation'], 3)} |"
        )
    for name, reason in sorted(skipped.items()):
        lines.append(f"\nSkipped {name}: {reason}")
    return "\n".join(lines) + "\n"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from trading.backtest.outputs import write_outputs  # late, as in cli.backtest: matplotlib

    configs: dict[str, tuple[CommitteeConfig, str | None]] = {}

    def committee(path: Path | None, label: str) -> tuple[CommitteeConfig, str | None]:
        if label not in configs:
            text = path.read_text(encoding="utf-8") if path is not None else None
            configs[label] = (load_committee_config(path), text)
        return configs[label]

    try:
        if args.config is not None:
            committee(args.config, str(args.config))
    except CommitteeConfigError as exc:
        print(f"coinswarm evaluate: {exc}", file=sys.stderr)
        return 2
    files = sorted(args.data_dir.glob("*.csv"))
    if not files:
        print(f"coinswarm evaluate: no *.csv in {args.data_dir}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for path in files:
        try:
            dataset = load_dataset(path)
        except DatasetError as exc:
            skipped[path.name] = str(exc)
            print(f"skip {path.name}: {exc}", flush=True)
            continue
        config_path, label = config_for_bars(dataset.bar_seconds, args.config)
        config, config_text = committee(config_path, label)
        started = time.perf_counter()
        result = run_backtest([dataset], config)
        seconds = time.perf_counter() - started
        write_outputs(
            result, args.out / path.stem, title=f"Backtest: {path.name}", config_text=config_text
        )
        row = _row(path.name, label, result.metrics)
        rows.append(row)
        if args.memory_ab:
            if not config.memory.enabled:
                print(f"coinswarm evaluate: {label} has no memory to compare", file=sys.stderr)
                return 2
            without = config.model_copy(
                update={"memory": config.memory.model_copy(update={"enabled": False})}
            )
            row["without_memory"] = _row(path.name, label, run_backtest([dataset], without).metrics)
        print(
            f"{path.name} [{Path(label).stem}]: return {_pct(row['total_return'])} vs "
            f"buy-and-hold {_pct(row['buy_and_hold_return'])}, Sharpe "
            f"{_num(row['sharpe_ratio'])} ({row['bars']:,} bars in {seconds:.1f} s)",
            flush=True,
        )
    name = (
        f"`{args.config}`"
        if args.config
        else "`trading/committee.yaml` below 1h bars, `trading/configs/swing.yaml` from 1h up"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.md").write_text(render_markdown(rows, skipped, name), encoding="utf-8")
    (args.out / "evaluation.json").write_text(
        json.dumps({"config": name, "runs": rows, "skipped": skipped}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out / 'evaluation.md'}")
    if args.memory_ab:
        (args.out / "memory_ab.md").write_text(render_memory_ab(rows), encoding="utf-8")
        ab = [
            {"dataset": r["dataset"], "config": r["config"], "with_memory": r,
             "without_memory": r["without_memory"]}
            for r in rows
        ]  # fmt: skip
        (args.out / "memory_ab.json").write_text(
            json.dumps({"config": name, "runs": ab}, indent=2, default=str) + "\n",
            encoding="utf-8",
        )
        print(f"wrote {args.out / 'memory_ab.md'}")
    return 0


def render_memory_ab(rows: list[dict[str, Any]]) -> str:
    """The A/B table: each dataset with the committee's memory on (A) and off (B)."""
    lines = [
        "Walk-forward A/B: the same committee with its quorum-governed memory (A) and without "
        "(B). Each run starts with no memories; a memory is recalled only once its outcome was "
        "realised. Fees and slippage as configured.",
        "",
        "| dataset | return A | return B | Sharpe A | Sharpe B | max DD A | max DD B "
        "| exits A | exits B | fees A | fees B | memories | refused | scaled down |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for a in rows:
        b = a["without_memory"]
        memory = a["memory"] or {}
        outcomes = memory.get("outcomes", {})
        advised = memory.get("decisions_advised") or 0
        scaled = (
            f"{memory.get('decisions_scaled_down', 0) / advised:.0%} of {advised:,}"
            if advised
            else "n/a"
        )
        lines.append(
            f"| {a['dataset']} | {_pct(a['total_return'])} | {_pct(b['total_return'])} "
            f"| {_num(a['sharpe_ratio'])} | {_num(b['sharpe_ratio'])} "
            f"| {_pct(a['max_drawdown'])} | {_pct(b['max_drawdown'])} "
            f"| {a['n_trades']} | {b['n_trades']} | {a['fees']:.4f} | {b['fees']:.4f} "
            f"| {outcomes.get('committed', 0):,} | {outcomes.get('rejected', 0):,} | {scaled} |"
        )
    better = sum(1 for a in rows if a["total_return"] > a["without_memory"]["total_return"])
    lines += ["", f"Memory raised the return on {better} of {len(rows)} datasets."]
    return "\n".join(lines) + "\n"
