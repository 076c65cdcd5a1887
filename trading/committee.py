"""The committee: agents vote, a weighted average decides, a quorum guards against lone voices.

A vote counts when it is non-neutral and at least ``min_confidence`` sure; abstainers do not
dilute the others (weights are normalised over counting votes). The combined direction and
confidence are the weighted means of the counting votes. The quorum is the minimum number of
counting votes that agree with the sign of the combined direction; without it the proposal is
direction 0, confidence 0, ``quorum_met=False``.

Weights come from a ``WeightProvider``. ``StaticWeights`` is today's provider; dynamic weights
(per-agent realised performance, planner priors per regime) plug in through the same seam.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from trading.agents.base import Agent, safe_vote
from trading.domain import MarketSnapshot, Proposal, Vote


@runtime_checkable
class WeightProvider(Protocol):
    def weights_for(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
        """Weight per agent name for this snapshot (>= 0; need not sum to 1)."""
        ...


class StaticWeights:
    def __init__(self, weights: Mapping[str, float]) -> None:
        for name, weight in weights.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"weight of agent {name!r} must be finite and >= 0, got {weight}")
        self._weights = dict(weights)

    def weights_for(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
        return self._weights


class Committee:
    def __init__(
        self,
        agents: Sequence[Agent],
        weights: Mapping[str, float] | WeightProvider,
        quorum: int,
        min_confidence: float,
    ) -> None:
        if not agents:
            raise ValueError("a committee needs at least one agent")
        names = [agent.name for agent in agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique, duplicated: {duplicates}")
        if not 1 <= quorum <= len(agents):
            raise ValueError(f"quorum must be between 1 and {len(agents)} agents, got {quorum}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if isinstance(weights, WeightProvider):
            provider: WeightProvider = weights
        else:
            unknown = sorted(set(weights) - set(names))
            missing = sorted(set(names) - set(weights))
            if unknown or missing:
                raise ValueError(
                    f"weights must name exactly the agents {sorted(names)}; "
                    f"missing {missing}, unknown {unknown}"
                )
            provider = StaticWeights(weights)
        self.agents = tuple(agents)
        self.quorum = quorum
        self.min_confidence = min_confidence
        self.weight_provider = provider

    def weights(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
        return self.weight_provider.weights_for(snapshot)

    def counts(self, vote: Vote) -> bool:
        return not vote.is_neutral and vote.confidence >= self.min_confidence

    def decide(self, snapshot: MarketSnapshot) -> Proposal:
        votes = tuple(safe_vote(agent, snapshot) for agent in self.agents)
        weights = self.weights(snapshot)
        counting = [(v, float(weights.get(v.agent, 0.0))) for v in votes if self.counts(v)]
        counting = [(v, w) for v, w in counting if w > 0.0]
        total = sum(w for _, w in counting)
        if total <= 0.0:
            return self._no_quorum(snapshot, votes)
        direction = sum(v.direction * w for v, w in counting) / total
        confidence = sum(v.confidence * w for v, w in counting) / total
        if direction == 0.0:
            return self._no_quorum(snapshot, votes)
        agreeing = sum(1 for v, _ in counting if v.direction * direction > 0)
        if agreeing < self.quorum:
            return self._no_quorum(snapshot, votes)
        return Proposal(
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=max(-1.0, min(1.0, direction)),
            confidence=max(0.0, min(1.0, confidence)),
            votes=votes,
            quorum_met=True,
        )

    @staticmethod
    def _no_quorum(snapshot: MarketSnapshot, votes: tuple[Vote, ...]) -> Proposal:
        return Proposal(
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=0.0,
            confidence=0.0,
            votes=votes,
            quorum_met=False,
        )
