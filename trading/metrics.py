"""Performance metrics for backtest reports, computed from an equity curve and trade PnLs.

Pure and deterministic (numpy/pandas only), so the backtester, the trading job and the tests
get the same numbers from the same inputs. The conventions follow empyrical(-reloaded), the
reference the tests cross-check against, so a figure here means what it means in pyfolio-style
tear sheets:

* An equity curve is a series of strictly positive, finite account values, one per bar, in time
  order. ``n + 1`` equity points span ``n`` periods and give ``n`` simple returns; the first
  point is the starting capital (for ``SessionResult.daily_pnl`` rows, prepend the initial cash
  before the first day's ``equity``).
* ``periods_per_year`` is always explicit: there is no default because crypto trades every day
  of the year, so 252 would be wrong. Use 365 for daily bars, 365 * 24 for hourly and
  365 * 288 for 5-minute bars.
* The risk-free rate (and Sortino's required return) is 0.
* Volatility is the sample standard deviation (``ddof=1``); Sortino's downside deviation is the
  root mean square of the negative part of the returns over *all* periods (Sortino and
  empyrical's definition, not a standard deviation of the losing periods only).
* Drawdowns are negative fractions of the running peak (``-0.25`` is 25 % below the peak).

Undefined values are NaN and unbounded ones are ``inf``; the functions return them as they
are. :func:`summarize` turns every non-finite value into ``None`` (JSON ``null``) so its dict
is valid strict JSON, and adds trade counts so a reader can tell why a ratio is ``null``
(for example ``profit_factor`` is ``null`` with ``n_losing_trades == 0``: no losing trade, an
infinite factor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "cagr",
    "drawdown_series",
    "exposure",
    "max_drawdown",
    "profit_factor",
    "returns_from_equity",
    "sharpe_ratio",
    "sortino_ratio",
    "summarize",
    "total_return",
    "turnover",
    "win_rate",
]

ArrayLike = pd.Series | np.ndarray | Sequence[float]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_periods_per_year(periods_per_year: float) -> float:
    value = float(periods_per_year)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"periods_per_year must be a finite number > 0, got {periods_per_year!r}")
    return value


def _as_equity(equity: ArrayLike) -> pd.Series:
    series = equity if isinstance(equity, pd.Series) else pd.Series(equity, dtype="float64")
    series = series.astype("float64")
    values = series.to_numpy()
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        first = series.index[int(np.argmax(bad))]
        raise ValueError(
            f"equity must be finite and > 0 at every bar; got {values[bad][0]!r} at {first!r} "
            f"({int(bad.sum())} bad value(s))"
        )
    return series


def _as_returns(returns: ArrayLike) -> np.ndarray:
    values = np.asarray(returns, dtype="float64")
    if values.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {values.shape}")
    bad = ~np.isfinite(values) | (values < -1.0)
    if bad.any():
        raise ValueError(
            f"returns must be finite and >= -1 (a loss beyond -100 % is impossible); got "
            f"{values[bad][0]!r} at position {int(np.argmax(bad))} ({int(bad.sum())} bad "
            "value(s)); build returns with returns_from_equity, which drops the leading NaN"
        )
    return values


def _as_values(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)][0]!r}")
    return array


def _align_to_bars(
    values: pd.Series | pd.DataFrame | np.ndarray | Sequence[float],
    equity: pd.Series,
    name: str,
) -> np.ndarray:
    """Per-bar values as a float array aligned to the equity bars.

    A pandas input is aligned by label: its index must be a subset of the equity index, bars it
    does not mention count as 0 (flat, nothing traded), duplicate labels are summed (several
    fills in one bar) and a DataFrame's columns (one per symbol) are combined by summing
    absolute values. Anything else is aligned by position and must have one value per bar.
    Label alignment keeps a sparse fills series from being matched to the wrong bars.
    """
    if isinstance(values, pd.DataFrame | pd.Series):
        frame = values.to_frame() if isinstance(values, pd.Series) else values
        frame = frame.astype("float64")
        if not np.isfinite(frame.to_numpy()).all():
            raise ValueError(f"{name} must be finite")
        unknown = frame.index.difference(equity.index)
        if len(unknown):
            raise ValueError(
                f"{name} has {len(unknown)} label(s) not in the equity index, e.g. "
                f"{unknown[0]!r}; pass one value per equity bar or index it like the equity"
            )
        per_bar = frame.abs().sum(axis=1).groupby(level=0, sort=False).sum()
        return per_bar.reindex(equity.index, fill_value=0.0).to_numpy(dtype="float64")
    array = _as_values(values, name)
    if len(array) != len(equity):
        raise ValueError(f"{name} has {len(array)} values but the equity has {len(equity)} bars")
    return np.abs(array)


# --------------------------------------------------------------------------------------------
# equity-curve metrics
# --------------------------------------------------------------------------------------------


def returns_from_equity(equity: pd.Series) -> pd.Series:
    """Simple per-period returns ``equity[t] / equity[t-1] - 1``, one fewer than equity points.

    The first bar has no return and is dropped rather than left as NaN, so the result feeds the
    ratio functions directly; each return is labelled with the bar it ends on.
    """
    series = _as_equity(equity)
    values = series.to_numpy()
    return pd.Series(values[1:] / values[:-1] - 1.0, index=series.index[1:], name="returns")


def total_return(equity: pd.Series) -> float:
    """Last over first equity minus one; NaN for an empty curve, 0.0 for a single point."""
    values = _as_equity(equity).to_numpy()
    if len(values) == 0:
        return math.nan
    return float(values[-1] / values[0] - 1.0)


def cagr(equity: pd.Series, periods_per_year: float) -> float:
    """Compound annual growth rate, with years counted as ``(len(equity) - 1) / periods_per_year``.

    Time is counted in bars, not calendar days, as empyrical's ``annual_return`` does, so the
    figure is comparable across data with gaps. NaN with fewer than two points (no time
    elapsed). Very short, very profitable runs can annualise to ``inf``.
    """
    ppy = _check_periods_per_year(periods_per_year)
    values = _as_equity(equity).to_numpy()
    if len(values) < 2:
        return math.nan
    years = (len(values) - 1) / ppy
    with np.errstate(over="ignore"):
        return float(np.power(values[-1] / values[0], 1.0 / years) - 1.0)


def sharpe_ratio(returns: pd.Series, periods_per_year: float) -> float:
    """Annualised Sharpe ratio: ``mean / std(ddof=1) * sqrt(periods_per_year)``, risk-free 0.

    NaN with fewer than two returns and for all-zero returns (a constant equity curve). Returns
    that are all exactly equal and non-zero have no dispersion: the ratio is ``+-inf``, as in
    empyrical (floating-point noise in the standard deviation would otherwise turn it into an
    arbitrary huge number).
    """
    ppy = _check_periods_per_year(periods_per_year)
    values = _as_returns(returns)
    if len(values) < 2:
        return math.nan
    mean = float(np.mean(values))
    std = 0.0 if values.max() == values.min() else float(np.std(values, ddof=1))
    if std == 0.0:
        return math.nan if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / std * math.sqrt(ppy)


def sortino_ratio(returns: pd.Series, periods_per_year: float) -> float:
    """Annualised Sortino ratio with required return 0.

    ``mean * ppy / (sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy))``: the downside deviation averages
    over every period, so many small gains and one loss are not punished like one loss alone.
    NaN with fewer than two returns or with all-zero returns; ``+inf`` when no return is
    negative and the mean is positive (as in empyrical).
    """
    ppy = _check_periods_per_year(periods_per_year)
    values = _as_returns(returns)
    if len(values) < 2:
        return math.nan
    mean = float(np.mean(values))
    downside = math.sqrt(float(np.mean(np.square(np.minimum(values, 0.0))))) * math.sqrt(ppy)
    if downside == 0.0:
        return math.nan if mean == 0.0 else math.copysign(math.inf, mean)
    return mean * ppy / downside


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Per bar, ``equity / running peak - 1`` (0 at a new high, negative below it).

    Same index as the equity; the first bar is always 0 because it is its own peak.
    """
    series = _as_equity(equity)
    peak = series.cummax()
    return (series / peak - 1.0).rename("drawdown")


