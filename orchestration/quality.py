"""Great Expectations 1.x quality gates, shaped for Dagster asset checks.

dagster-ge only supports GX < 1, so this module drives GX directly: a :class:`FrameSuite` (the
candle suite every candle table shares, or any raw table's or collection's own) runs through a
checkpoint on a file data context so each validation lands in the reviewers' Data Docs report at
``coinswarm_home()/reports/data_quality/index.html``. The caller (an ``@dg.asset_check``) turns
the result into ``dg.AssetCheckResult(passed=..., metadata=result.to_metadata())``.

GX objects (suite, data source, assets, validation definitions, checkpoints, the Data Docs site)
are get-or-create and compared with what this module would build, so repeated calls, concurrent
processes and code changes all converge on the same definitions without duplicates.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import dagster as dg
import pandas as pd

from orchestration.deployment import coinswarm_home

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations import Expectation

SUITE_NAME = "raw_candles"
DATASOURCE_NAME = "coinswarm_frames"
BATCH_DEFINITION_NAME = "whole_frame"
DATA_DOCS_SITE_NAME = "data_quality"
SINCE_PREV_COLUMN = "seconds_since_prev"
"""Helper column added before validation: seconds since the previous row of the same symbol
(in the frame's order; NaN on each symbol's first row, which GX's map expectations skip)."""

CANDLE_COLUMNS: tuple[str, ...] = ("symbol", "open_time", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
ROW_ID_COLUMNS: list[str] = ["symbol", "open_time"]
COLUMN_TYPES: Mapping[str, str] = {
    "symbol": "str",
    "open_time": "datetime64[ns, UTC]",
    **{column: "float64" for column in (*PRICE_COLUMNS, "volume")},
}
VALIDATION_RESULTS_KEPT_IN_INDEX = 500
"""Cap on runs listed in the Data Docs index so building it stays fast as history grows."""

NO_CANDLES = "no candles in partition"
_EXAMPLES_PER_FAILURE = 3
_MAX_GAP_PARAMETER = "max_gap_seconds"

_logger = dg.get_dagster_logger(__name__)

DocsPolicy = Literal["index", "page", "failures"]
"""How much of the Data Docs a validation renders now: its page and the rebuilt index (what the
blocking candle gate does, about half a second), its page only, or a page only when it failed
(:func:`build_data_docs` renders the rest later). Every validation is stored and listed in the
summary page whatever the policy."""


def default_context_root() -> Path:
    return coinswarm_home() / "gx"


def data_docs_index(data_docs_dir: Path | None = None) -> Path:
    """Where reviewers find the data-quality report (it exists after the first validation)."""
    return (data_docs_dir or coinswarm_home() / "reports" / "data_quality") / "index.html"


def report_summary(data_docs_dir: Path | None = None) -> Path:
    """The offline summary page: every validation with its verdict, linking the GX pages.

    GX's own index fills its table with JavaScript from CDNs, so on a machine without network it
    lists nothing; this page is plain HTML and works anywhere.
    """
    return data_docs_index(data_docs_dir).with_name("summary.html")


SUMMARY_INDEX_NAME = "summary.json"
"""Beside summary.html: the latest verdict per asset and partition, so recording one more
validation rewrites the page without re-reading every stored result."""


def write_report_summary(context_root: Path, docs_dir: Path) -> Path:
    """Rebuild :func:`report_summary` from the stored validation results (latest run per
    asset and partition)."""
    with _summary_lock(docs_dir):
        entries = _entries_from_store(context_root, docs_dir)
        return _write_summary(docs_dir, entries)


def record_validation(context_root: Path, docs_dir: Path, checkpoint_result: Any) -> Path:
    """Add one checkpoint run's verdicts to :func:`report_summary` (rebuilding it from the
    store first if its index is missing or unreadable)."""
    with _summary_lock(docs_dir):
        entries = _load_entries(docs_dir)
        if entries is None:
            entries = _entries_from_store(context_root, docs_dir)
        for key, run_result in checkpoint_result.run_results.items():
            suite, run_name, run_time, _ = key.to_tuple()
            result = run_result.to_json_dict() if hasattr(run_result, "to_json_dict") else {}
            page = docs_dir / Path("validations", *key.to_tuple()).with_suffix(".html")
            entry = _entry(suite, run_time, result, page if page.exists() else None, docs_dir)
            if run_name not in entries or entries[run_name]["run_time"] <= run_time:
                entries[run_name] = entry
        return _write_summary(docs_dir, entries)


@contextmanager
def _summary_lock(docs_dir: Path) -> Iterator[None]:
    """One writer at a time, across threads and processes (a multiprocess executor)."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    with _summary_thread_lock, open(docs_dir / ".summary.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_summary_thread_lock = threading.RLock()


def _entry(
    suite: str, run_time: str, result: Mapping[str, Any], page: Path | None, docs_dir: Path
) -> dict[str, Any]:
    stats = result.get("statistics", {}) or {}
    return {
        "suite": suite,
        "run_time": run_time,
        "success": bool(result.get("success")),
        "unsuccessful": stats.get("unsuccessful_expectations", "?"),
        "evaluated": stats.get("evaluated_expectations", "?"),
        "page": os.path.relpath(page, docs_dir) if page is not None else None,
    }


def _entries_from_store(context_root: Path, docs_dir: Path) -> dict[str, dict[str, Any]]:
    store = context_root / "uncommitted" / "validations"
    latest: dict[str, tuple[str, Path]] = {}
    for result_file in sorted(store.glob("*/*/*/*.json")):
        run_name, run_time = result_file.parent.parent.name, result_file.parent.name
        if run_name in latest and latest[run_name][0] >= run_time:
            continue
        latest[run_name] = (run_time, result_file)
    entries = {}
    for run_name, (run_time, result_file) in latest.items():
        relative = result_file.relative_to(store)
        page = docs_dir / "validations" / relative.with_suffix(".html")
        entries[run_name] = _entry(
            relative.parts[0],
            run_time,
            json.loads(result_file.read_text()),
            page if page.exists() else None,
            docs_dir,
        )
    return entries


def _load_entries(docs_dir: Path) -> dict[str, dict[str, Any]] | None:
    try:
        loaded = json.loads((docs_dir / SUMMARY_INDEX_NAME).read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _write_summary(docs_dir: Path, entries: Mapping[str, Mapping[str, Any]]) -> Path:
    rows = []
    for run_name, entry in sorted(entries.items()):
        asset, _, partition = run_name.partition("__")
        details = (
            f'<a href="{html.escape(entry["page"])}">details</a>'
            if entry.get("page") and (docs_dir / entry["page"]).exists()
            else ""
        )
        status = "passed" if entry["success"] else "FAILED"
        rows.append(
            f"<tr class='{status.lower()}'><td>{html.escape(asset)}</td>"
            f"<td>{html.escape(partition)}</td><td>{html.escape(str(entry['suite']))}</td>"
            f"<td>{status}</td><td>{entry['unsuccessful']} of {entry['evaluated']}</td>"
            f"<td>{html.escape(str(entry['run_time']))}</td><td>{details}</td></tr>"
        )
    failed = sum(not entry["success"] for entry in entries.values())
    suites = sorted({str(entry["suite"]) for entry in entries.values()} | {SUITE_NAME})
    described = "".join(
        f"<li><code>{html.escape(name)}</code>: {SUITE_DESCRIPTIONS.get(name, '')}</li>"
        for name in suites
    )
    target = report_summary(docs_dir)
    scratch = target.with_name(f".{target.name}.tmp")
    scratch.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Coinswarm data quality</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}tr.failed{background:#fdd}</style>"
        "</head><body><h1>Coinswarm data quality</h1>"
        f"<p>{len(rows)} validations (latest per asset and partition), {failed} failed. "
        "<a href='index.html'>Great Expectations Data Docs</a> (needs network for its styling)."
        f"</p><ul>{described}</ul><table><tr><th>asset</th><th>partition</th><th>suite</th>"
        "<th>verdict</th><th>failed expectations</th><th>run time</th><th>report</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
    index = docs_dir / SUMMARY_INDEX_NAME
    index_scratch = index.with_name(f".{index.name}.tmp")
    index_scratch.write_text(json.dumps(entries, sort_keys=True))
    index_scratch.replace(index)
    scratch.replace(target)
    return target


def validate_candles(
    df: pd.DataFrame,
    *,
    interval_seconds: int,
    asset_name: str,
    partition_key: str | None,
    context_root: Path | None = None,
    data_docs_dir: Path | None = None,
    docs: DocsPolicy = "index",
) -> CandleQualityResult:
    """Validate one partition of candles (any venue, one interval) against the candle suite.

    ``df`` has the common candle columns (symbol, open_time, open, high, low, close, volume;
    extra columns such as interval or ingested_at are allowed). The frame is not modified.
    An empty frame fails: a partition without candles must never pass the gate silently.
    ``docs`` says how much of the Data Docs to render now (see :data:`DocsPolicy`).
    """
    if interval_seconds <= 0:
        raise ValueError(f"interval_seconds must be positive, got {interval_seconds}")
    result = validate_frame(
        df,
        CANDLE_SUITE,
        asset_name=asset_name,
        partition_key=partition_key,
        context_root=context_root,
        data_docs_dir=data_docs_dir,
        docs=docs,
        expectation_parameters={_MAX_GAP_PARAMETER: float(interval_seconds)},
    )
    return CandleQualityResult(**{f.name: getattr(result, f.name) for f in fields(result)})


# --- any frame, any suite -------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSuite:
    """A Great Expectations suite for one kind of frame (a raw table, a document collection).

    ``expectations`` builds the GX expectations (called when the suite is created or its
    definition changed); ``prepare`` adds helper columns the expectations refer to (a copy is
    prepared, the caller's frame is not modified); ``row_id_columns`` name the rows quoted as
    examples of a failure.
    """

    name: str
    description: str
    expectations: Callable[[], list[Expectation]]
    row_id_columns: tuple[str, ...] = ()
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None


@dataclass(frozen=True)
class QualityResult:
    """Outcome of one validation of a frame against a :class:`FrameSuite`."""

    passed: bool
    failures: list[str]
    statistics: dict[str, Any]
    asset_name: str
    partition_key: str | None
    suite_name: str
    data_docs_index: Path
    data_docs_page: Path | None = None
    expectation_results: list[dict[str, Any]] = field(default_factory=list)

    def to_metadata(self) -> dict[str, dg.MetadataValue]:
        """Metadata for ``dg.AssetCheckResult``: counts, what failed, and where the report is."""
        return {"suite": dg.MetadataValue.text(self.suite_name), **self._outcome_metadata()}

    def _outcome_metadata(self) -> dict[str, dg.MetadataValue]:
        stats = self.statistics
        metadata: dict[str, dg.MetadataValue] = {
            "rows": dg.MetadataValue.int(int(stats.get("rows", 0))),
            "evaluated_expectations": dg.MetadataValue.int(
                int(stats.get("evaluated_expectations", 0))
            ),
            "failed_expectations": dg.MetadataValue.int(
                int(stats.get("unsuccessful_expectations", 0))
            ),
            "success_percent": dg.MetadataValue.float(float(stats.get("success_percent") or 0.0)),
            "failures": dg.MetadataValue.md(
                "\n".join(f"- {failure}" for failure in self.failures) or "none"
            ),
            "data_docs": dg.MetadataValue.path(str(self.data_docs_index)),
            "validation_seconds": dg.MetadataValue.float(
                round(float(stats.get("validation_seconds", 0.0)), 3)
            ),
        }
        if self.data_docs_page is not None:
            metadata["data_docs_page"] = dg.MetadataValue.path(str(self.data_docs_page))
        return metadata


@dataclass(frozen=True)
class CandleQualityResult(QualityResult):
    """A candle validation: its metadata also says how many pairs and which times it covered."""

    def to_metadata(self) -> dict[str, dg.MetadataValue]:
        stats = self.statistics
        metadata = self._outcome_metadata()
        metadata["symbols"] = dg.MetadataValue.int(int(stats.get("symbols", 0)))
        if stats.get("first_open_time") is not None:
            metadata["first_open_time"] = dg.MetadataValue.text(str(stats["first_open_time"]))
            metadata["last_open_time"] = dg.MetadataValue.text(str(stats["last_open_time"]))
        return metadata


def validate_frame(
    df: pd.DataFrame,
    suite: FrameSuite,
    *,
    asset_name: str,
    partition_key: str | None,
    context_root: Path | None = None,
    data_docs_dir: Path | None = None,
    docs: DocsPolicy = "page",
    expectation_parameters: Mapping[str, Any] | None = None,
) -> QualityResult:
    """Validate ``df`` against ``suite``, store the result and list it in the report.

    ``docs`` says how much of the Data Docs to render now (see :data:`DocsPolicy`); the
    summary page always lists the validation. ``expectation_parameters`` fill the suite's
    ``$PARAMETER`` placeholders (the candle suite's gap limit).
    """
    if not asset_name:
        raise ValueError("asset_name must name the asset being validated")
    context_root = (context_root or default_context_root()).resolve()
    docs_dir = (data_docs_dir or data_docs_index().parent).resolve()
    SUITE_DESCRIPTIONS.setdefault(suite.name, html.escape(suite.description))

    started = time.perf_counter()
    frame = df.reset_index(drop=True).copy()
    if suite.prepare is not None:
        frame = suite.prepare(frame)
    workspace = _workspace(context_root, docs_dir)
    checkpoint_result = workspace.run(
        asset_name,
        suite,
        frame,
        run_name=_gx_name(f"{asset_name}__{partition_key or 'unpartitioned'}"),
        expectation_parameters=expectation_parameters,
    )
    validation_result = next(iter(checkpoint_result.run_results.values()))
    if docs != "failures" or not validation_result.success:
        workspace.render_pages(checkpoint_result, with_index=docs == "index")
    elapsed = time.perf_counter() - started
    record_validation(context_root, docs_dir, checkpoint_result)
    failures = _failure_messages(validation_result, frame, suite.row_id_columns)
    statistics = _statistics(validation_result, frame, elapsed)
    result = QualityResult(
        passed=bool(validation_result.success),
        failures=failures,
        statistics=statistics,
        asset_name=asset_name,
        partition_key=partition_key,
        suite_name=suite.name,
        data_docs_index=data_docs_index(docs_dir),
        data_docs_page=_data_docs_page(checkpoint_result, docs_dir),
        expectation_results=[_summary(r) for r in validation_result.results],
    )
    _logger.info(
        "%s %s for %s partition %s: %d rows, %d failed expectations in %.2fs",
        suite.name,
        "passed" if result.passed else "FAILED",
        asset_name,
        partition_key,
        statistics["rows"],
        statistics["unsuccessful_expectations"],
        elapsed,
    )
    return result


def build_data_docs(context_root: Path | None = None, data_docs_dir: Path | None = None) -> Path:
    """Render every stored validation's page and the Data Docs index, then the summary."""
    context_root = (context_root or default_context_root()).resolve()
    docs_dir = (data_docs_dir or data_docs_index().parent).resolve()
    workspace = _workspace(context_root, docs_dir)
    with workspace.lock:
        workspace.context.build_data_docs(site_names=[DATA_DOCS_SITE_NAME])
    write_report_summary(context_root, docs_dir)
    return data_docs_index(docs_dir)


def _row_text(row: Any, columns: Iterable[str]) -> str:
    """A failing row as its id columns' values, e.g. 'ETH/BTC ask 1'."""
    if isinstance(row, Mapping):
        values = [row[c] for c in columns if c in row] or list(row.values())
        return " ".join(
            _short_time(v) if isinstance(v, pd.Timestamp | datetime) else str(v) for v in values
        )
    return f"row {row}"


# --- the suite -------------------------------------------------------------------------------


def candle_expectations() -> list[Expectation]:
    """The candle contract, one expectation per rule, each described for the Data Docs."""
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description=NO_CANDLES),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*CANDLE_COLUMNS, SINCE_PREV_COLUMN],
            exact_match=False,
            description="candle columns present",
        ),
    ]
    expectations += [
        gxe.ExpectColumnTypeToBe(column=column, type_=type_, description=f"{column} is {type_}")
        for column, type_ in COLUMN_TYPES.items()
    ]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} not null")
        for column in CANDLE_COLUMNS
    ]
    for higher, lower in (
        ("high", "low"),
        ("open", "low"),
        ("close", "low"),
        ("high", "open"),
        ("high", "close"),
    ):
        expectations.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=higher,
                column_B=lower,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                description=f"{higher} >= {lower}",
            )
        )
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(
            column="low", min_value=0, strict_min=True, description="prices > 0"
        ),
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, description="volume >= 0"),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=ROW_ID_COLUMNS, description="unique (symbol, open_time)"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column=SINCE_PREV_COLUMN,
            min_value=0,
            strict_min=True,
            description="open_time strictly increasing per symbol",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column=SINCE_PREV_COLUMN,
            max_value={"$PARAMETER": _MAX_GAP_PARAMETER},
            description="no gap beyond the interval per symbol",
        ),
    ]
    return expectations


