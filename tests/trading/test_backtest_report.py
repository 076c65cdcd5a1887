"""The HTML backtest report: complete, offline, escaped, small on long runs and byte-stable.

The inputs are a real backtest in miniature: a 20-day SMA trend strategy (long 80 % of equity
when yesterday's close was above its average) on the recorded Binance BTCUSDT daily closes,
against buying and holding, with metrics from :func:`trading.metrics.summarize`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trading.backtest.report import (
    EQUITY_COLUMNS,
    MAX_PLOT_POINTS,
    POSITION_COLUMNS,
    TRADE_COLUMNS,
    WEIGHT_COLUMNS,
    decimate,
    format_value,
    render_report,
    write_report,
)
from trading.metrics import drawdown_series, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]
START_CASH = 10_000.0
FEE_RATE = 0.001
CONFIG_YAML = "quorum: 0.5\nagents:\n  - name: trend\n    class: trading.agents.trend.TrendAgent\n"


def _closes(path: Path) -> pd.Series:
    frame = pd.read_csv(path)
    return pd.Series(
        frame["close"].to_numpy(dtype="float64"),
        index=pd.to_datetime(frame["timestamp"], utc=True),
        name="close",
    )


def build_inputs(closes: pd.Series, symbol: str = "BTC/USDT") -> dict[str, Any]:
    """Frames and metrics for an SMA trend backtest over ``closes`` (no look-ahead)."""
    sma = closes.rolling(20, min_periods=1).mean()
    held = (closes > sma).shift(1, fill_value=False).to_numpy()
    fraction = np.where(held, 0.8, 0.0)
    returns = closes.pct_change().fillna(0.0).to_numpy()
    changes = np.abs(np.diff(fraction, prepend=0.0))
    growth = (1.0 + fraction * returns) * (1.0 - changes * FEE_RATE)
    equity = pd.Series(START_CASH * np.cumprod(growth), index=closes.index)
    benchmark = START_CASH * closes / closes.iloc[0]
    ts = pd.Series(closes.index)
    equity_frame = pd.DataFrame(
        {
            "ts": ts,
            "equity": equity.to_numpy(),
            "benchmark": benchmark.to_numpy(),
            "drawdown": -drawdown_series(equity).to_numpy(),
            "benchmark_drawdown": -drawdown_series(benchmark).to_numpy(),
            "gross_exposure": fraction,
        }
    )
    positions = pd.DataFrame({"ts": ts, "symbol": symbol, "position_fraction": fraction})
    switch = np.flatnonzero(changes > 0)
    notional = changes[switch] * equity.to_numpy()[switch]
    trades = pd.DataFrame(
        {
            "ts": ts.iloc[switch].to_numpy(),
            "symbol": symbol,
            "side": np.where(fraction[switch] > 0, "buy", "sell"),
            "quantity": notional / closes.to_numpy()[switch],
            "price": closes.to_numpy()[switch],
            "fee": notional * FEE_RATE,
        }
    )
    entries, exits = switch[fraction[switch] > 0], switch[fraction[switch] == 0]
    trade_pnls = [equity.iloc[x] - equity.iloc[e] for e, x in zip(entries, exits, strict=False)]
    weekly = ts.iloc[::7].reset_index(drop=True)
    trend_weight = np.linspace(0.5, 0.8, len(weekly))
    weights = pd.concat(
        [
            pd.DataFrame({"ts": weekly, "agent": "trend", "weight": trend_weight}),
            pd.DataFrame({"ts": weekly, "agent": "mean_reversion", "weight": 1.0 - trend_weight}),
        ],
        ignore_index=True,
    )
    traded = pd.Series(changes * equity.to_numpy(), index=closes.index)
    metrics = {
        "strategy": summarize(equity, trade_pnls, fraction * equity, traded, 365),
        "benchmark_buy_and_hold": summarize(
            benchmark, [], np.ones(len(benchmark)), np.zeros(len(ts)), 365
        ),
        "per_agent": {
            "trend": {"hit_rate": 0.5625, "n_votes": 240, "sharpe_ratio": 1.23456},
            "mean_reversion": {"hit_rate": 0.4375, "n_votes": 240, "sharpe_ratio": None},
        },
        "agent_correlation": {
            "trend": {"trend": 1.0, "mean_reversion": -0.3125},
            "mean_reversion": {"trend": -0.3125, "mean_reversion": 1.0},
        },
        "reflection": [
            "trend led the committee through the December 2017 rally",
            "mean_reversion kept fading the January 2018 crash",
        ],
    }
    return {
        "equity": equity_frame,
        "positions": positions,
        "weights": weights,
        "trades": trades,
        "metrics": metrics,
    }


@pytest.fixture(scope="module")
def btc_daily(shared_data: Path) -> pd.Series:
    return _closes(shared_data / "ohlcv" / "binance-BTCUSDT-1d-2017-2018.csv")


@pytest.fixture
def inputs(btc_daily: pd.Series) -> dict[str, Any]:
    return build_inputs(btc_daily)


def render(inputs: dict[str, Any], **overrides: Any) -> str:
    arguments = {**inputs, **overrides}
    return render_report(
        arguments["equity"],
        arguments["positions"],
        arguments["weights"],
        arguments["trades"],
        arguments["metrics"],
        title=arguments.get("title", "SMA trend on BTC/USDT 1d"),
        config_text=arguments.get("config_text", CONFIG_YAML),
    )


def figure_svgs(document: str) -> dict[str, str]:
    return dict(re.findall(r'<figure id="plot-(\w+)">\s*(<svg.*?</svg>)', document, re.DOTALL))


class _TagBalance(HTMLParser):
    """Collects unclosed and mismatched tags, so a broken document fails loudly."""

    VOID = {"meta", "br", "img", "hr", "link", "input", "path", "use", "stop", "rect"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


# --------------------------------------------------------------------------------------------
# content
# --------------------------------------------------------------------------------------------


def test_report_has_the_four_plots_as_inline_svg(inputs: dict[str, Any]) -> None:
    document = render(inputs)
    svgs = figure_svgs(document)
    assert list(svgs) == ["equity", "drawdown", "positions", "weights"]
    assert document.count("<svg") == 4
    for svg in svgs.values():
        assert svg.count("<path") > 10, "a plot without drawn paths"
    assert 'aria-label="Equity vs buy-and-hold"' in svgs["equity"]
    assert 'aria-label="Drawdown from running peak"' in svgs["drawdown"]


def test_report_is_a_complete_offline_document(inputs: dict[str, Any]) -> None:
    document = render(inputs)
    assert document.startswith("<!DOCTYPE html>\n<html")
    assert document.rstrip().endswith("</html>")
    parser = _TagBalance()
    parser.feed(document)
    assert parser.errors == [] and parser.stack == []
    lowered = document.lower()
    for external in ("<script", "<link", "src=", "@import", "url(http", "<iframe", "<img"):
        assert external not in lowered, external
    # Namespaces are the only URLs, and never fetched.
    urls = set(re.findall(r"https?://[^\"'\s)]+", document))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_svg_ids_are_unique_across_the_document(inputs: dict[str, Any]) -> None:
    document = render(inputs)
    ids = re.findall(r'\bid="([^"]+)"', document)
    assert len(ids) > 50
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'href="#([^"]+)"', document))
    references |= set(re.findall(r"url\(#([^)]+)\)", document))
    assert references and references <= set(ids)


def test_metrics_are_formatted(inputs: dict[str, Any]) -> None:
    document = render(inputs)
    strategy = inputs["metrics"]["strategy"]
    benchmark = inputs["metrics"]["benchmark_buy_and_hold"]
    assert f"<td>{strategy['total_return'] * 100:,.2f}%</td>" in document
    assert f"<td>{benchmark['total_return'] * 100:,.2f}%</td>" in document
    assert f"<td>{strategy['max_drawdown'] * 100:,.2f}%</td>" in document
    assert f"<td>{strategy['sharpe_ratio']:,.4f}</td>" in document
    assert f"<td>{strategy['n_trades']:,d}</td>" in document
    # BTC fell from ~19k to ~9k: a deep buy-and-hold drawdown shown as a negative percentage.
    assert benchmark["max_drawdown"] < -0.5
    assert f"{benchmark['max_drawdown'] * 100:,.2f}%" in document
    # Benchmark has no trades: its win rate is None and shows as n/a.
    assert benchmark["win_rate"] is None
    assert re.search(r"<th>Win rate</th><td>[^<]+</td><td>n/a</td>", document)
    assert "<th>CAGR</th>" in document and "<th>Sharpe ratio</th>" in document
    # per-agent table: hit rates as percentages, counts plain, None as n/a
    assert "<th>trend</th><td>56.25%</td><td>240</td><td>1.2346</td>" in document
    assert "<th>mean_reversion</th><td>43.75%</td><td>240</td><td>n/a</td>" in document
    # correlation matrix: three decimals
    assert ">-0.312<" in document and ">1.000<" in document
    assert "<li>trend led the committee through the December 2017 rally</li>" in document
    assert f"<pre>{CONFIG_YAML}</pre>" in document


def test_run_summary_comes_from_the_frames(inputs: dict[str, Any]) -> None:
    document = render(inputs)
    equity = inputs["equity"]
    assert "2017-08-17 00:00 UTC to 2018-04-28 00:00 UTC" in document
    assert f"<th>Bars</th><td>{len(equity)}</td>" in document
    assert f"<th>Fills</th><td>{len(inputs['trades'])}</td>" in document
    assert f"<th>Final equity</th><td>{equity['equity'].iloc[-1]:,.2f}</td>" in document
    deepest = -equity["benchmark_drawdown"].max() * 100
    assert f"<th>Deepest buy-and-hold drawdown</th><td>{deepest:,.2f}%</td>" in document


@pytest.mark.parametrize(
    ("value", "key", "expected"),
    [
        (0.1234, "total_return", "12.34%"),
        (-0.25, "max_drawdown", "-25.00%"),
        (0.5, "win_rate", "50.00%"),
        (1.23456, "sharpe_ratio", "1.2346"),
        (12_345.678, "final_equity", "12,345.68"),
        (42, "n_trades", "42"),
        (None, "sortino_ratio", "n/a"),
        (float("nan"), "cagr", "n/a"),
        (float("inf"), "profit_factor", "inf"),
        (True, "halted", "yes"),
        ("<b>x</b>", "note", "&lt;b&gt;x&lt;/b&gt;"),
    ],
)
def test_format_value(value: Any, key: str, expected: str) -> None:
    assert format_value(value, key) == expected


# --------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------


def test_same_inputs_give_identical_bytes_in_one_process(inputs: dict[str, Any]) -> None:
    first = render(inputs)
    assert render(inputs) == first
    nudged = inputs["equity"].copy()
    nudged.loc[nudged.index[-1], "equity"] *= 1.01
    assert render(inputs, equity=nudged) != first  # the comparison can tell runs apart


_RENDER_IN_SUBPROCESS = """
import sys
from pathlib import Path
import pandas as pd
from trading.backtest.report import render_report, write_report
inputs = pd.read_pickle(sys.argv[1])
write_report(Path(sys.argv[2]), render_report(
    inputs["equity"], inputs["positions"], inputs["weights"], inputs["trades"],
    inputs["metrics"], title=inputs["title"], config_text=inputs["config_text"]))