def max_drawdown(equity: pd.Series) -> float:
    """Deepest drawdown of the equity curve, a negative fraction (``-0.25`` = 25 % below peak).

    Takes the equity curve, not returns, so the starting capital is the first possible peak: a
    fall on the very first bar counts. That is the same number as empyrical's
    ``max_drawdown(returns_from_equity(equity))``, which anchors its peak at a start value
    before the first return. 0.0 for a curve that never falls below a prior peak (including a
    single point), NaN for an empty curve.
    """
    drawdowns = drawdown_series(equity)
    if drawdowns.empty:
        return math.nan
    return float(drawdowns.min())


# --------------------------------------------------------------------------------------------
# trade and position metrics
# --------------------------------------------------------------------------------------------


def win_rate(trade_pnls: ArrayLike) -> float:
    """Fraction of closed trades with a PnL strictly above zero; NaN with no trades.

    A break-even trade (PnL exactly 0) counts as a trade but not as a win.
    """
    pnls = _as_values(trade_pnls, "trade_pnls")
    if len(pnls) == 0:
        return math.nan
    return float(np.count_nonzero(pnls > 0.0) / len(pnls))


def profit_factor(trade_pnls: ArrayLike) -> float:
    """Gross profit over gross loss (absolute).

    NaN with no trades or when every trade broke even; ``inf`` when there are winning trades
    and no losing one (:func:`summarize` reports that as ``None`` next to
    ``n_losing_trades == 0``); 0.0 when every non-zero trade lost.
    """
    pnls = _as_values(trade_pnls, "trade_pnls")
    gross_profit = float(pnls[pnls > 0.0].sum())
    gross_loss = float(-pnls[pnls < 0.0].sum())
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0.0 else math.nan
    return gross_profit / gross_loss


