"""Point-in-time bar features (the columns of signals.features).

Every value at bar t is computed from bars <= t only: rolling windows look backwards, Wilder's
RSI is a forward recursion, and nothing is centred, back-filled or normalised over the whole
sample. Windows count bars, not wall time: a gap in the candles is not interpolated.
Warm-up values are NaN (min_periods equals the window).

Column names say what a feature is, not its window, because the windows are configuration
(``FeatureWindows``): the defaults suit 5-minute bars (``vol_long`` spans a day of 288 bars); a
daily-bar backtest sets shorter ones in its committee config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

FEATURE_COLUMNS: tuple[str, ...] = (
    "close",
    "ret_1",
    "vol_short",
    "vol_long",
    "sma_fast",
    "sma_slow",
    "zscore",
    "rsi",
    "momentum",
)
"""Output columns after ``symbol`` and ``ts``; names are fixed whatever the window arguments."""

_REQUIRED = ("symbol", "close")


class FeatureWindows(BaseModel):
    """Rolling windows in bars; every window must be at least 2 bars."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sma_fast: int = Field(12, ge=2)
    sma_slow: int = Field(48, ge=2)
    z_window: int = Field(48, ge=2, description="zscore: distance from the rolling mean")
    rsi_window: int = Field(14, ge=2)
    momentum_window: int = Field(12, ge=2)
    vol_short_window: int = Field(12, ge=2)
    vol_long_window: int = Field(288, ge=2)

    @model_validator(mode="after")
    def _check_order(self) -> FeatureWindows:
        if self.sma_fast >= self.sma_slow:
            raise ValueError(f"sma_fast ({self.sma_fast}) must be < sma_slow ({self.sma_slow})")
        if self.vol_short_window >= self.vol_long_window:
            raise ValueError(
                f"vol_short_window ({self.vol_short_window}) must be < "
                f"vol_long_window ({self.vol_long_window})"
            )
        return self

    @property
    def warmup_bars(self) -> int:
        """Bars before every feature is known."""
        return max(
            self.sma_slow, self.z_window, self.rsi_window + 1, self.momentum_window,
            self.vol_long_window + 1,
        )  # fmt: skip


def wilder_rsi(close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI: seeded with the simple mean of the first ``window`` changes, then smoothed
    with alpha = 1/window. A window with no losses is 100, with no moves at all 50."""
    out = np.full(close.shape, np.nan)
    if close.size <= window:
        return out
    change = np.diff(close)
    gains = np.clip(change, 0.0, None)
    losses = np.clip(-change, 0.0, None)
    avg_gain = gains[:window].mean()
    avg_loss = losses[:window].mean()

    def rsi(g: float, loss: float) -> float:
        if loss == 0.0:
            return 50.0 if g == 0.0 else 100.0
        return 100.0 - 100.0 / (1.0 + g / loss)

    out[window] = rsi(avg_gain, avg_loss)
    for i in range(window, change.size):
        avg_gain = (avg_gain * (window - 1) + gains[i]) / window
        avg_loss = (avg_loss * (window - 1) + losses[i]) / window
        out[i + 1] = rsi(avg_gain, avg_loss)
    return out


def _one_symbol(close: pd.Series, windows: FeatureWindows) -> pd.DataFrame:
    w = windows
    ret_1 = close / close.shift(1) - 1.0
    z_mean = close.rolling(w.z_window, min_periods=w.z_window).mean()
    z_std = close.rolling(w.z_window, min_periods=w.z_window).std(ddof=1)
    zscore = (close - z_mean) / z_std.where(z_std > 0.0)
    vol_short, vol_long = w.vol_short_window, w.vol_long_window
    return pd.DataFrame(
        {
            "close": close,
            "ret_1": ret_1,
            "vol_short": ret_1.rolling(vol_short, min_periods=vol_short).std(ddof=1),
            "vol_long": ret_1.rolling(vol_long, min_periods=vol_long).std(ddof=1),
            "sma_fast": close.rolling(w.sma_fast, min_periods=w.sma_fast).mean(),
            "sma_slow": close.rolling(w.sma_slow, min_periods=w.sma_slow).mean(),
            "zscore": zscore,
            "rsi": wilder_rsi(close.to_numpy(dtype=float), w.rsi_window),
            "momentum": close / close.shift(w.momentum_window) - 1.0,
        },
        index=close.index,
    )


def compute_features(candles: pd.DataFrame, windows: FeatureWindows | None = None) -> pd.DataFrame:
    """Features per (symbol, ts) for candles of one or many symbols.

    ``candles`` needs ``symbol``, ``open_time`` (or ``ts``) and ``close``; other OHLCV columns
    are ignored. Rows come back sorted by (symbol, ts) with a fresh index.
    """
    windows = windows or FeatureWindows()
    time_column = "open_time" if "open_time" in candles.columns else "ts"
    missing = [c for c in (*_REQUIRED, time_column) if c not in candles.columns]
    if missing:
        raise ValueError(
            f"candles are missing columns {missing} (need symbol, open_time|ts, close)"
        )

    frame = pd.DataFrame(
        {
            "symbol": candles["symbol"].astype(str),
            "ts": pd.to_datetime(candles[time_column], utc=True),
            "close": pd.to_numeric(candles["close"], errors="raise").astype(float),
        }
    ).reset_index(drop=True)
    duplicated = frame.duplicated(["symbol", "ts"], keep=False)
    if duplicated.any():
        first = frame.loc[duplicated].iloc[0]
        raise ValueError(
            f"duplicate candles for ({first['symbol']}, {first['ts'].isoformat()}); "
            "expected one row per symbol and open time"
        )
    bad = ~np.isfinite(frame["close"]) | (frame["close"] <= 0)
    if bad.any():
        first = frame.loc[bad].iloc[0]
        raise ValueError(
            f"close must be finite and > 0, got {first['close']} for "
            f"({first['symbol']}, {first['ts'].isoformat()})"
        )
    frame = frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)

    parts = []
    for symbol, group in frame.groupby("symbol", sort=True):
        features = _one_symbol(group["close"], windows)
        features.insert(0, "ts", group["ts"])
        features.insert(0, "symbol", symbol)
        parts.append(features)
    if not parts:
        return pd.DataFrame(
            {
                "symbol": pd.Series(dtype=str),
                "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                **{c: pd.Series(dtype=float) for c in FEATURE_COLUMNS},
            }
        )
    result = pd.concat(parts, ignore_index=True)
    numeric = list(FEATURE_COLUMNS)
    result[numeric] = result[numeric].replace([np.inf, -np.inf], np.nan)
    return result[["symbol", "ts", *FEATURE_COLUMNS]]
