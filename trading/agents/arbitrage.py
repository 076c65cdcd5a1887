"""Cross-venue arbitrage: buy where the asset is cheaper than on a peer venue, sell where dearer.

The spread is ``close / peer_close - 1`` at the same bar, ``peer_close`` being the same asset's
close on another venue (a snapshot feature). Capturing it takes a round trip on both venues, so
the edge is what is left after costs: ``|spread| - 2 * fee_bps / 1e4 - extra_bps / 1e4``
(``extra_bps`` covers slippage, transfer and funding costs). An edge at or below
``min_edge_bps`` is noise: no opinion. Beyond it the agent buys when this venue is cheaper
(spread < 0) and sells when it is dearer, with confidence rising linearly from 0 at
``min_edge_bps`` to 1 at ``full_edge_bps``.
"""

from __future__ import annotations

from trading.agents.base import Agent, non_negative_number
from trading.domain import MarketSnapshot, Vote


class ArbitrageAgent(Agent):
    def __init__(
        self,
        name: str = "arbitrage",
        *,
        fee_bps: float = 10.0,
        extra_bps: float = 0.0,
        min_edge_bps: float = 5.0,
        full_edge_bps: float = 50.0,
        peer_feature: str = "peer_close",
    ) -> None:
        super().__init__(name)
        self.fee_bps = non_negative_number("fee_bps", fee_bps)
        self.extra_bps = non_negative_number("extra_bps", extra_bps)
        self.min_edge_bps = non_negative_number("min_edge_bps", min_edge_bps)
        self.full_edge_bps = non_negative_number("full_edge_bps", full_edge_bps)
        if self.full_edge_bps <= self.min_edge_bps:
            raise ValueError(
                f"need min_edge_bps < full_edge_bps, got min_edge_bps={min_edge_bps}, "
                f"full_edge_bps={full_edge_bps}"
            )
        if not isinstance(peer_feature, str) or not peer_feature.strip():
            raise ValueError(f"peer_feature must be a non-blank feature name, got {peer_feature!r}")
        self.peer_feature = peer_feature
        self.cost = (2.0 * self.fee_bps + self.extra_bps) / 1e4

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        peer_close = snapshot.feature(self.peer_feature)
        if peer_close is None:
            return self.neutral(
                snapshot, f"no opinion: {self.peer_feature} missing (no peer venue price)"
            )
        if peer_close <= 0.0:
            return self.neutral(
                snapshot, f"no opinion: {self.peer_feature} {peer_close:g} is not a price"
            )
        close = snapshot.bar.close
        spread = close / peer_close - 1.0
        edge = abs(spread) - self.cost
        readings = (
            f"spread {spread * 1e4:+.1f} bps (close {close:.8g} vs peer {peer_close:.8g}), "
            f"cost {self.cost * 1e4:.1f} bps, edge {edge * 1e4:+.1f} bps"
        )
        min_edge = self.min_edge_bps / 1e4
        if edge <= min_edge:
            return self.neutral(snapshot, f"no edge: {readings} <= min {self.min_edge_bps:g} bps")
        full_edge = self.full_edge_bps / 1e4
        confidence = min(1.0, (edge - min_edge) / (full_edge - min_edge))
        cheaper = spread < 0.0
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=1.0 if cheaper else -1.0,
            confidence=confidence,
            rationale=(
                f"{'buy: this venue cheaper' if cheaper else 'sell: this venue dearer'}; {readings}"
            ),
        )