def exposure(position_values: pd.Series | pd.DataFrame | ArrayLike, equity: pd.Series) -> float:
    """Fraction of equity bars with a non-zero position (time in the market).

    ``position_values`` holds the value held at each bar: one value per equity bar, or a pandas
    Series/DataFrame (one column per symbol) indexed like the equity, where missing bars are
    flat. A bar counts as exposed when any position is non-zero, long or short. The equity
    defines the bars, so a backtest that is flat most of the time scores low even if its
    positions table only lists the bars it held something. NaN for an empty curve.
    """
    series = _as_equity(equity)
    if series.empty:
        return math.nan
    per_bar = _align_to_bars(position_values, series, "position_values")
    return float(np.count_nonzero(per_bar != 0.0) / len(series))


def turnover(
    traded_notional: pd.Series | ArrayLike, equity: pd.Series, periods_per_year: float
) -> float:
    """Annualised two-sided turnover: ``mean(traded_notional[t] / equity[t]) * ppy``.

    ``traded_notional`` is the absolute value traded per bar, buys plus sells, so buying the
    whole account and selling it back counts 2.0. Pass one value per equity bar, or a pandas
    Series indexed by equity bar labels (fills; bars without one traded nothing, several in one
    bar are summed). Each bar's trading is scaled by that bar's equity, as pyfolio does, so
    turnover does not drift with the account's growth. NaN for an empty curve.
    """
    ppy = _check_periods_per_year(periods_per_year)
    series = _as_equity(equity)
    if series.empty:
        return math.nan
    per_bar = _align_to_bars(traded_notional, series, "traded_notional")
    return float(np.mean(per_bar / series.to_numpy()) * ppy)


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def summarize(
    equity: pd.Series,
    trade_pnls: ArrayLike,
    position_values: pd.Series | pd.DataFrame | ArrayLike,
    traded_notional: pd.Series | ArrayLike,
    periods_per_year: float,
) -> dict[str, Any]:
    """Every metric in one JSON-ready dict (plain floats/ints, keys in a fixed order).

    Non-finite values (NaN: undefined, e.g. the Sharpe ratio of a constant curve; ``inf``:
    unbounded, e.g. the profit factor with no losing trade) become ``None`` so ``json.dumps``
    writes strict JSON (``null``) instead of ``NaN``/``Infinity``. The counts (``n_periods``,
    ``n_trades``, ``n_winning_trades``, ``n_losing_trades``) tell which case a ``None`` is.
    """
    ppy = _check_periods_per_year(periods_per_year)
    series = _as_equity(equity)
    returns = returns_from_equity(series)
    pnls = _as_values(trade_pnls, "trade_pnls")
    metrics = {
        "total_return": total_return(series),
        "cagr": cagr(series, ppy),
        "sharpe_ratio": sharpe_ratio(returns, ppy),
        "sortino_ratio": sortino_ratio(returns, ppy),
        "max_drawdown": max_drawdown(series),
        "win_rate": win_rate(pnls),
        "profit_factor": profit_factor(pnls),
        "exposure": exposure(position_values, series),
        "turnover": turnover(traded_notional, series, ppy),
    }
    summary: dict[str, Any] = {key: _json_float(value) for key, value in metrics.items()}
    summary.update(
        {
            "periods_per_year": _json_float(ppy),
            "n_periods": len(returns),
            "n_trades": len(pnls),
            "n_winning_trades": int(np.count_nonzero(pnls > 0.0)),
            "n_losing_trades": int(np.count_nonzero(pnls < 0.0)),
        }
    )
    return summary