def _prepared_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the gap helper column and normalise representations (on validate_frame's copy).

    Only representation is normalised (datetime resolution, object columns holding strings):
    anything that changes meaning, like a naive or non-datetime open_time, is left for the
    type expectations to reject.
    """
    if "open_time" in frame and isinstance(frame["open_time"].dtype, pd.DatetimeTZDtype):
        frame["open_time"] = frame["open_time"].dt.tz_convert("UTC").dt.as_unit("ns")
    if "symbol" in frame and frame["symbol"].dtype == object:
        non_null = frame["symbol"].dropna()
        if non_null.map(lambda value: isinstance(value, str)).all():
            frame["symbol"] = frame["symbol"].astype("str")
    since_prev = pd.Series(float("nan"), index=frame.index, dtype="float64")
    if {"symbol", "open_time"} <= set(frame.columns) and pd.api.types.is_datetime64_any_dtype(
        frame["open_time"]
    ):
        steps = frame.groupby("symbol", sort=False, dropna=False)["open_time"].diff()
        since_prev = steps.dt.total_seconds().astype("float64")
    frame[SINCE_PREV_COLUMN] = since_prev
    return frame


CANDLE_SUITE = FrameSuite(
    name=SUITE_NAME,
    description="schema, no nulls, low <= open, close <= high, volume >= 0, unique increasing "
    "timestamps per pair, no gap beyond the interval",
    expectations=candle_expectations,
    row_id_columns=tuple(ROW_ID_COLUMNS),
    prepare=_prepared_frame,
)
"""The candle contract as a :class:`FrameSuite`; its gap limit is the ``max_gap_seconds``
expectation parameter :func:`validate_candles` passes."""

SUITE_DESCRIPTIONS: dict[str, str] = {SUITE_NAME: html.escape(CANDLE_SUITE.description)}
"""What each suite checks, in words, for the summary page (each suite adds its own when it is
first validated; the candle gate's is always listed)."""


# --- GX objects, get-or-create ---------------------------------------------------------------

_T = TypeVar("_T")


class _Workspace:
    """One file data context, its Data Docs site and the suites and checkpoints in use, created
    once per process."""

    def __init__(self, context_root: Path, docs_dir: Path) -> None:
        import great_expectations as gx

        context_root.mkdir(parents=True, exist_ok=True)
        self.context: AbstractDataContext = gx.get_context(
            mode="file", context_root_dir=str(context_root)
        )
        self._lock = threading.RLock()
        self._checkpoints: dict[str, Any] = {}
        self._suites: dict[str, Any] = {}
        self._ensure_settings()
        self._ensure_data_docs_site(docs_dir)
        self.datasource = _get_or_add(
            lambda: self.context.data_sources.get(DATASOURCE_NAME),
            lambda: self.context.data_sources.add_pandas(DATASOURCE_NAME),
        )

    def _ensure_settings(self) -> None:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # GX's tqdm bars would flood the Dagster compute logs.
        current = self.context.variables.progress_bars
        if isinstance(current, ProgressBarsConfig):
            current = {
                "globally": current.globally,
                "metric_calculations": current.metric_calculations,
            }
        if current != {"globally": False, "metric_calculations": False}:
            self.context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            self.context.variables.save()

    def _ensure_data_docs_site(self, docs_dir: Path) -> None:
        site_config = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {
                "class_name": "DefaultSiteIndexBuilder",
                "validation_results_limit": VALIDATION_RESULTS_KEPT_IN_INDEX,
            },
        }
        sites = self.context.list_data_docs_sites()
        for name in list(sites):
            if name != DATA_DOCS_SITE_NAME:
                # The scaffolded local_site would write a second, undocumented report.
                self.context.delete_data_docs_site(name)
        existing = sites.get(DATA_DOCS_SITE_NAME)
        if existing is None:
            self.context.add_data_docs_site(DATA_DOCS_SITE_NAME, site_config)
        elif _plain(existing) != _plain(site_config):
            self.context.update_data_docs_site(DATA_DOCS_SITE_NAME, site_config)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def _suite(self, spec: FrameSuite) -> Any:
        """The GX suite of ``spec``, created or brought up to its current definition."""
        import great_expectations as gx

        if spec.name in self._suites:
            return self._suites[spec.name]
        fingerprint = _fingerprint(e.configuration.to_json_dict() for e in spec.expectations())

        def build() -> Any:
            return gx.ExpectationSuite(
                name=spec.name,
                expectations=spec.expectations(),
                meta={"coinswarm_fingerprint": fingerprint, "owner": "orchestration.quality"},
            )

        suite = _get_or_add(
            lambda: self.context.suites.get(spec.name), lambda: self.context.suites.add(build())
        )
        if suite.meta.get("coinswarm_fingerprint") != fingerprint:
            _logger.info("updating GX suite %s to its current definition", spec.name)
            suite = self.context.suites.add_or_update(build())
        self._suites[spec.name] = suite
        return suite

    def run(
        self,
        asset_name: str,
        spec: FrameSuite,
        frame: pd.DataFrame,
        *,
        run_name: str,
        expectation_parameters: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run ``spec`` on ``frame`` through the asset's checkpoint (stored, no actions);
        serialised, as a GX context is not thread-safe."""
        import great_expectations as gx

        with self._lock:
            key = f"{asset_name}\x1f{spec.name}"
            if key not in self._checkpoints:
                self._checkpoints[key] = self._ensure_checkpoint(
                    asset_name, self._suite(spec), list(spec.row_id_columns)
                )
            return self._checkpoints[key].run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=dict(expectation_parameters or {}),
                run_id=gx.RunIdentifier(run_name=run_name),
            )

    def render_pages(self, checkpoint_result: Any, *, with_index: bool = False) -> None:
        """Render a run's Data Docs pages; with the index, also its suite's page, which the
        index links to (what GX's UpdateDataDocsAction renders)."""
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        keys: list[Any] = list(checkpoint_result.run_results)
        if with_index:
            keys += [
                ExpectationSuiteIdentifier(name=result.suite_name)
                for result in checkpoint_result.run_results.values()
            ]
        with self._lock:
            self.context.build_data_docs(
                site_names=[DATA_DOCS_SITE_NAME], resource_identifiers=keys, build_index=with_index
            )

    def _ensure_checkpoint(self, asset_name: str, suite: Any, row_ids: list[str]) -> Any:
        """The asset's checkpoint for ``suite``, without actions: the caller renders the Data
        Docs it wants (see :data:`DocsPolicy`)."""
        import great_expectations as gx

        gx_asset = _gx_name(asset_name)
        data_asset = _get_or_add(
            lambda: self.datasource.get_asset(gx_asset),
            lambda: self.datasource.add_dataframe_asset(gx_asset),
        )
        batch_definition = _get_or_add(
            lambda: data_asset.get_batch_definition(BATCH_DEFINITION_NAME),
            lambda: data_asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME),
        )
        validation_name = f"{gx_asset}__{suite.name}"
        validation = _get_or_add(
            lambda: self.context.validation_definitions.get(validation_name),
            lambda: self.context.validation_definitions.add(
                gx.ValidationDefinition(name=validation_name, data=batch_definition, suite=suite)
            ),
        )
        # The candle gate's checkpoint keeps the name it has always had.
        if suite.name == SUITE_NAME:
            checkpoint_name = f"{gx_asset}__gate"
        else:
            checkpoint_name = f"{gx_asset}__{suite.name}__gate"
        result_format: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": _EXAMPLES_PER_FAILURE,
        }
        if row_ids:
            result_format["unexpected_index_column_names"] = row_ids

        def build() -> Any:
            return gx.Checkpoint(
                name=checkpoint_name,
                validation_definitions=[validation],
                actions=[],
                result_format=result_format,
            )

        checkpoint = _get_or_add(
            lambda: self.context.checkpoints.get(checkpoint_name),
            lambda: self.context.checkpoints.add(build()),
        )
        # A checkpoint saved with other settings, or with the Data Docs action older versions
        # gave the candle gate, is brought up to date.
        if _plain(checkpoint.result_format) != _plain(result_format) or checkpoint.actions:
            checkpoint = self.context.checkpoints.add_or_update(build())
        return checkpoint


_workspaces: dict[tuple[Path, Path], _Workspace] = {}
_workspaces_lock = threading.Lock()


def _workspace(context_root: Path, docs_dir: Path) -> _Workspace:
    key = (context_root, docs_dir)
    with _workspaces_lock:
        if key not in _workspaces:
            _workspaces[key] = _Workspace(context_root, docs_dir)
        return _workspaces[key]


def _get_or_add(get: Callable[[], _T], add: Callable[[], _T]) -> _T:
    """Return the existing GX object, creating it if missing (tolerating a concurrent creator)."""
    try:
        return get()
    except Exception:  # GX raises several unrelated types for "not found"
        pass
    try:
        return add()
    except Exception:
        # Another process may have created it between our get and add; if not, re-raise.
        try:
            return get()
        except Exception:
            pass
        raise


# --- turning GX results into words -----------------------------------------------------------


def _failure_messages(
    validation_result: Any, frame: pd.DataFrame, row_id_columns: Iterable[str]
) -> list[str]:
    messages: list[str] = []
    for expectation_result in validation_result.results:
        if expectation_result.success:
            continue
        config = expectation_result.expectation_config
        label = f"{config.type} ({config.description or _kwargs_label(config.kwargs)})"
        error = _exception_message(expectation_result.exception_info)
        if error is not None:
            messages.append(f"{label}: could not be evaluated: {error}")
            continue
        outcome = expectation_result.result or {}
        if config.type == "expect_table_row_count_to_be_between":
            messages.append(f"{label}: {outcome.get('observed_value', 0)} rows")
        elif config.type == "expect_table_columns_to_match_set":
            details = outcome.get("details", {}).get("mismatched", {})
            missing = [c for c in details.get("missing", []) if c != SINCE_PREV_COLUMN]
            messages.append(f"{label}: missing columns {', '.join(missing) or '(none)'}")
        elif config.type == "expect_column_type_to_be":
            messages.append(
                f"{label}: {config.kwargs['column']} is {outcome.get('observed_value')}"
            )
        else:
            unexpected = outcome.get("unexpected_count")
            total = outcome.get("element_count", len(frame))
            examples = _examples(
                outcome.get("partial_unexpected_index_list") or [], tuple(row_id_columns)
            )
            counts = f"{unexpected} of {total} rows fail" if unexpected is not None else "fails"
            messages.append(f"{label}: {counts}" + (f", e.g. {examples}" if examples else ""))
    return messages


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """First exception message in GX's exception_info (flat, or keyed by metric)."""
    if not info:
        return None
    candidates = [info] if "raised_exception" in info else list(info.values())
    for candidate in candidates:
        if isinstance(candidate, Mapping) and candidate.get("raised_exception"):
            message = str(candidate.get("exception_message") or "unknown error")
            return message.splitlines()[0]
    return None


def _examples(index_list: Iterable[Any], row_id_columns: tuple[str, ...]) -> str:
    rendered: list[str] = []
    for row in index_list:
        text = _row_text(row, row_id_columns)
        if text not in rendered:
            rendered.append(text)
    return "; ".join(rendered[:_EXAMPLES_PER_FAILURE])


def _short_time(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "(no open_time)"
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if pd.isna(stamp):
        return "(no open_time)"
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    text = stamp.strftime("%Y-%m-%dT%H:%M")
    if stamp.second or stamp.microsecond:
        text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}Z"


def _kwargs_label(kwargs: Mapping[str, Any]) -> str:
    columns = [str(v) for k, v in kwargs.items() if k.startswith("column") and v is not None]
    return ", ".join(columns)


def _statistics(validation_result: Any, frame: pd.DataFrame, elapsed: float) -> dict[str, Any]:
    gx_stats = dict(validation_result.statistics or {})
    open_times = frame["open_time"] if "open_time" in frame else pd.Series(dtype="object")
    times = open_times.dropna() if pd.api.types.is_datetime64_any_dtype(open_times) else None
    return {
        "rows": len(frame),
        "symbols": int(frame["symbol"].nunique()) if "symbol" in frame else 0,
        "evaluated_expectations": int(gx_stats.get("evaluated_expectations", 0)),
        "successful_expectations": int(gx_stats.get("successful_expectations", 0)),
        "unsuccessful_expectations": int(gx_stats.get("unsuccessful_expectations", 0)),
        "success_percent": gx_stats.get("success_percent"),
        "first_open_time": times.min().isoformat() if times is not None and len(times) else None,
        "last_open_time": times.max().isoformat() if times is not None and len(times) else None,
        "validation_seconds": elapsed,
    }


def _summary(expectation_result: Any) -> dict[str, Any]:
    config = expectation_result.expectation_config
    return {
        "expectation": config.type,
        "description": config.description,
        "success": bool(expectation_result.success),
        "unexpected_count": (expectation_result.result or {}).get("unexpected_count"),
    }


def _data_docs_page(checkpoint_result: Any, docs_dir: Path) -> Path | None:
    """The page UpdateDataDocsAction wrote for this run (None if the site did not build)."""
    for key in checkpoint_result.run_results:
        relative = Path("validations", *key.to_tuple()).with_suffix(".html")
        candidate = docs_dir / relative
        if candidate.exists():
            return candidate
    return None


def _gx_name(name: str) -> str:
    """GX object and run names end up in file paths: keep them to a safe alphabet."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed"


def _fingerprint(configs: Iterable[Mapping[str, Any]]) -> str:
    payload = json.dumps(list(configs), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    """JSON round trip so GX config objects compare equal to plain dicts."""
    if hasattr(value, "to_json_dict"):
        value = value.to_json_dict()
    return json.loads(json.dumps(value, sort_keys=True, default=str))
