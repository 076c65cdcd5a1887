"""The backtest report: one self-contained, deterministic HTML file a reviewer can open offline.

Why it looks the way it does:

* **Offline and self-contained.** No JavaScript, CDN, web font or external stylesheet: the file
  is mailed around, attached to tickets and opened years later. Plots are inline SVG drawn by
  matplotlib (``Figure`` + ``FigureCanvasSVG`` directly, never ``pyplot``, so rendering neither
  picks nor changes the process-wide backend). Text in plots is drawn as glyph paths, so the
  viewer needs no font either.
* **Byte-for-byte deterministic.** The same inputs give the same bytes in any process, so a
  report can be diffed, hashed and cached: SVG ids come from a fixed ``svg.hashsalt``, the SVG
  metadata block (date, creator) and matplotlib's text comments are stripped, every order
  (symbols, agents) is sorted and nothing reads the clock. Each SVG's ids are prefixed with the
  figure's name, so four inline SVGs never share an id (matplotlib reuses glyph ids such as
  ``DejaVuSans-30`` in every file, and duplicate ids are invalid in one HTML document).
* **Small on long runs.** Plots draw at most :data:`MAX_PLOT_POINTS` points per series (see
  :func:`decimate`); tables and metrics always use every row. A 45,000-bar run renders in
  about a second into a few hundred kilobytes. The fills table shows the first and last
  :data:`MAX_FILL_ROWS` // 2 fills next to a per-symbol summary over all of them.
* **Untrusted text is escaped.** Titles, config text, symbols, agent names and reflection notes
  come from users and agents; every one goes through :func:`html.escape`, and matplotlib's math
  parsing is off so a ``$`` in a symbol is just a dollar sign.

Input conventions (checked; a violation is a ``ValueError`` naming the frame and column):

* ``equity``: ``ts`` (timezone-aware, any zone, shown in UTC), ``equity``, ``benchmark``
  (buy-and-hold equity from the same starting value), ``drawdown`` and ``benchmark_drawdown``
  (the fraction below the running peak, ``0.25`` = 25 % below; the negative convention of
  :func:`trading.metrics.drawdown_series`, ``-0.25``, is accepted too, but one column may not
  mix signs), ``gross_exposure`` (sum of absolute position values over equity). One row per
  timestamp, at least one row; rows are put in time order.
* ``positions``: long format ``ts, symbol, position_fraction`` (signed value over equity), one
  row per timestamp and symbol.
* ``weights``: long format ``ts, agent, weight``.
* ``trades``: fills ``ts, symbol, side, quantity, price, fee``.

``positions``, ``weights`` and ``trades`` may be empty; an empty frame may also lack the
columns (``pd.DataFrame()``), since no row can be misread.

Number formats: keys naming a return, CAGR, drawdown, rate, exposure, volatility or fraction
are percentages with two decimals (``-25.00%``); other floats have four decimals (two from
10,000 up, with thousands separators); integers are plain; ``None``, NaN and infinities are
``n/a``, ``inf`` and ``-inf``. Correlation matrices show three decimals.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

__all__ = [
    "MAX_FILL_ROWS",
    "MAX_PLOT_POINTS",
    "decimate",
    "format_value",
    "render_report",
    "write_report",
]

MAX_PLOT_POINTS = 2_000
"""Upper bound (plus first and last point) on the points drawn for one plotted series."""

MAX_FILL_ROWS = 200
"""Fills listed one by one; longer runs list the first and last half of this many."""

EQUITY_COLUMNS = ("ts", "equity", "benchmark", "drawdown", "benchmark_drawdown", "gross_exposure")
POSITION_COLUMNS = ("ts", "symbol", "position_fraction")
WEIGHT_COLUMNS = ("ts", "agent", "weight")
TRADE_COLUMNS = ("ts", "symbol", "side", "quantity", "price", "fee")

_SVG_RC = {
    "svg.hashsalt": "coinswarm-backtest-report",
    "svg.fonttype": "path",
    "svg.image_inline": True,
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 11.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": True,
}
_SVG_METADATA = {"Date": None, "Creator": None}
_FIGSIZE = (10.0, 3.6)
_STRATEGY_COLOR = "#1f77b4"
_BENCHMARK_COLOR = "#7f7f7f"
_PERCENT_TOKENS = frozenset(
    {
        "return",
        "returns",
        "cagr",
        "drawdown",
        "rate",
        "exposure",
        "volatility",
        "fraction",
        "pct",
        "percent",
    }
)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _require_columns(
    frame: pd.DataFrame, name: str, columns: Sequence[str], *, allow_bare_empty: bool
) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if allow_bare_empty and frame.empty and len(frame.columns) == 0:
        return
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} is missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"expected {', '.join(columns)}"
        )


def _utc_timestamps(values: pd.Series, name: str) -> pd.Series:
    try:
        stamps = pd.to_datetime(values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must hold timestamps: {error}") from error
    if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{name} must be timezone-aware (UTC), got dtype {stamps.dtype}")
    if stamps.isna().any():
        raise ValueError(f"{name} has {int(stamps.isna().sum())} missing timestamp(s)")
    return stamps.dt.tz_convert("UTC")


def _finite_floats(values: pd.Series, name: str) -> pd.Series:
    try:
        floats = values.astype("float64")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from error
    bad = ~np.isfinite(floats.to_numpy())
    if bad.any():
        raise ValueError(
            f"{name} must be finite; got {floats.to_numpy()[bad][0]!r} in {int(bad.sum())} row(s)"
        )
    return floats


def _drawdown_magnitude(values: pd.Series, name: str) -> pd.Series:
    """Drawdowns as fractions >= 0 below the peak, from either sign convention (never mixed)."""
    floats = _finite_floats(values, name)
    array = floats.to_numpy()
    if (array > 0).any() and (array < 0).any():
        raise ValueError(
            f"{name} mixes positive and negative values; drawdowns are fractions below the peak "
            "(all >= 0, or all <= 0 as in trading.metrics.drawdown_series)"
        )
    magnitude = floats.abs()
    if (magnitude > 1.0).any():
        raise ValueError(f"{name} must lie within [0, 1] in magnitude (a fraction below the peak)")
    return magnitude


def _prepare_equity(equity: pd.DataFrame) -> pd.DataFrame:
    _require_columns(equity, "equity", EQUITY_COLUMNS, allow_bare_empty=False)
    if equity.empty:
        raise ValueError("equity must have at least one row")
    prepared = pd.DataFrame({"ts": _utc_timestamps(equity["ts"], "equity.ts")})
    for column in ("equity", "benchmark"):
        values = _finite_floats(equity[column], f"equity.{column}")
        if (values <= 0).any():
            raise ValueError(f"equity.{column} must be > 0 at every row")
        prepared[column] = values
    for column in ("drawdown", "benchmark_drawdown"):
        prepared[column] = _drawdown_magnitude(equity[column], f"equity.{column}")
    prepared["gross_exposure"] = _finite_floats(equity["gross_exposure"], "equity.gross_exposure")
    duplicated = prepared["ts"].duplicated()
    if duplicated.any():
        raise ValueError(
            f"equity.ts must be unique (one row per timestamp); "
            f"{prepared['ts'][duplicated].iloc[0].isoformat()} repeats"
        )
    return prepared.sort_values("ts", kind="mergesort").reset_index(drop=True)


def _prepare_long(
    frame: pd.DataFrame, name: str, columns: Sequence[str], key: str, value: str
) -> pd.DataFrame:
    """A long (ts, key, value) frame, validated and sorted by key then time."""
    _require_columns(frame, name, columns, allow_bare_empty=True)
    if frame.empty:
        return pd.DataFrame(
            {
                "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
                key: pd.Series([], dtype="object"),
                value: pd.Series([], dtype="float64"),
            }
        )
    prepared = pd.DataFrame(
        {
            "ts": _utc_timestamps(frame["ts"], f"{name}.ts"),
            key: frame[key].astype("string").astype("object"),
            value: _finite_floats(frame[value], f"{name}.{value}"),
        }
    )
    if prepared[key].isna().any():
        raise ValueError(f"{name}.{key} has missing value(s)")
    duplicated = prepared.duplicated(["ts", key])
    if duplicated.any():
        row = prepared[duplicated].iloc[0]
        raise ValueError(
            f"{name} must have one row per ts and {key}; "
            f"{row[key]!r} at {row['ts'].isoformat()} repeats"
        )
    return prepared.sort_values([key, "ts"], kind="mergesort").reset_index(drop=True)


def _prepare_trades(trades: pd.DataFrame) -> pd.DataFrame:
    _require_columns(trades, "trades", TRADE_COLUMNS, allow_bare_empty=True)
    if trades.empty:
        return pd.DataFrame({column: pd.Series([], dtype="object") for column in TRADE_COLUMNS})
    prepared = pd.DataFrame(
        {
            "ts": _utc_timestamps(trades["ts"], "trades.ts"),
            "symbol": trades["symbol"].astype("string").astype("object"),
            "side": trades["side"].astype("string").str.lower().astype("object"),
        }
    )
    for column in ("quantity", "price", "fee"):
        prepared[column] = _finite_floats(trades[column], f"trades.{column}")
    unknown = sorted(set(prepared["side"]) - {"buy", "sell"}, key=str)
    if unknown:
        raise ValueError(f"trades.side must be 'buy' or 'sell', got {unknown[0]!r}")
    return prepared.sort_values(["ts", "symbol"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# downsampling
# --------------------------------------------------------------------------------------------


def decimate(values: np.ndarray, max_points: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Sorted row positions to draw so a long series keeps its shape in few points.

    Series of at most ``max_points`` values are kept whole. Longer ones are cut into
    ``max_points // 2`` equal runs of consecutive rows, and each run keeps the position of its
    lowest and of its highest value (first occurrence), plus the very first and last rows. So
    the global minimum and maximum (the deepest drawdown, the equity peak) and the last value are
    always drawn, spikes survive, and the choice depends on the values alone: deterministic.
    """
    array = np.asarray(values, dtype="float64")
    count = len(array)
    if count <= max_points:
        return np.arange(count)
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, count, buckets + 1).astype(np.int64)
    keep = [0, count - 1]
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        if stop > start:
            chunk = array[start:stop]
            keep.append(start + int(np.argmin(chunk)))
            keep.append(start + int(np.argmax(chunk)))
    return np.unique(np.asarray(keep, dtype=np.int64))


