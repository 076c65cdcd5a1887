"""The market state as a memory sees it: a fixed-length embedding and a coarse signature.

The embedding turns a snapshot's features into ``STATE_DIM`` numbers that are comparable across
symbols, bar lengths and price levels: every feature is first made scale-free (a return divided
by the bar volatility, a spread of averages divided by the longer volatility, RSI centred on 50)
and then squashed into (-1, 1) by ``tanh``, so one extreme bar cannot dominate a distance. Each
value is a function of that snapshot alone, fixed in advance (no scaler fitted on data, which
would leak later bars into earlier states): two runs over the same bars give the same vectors.
Retrieval uses the Euclidean distance between these vectors.

The signature buckets the same state into a handful of words (trend up/down, stretch low/mid/
high, calm/stormy volatility, and the committee's side) that name a *pattern*: a recurring
situation whose outcomes are summarised per regime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

STATE_DIM = 8
"""Length of every state embedding (the pgvector column is ``vector(8)``)."""

REQUIRED_FEATURES = (
    "ret_1", "vol_short", "vol_long", "sma_fast", "sma_slow", "zscore", "rsi", "momentum",
)  # fmt: skip


def _squash(value: float, scale: float) -> float:
    return math.tanh(value / scale)


def state_embedding(
    features: Mapping[str, float | None], close: float, high: float, low: float
) -> tuple[float, ...] | None:
    """The embedding of one snapshot, or None while a feature is missing (warm-up, a gap) or
    a volatility is not positive: a partial state would match the wrong memories."""
    values = {}
    for name in REQUIRED_FEATURES:
        value = features.get(name)
        if value is None or not math.isfinite(value):
            return None
        values[name] = float(value)
    vol_short, vol_long = values["vol_short"], values["vol_long"]
    if not (vol_short > 0 and vol_long > 0 and close > 0 and values["sma_slow"] > 0):
        return None
    embedding = (
        _squash(values["ret_1"] / vol_short, 3.0),  # the last bar's move, in bar volatilities
        _squash(values["zscore"], 2.0),  # stretch from the mean
        (values["rsi"] - 50.0) / 50.0,  # already bounded
        _squash(values["momentum"] / vol_long, 10.0),  # momentum in long-run bar volatilities
        _squash((values["sma_fast"] / values["sma_slow"] - 1.0) / vol_long, 5.0),  # trend
        _squash((close / values["sma_fast"] - 1.0) / vol_short, 3.0),  # distance to the average
        _squash(math.log(vol_short / vol_long), 1.0),  # volatility regime
        _squash((high - low) / close / vol_short, 3.0) * 2.0 - 1.0,  # the bar's range
    )
    # Rounded to float32, the precision pgvector stores: a state read back from PostgreSQL is
    # the same number the backtest computed, so recall is identical in both.
    return tuple(float(x) for x in np.asarray(embedding, dtype=np.float32))


def state_signature(features: Mapping[str, float | None], direction: float) -> str | None:
    """The pattern a decision belongs to, e.g. ``up/high/stormy/long``; None when unknown."""
    needed = ("sma_fast", "sma_slow", "zscore", "vol_short", "vol_long")
    values = [features.get(name) for name in needed]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    sma_fast, sma_slow, zscore, vol_short, vol_long = (float(v) for v in values)  # type: ignore[arg-type]
    trend = "up" if sma_fast >= sma_slow else "down"
    stretch = "low" if zscore < -1.0 else "high" if zscore > 1.0 else "mid"
    volatility = "stormy" if vol_short > vol_long else "calm"
    side = "long" if direction > 0 else "short" if direction < 0 else "flat"
    return f"{trend}/{stretch}/{volatility}/{side}"
