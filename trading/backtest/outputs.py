"""Write a backtest's files: equity.csv, trades.csv, metrics.json and report.html.

Every file is a pure function of the result, written with fixed formats (ISO-8601 UTC times,
``repr`` floats, sorted JSON-safe values), so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from trading.backtest.engine import BacktestResult
from trading.backtest.report import render_report, write_report

FILES = ("equity.csv", "trades.csv", "metrics.json", "report.html")


def _csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, lineterminator="\n")


def metrics_json(metrics: dict[str, Any]) -> str:
    return json.dumps(metrics, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def write_outputs(
    result: BacktestResult,
    out_dir: str | Path,
    *,
    title: str,
    config_text: str | None = None,
) -> dict[str, Path]:
    """Write the four files into ``out_dir`` (created if needed); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}
    _csv(result.equity, paths["equity.csv"])
    _csv(result.trades, paths["trades.csv"])
    paths["metrics.json"].write_text(metrics_json(result.metrics), encoding="utf-8")
    html = render_report(
        result.equity,
        result.positions,
        result.weights,
        result.trades,
        result.metrics,
        title=title,
        config_text=config_text,
    )
    write_report(paths["report.html"], html)
    return paths
