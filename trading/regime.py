"""Market regime per bar (the rows of signals.regimes), from point-in-time features only.

The rule is deliberately simple so a reviewer can check any row by hand:

- ``vol_ratio = vol_short / vol_long``: short-term against day-long volatility. Above
  ``volatile_ratio`` the bar is ``volatile``, whatever the trend.
- ``trend_strength = (sma_fast / sma_slow - 1) / vol_long``: the moving-average gap measured in
  typical per-bar moves. Above ``+trend_threshold`` -> ``trending_up``, below the negative ->
  ``trending_down``, otherwise ``ranging``.

Warm-up rows (any of vol_short, vol_long, sma_fast, sma_slow missing, or vol_long == 0) are DROPPED:
no regime is known there, and a made-up 'ranging' would look like information downstream.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

REGIME_COLUMNS: tuple[str, ...] = ("symbol", "ts", "regime", "trend_strength", "vol_ratio")
_INPUTS = ("symbol", "ts", "vol_short", "vol_long", "sma_fast", "sma_slow")


class RegimeRule(BaseModel):
    """The thresholds of ``classify_regimes``, as the committee config sets them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    volatile_ratio: float = Field(2.0, gt=0, allow_inf_nan=False)
    trend_threshold: float = Field(1.0, gt=0, allow_inf_nan=False)


def classify_regimes(
    features: pd.DataFrame,
    *,
    volatile_ratio: float = 2.0,
    trend_threshold: float = 1.0,
) -> pd.DataFrame:
    """Regimes for the rows of ``features`` (output of ``compute_features``), warm-up dropped."""
    if volatile_ratio <= 0 or trend_threshold <= 0:
        raise ValueError("volatile_ratio and trend_threshold must be > 0")
    missing = [c for c in _INPUTS if c not in features.columns]
    if missing:
        raise ValueError(f"features are missing columns {missing}")

    vol_short = features["vol_short"].astype(float)
    vol_long = features["vol_long"].astype(float)
    sma_fast = features["sma_fast"].astype(float)
    sma_slow = features["sma_slow"].astype(float)
    known = (
        vol_short.notna()
        & vol_long.notna()
        & sma_fast.notna()
        & sma_slow.notna()
        & (vol_long > 0)
        & (sma_slow > 0)
    )

    vol_ratio = (vol_short / vol_long).where(known)
    trend_strength = ((sma_fast / sma_slow - 1.0) / vol_long).where(known)
    regime = np.select(
        [
            vol_ratio > volatile_ratio,
            trend_strength > trend_threshold,
            trend_strength < -trend_threshold,
        ],
        ["volatile", "trending_up", "trending_down"],
        default="ranging",
    )
    result = pd.DataFrame(
        {
            "symbol": features["symbol"],
            "ts": features["ts"],
            "regime": regime,
            "trend_strength": trend_strength,
            "vol_ratio": vol_ratio,
        }
    )
    return result.loc[known.to_numpy()].reset_index(drop=True)