def _plot_x(stamps: pd.Series) -> np.ndarray:
    return stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


def _new_axes(title: str, ylabel: str) -> tuple[Figure, Any]:
    figure = Figure(figsize=_FIGSIZE, layout="constrained")
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.set_xlabel("Date (UTC)")
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return figure, axes


def _legend(axes: Any, lines: Sequence[Any], labels: Sequence[str]) -> None:
    # Outside the axes so it never hides data; explicit labels, as matplotlib would otherwise
    # drop names that start with "_".
    axes.legend(list(lines), list(labels), loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _svg_text(figure: Figure, name: str, label: str) -> str:
    """The figure as an inline ``<svg>`` element labelled for screen readers."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)
    svg = re.sub(r"<!--.*?-->\n?|\s*<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    return _namespace_svg_ids(svg, name)


def _namespace_svg_ids(svg: str, prefix: str) -> str:
    """Prefix every id the SVG defines (and every reference to one) with ``prefix``."""
    defined = set(re.findall(r'\bid="([^"]+)"', svg))

    def rename(match: re.Match[str]) -> str:
        if match.group(2) not in defined:
            return match.group(0)
        return f"{match.group(1)}{prefix}-{match.group(2)}{match.group(3)}"

    svg = re.sub(r'(\bid=")([^"]+)(")', rename, svg)
    svg = re.sub(r'(href="#)([^"]+)(")', rename, svg)
    return re.sub(r"(url\(#)([^)]+)(\))", rename, svg)


def _equity_plot(equity: pd.DataFrame) -> str:
    title = "Equity vs buy-and-hold"
    figure, axes = _new_axes(title, "Equity")
    lines = []
    for column, color in (("equity", _STRATEGY_COLOR), ("benchmark", _BENCHMARK_COLOR)):
        keep = decimate(equity[column].to_numpy())
        (line,) = axes.plot(
            _plot_x(equity["ts"].iloc[keep]),
            equity[column].to_numpy()[keep],
            color=color,
            linewidth=1.2,
            zorder=3 if column == "equity" else 2,
        )
        lines.append(line)
    _legend(axes, lines, ["Strategy", "Buy and hold"])
    return _svg_text(figure, "equity", title)


def _drawdown_plot(equity: pd.DataFrame) -> str:
    title = "Drawdown from running peak"
    figure, axes = _new_axes(title, "Below peak")
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    keep = decimate(equity["drawdown"].to_numpy())
    strategy_x = _plot_x(equity["ts"].iloc[keep])
    strategy_y = -equity["drawdown"].to_numpy()[keep]
    axes.fill_between(strategy_x, strategy_y, 0.0, color=_STRATEGY_COLOR, alpha=0.25, lw=0)
    (strategy,) = axes.plot(strategy_x, strategy_y, color=_STRATEGY_COLOR, linewidth=1.0)
    keep = decimate(equity["benchmark_drawdown"].to_numpy())
    (benchmark,) = axes.plot(
        _plot_x(equity["ts"].iloc[keep]),
        -equity["benchmark_drawdown"].to_numpy()[keep],
        color=_BENCHMARK_COLOR,
        linewidth=1.0,
    )
    axes.set_ylim(top=0.0)
    _legend(axes, [strategy, benchmark], ["Strategy", "Buy and hold"])
    return _svg_text(figure, "drawdown", title)


def _step_lines(
    axes: Any, frame: pd.DataFrame, key: str, value: str
) -> tuple[list[Any], list[str]]:
    lines, labels = [], []
    for name, rows in frame.groupby(key, sort=True):
        keep = decimate(rows[value].to_numpy())
        (line,) = axes.plot(
            _plot_x(rows["ts"].iloc[keep]),
            rows[value].to_numpy()[keep],
            drawstyle="steps-post",
            linewidth=1.1,
        )
        lines.append(line)
        labels.append(str(name))
    return lines, labels


def _positions_plot(positions: pd.DataFrame, equity: pd.DataFrame) -> str:
    title = "Positions (value as a fraction of equity)"
    figure, axes = _new_axes(title, "Fraction of equity")
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    lines, labels = _step_lines(axes, positions, "symbol", "position_fraction")
    keep = decimate(equity["gross_exposure"].to_numpy())
    (gross,) = axes.plot(
        _plot_x(equity["ts"].iloc[keep]),
        equity["gross_exposure"].to_numpy()[keep],
        drawstyle="steps-post",
        color="black",
        linestyle="--",
        linewidth=0.9,
    )
    axes.axhline(0.0, color="black", linewidth=0.6)
    _legend(axes, [*lines, gross], [*labels, "Gross exposure"])
    return _svg_text(figure, "positions", title)


def _weights_plot(weights: pd.DataFrame) -> str:
    title = "Committee weights per agent"
    figure, axes = _new_axes(title, "Weight")
    lines, labels = _step_lines(axes, weights, "agent", "weight")
    _legend(axes, lines, labels)
    return _svg_text(figure, "weights", title)


# --------------------------------------------------------------------------------------------
# number formatting
# --------------------------------------------------------------------------------------------


def _is_percent_key(key: str | None) -> bool:
    if not key:
        return False
    return any(token in _PERCENT_TOKENS for token in re.split(r"[^a-z0-9]+", key.lower()))


def format_value(value: Any, key: str | None = None) -> str:
    """One metric value as escaped display text; ``key`` decides percent or plain number."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,d}"
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "n/a"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        if _is_percent_key(key):
            return f"{number * 100:,.2f}%"
        return f"{number:,.4f}" if abs(number) < 10_000 else f"{number:,.2f}"
    if isinstance(value, str):
        return html.escape(value)
    return html.escape(json.dumps(value, sort_keys=True, default=str, allow_nan=True))


def _format_correlation(value: Any) -> str:
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        number = float(value)
        return "n/a" if math.isnan(number) else f"{number:.3f}"
    return format_value(value)


_ACRONYMS = {"cagr": "CAGR", "pnl": "PnL", "id": "ID"}


def _label(key: Any) -> str:
    """A metric key as a heading: ``sharpe_ratio`` -> ``Sharpe ratio`` (escaped)."""
    words = [_ACRONYMS.get(word.lower(), word) for word in str(key).split("_") if word]
    text = " ".join(words)
    return html.escape(text[:1].upper() + text[1:])


def _amount(value: float) -> str:
    """Money and quantities: cents from 1,000 up, six significant digits below (BTC-sized)."""
    return f"{value:,.2f}" if abs(value) >= 1_000 else f"{value:,.6g}"


def _raw(key: Any) -> str:
    return html.escape(str(key))


# --------------------------------------------------------------------------------------------
# HTML pieces
# --------------------------------------------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)


def _is_flat_mapping(value: Any) -> bool:
    return isinstance(value, Mapping) and all(_is_scalar(item) for item in value.values())


def _is_matrix(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(row, Mapping) for row in value.values())
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    css_attr = f' class="{css}"' if css else ""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "\n".join(
        "<tr>"
        + "".join(
            f"<th>{cell}</th>" if index == 0 else f"<td>{cell}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table{css_attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _flat_table(values: Mapping[str, Any]) -> str:
    rows = [(_label(key), format_value(value, str(key))) for key, value in values.items()]
    return _table(["Metric", "Value"], rows, "metrics")


def _comparison_table(strategy: Mapping[str, Any], benchmark: Mapping[str, Any]) -> str:
    keys = list(strategy) + [key for key in benchmark if key not in strategy]
    rows = [
        (
            _label(key),
            format_value(strategy.get(key), str(key)),
            format_value(benchmark.get(key), str(key)),
        )
        for key in keys
    ]
    return _table(["Metric", "Strategy", "Buy and hold"], rows, "metrics")


def _columns_of(matrix: Mapping[str, Mapping[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in matrix.values():
        columns.extend(key for key in row if key not in columns)
    return columns


def _correlation_cell(value: Any) -> str:
    text = _format_correlation(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        clipped = max(-1.0, min(1.0, float(value)))
        rgb = "31,119,180" if clipped >= 0 else "214,39,40"
        return f'<span style="background:rgba({rgb},{abs(clipped) * 0.6:.2f})">{text}</span>'
    return text


def _matrix_table(name: str, matrix: Mapping[str, Mapping[str, Any]]) -> str:
    columns = _columns_of(matrix)
    if "corr" in name.lower():
        header = [_raw(name), *(_raw(column) for column in columns)]
        rows = [
            (_raw(row_key), *(_correlation_cell(row.get(column)) for column in columns))
            for row_key, row in matrix.items()
        ]
        return _table(header, rows, "matrix correlation")
    header = ["", *(_label(column) for column in columns)]
    rows = [
        (_raw(row_key), *(format_value(row.get(column), str(column)) for column in columns))
        for row_key, row in matrix.items()
    ]
    return _table(header, rows, "matrix")


def _list_block(items: Sequence[Any]) -> str:
    if not items:
        return '<p class="note">None recorded.</p>'
    if all(_is_flat_mapping(item) for item in items):
        columns: list[str] = []
        for item in items:
            columns.extend(key for key in item if key not in columns)
        rows = [
            (str(index + 1), *(format_value(item.get(column), column) for column in columns))
            for index, item in enumerate(items)
        ]
        return _table(["#", *(_label(column) for column in columns)], rows, "notes")
    entries = "\n".join(
        f"<li>{html.escape(item) if isinstance(item, str) else format_value(item)}</li>"
        for item in items
    )
    return f'<ul class="notes">\n{entries}\n</ul>'


def _metric_block(name: str, value: Any) -> str:
    if _is_flat_mapping(value):
        return _flat_table(value) if value else '<p class="note">None recorded.</p>'
    if _is_matrix(value):
        return _matrix_table(name, value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return _list_block(value)
    return f"<pre>{format_value(value)}</pre>"


def _metrics_section(metrics: Mapping[str, Any]) -> str:
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics must be a mapping, got {type(metrics).__name__}")
    parts = ['<section id="metrics">', "<h2>Metrics</h2>"]
    remaining = dict(metrics)
    # the keys trading.backtest.engine writes into metrics.json
    strategy, benchmark = remaining.get("strategy"), remaining.get("benchmark_buy_and_hold")
    if _is_flat_mapping(strategy) and _is_flat_mapping(benchmark):
        parts += ["<h3>Strategy vs buy-and-hold</h3>", _comparison_table(strategy, benchmark)]
        del remaining["strategy"], remaining["benchmark_buy_and_hold"]
    scalars = {key: value for key, value in remaining.items() if _is_scalar(value)}
    if scalars:
        parts += ["<h3>Summary</h3>", _flat_table(scalars)]
    for key, value in remaining.items():
        if key not in scalars:
            parts += [f"<h3>{_label(key)}</h3>", _metric_block(str(key), value)]
    parts.append("</section>")
    return "\n".join(parts)


def _utc_text(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _run_section(equity: pd.DataFrame, positions: pd.DataFrame, trades: pd.DataFrame) -> str:
    first, last = equity.iloc[0], equity.iloc[-1]
    symbols = sorted(set(positions["symbol"]) | set(trades["symbol"]), key=str)
    rows = [
        ("Period", f"{_utc_text(first['ts'])} to {_utc_text(last['ts'])}"),
        ("Bars", format_value(len(equity))),
        ("Symbols", html.escape(", ".join(symbols)) if symbols else "none"),
        ("Starting equity", _amount(float(first["equity"]))),
        ("Final equity", _amount(float(last["equity"]))),
        ("Final buy-and-hold equity", _amount(float(last["benchmark"]))),
        ("Strategy return", format_value(float(last["equity"] / first["equity"] - 1), "return")),
        (
            "Buy-and-hold return",
            format_value(float(last["benchmark"] / first["benchmark"] - 1), "return"),
        ),
        ("Deepest drawdown", format_value(-float(equity["drawdown"].max()), "drawdown")),
        (
            "Deepest buy-and-hold drawdown",
            format_value(-float(equity["benchmark_drawdown"].max()), "drawdown"),
        ),
        ("Fills", format_value(len(trades))),
        ("Fees paid", _amount(float(trades["fee"].sum()) if len(trades) else 0.0)),
    ]
    return "\n".join(
        ['<section id="run">', "<h2>Run</h2>", _table(["", "Value"], rows, "metrics"), "</section>"]
    )


def _figure(name: str, caption: str, svg: str) -> str:
    return (
        f'<figure id="plot-{name}">\n{svg}\n<figcaption>{html.escape(caption)}</figcaption>\n'
        "</figure>"
    )


def _plots_section(equity: pd.DataFrame, positions: pd.DataFrame, weights: pd.DataFrame) -> str:
    parts = ['<section id="plots">', "<h2>Plots</h2>"]
    parts.append(
        _figure(
            "equity",
            "Strategy equity against buying and holding from the same starting value.",
            _equity_plot(equity),
        )
    )
    parts.append(
        _figure(
            "drawdown",
            "Fraction below each curve's running peak.",
            _drawdown_plot(equity),
        )
    )
    parts.append(
        _figure(
            "positions",
            "Signed position value over equity per symbol (short below zero); dashed: gross "
            "exposure." + (" No position was held in this run." if positions.empty else ""),
            _positions_plot(positions, equity),
        )
    )
    if weights.empty:
        parts.append(
            '<p class="note" id="plot-weights">No agent weights were recorded in this run.</p>'
        )
    else:
        parts.append(
            _figure(
                "weights",
                "Each agent's committee weight, held until it changes.",
                _weights_plot(weights),
            )
        )
    parts.append(
        f'<p class="note">Plots draw at most {MAX_PLOT_POINTS:,d} points per series (the lowest '
        "and highest value of each of equal runs of bars, plus the first and last bar); tables "
        "and metrics use every bar.</p>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _fill_row(fill: pd.Series) -> tuple[str, ...]:
    return (
        html.escape(fill["ts"].strftime("%Y-%m-%d %H:%M:%S")),
        html.escape(fill["symbol"]),
        html.escape(fill["side"]),
        f"{fill['quantity']:,.8g}",
        f"{fill['price']:,.8g}",
        _amount(abs(fill["quantity"]) * fill["price"]),
        _amount(fill["fee"]),
    )


def _trades_section(trades: pd.DataFrame) -> str:
    parts = ['<section id="trades">', "<h2>Fills</h2>"]
    if trades.empty:
        parts += ['<p class="note">No fills: the strategy never traded.</p>', "</section>"]
        return "\n".join(parts)
    notional = trades["quantity"].abs() * trades["price"]
    summary_rows = []
    for symbol, rows in trades.assign(notional=notional).groupby("symbol", sort=True):
        buys = rows["side"] == "buy"
        summary_rows.append(
            (
                html.escape(str(symbol)),
                format_value(len(rows)),
                format_value(int(buys.sum())),
                format_value(int((~buys).sum())),
                _amount(float(rows["notional"].sum())),
                _amount(float(rows["fee"].sum())),
            )
        )
    parts.append(
        _table(
            ["Symbol", "Fills", "Buys", "Sells", "Traded notional", "Fees"],
            summary_rows,
            "metrics",
        )
    )
    header = ["Time (UTC)", "Symbol", "Side", "Quantity", "Price", "Notional", "Fee"]
    if len(trades) <= MAX_FILL_ROWS:
        rows = [_fill_row(fill) for _, fill in trades.iterrows()]
    else:
        half = MAX_FILL_ROWS // 2
        omitted = len(trades) - 2 * half
        rows = [_fill_row(fill) for _, fill in trades.head(half).iterrows()]
        rows.append((f"&hellip; {omitted:,d} fills not listed &hellip;", *[""] * 6))
        rows += [_fill_row(fill) for _, fill in trades.tail(half).iterrows()]
    parts += [_table(header, rows, "fills"), "</section>"]
    return "\n".join(parts)


def _config_section(config_text: str | None) -> str:
    if config_text is None:
        return ""
    return (
        '<section id="config">\n<h2>Committee configuration</h2>\n'
        f"<pre>{html.escape(config_text)}</pre>\n</section>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5rem;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;
margin-top:2rem}h3{margin-bottom:.4rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right;white-space:nowrap}
thead th{background:#f3f3f3}tbody th{text-align:left;font-weight:600}
td span{display:inline-block;min-width:4rem;padding:0 .2rem}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}
svg{max-width:100%;height:auto}
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;font-size:.85rem}
.note{color:#555;font-style:italic}ul.notes li{margin:.2rem 0}
""".strip()


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def render_report(
    equity: pd.DataFrame,
    positions: pd.DataFrame,
    weights: pd.DataFrame,
    trades: pd.DataFrame,
    metrics: Mapping[str, Any],
    *,
    title: str,
    config_text: str | None = None,
) -> str:
    """The backtest report as one complete, offline HTML document (deterministic bytes).

    See the module docstring for the frames' columns and conventions. ``metrics`` is rendered
    generically in its own key order: scalars in a summary table, flat mappings as tables (a
    ``strategy`` and a ``benchmark_buy_and_hold`` mapping side by side), mappings of mappings
    as a matrix (shaded when the key names a correlation, e.g. ``agent_correlation``), lists
    (reflection notes) as a list or, for lists of mappings, a table. Plots draw at most
    :data:`MAX_PLOT_POINTS` points per series, chosen by :func:`decimate` (each run's lowest and
    highest value plus the first and last bar), so the deepest drawdown and the last value are
    always on the plot and a 45,000-bar run stays well under 2 MB.
    """
    prepared_equity = _prepare_equity(equity)
    prepared_positions = _prepare_long(
        positions, "positions", POSITION_COLUMNS, "symbol", "position_fraction"
    )
    prepared_weights = _prepare_long(weights, "weights", WEIGHT_COLUMNS, "agent", "weight")
    prepared_trades = _prepare_trades(trades)
    metrics_html = _metrics_section(metrics)
    with matplotlib.rc_context(_SVG_RC):
        plots_html = _plots_section(prepared_equity, prepared_positions, prepared_weights)
    safe_title = html.escape(title)
    body = [
        f"<header>\n<h1>{safe_title}</h1>\n"
        '<p class="note">Backtest report. All times are UTC.</p>\n</header>',
        _run_section(prepared_equity, prepared_positions, prepared_trades),
        metrics_html,
        plots_html,
        _trades_section(prepared_trades),
        _config_section(config_text),
        '<footer><p class="note">Rendered by coinswarm\'s trading.backtest.report.</p></footer>',
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{safe_title}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def write_report(path: Path, html: str) -> None:
    """Write the report as UTF-8, atomically, so a reader never sees a half-written file.

    Creates the parent directories; the text is written byte for byte (no newline
    translation), so the file hashes like the rendered string.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(html.encode("utf-8"))
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
