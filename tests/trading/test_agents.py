from __future__ import annotations

import logging
import math

import pytest

from tests.trading.conftest import T0, make_snapshot
from trading.agents.base import Agent, build_agent, safe_vote
from trading.agents.mean_reversion import MeanReversionAgent
from trading.agents.trend import TrendAgent
from trading.domain import MarketSnapshot, Vote

TREND_UP = {"sma_fast": 1.02, "sma_slow": 1.0, "momentum": 0.01, "vol_long": 0.005}


def test_trend_agent_follows_the_crossover_with_momentum_confirmation() -> None:
    agent = TrendAgent(full_strength=3.0, momentum_penalty=0.5)
    vote = agent.vote(make_snapshot(TREND_UP))  # gap 0.02 = 4 vol units -> full confidence
    assert (vote.direction, vote.confidence, vote.agent) == (1.0, 1.0, "trend")
    assert "trend up" in vote.rationale

    against = agent.vote(make_snapshot(TREND_UP | {"momentum": -0.01}))
    assert against.direction == 0.5 and "disagrees" in against.rationale

    down = agent.vote(make_snapshot(TREND_UP | {"sma_fast": 0.99}))  # -2 vol units
    assert down.direction == -0.5 and down.confidence == pytest.approx(2 / 3)

    flat = agent.vote(make_snapshot(TREND_UP | {"sma_fast": 1.001}))  # 0.2 vol units
    assert flat.is_neutral and "no clear trend" in flat.rationale


@pytest.mark.parametrize("missing", ["sma_fast", "sma_slow", "momentum", "vol_long"])
def test_trend_agent_abstains_on_missing_features(missing: str) -> None:
    for value in (None, math.nan):
        vote = TrendAgent().vote(make_snapshot(TREND_UP | {missing: value}))
        assert vote.is_neutral and missing in vote.rationale
    assert TrendAgent().vote(make_snapshot({})).is_neutral


def test_mean_reversion_fades_stretched_prices_when_rsi_confirms() -> None:
    agent = MeanReversionAgent(entry_z=2.0, full_z=3.5)
    buy = agent.vote(make_snapshot({"zscore": -3.0, "rsi": 25.0}))
    assert buy.direction == 1.0 and buy.confidence == pytest.approx(1 / 1.5)
    sell = agent.vote(make_snapshot({"zscore": 4.0, "rsi": 80.0}))
    assert sell.direction == -1.0 and sell.confidence == 1.0

    unconfirmed = agent.vote(make_snapshot({"zscore": -3.0, "rsi": 45.0}))
    assert unconfirmed.is_neutral and "does not confirm" in unconfirmed.rationale
    lenient = MeanReversionAgent(require_rsi=False).vote(
        make_snapshot({"zscore": -3.0, "rsi": 45.0})
    )
    assert lenient.direction == 0.5

    calm = agent.vote(make_snapshot({"zscore": 1.0, "rsi": 20.0}))
    assert calm.is_neutral and "not stretched" in calm.rationale
    assert agent.vote(make_snapshot({"zscore": None, "rsi": 20.0})).is_neutral


def test_agent_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="min_strength"):
        TrendAgent(min_strength=3.0, full_strength=1.0)
    with pytest.raises(ValueError, match="entry_z"):
        MeanReversionAgent(entry_z=4.0, full_z=3.0)


class RaisingAgent(Agent):
    def vote(self, snapshot: MarketSnapshot) -> Vote:
        raise ZeroDivisionError("boom")


class WrongSymbolAgent(Agent):
    def vote(self, snapshot: MarketSnapshot) -> Vote:
        return Vote(
            agent=self.name, symbol="LTC/BTC", ts=T0, direction=1, confidence=1, rationale=""
        )


class NotAVoteAgent(Agent):
    def vote(self, snapshot: MarketSnapshot) -> Vote:
        return {"direction": 1}  # type: ignore[return-value]


def test_safe_vote_turns_a_raising_agent_into_a_neutral_logged_vote(
    caplog: pytest.LogCaptureFixture,
) -> None:
    snapshot = make_snapshot()
    with caplog.at_level(logging.ERROR, logger="trading.agents.base"):
        vote = safe_vote(RaisingAgent("raiser"), snapshot)
    assert vote.is_neutral and vote.direction == 0.0 and vote.confidence == 0.0
    assert vote.agent == "raiser" and vote.symbol == snapshot.symbol and vote.ts == snapshot.ts
    assert "ZeroDivisionError: boom" in vote.rationale
    assert "raiser" in caplog.text


@pytest.mark.parametrize(
    ("agent", "problem"),
    [(WrongSymbolAgent("w"), "instead of ETH/BTC"), (NotAVoteAgent("n"), "not a Vote")],
)
def test_safe_vote_neutralises_invalid_output(agent: Agent, problem: str) -> None:
    vote = safe_vote(agent, make_snapshot())
    assert vote.is_neutral and problem in vote.rationale


def test_build_agent_from_dotted_path() -> None:
    agent = build_agent(
        {
            "name": "fast_trend",
            "class": "trading.agents.trend:TrendAgent",
            "params": {"min_strength": 1},
        }
    )
    assert isinstance(agent, TrendAgent) and agent.name == "fast_trend" and agent.min_strength == 1
    dotted = build_agent(
        {"name": "mr", "class": "trading.agents.mean_reversion.MeanReversionAgent"}
    )
    assert isinstance(dotted, MeanReversionAgent)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "class": "trading.nowhere:Agent"}, "cannot import module"),
        ({"name": "x", "class": "trading.agents.trend:Missing"}, "has no 'Missing'"),
        ({"name": "x", "class": "trading.domain:Bar"}, "is not a trading.agents.base.Agent"),
        (
            {"name": "x", "class": "trading.agents.trend:TrendAgent", "params": {"nope": 1}},
            "bad params",
        ),
        ({"name": "x", "klass": "trading.agents.trend:TrendAgent"}, "invalid agent spec"),
    ],
)
def test_build_agent_errors_are_clear(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_agent(spec)