"""


def test_same_inputs_give_identical_bytes_across_processes(
    inputs: dict[str, Any], tmp_path: Path
) -> None:
    pickled = tmp_path / "inputs.pkl"
    pd.to_pickle({**inputs, "title": "cross-process", "config_text": CONFIG_YAML}, pickled)
    outputs = []
    for hash_seed in ("1", "2"):
        target = tmp_path / f"report-{hash_seed}.html"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-c", _RENDER_IN_SUBPROCESS, str(pickled), str(target)],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    in_process = render(inputs, title="cross-process").encode("utf-8")
    assert outputs[0] == in_process


def test_negative_drawdown_convention_renders_the_same(inputs: dict[str, Any]) -> None:
    negative = inputs["equity"].assign(
        drawdown=-inputs["equity"]["drawdown"],
        benchmark_drawdown=-inputs["equity"]["benchmark_drawdown"],
    )
    assert render(inputs, equity=negative) == render(inputs)


def test_row_order_does_not_matter(inputs: dict[str, Any]) -> None:
    shuffled = {
        name: frame.sample(frac=1.0, random_state=7)
        for name, frame in inputs.items()
        if isinstance(frame, pd.DataFrame)
    }
    assert render(inputs, **shuffled) == render(inputs)


# --------------------------------------------------------------------------------------------
# untrusted text
# --------------------------------------------------------------------------------------------


def test_user_text_is_escaped(inputs: dict[str, Any]) -> None:
    attack = '<script>alert("x")</script>'
    metrics = {
        **inputs["metrics"],
        "reflection": [f"note {attack}", {"layer": attack, "message": "ok"}],
        "per_agent": {attack: {"hit_rate": 0.5}},
    }
    positions = inputs["positions"].assign(symbol=f"BTC{attack}")
    trades = inputs["trades"].assign(symbol=f"BTC{attack}")
    weights = inputs["weights"].replace({"agent": {"trend": attack}})
    document = render(
        inputs,
        title=f"Run {attack}",
        config_text=f"agents: []\n# </pre>{attack}",
        metrics=metrics,
        positions=positions,
        trades=trades,
        weights=weights,
    )
    assert "<script" not in document.lower()
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert f"<title>Run {escaped}</title>" in document
    assert f"<h1>Run {escaped}</h1>" in document
    assert f"# &lt;/pre&gt;{escaped}</pre>" in document
    assert f"<li>note {escaped}</li>" in document
    assert f"<th>{escaped}</th>" in document
    assert f"BTC{escaped}" in document


def test_dollar_signs_and_leading_underscores_are_plain_labels(inputs: dict[str, Any]) -> None:
    positions = inputs["positions"].assign(symbol="$BTC$")
    weights = inputs["weights"].replace({"agent": {"trend": "_trend"}})
    document = render(inputs, positions=positions, weights=weights)
    assert len(figure_svgs(document)) == 4


# --------------------------------------------------------------------------------------------
# empty and invalid inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["bare", "with_columns"])
def test_empty_trades_weights_and_positions(inputs: dict[str, Any], shape: str) -> None:
    def empty(columns: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame() if shape == "bare" else pd.DataFrame(columns=list(columns))

    flat = inputs["equity"].assign(
        equity=START_CASH, drawdown=0.0, gross_exposure=0.0
    )  # never traded: equity stays at the starting cash
    document = render(
        inputs,
        equity=flat,
        positions=empty(POSITION_COLUMNS),
        weights=empty(WEIGHT_COLUMNS),
        trades=empty(TRADE_COLUMNS),
        metrics={"total_return": 0.0, "win_rate": None, "reflection": []},
    )
    assert list(figure_svgs(document)) == ["equity", "drawdown", "positions"]
    assert "No agent weights were recorded in this run." in document
    assert "No fills: the strategy never traded." in document
    assert "No position was held in this run." in document
    assert "<th>Fills</th><td>0</td>" in document
    assert "<th>Win rate</th><td>n/a</td>" in document


_FRAME_COLUMNS = {
    "equity": EQUITY_COLUMNS,
    "positions": POSITION_COLUMNS,
    "weights": WEIGHT_COLUMNS,
    "trades": TRADE_COLUMNS,
}


@pytest.mark.parametrize(
    ("frame", "column"),
    [(frame, column) for frame, columns in _FRAME_COLUMNS.items() for column in columns],
)
def test_missing_column_is_named(inputs: dict[str, Any], frame: str, column: str) -> None:
    broken = inputs[frame].drop(columns=[column])
    with pytest.raises(ValueError, match=rf"{frame} is missing required column\(s\) '{column}'"):
        render(inputs, **{frame: broken})


def test_naive_timestamps_are_rejected(inputs: dict[str, Any]) -> None:
    naive = inputs["equity"].assign(ts=inputs["equity"]["ts"].dt.tz_localize(None))
    with pytest.raises(ValueError, match=r"equity\.ts must be timezone-aware"):
        render(inputs, equity=naive)


def test_duplicate_timestamps_are_rejected(inputs: dict[str, Any]) -> None:
    doubled = pd.concat([inputs["equity"], inputs["equity"].tail(1)])
    with pytest.raises(ValueError, match=r"equity\.ts must be unique"):
        render(inputs, equity=doubled)
    positions = pd.concat([inputs["positions"], inputs["positions"].head(1)])
    with pytest.raises(ValueError, match=r"positions must have one row per ts and symbol"):
        render(inputs, positions=positions)


def test_mixed_drawdown_signs_are_rejected(inputs: dict[str, Any]) -> None:
    mixed = inputs["equity"].copy()
    mixed.loc[mixed.index[-1], "drawdown"] = -0.1
    mixed.loc[mixed.index[-2], "drawdown"] = 0.1
    with pytest.raises(ValueError, match=r"equity\.drawdown mixes positive and negative"):
        render(inputs, equity=mixed)


def test_non_finite_equity_is_rejected(inputs: dict[str, Any]) -> None:
    broken = inputs["equity"].copy()
    broken.loc[broken.index[3], "equity"] = np.nan
    with pytest.raises(ValueError, match=r"equity\.equity must be finite"):
        render(inputs, equity=broken)


def test_unknown_trade_side_is_rejected(inputs: dict[str, Any]) -> None:
    trades = inputs["trades"].assign(side="hold")
    with pytest.raises(ValueError, match=r"trades\.side must be 'buy' or 'sell'"):
        render(inputs, trades=trades)


# --------------------------------------------------------------------------------------------
# long runs
# --------------------------------------------------------------------------------------------


def test_decimate_keeps_extremes_and_last_point() -> None:
    rng = np.random.default_rng(3)
    values = np.cumsum(rng.normal(size=45_031))
    keep = decimate(values)
    assert len(keep) <= MAX_PLOT_POINTS + 2
    assert keep[0] == 0 and keep[-1] == len(values) - 1
    assert int(np.argmin(values)) in keep and int(np.argmax(values)) in keep
    assert np.all(np.diff(keep) > 0)
    assert np.array_equal(decimate(values), keep)
    assert np.array_equal(decimate(values[:500]), np.arange(500))


def test_45k_minute_bars_render_small(shared_data: Path) -> None:
    closes = _closes(shared_data / "ohlcv" / "perp-BTCUSD-1m-2022-01.csv")
    assert len(closes) > 45_000
    inputs = build_inputs(closes, symbol="BTC-PERP")
    document = render(inputs, title="SMA trend on BTC-PERP 1m")
    assert len(document.encode("utf-8")) < 2_000_000
    assert list(figure_svgs(document)) == ["equity", "drawdown", "positions", "weights"]
    assert f"<th>Bars</th><td>{len(closes):,d}</td>" in document
    # Thousands of fills: a summary over all of them, and only the first and last listed.
    assert len(inputs["trades"]) > 400
    assert "fills not listed" in document
    fills_table = document[document.index('<table class="fills">') :]
    assert fills_table.count("<td>BTC-PERP</td>") == 200


def test_write_report_writes_the_exact_bytes(inputs: dict[str, Any], tmp_path: Path) -> None:
    document = render(inputs, title="Résumé — BTC")
    target = tmp_path / "nested" / "dir" / "report.html"
    write_report(target, document)
    assert target.read_bytes() == document.encode("utf-8")
    write_report(target, "<!DOCTYPE html>\n<html></html>\n")
    assert target.read_text(encoding="utf-8") == "<!DOCTYPE html>\n<html></html>\n"
    assert sorted(path.name for path in target.parent.iterdir()) == ["report.html"]
