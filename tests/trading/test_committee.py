from __future__ import annotations

from collections.abc import Mapping

import pytest

from tests.trading.conftest import make_snapshot
from trading.agents.base import Agent
from trading.committee import Committee
from trading.domain import MarketSnapshot, Vote


class FixedAgent(Agent):
    def __init__(self, name: str, direction: float, confidence: float) -> None:
        super().__init__(name)
        self.direction, self.confidence = direction, confidence

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=self.direction,
            confidence=self.confidence,
            rationale="fixed",
        )


class BrokenAgent(Agent):
    def vote(self, snapshot: MarketSnapshot) -> Vote:
        raise RuntimeError("broken")


def committee(*agents: Agent, quorum: int = 1, min_confidence: float = 0.0, **weights: float):
    names = {a.name: weights.get(a.name, 1.0) for a in agents}
    return Committee(list(agents), names, quorum=quorum, min_confidence=min_confidence)


def test_weighted_average_over_voting_agents_only() -> None:
    c = committee(
        FixedAgent("a", 1.0, 0.8),
        FixedAgent("b", 0.5, 0.4),
        FixedAgent("abstains", 0.0, 0.0),
        a=3.0,
        b=1.0,
        abstains=100.0,
    )
    proposal = c.decide(make_snapshot())
    assert proposal.quorum_met
    assert proposal.direction == pytest.approx((3 * 1.0 + 1 * 0.5) / 4)
    assert proposal.confidence == pytest.approx((3 * 0.8 + 1 * 0.4) / 4)
    assert [v.agent for v in proposal.votes] == ["a", "b", "abstains"]


def test_quorum_counts_votes_agreeing_with_the_combined_sign() -> None:
    agents = (FixedAgent("a", 1.0, 0.9), FixedAgent("b", 1.0, 0.5), FixedAgent("c", -1.0, 0.5))
    assert committee(*agents, quorum=2).decide(make_snapshot()).quorum_met
    no_quorum = committee(*agents, quorum=3).decide(make_snapshot())
    assert not no_quorum.quorum_met and no_quorum.direction == 0 and no_quorum.confidence == 0
    assert len(no_quorum.votes) == 3


def test_conflicting_votes_cancel_and_min_confidence_filters() -> None:
    cancel = committee(FixedAgent("a", 1.0, 0.5), FixedAgent("b", -1.0, 0.5)).decide(
        make_snapshot()
    )
    assert not cancel.quorum_met and cancel.direction == 0
    weak = committee(FixedAgent("a", 1.0, 0.05), min_confidence=0.1).decide(make_snapshot())
    assert not weak.quorum_met


def test_a_broken_agent_cannot_crash_the_committee() -> None:
    proposal = committee(BrokenAgent("broken"), FixedAgent("a", -1.0, 1.0)).decide(make_snapshot())
    assert proposal.quorum_met and proposal.direction == -1.0
    assert "RuntimeError: broken" in proposal.votes[0].rationale


def test_weights_come_from_a_provider_seam() -> None:
    class RegimeWeights:
        def weights_for(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
            return (
                {"up": 0.0, "down": 1.0} if snapshot.regime == "volatile" else {"up": 1, "down": 0}
            )

    c = Committee(
        [FixedAgent("up", 1.0, 1.0), FixedAgent("down", -1.0, 1.0)],
        RegimeWeights(),
        quorum=1,
        min_confidence=0.0,
    )
    assert c.decide(make_snapshot(regime="volatile")).direction == -1.0
    assert c.decide(make_snapshot(regime="ranging")).direction == 1.0


def test_construction_errors() -> None:
    a = FixedAgent("a", 1, 1)
    with pytest.raises(ValueError, match="missing \\['a'\\], unknown \\['b'\\]"):
        Committee([a], {"b": 1.0}, quorum=1, min_confidence=0)
    with pytest.raises(ValueError, match="quorum"):
        Committee([a], {"a": 1.0}, quorum=2, min_confidence=0)
    with pytest.raises(ValueError, match="unique"):
        Committee([a, FixedAgent("a", 1, 1)], {"a": 1.0}, quorum=1, min_confidence=0)
    with pytest.raises(ValueError, match=">= 0"):
        Committee([a], {"a": -1.0}, quorum=1, min_confidence=0)
