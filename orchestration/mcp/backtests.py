"""Backtests for an assistant: the reports already on disk, and bounded runs on demand.

Reports are the ones the ``backtests/*`` assets write under ``<reports>/backtests/<name>/``
(equity.csv, trades.csv, metrics.json, report.html); a report is addressed by its directory
name, checked against what exists, never by a path.

A run goes through ``trading.backtest.engine.run_backtest``, the trading job's own committee ->
risk gate -> execution -> paper broker path, over named inputs only: a committee config shipped
with the package (``committee`` or one of ``trading/configs/*.yaml``) and either the
quality-gated candles in PostgreSQL (``staged``) or recorded OHLCV files from the configured
directories. It is bounded so an assistant cannot tie the server up: at most ``MAX_BARS`` bars
per pair (the most recent in the window), ``MAX_TOTAL_BARS`` in all, ``MAX_DATASETS`` files,
one run at a time. A run writes no files; it returns its headline metrics.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from orchestration.mcp.errors import Busy, InvalidArgument, NotFound
from orchestration.mcp.views import fetch_rows, jsonable
from trading.backtest.data import (
    Dataset,
    DatasetError,
    datasets_by_symbol,
    describe_name,
    load_dataset,
)
from trading.backtest.engine import run_backtest
from trading.config import CONFIGS_DIR, CommitteeConfigError, load_committee_config

STAGED = "staged"
"""The dataset name of the quality-gated candles in ``analytics.stg_binance_ohlcv``."""
DEFAULT_CONFIG = "committee"
"""The packaged ``trading/committee.yaml``, the trading job's own committee."""
DEFAULT_BARS = 2_000
MAX_BARS = 10_000
MAX_TOTAL_BARS = 20_000
MAX_DATASETS = 4
MAX_REPORT_BYTES = 2_000_000
MAX_NOTES = 20
"""Reflection notes returned with a run (the count is always given)."""
REPORT_FILES = ("metrics.json", "report.html", "equity.csv", "trades.csv")
_SUFFIXES = (".csv.gz", ".csv")
_OMITTED_METRICS = ("weights_over_time", "learning", "reflection_notes")
"""Long sections of metrics.json left out of a run's answer (they are in a written report)."""

_STAGED_CANDLES = sa.text(
    """
    SELECT symbol, ts, open, high, low, close, volume FROM (
        SELECT symbol, open_time AS ts, open, high, low, close, volume,
               row_number() OVER (PARTITION BY symbol ORDER BY open_time DESC) AS newest
        FROM analytics.stg_binance_ohlcv
        WHERE "interval" = :interval
          AND open_time >= CAST(:start AS timestamptz) AND open_time < CAST(:end AS timestamptz)
          AND (CAST(:symbols AS text[]) IS NULL OR symbol = ANY(CAST(:symbols AS text[])))
    ) recent
    WHERE newest <= :max_bars
    ORDER BY symbol, ts
    """
)


