"""Metrics cross-checked against empyrical-reloaded (the reference) on the same returns.

Our functions take the equity curve where the reference takes returns; each comparison feeds
empyrical ``returns_from_equity(equity)``, so both sides see the very same numbers.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.metrics import (
    cagr,
    drawdown_series,
    exposure,
    max_drawdown,
    profit_factor,
    returns_from_equity,
    sharpe_ratio,
    sortino_ratio,
    summarize,
    total_return,
    turnover,
    win_rate,
)

DAILY = 365  # crypto trades every day; empyrical's 'daily' default (252) is for equities
REL = 1e-9


def _same(ours: float, reference: float, *, abs_tol: float = 0.0) -> bool:
    """Equal within REL (and abs_tol), with NaN == NaN and inf == inf of the same sign."""
    if math.isnan(reference) or math.isnan(ours):
        return math.isnan(reference) and math.isnan(ours)
    if math.isinf(reference) or math.isinf(ours):
        return ours == reference
    return ours == pytest.approx(reference, rel=REL, abs=abs_tol)


def _equity_from_returns(returns: list[float], start: float = 100.0) -> pd.Series:
    index = pd.date_range("2018-01-01", periods=len(returns) + 1, freq="D", tz="UTC")
    return pd.Series(start * np.cumprod([1.0, *(1.0 + r for r in returns)]), index=index)


def _assert_matches_empyrical(equity: pd.Series, periods_per_year: int) -> None:
    returns = returns_from_equity(equity)
    values = returns.to_numpy()
    # empyrical sums with bottleneck (sequential), numpy pairwise: the means differ by round-off
    # of the size n * eps * max|r|. Where the mean nearly cancels, that is large *relative* to
    # the mean, so the ratios also get an absolute allowance scaled by that round-off; on
    # ordinary series the relative 1e-9 is what binds.
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    ratio_abs = 0.0
    if std > 0:
        ratio_abs = 1e-12 * len(values) * scale / std * math.sqrt(periods_per_year)

    assert _same(
        sharpe_ratio(returns, periods_per_year),
        empyrical.sharpe_ratio(returns, annualization=periods_per_year),
        abs_tol=ratio_abs,
    )
    assert _same(
        sortino_ratio(returns, periods_per_year),
        empyrical.sortino_ratio(returns, annualization=periods_per_year),
        abs_tol=ratio_abs * math.sqrt(periods_per_year),
    )
    if len(values) == 0:
        # Convention difference: a one-point curve has no returns, so empyrical says NaN for
        # its drawdown and total return; ours has a start value and says "never fell, never
        # grew" (0.0). With no point at all both say NaN (test_empty_equity).
        assert math.isnan(empyrical.max_drawdown(returns))
        assert math.isnan(empyrical.cum_returns_final(returns))
        assert max_drawdown(equity) == total_return(equity) == 0.0
        assert math.isnan(cagr(equity, periods_per_year))
        assert math.isnan(empyrical.annual_return(returns, annualization=periods_per_year))
        return
    # Drawdowns subtract nearly equal numbers when the dip is tiny: allow round-off of one
    # compounded path (the reference rebuilds the curve from returns with cumprod).
    assert _same(max_drawdown(equity), empyrical.max_drawdown(returns), abs_tol=1e-13 * len(values))
    assert _same(
        total_return(equity), empyrical.cum_returns_final(returns), abs_tol=1e-13 * len(values)
    )
    # annual_return counts years as len(returns) / annualization, as cagr counts bars; the
    # power ppy / n amplifies the compounding round-off by that factor.
    assert _same(
        cagr(equity, periods_per_year),
        empyrical.annual_return(returns, annualization=periods_per_year),
        abs_tol=1e-13 * len(values) * periods_per_year,
    )


# --------------------------------------------------------------------------------------------
# (a) real data: BTC/USDT daily closes, Aug 2017 - Apr 2018 (bubble and crash)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def btc_closes(shared_data: Path) -> pd.Series:
    path = shared_data / "ohlcv" / "binance-BTCUSDT-1d-2017-2018.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    frame = pd.read_csv(path, parse_dates=["timestamp"])
    return frame.set_index("timestamp")["close"].astype("float64")


def test_real_btc_daily_metrics_match_empyrical(btc_closes: pd.Series) -> None:
    assert len(btc_closes) == 255
    _assert_matches_empyrical(btc_closes, DAILY)


def test_real_btc_returns_and_drawdowns_match_empyrical(btc_closes: pd.Series) -> None:
    returns = returns_from_equity(btc_closes)
    reference = empyrical.simple_returns(btc_closes)
    assert list(returns.index) == list(reference.index) == list(btc_closes.index[1:])
    np.testing.assert_allclose(returns.to_numpy(), reference.to_numpy(), rtol=REL, atol=0)

    ours = drawdown_series(btc_closes)
    assert ours.iloc[0] == 0.0  # the first close is its own peak; empyrical has no such row
    np.testing.assert_allclose(
        ours.iloc[1:].to_numpy(),
        empyrical.stats.drawdown_series(returns).to_numpy(),
        rtol=REL,
        atol=1e-15,
    )


def test_real_btc_figures_are_plausible(btc_closes: pd.Series) -> None:
    # Sanity against what the README says about the period: bubble to ~19k, crash to ~6k.
    assert total_return(btc_closes) == pytest.approx(
        btc_closes.iloc[-1] / btc_closes.iloc[0] - 1, rel=1e-15
    )
    assert -0.75 < max_drawdown(btc_closes) < -0.6
    assert sharpe_ratio(returns_from_equity(btc_closes), DAILY) > 0


# --------------------------------------------------------------------------------------------
# (b) generated return series
# --------------------------------------------------------------------------------------------

# Sane bounds: per-period returns between -50 % and +50 %, quantised to 1e-6 (no subnormals,
# which no account value produces), 0 to 300 periods.
sane_returns = st.lists(
    st.integers(min_value=-500_000, max_value=500_000).map(lambda micro: micro / 1e6),
    min_size=0,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(returns=sane_returns, periods_per_year=st.sampled_from([12, 52, 252, 365]))
def test_generated_returns_match_empyrical(returns: list[float], periods_per_year: int) -> None:
    _assert_matches_empyrical(_equity_from_returns(returns), periods_per_year)


@settings(max_examples=200, deadline=None)
@given(returns=sane_returns.filter(lambda r: len(r) > 0))
def test_drawdown_is_never_positive_and_zero_at_each_new_high(returns: list[float]) -> None:
    equity = _equity_from_returns(returns)
    drawdowns = drawdown_series(equity)
    assert (drawdowns <= 0).all()
    at_peak = equity == equity.cummax()
    assert (drawdowns[at_peak] == 0).all()
    assert max_drawdown(equity) == drawdowns.min()


# --------------------------------------------------------------------------------------------
# edge cases and hand-computed values
# --------------------------------------------------------------------------------------------


def test_empty_equity() -> None:
    equity = pd.Series([], dtype="float64")
    assert returns_from_equity(equity).empty
    assert math.isnan(total_return(equity))
    assert math.isnan(cagr(equity, DAILY))
    assert math.isnan(max_drawdown(equity))
    assert math.isnan(sharpe_ratio(returns_from_equity(equity), DAILY))
    assert math.isnan(sortino_ratio(returns_from_equity(equity), DAILY))
    assert math.isnan(exposure([], equity))
    assert math.isnan(turnover([], equity, DAILY))
    summary = summarize(equity, [], [], [], DAILY)
    assert summary["n_periods"] == 0
    assert all(summary[key] is None for key in ("total_return", "sharpe_ratio", "max_drawdown"))


def test_single_point_equity() -> None:
    equity = pd.Series([1_000.0])
    assert returns_from_equity(equity).empty
    assert total_return(equity) == 0.0
    assert math.isnan(cagr(equity, DAILY))  # no time elapsed
    assert max_drawdown(equity) == 0.0
    assert drawdown_series(equity).tolist() == [0.0]
    assert math.isnan(sharpe_ratio(returns_from_equity(equity), DAILY))


def test_one_return_has_no_ratio() -> None:
    returns = returns_from_equity(pd.Series([100.0, 110.0]))
    assert math.isnan(sharpe_ratio(returns, DAILY))
    assert math.isnan(sortino_ratio(returns, DAILY))
    assert math.isnan(empyrical.sharpe_ratio(returns, annualization=DAILY))


def test_constant_equity() -> None:
    equity = pd.Series([250.0] * 10)
    returns = returns_from_equity(equity)
    assert (returns == 0).all()
    assert total_return(equity) == 0.0
    assert cagr(equity, DAILY) == 0.0
    assert max_drawdown(equity) == 0.0
    assert math.isnan(sharpe_ratio(returns, DAILY))
    assert math.isnan(sortino_ratio(returns, DAILY))
    assert math.isnan(empyrical.sharpe_ratio(returns, annualization=DAILY))
    summary = summarize(equity, [], [0.0] * 10, [0.0] * 10, DAILY)
    assert summary["sharpe_ratio"] is None
    assert summary["exposure"] == 0.0
    assert summary["turnover"] == 0.0


def test_zero_dispersion_and_no_downside_are_infinite_like_empyrical() -> None:
    returns = pd.Series([0.01] * 5)
    assert sharpe_ratio(returns, DAILY) == math.inf
    assert empyrical.sharpe_ratio(returns, annualization=DAILY) == math.inf
    gains_only = pd.Series([0.01, 0.02, 0.0, 0.03])
    assert sortino_ratio(gains_only, DAILY) == math.inf
    assert empyrical.sortino_ratio(gains_only, annualization=DAILY) == math.inf


def test_sharpe_and_sortino_by_hand() -> None:
    r = [0.01, -0.02, 0.03, 0.005]
    mean = statistics.fmean(r)
    expected_sharpe = mean / statistics.stdev(r) * math.sqrt(DAILY)  # stdev is ddof=1
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r)) * math.sqrt(DAILY)
    assert sharpe_ratio(pd.Series(r), DAILY) == pytest.approx(expected_sharpe, rel=1e-12)
    assert sortino_ratio(r, DAILY) == pytest.approx(mean * DAILY / downside, rel=1e-12)


def test_known_drawdown_by_hand() -> None:
    equity = pd.Series([100.0, 120.0, 90.0, 110.0, 130.0, 65.0, 80.0])
    expected = [0.0, 0.0, -0.25, 110 / 120 - 1, 0.0, -0.5, 80 / 130 - 1]
    assert drawdown_series(equity).tolist() == pytest.approx(expected, rel=1e-15)
    assert max_drawdown(equity) == -0.5


def test_a_fall_on_the_first_bar_is_a_drawdown_from_the_starting_capital() -> None:
    equity = pd.Series([100.0, 80.0, 120.0])
    assert max_drawdown(equity) == pytest.approx(-0.2, rel=1e-15)
    assert empyrical.max_drawdown(returns_from_equity(equity)) == pytest.approx(-0.2, rel=1e-15)


def test_total_return_and_cagr_by_hand() -> None:
    # 100 -> 121 over two yearly periods is 10 % a year.
    equity = pd.Series([100.0, 95.0, 121.0])
    assert total_return(equity) == pytest.approx(0.21, rel=1e-15)
    assert cagr(equity, 1) == pytest.approx(0.10, rel=1e-15)
    # The same curve on daily bars: 2 days of a 365-day year.
    assert cagr(equity, DAILY) == pytest.approx(1.21 ** (DAILY / 2) - 1, rel=1e-12)
    # Doubling in one 5-minute bar annualises past the float range: inf, not an error.
    assert cagr(pd.Series([100.0, 200.0]), 365 * 288) == math.inf


def test_trade_metrics_by_hand() -> None:
    pnls = [10.0, -5.0, 20.0, -10.0, 0.0]
    assert win_rate(pnls) == pytest.approx(2 / 5)  # the break-even trade is not a win
    assert profit_factor(pnls) == pytest.approx(30 / 15)
    assert profit_factor([-1.0, -2.0]) == 0.0
    assert win_rate([-1.0, -2.0]) == 0.0
    assert math.isnan(win_rate([]))
    assert math.isnan(profit_factor([]))
    assert math.isnan(profit_factor([0.0, 0.0]))


def test_all_winning_trades() -> None:
    pnls = [1.0, 2.5, 0.25]
    assert win_rate(pnls) == 1.0
    assert profit_factor(pnls) == math.inf
    equity = _equity_from_returns([0.01, 0.025, 0.0025])
    summary = summarize(equity, pnls, [0.0, 100.0, 100.0, 0.0], [0.0, 100.0, 0.0, 104.0], DAILY)
    assert summary["win_rate"] == 1.0
    assert summary["profit_factor"] is None  # inf, serialised as null ...
    assert summary["n_losing_trades"] == 0  # ... and this says why
    assert summary["n_winning_trades"] == summary["n_trades"] == 3
    assert summary["sortino_ratio"] is None  # no losing bar either


def test_exposure_counts_bars_with_any_position() -> None:
    index = pd.date_range("2018-01-10", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 101.0, 99.0, 102.0, 103.0], index=index)
    assert exposure([0.0, 50.0, -10.0, 0.0, 0.0], equity) == pytest.approx(2 / 5)
    # Sparse by label: bars not listed are flat; per-symbol columns are combined.
    sparse = pd.Series([40.0], index=index[[3]])
    assert exposure(sparse, equity) == pytest.approx(1 / 5)
    per_symbol = pd.DataFrame(
        {"ETH/BTC": [0.0, 5.0, 0.0], "LTC/BTC": [7.0, 0.0, 0.0]}, index=index[[0, 1, 2]]
    )
    assert exposure(per_symbol, equity) == pytest.approx(2 / 5)


def test_turnover_is_two_sided_per_bar_equity_annualised() -> None:
    index = pd.date_range("2018-01-10", periods=4, freq="D", tz="UTC")
    equity = pd.Series([100.0, 100.0, 200.0, 200.0], index=index)
    # Buy the whole account, then sell it back at twice the price: 1.0 + 1.0 over 4 bars.
    assert turnover([0.0, 100.0, 200.0, 0.0], equity, DAILY) == pytest.approx(0.5 * DAILY)
    # Fills by label, two in one bar: summed, other bars traded nothing.
    fills = pd.Series([60.0, 40.0, 200.0], index=index[[1, 1, 2]])
    assert turnover(fills, equity, DAILY) == pytest.approx(0.5 * DAILY)


def test_misaligned_inputs_are_refused_with_a_clear_message() -> None:
    index = pd.date_range("2018-01-10", periods=3, freq="D", tz="UTC")
    equity = pd.Series([100.0, 101.0, 102.0], index=index)
    with pytest.raises(ValueError, match="position_values has 2 values but the equity has 3"):
        exposure([1.0, 0.0], equity)
    stray = pd.Series([5.0], index=pd.DatetimeIndex(["2019-01-01"], tz="UTC"))
    with pytest.raises(ValueError, match="traded_notional has 1 label"):
        turnover(stray, equity, DAILY)


@pytest.mark.parametrize("bad", [[100.0, 0.0, 50.0], [100.0, math.nan], [100.0, -1.0]])
def test_equity_must_be_positive_and_finite(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="equity must be finite and > 0"):
        returns_from_equity(pd.Series(bad))


def test_invalid_returns_and_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="returns must be finite"):
        sharpe_ratio(pd.Series([math.nan, 0.01, 0.02]), DAILY)
    with pytest.raises(ValueError, match="periods_per_year"):
        cagr(pd.Series([1.0, 2.0]), 0)
    with pytest.raises(ValueError, match="trade_pnls must be finite"):
        win_rate([1.0, math.inf])


def test_summary_is_strict_json_and_deterministic() -> None:
    equity = _equity_from_returns([0.01, -0.02, 0.015, 0.0, -0.005, 0.03])
    args = (equity, [3.0, -1.0, 2.0], [0.0, 10.0, 10.0, 0.0, 0.0, 5.0, 5.0], [0.0] * 7, 365 * 288)
    summary = summarize(*args)
    assert list(summary) == [
        "total_return",
        "cagr",
        "sharpe_ratio",
        "sortino_ratio",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "exposure",
        "turnover",
        "periods_per_year",
        "n_periods",
        "n_trades",
        "n_winning_trades",
        "n_losing_trades",
    ]
    assert all(type(v) in (float, int) or v is None for v in summary.values())
    text = json.dumps(summary, allow_nan=False)
    assert text == json.dumps(summarize(*args), allow_nan=False)
    assert summary["cagr"] == pytest.approx(cagr(equity, 365 * 288))
    assert summary["sharpe_ratio"] == pytest.approx(
        sharpe_ratio(returns_from_equity(equity), 365 * 288)
    )
    assert summary["profit_factor"] == pytest.approx(5.0)
    assert summary["exposure"] == pytest.approx(4 / 7)
