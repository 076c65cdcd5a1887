"""A plain moving-average cross, for checking the backtester against peer engines.

It exists so that a backtest of our committee -> risk gate -> execution -> paper broker path can
be compared trade for trade with another engine (backtesting.py in
tests/trading/test_backtest_vs_backtesting_py.py) running the textbook strategy: long while the
fast average is above the slow one, flat otherwise. It is not meant to trade: it has no notion of
trend strength, volatility or confirmation (the Trend agent has).

The vote is all or nothing: direction +1 with confidence 1 while ``sma_fast > sma_slow``, -1 with
confidence 1 while below, neutral when they are equal or either is still warming up. The windows
are the config's ``features.sma_fast`` / ``features.sma_slow``.
"""

from __future__ import annotations

from trading.agents.base import Agent
from trading.domain import MarketSnapshot, Vote

REQUIRED_FEATURES = ("sma_fast", "sma_slow")


class SmaCrossAgent(Agent):
    def __init__(self, name: str = "sma_cross") -> None:
        super().__init__(name)

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        missing = self.missing_features(snapshot, REQUIRED_FEATURES)
        if missing:
            return self.neutral(snapshot, f"no opinion: missing {', '.join(missing)}")
        sma_fast = snapshot.feature("sma_fast")
        sma_slow = snapshot.feature("sma_slow")
        assert sma_fast is not None and sma_slow is not None  # checked above
        if sma_fast == sma_slow:
            return self.neutral(snapshot, f"no cross: sma_fast equals sma_slow ({sma_slow:.10g})")
        direction = 1.0 if sma_fast > sma_slow else -1.0
        relation = "above" if direction > 0 else "below"
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=direction,
            confidence=1.0,
            rationale=f"sma_fast {sma_fast:.10g} {relation} sma_slow {sma_slow:.10g}",
        )