class BacktestDesk:
    """Lists and reads backtest reports, and runs bounded backtests, one at a time."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        candle_interval: str,
        reports_dir: Path,
        dataset_dirs: Sequence[Path] = (),
        staged_venue: str = "binance",
    ) -> None:
        self.engine = engine
        self.candle_interval = candle_interval
        self.reports_root = Path(reports_dir) / "backtests"
        self.dataset_dirs = [Path(d) for d in dataset_dirs]
        self.staged_venue = staged_venue
        self._running = threading.Lock()

    # -- what exists ------------------------------------------------------------------------

    def configs(self) -> dict[str, Path | None]:
        """Committee configs by name; None is the packaged default."""
        shipped = {path.stem: path for path in sorted(CONFIGS_DIR.glob("*.yaml"))}
        return {DEFAULT_CONFIG: None, **shipped}

    def datasets(self) -> dict[str, Path]:
        """Recorded OHLCV files by name (the file name without .csv or .csv.gz); files whose
        name does not say their venue and pair (e.g. a funding-rate series) are skipped."""
        found: dict[str, Path] = {}
        for directory in self.dataset_dirs:
            for path in sorted(directory.glob("*.csv*")):
                name = _dataset_name(path)
                if name is None or name in found:
                    continue
                try:
                    describe_name(path)
                except DatasetError:
                    continue
                found[name] = path
        return found

    def inputs(self) -> dict[str, Any]:
        return {
            "configs": sorted(self.configs()),
            "datasets": [STAGED, *sorted(self.datasets())],
            "bounds": {
                "max_bars_per_pair": MAX_BARS,
                "max_total_bars": MAX_TOTAL_BARS,
                "max_datasets": MAX_DATASETS,
                "default_bars_per_pair": DEFAULT_BARS,
            },
        }

    def reports(self) -> dict[str, Any]:
        reports = []
        for directory in self._report_dirs():
            entry: dict[str, Any] = {
                "name": directory.name,
                "resource": f"coinswarm://backtests/{directory.name}",
                "files": [name for name in REPORT_FILES if (directory / name).is_file()],
                "modified_at": datetime.fromtimestamp(
                    (directory / "metrics.json").stat().st_mtime, UTC
                ),
            }
            try:
                metrics = self._metrics(directory)
            except InvalidArgument as exc:
                entry["error"] = str(exc)
            else:
                entry.update(_headline(metrics))
            reports.append(entry)
        return jsonable(
            {"reports_dir": str(self.reports_root), "reports": reports, "run": self.inputs()}
        )

    def report(self, name: str) -> dict[str, Any]:
        directories = {directory.name: directory for directory in self._report_dirs()}
        directory = directories.get(name)
        if directory is None:
            known = ", ".join(sorted(directories)) or "none yet"
            raise NotFound(f"no backtest report named {name!r}; reports: {known}")
        return {
            "name": name,
            "report_html": str(directory / "report.html"),
            "files": [file for file in REPORT_FILES if (directory / file).is_file()],
            "metrics": self._metrics(directory),
        }

    def _report_dirs(self) -> list[Path]:
        if not self.reports_root.is_dir():
            return []
        return [
            path
            for path in sorted(self.reports_root.iterdir())
            if path.is_dir() and (path / "metrics.json").is_file()
        ]

    @staticmethod
    def _metrics(directory: Path) -> dict[str, Any]:
        path = directory / "metrics.json"
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise InvalidArgument(
                f"{directory.name}/metrics.json is larger than {MAX_REPORT_BYTES} bytes; open "
                "report.html instead"
            )
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InvalidArgument(f"{directory.name}/metrics.json is not readable JSON") from None
        if not isinstance(metrics, dict):
            raise InvalidArgument(f"{directory.name}/metrics.json is not a JSON object")
        return metrics

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        *,
        config: str,
        datasets: Sequence[str],
        symbols: Sequence[str] | None,
        start: date | None,
        end: date | None,
        max_bars: int,
    ) -> dict[str, Any]:
        """Run one bounded backtest; every argument is checked against what exists first."""
        configs = self.configs()
        if config not in configs:
            raise InvalidArgument(f"config: unknown {config!r}; configs: {', '.join(configs)}")
        if not 1 <= len(datasets) <= MAX_DATASETS:
            raise InvalidArgument(f"datasets: give 1 to {MAX_DATASETS} dataset names")
        if len(set(datasets)) != len(datasets):
            raise InvalidArgument("datasets: a dataset is named twice")
        files = self.datasets()
        unknown = [name for name in datasets if name != STAGED and name not in files]
        if unknown:
            known = ", ".join([STAGED, *sorted(files)])
            raise InvalidArgument(f"datasets: unknown {unknown}; datasets: {known}")
        if STAGED in datasets and len(datasets) > 1:
            raise InvalidArgument(f"datasets: {STAGED!r} (all staged pairs) is used alone")
        if not 2 <= max_bars <= MAX_BARS:
            raise InvalidArgument(f"max_bars: from 2 to {MAX_BARS}, got {max_bars}")
        if start is not None and end is not None and end < start:
            raise InvalidArgument(f"end: {end} is before start {start}")
        window_start = _midnight(start) if start is not None else None
        window_end = _midnight(end + timedelta(days=1)) if end is not None else None
        try:
            committee = load_committee_config(configs[config])
        except CommitteeConfigError as exc:
            raise InvalidArgument(f"config: {exc}") from None

        if not self._running.acquire(blocking=False):
            raise Busy("another backtest is running; try again when it has finished")
        try:
            if list(datasets) == [STAGED]:
                loaded = self._staged(symbols, window_start, window_end, max_bars)
            else:
                loaded = self._files(
                    [files[name] for name in datasets], symbols, window_start, window_end, max_bars
                )
            total = sum(len(dataset.frame) for dataset in loaded)
            if total > MAX_TOTAL_BARS:
                raise InvalidArgument(
                    f"max_bars: {total} bars in all across {len(loaded)} pairs is more than "
                    f"{MAX_TOTAL_BARS}; lower max_bars or name fewer pairs"
                )
            try:
                result = run_backtest(loaded, committee)
            except (DatasetError, ValueError) as exc:
                raise InvalidArgument(f"datasets: {exc}") from None
        finally:
            self._running.release()
        metrics = result.metrics
        answer = {key: value for key, value in metrics.items() if key not in _OMITTED_METRICS}
        notes = metrics.get("reflection_notes") or []
        answer["reflection_notes"] = {"count": len(notes), "first": notes[:MAX_NOTES]}
        return jsonable(
            {
                "request": {
                    "config": config,
                    "datasets": list(datasets),
                    "symbols": list(symbols) if symbols else None,
                    "start": start,
                    "end": end,
                    "max_bars_per_pair": max_bars,
                },
                "bars_per_pair": {dataset.symbol: len(dataset.frame) for dataset in loaded},
                "written": "nothing: an on-demand run returns its metrics and writes no report",
                "metrics": answer,
            }
        )

    def _staged(
        self,
        symbols: Sequence[str] | None,
        start: datetime | None,
        end: datetime | None,
        max_bars: int,
    ) -> list[Dataset]:
        with self.engine.connect() as conn:
            rows = fetch_rows(
                conn,
                _STAGED_CANDLES,
                interval=self.candle_interval,
                start=start or datetime.min.replace(tzinfo=UTC),
                end=end or datetime.max.replace(tzinfo=UTC),
                symbols=list(symbols) if symbols else None,
                max_bars=max_bars,
            )
        if not rows:
            raise NotFound(
                "no staged candles in that window"
                + (f" for {', '.join(symbols)}" if symbols else "")
            )
        return datasets_by_symbol(
            pd.DataFrame(rows), self.staged_venue, source="analytics.stg_binance_ohlcv"
        )

    @staticmethod
    def _files(
        paths: Sequence[Path],
        symbols: Sequence[str] | None,
        start: datetime | None,
        end: datetime | None,
        max_bars: int,
    ) -> list[Dataset]:
        loaded = []
        for path in paths:
            try:
                dataset = load_dataset(path)
            except DatasetError as exc:
                raise InvalidArgument(f"datasets: {exc}") from None
            if symbols and dataset.symbol not in symbols:
                continue
            frame = dataset.frame
            if start is not None:
                frame = frame[frame["ts"] >= start]
            if end is not None:
                frame = frame[frame["ts"] < end]
            frame = frame.tail(max_bars).reset_index(drop=True)
            if frame.empty:
                raise NotFound(f"{_dataset_name(path)} has no candles in that window")
            loaded.append(
                Dataset(path=dataset.path, venue=dataset.venue, symbol=dataset.symbol, frame=frame)
            )
        if not loaded:
            raise NotFound(f"none of the datasets holds {', '.join(symbols or [])}")
        return loaded


def _dataset_name(path: Path) -> str | None:
    for suffix in _SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    strategy = metrics.get("strategy") or {}
    benchmark = metrics.get("benchmark_buy_and_hold") or {}
    return {
        "symbols": metrics.get("symbols"),
        "start": metrics.get("start"),
        "end": metrics.get("end"),
        "bars": metrics.get("bars"),
        "total_return": strategy.get("total_return"),
        "buy_and_hold_return": benchmark.get("total_return"),
        "sharpe_ratio": strategy.get("sharpe_ratio"),
        "max_drawdown": strategy.get("max_drawdown"),
        "win_rate": strategy.get("win_rate"),
        "fills": metrics.get("fills"),
    }
