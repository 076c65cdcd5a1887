"""Trend following: go with the moving-average crossover, confirmed by momentum.

Direction is the sign of ``sma_fast - sma_slow``; full when momentum agrees, reduced by
``momentum_penalty`` when it disagrees. Confidence grows with the gap measured in typical
per-bar moves (``(sma_fast / sma_slow - 1) / vol``), reaching 1 at ``full_strength``.
"""

from __future__ import annotations

import math

from trading.agents.base import Agent
from trading.domain import MarketSnapshot, Vote


class TrendAgent(Agent):
    def __init__(
        self,
        name: str = "trend",
        *,
        min_strength: float = 0.5,
        full_strength: float = 3.0,
        momentum_penalty: float = 0.5,
        vol_feature: str = "vol_long",
    ) -> None:
        super().__init__(name)
        if not 0 <= min_strength < full_strength:
            raise ValueError("need 0 <= min_strength < full_strength")
        if not 0 <= momentum_penalty <= 1:
            raise ValueError("momentum_penalty must be in [0, 1]")
        self.min_strength = min_strength
        self.full_strength = full_strength
        self.momentum_penalty = momentum_penalty
        self.vol_feature = vol_feature
        self.required = ("sma_fast", "sma_slow", "momentum", vol_feature)

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        missing = self.missing_features(snapshot, self.required)
        if missing:
            return self.neutral(snapshot, f"no opinion: missing {', '.join(missing)}")
        sma_fast = snapshot.feature("sma_fast")
        sma_slow = snapshot.feature("sma_slow")
        momentum = snapshot.feature("momentum")
        vol = snapshot.feature(self.vol_feature)
        assert sma_fast is not None and sma_slow is not None  # checked above
        assert momentum is not None and vol is not None
        if sma_slow <= 0 or vol <= 0:
            return self.neutral(snapshot, "no opinion: degenerate sma_slow or volatility")

        strength = (sma_fast / sma_slow - 1.0) / vol
        if abs(strength) < self.min_strength:
            return self.neutral(
                snapshot, f"no clear trend: strength {strength:+.2f} within ±{self.min_strength}"
            )
        sign = math.copysign(1.0, strength)
        confirmed = momentum * sign > 0
        direction = sign if confirmed else sign * (1.0 - self.momentum_penalty)
        confidence = min(1.0, abs(strength) / self.full_strength)
        trend = "up" if sign > 0 else "down"
        momentum_note = "confirms" if confirmed else "disagrees"
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=direction,
            confidence=confidence,
            rationale=(
                f"trend {trend}: sma gap {strength:+.2f} vol units; "
                f"momentum {momentum:+.4f} {momentum_note}"
            ),
        )
