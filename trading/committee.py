"""The committee: agents vote, a weighted average decides, a quorum guards against lone voices.

A vote counts when it is non-neutral and at least ``min_confidence`` sure; abstainers do not
dilute the others (weights are normalised over counting votes). The combined direction and
confidence are the weighted means of the counting votes. The quorum is the minimum number of
counting votes that agree with the sign of the combined direction; without it the proposal is
direction 0, confidence 0, ``quorum_met=False``.

Votes may also carry a ``scale`` (the Risk agent's veto or scale-down, the Execution agent's
volatility target) and execution advice; the proposal takes the smallest scale asked for and the
first advice given, in agent order, whether or not the direction reached quorum.

Weights come from a ``WeightProvider``: ``StaticWeights``, or ``trading.weights`` for weights
learned from each agent's realised, out-of-sample performance under the planner's priors per
regime. ``DecisionObserver``s (the weight learner, reflection) see every proposal after it is
made, which is how the committee learns without ever seeing a later bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from trading.agents.base import Agent, safe_vote
from trading.domain import ExecutionAdvice, MarketSnapshot, Proposal, Vote


@runtime_checkable
class WeightProvider(Protocol):
    def weights_for(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
        """Weight per agent name for this snapshot (>= 0; need not sum to 1)."""
        ...


@runtime_checkable
class DecisionObserver(Protocol):
    def observe(self, snapshot: MarketSnapshot, proposal: Proposal) -> None:
        """Called after every decision, with the snapshot it was made on."""
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
        observers: Sequence[DecisionObserver] = (),
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
        self.observers: list[DecisionObserver] = list(observers)
        if isinstance(provider, DecisionObserver) and provider not in self.observers:
            self.observers.insert(0, provider)

    def weights(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
        return self.weight_provider.weights_for(snapshot)

    def counts(self, vote: Vote) -> bool:
        return not vote.is_neutral and vote.confidence >= self.min_confidence

    def decide(self, snapshot: MarketSnapshot) -> Proposal:
        votes = tuple(safe_vote(agent, snapshot) for agent in self.agents)
        weights = {name: float(w) for name, w in self.weights(snapshot).items()}
        proposal = self.combine(snapshot, votes, weights)
        for observer in self.observers:
            observer.observe(snapshot, proposal)
        return proposal

    def combine(
        self, snapshot: MarketSnapshot, votes: tuple[Vote, ...], weights: Mapping[str, float]
    ) -> Proposal:
        """The proposal these votes make under these weights (pure: no observers called)."""
        scales = [v.scale for v in votes if v.scale is not None]
        advice = next((v.execution for v in votes if v.execution is not None), ExecutionAdvice())
        common = {
            "symbol": snapshot.symbol,
            "ts": snapshot.ts,
            "votes": votes,
            "scale": min(scales, default=1.0),
            "execution": advice,
            "weights": dict(weights),
        }
        no_quorum = Proposal(direction=0.0, confidence=0.0, quorum_met=False, **common)
        counting = [(v, float(weights.get(v.agent, 0.0))) for v in votes if self.counts(v)]
        counting = [(v, w) for v, w in counting if w > 0.0]
        total = sum(w for _, w in counting)
        if total <= 0.0:
            return no_quorum
        direction = sum(v.direction * w for v, w in counting) / total
        confidence = sum(v.confidence * w for v, w in counting) / total
        if direction == 0.0:
            return no_quorum
        agreeing = sum(1 for v, _ in counting if v.direction * direction > 0)
        if agreeing < self.quorum:
            return no_quorum
        return Proposal(
            direction=max(-1.0, min(1.0, direction)),
            confidence=max(0.0, min(1.0, confidence)),
            quorum_met=True,
            **common,
        )

    def replay(
        self,
        snapshot: MarketSnapshot,
        votes: tuple[Vote, ...],
        direction: float,
        confidence: float,
    ) -> None:
        """Feed a past decision to the learners exactly as ``decide`` did when it was made.

        A daily run rebuilds its weight learner and reflection this way from the decisions
        stored by earlier days, so trading day by day learns the same as one continuous run.
        Agents are not called: their votes are the stored ones.
        """
        weights = {name: float(w) for name, w in self.weights(snapshot).items()}
        proposal = Proposal(
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=direction,
            confidence=confidence,
            votes=votes,
            quorum_met=direction != 0.0,  # combine() never makes a quorate direction of 0
            weights=weights,
        )
        for observer in self.observers:
            observer.observe(snapshot, proposal)
