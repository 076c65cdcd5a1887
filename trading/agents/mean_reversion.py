"""Mean reversion: fade a stretched price, confirmed by RSI.

Beyond ``entry_z`` standard deviations from the rolling mean the agent votes against the move
(sell above, buy below). RSI must confirm (overbought above, oversold below); without
confirmation the vote is neutral, or halved when ``require_rsi`` is False. Confidence grows from 0
at ``entry_z`` to 1 at ``full_z``.
"""

from __future__ import annotations

from trading.agents.base import Agent
from trading.domain import MarketSnapshot, Vote


class MeanReversionAgent(Agent):
    def __init__(
        self,
        name: str = "mean_reversion",
        *,
        entry_z: float = 2.0,
        full_z: float = 3.5,
        rsi_oversold: float = 30.0,
        rsi_overbought: float = 70.0,
        require_rsi: bool = True,
    ) -> None:
        super().__init__(name)
        if not 0 < entry_z < full_z:
            raise ValueError("need 0 < entry_z < full_z")
        if not 0 <= rsi_oversold < rsi_overbought <= 100:
            raise ValueError("need 0 <= rsi_oversold < rsi_overbought <= 100")
        self.entry_z = entry_z
        self.full_z = full_z
        self.rsi_oversold = rsi_oversold
        self.rsi_overbought = rsi_overbought
        self.require_rsi = require_rsi

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        missing = self.missing_features(snapshot, ("zscore", "rsi"))
        if missing:
            return self.neutral(snapshot, f"no opinion: missing {', '.join(missing)}")
        z = snapshot.feature("zscore")
        rsi = snapshot.feature("rsi")
        assert z is not None and rsi is not None  # checked above
        if abs(z) < self.entry_z:
            return self.neutral(snapshot, f"not stretched: zscore {z:+.2f} within ±{self.entry_z}")

        direction = -1.0 if z > 0 else 1.0
        confirmed = rsi >= self.rsi_overbought if z > 0 else rsi <= self.rsi_oversold
        stretch = "above" if z > 0 else "below"
        if not confirmed:
            if self.require_rsi:
                return self.neutral(
                    snapshot, f"zscore {z:+.2f} {stretch} mean but RSI {rsi:.1f} does not confirm"
                )
            direction *= 0.5
        confidence = min(1.0, (abs(z) - self.entry_z) / (self.full_z - self.entry_z))
        if confidence == 0.0:
            return self.neutral(snapshot, f"zscore {z:+.2f} exactly at the entry threshold")
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=direction,
            confidence=confidence,
            rationale=(
                f"fade: zscore {z:+.2f} {stretch} mean, RSI {rsi:.1f} "
                f"{'confirms' if confirmed else 'unconfirmed'}"
            ),
        )
