"""The quorum-governed memory as a library: state embedding, validators and the quorum rule,
the in-process store, exact recall, evidence, and the book's time discipline."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.trading.conftest import make_snapshot
from trading.config import build_session, load_committee_config, parse_committee_config
from trading.domain import MarketSnapshot, Proposal, Vote
from trading.features import compute_features
from trading.memory import (
    STATE_DIM,
    ExactIndex,
    InMemoryStore,
    MemoryBook,
    MemoryConfig,
    MemoryProposal,
    PatternStats,
    Quorum,
    ValidatorVote,
    propose,
    state_embedding,
    state_signature,
)
from trading.memory.book import EvidenceConfig
from trading.regime import classify_regimes
from trading.snapshots import build_snapshots

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FEATURES = {
    "ret_1": 0.001, "vol_short": 0.004, "vol_long": 0.005, "sma_fast": 101.0, "sma_slow": 100.0,
    "zscore": 0.8, "rsi": 58.0, "momentum": 0.01,
}  # fmt: skip


def memory(key: str = "k", *, r: float = 0.001, direction: float = 0.5, risk: str = "active",
           signature: str = "up/mid/calm/long", embedding: tuple[float, ...] | None = None,
           matured: datetime | None = None, vol: float = 0.004) -> MemoryProposal:  # fmt: skip
    return MemoryProposal(
        key=key,
        namespace="test",
        symbol="ETH/BTC",
        ts=T0,
        matured_at=matured or T0 + timedelta(hours=1),
        horizon_bars=12,
        regime="trending_up",
        signature=signature,
        embedding=embedding or (0.1,) * STATE_DIM,
        direction=direction,
        confidence=0.6,
        risk_state=risk,
        vol_short=vol,
        realised_return=r,
    )


# -- state ------------------------------------------------------------------------------------


def test_state_embedding_is_bounded_scale_free_and_float32_exact() -> None:
    state = state_embedding(FEATURES, close=102.0, high=103.0, low=101.0)
    assert state is not None and len(state) == STATE_DIM
    assert all(-1.0 <= x <= 1.0 for x in state)
    assert all(float(np.float32(x)) == x for x in state)  # survives pgvector's real storage
    # The same market at ten times the price level is the same state.
    scaled = {**FEATURES, "sma_fast": 1010.0, "sma_slow": 1000.0}
    assert state_embedding(scaled, close=1020.0, high=1030.0, low=1010.0) == state


@pytest.mark.parametrize(
    "change", [{"rsi": None}, {"vol_short": 0.0}, {"zscore": math.nan}, {"sma_slow": -1.0}]
)
def test_an_incomplete_state_is_no_state(change: dict) -> None:
    assert state_embedding({**FEATURES, **change}, close=102.0, high=103.0, low=101.0) is None


def test_signature_buckets_trend_stretch_volatility_and_side() -> None:
    assert state_signature(FEATURES, 0.4) == "up/mid/calm/long"
    stormy = {**FEATURES, "sma_fast": 99.0, "zscore": -1.5, "vol_short": 0.01}
    assert state_signature(stormy, -0.2) == "down/low/stormy/short"
    assert state_signature({**FEATURES, "zscore": 2.0}, 0.0) == "up/high/calm/flat"
    assert state_signature({**FEATURES, "sma_fast": None}, 0.0) is None


# -- validators and the quorum ----------------------------------------------------------------


def votes_of(proposal: MemoryProposal, pattern: PatternStats | None = None) -> dict[str, bool]:
    quorum = Quorum.default(2)
    _, votes = quorum.vote(proposal, pattern or PatternStats(proposal.pattern_key))
    return {v.validator: v.approve for v in votes}


def established(proposal: MemoryProposal, n: int = 40) -> PatternStats:
    """A pattern of ``n`` memories with returns alternating around +0.1% (sd about 0.1%)."""
    pattern = PatternStats(proposal.pattern_key)
    for i in range(n):
        r = 0.002 if i % 2 else 0.0
        pattern = pattern.updated(dataclasses.replace(proposal, realised_return=r))
    return pattern


def test_each_validator_refuses_what_it_guards() -> None:
    assert votes_of(memory()) == {"support": True, "consistency": True, "safety": True}
    # support: 30% in an hour at 0.4% bar volatility is 21 sigma: a bad bar, not a lesson
    assert votes_of(memory(r=0.3))["support"] is False
    assert votes_of(memory(embedding=(math.nan,) * STATE_DIM))["support"] is False
    # consistency: an established pattern refuses a far outlier; a young one has no say
    outlier = memory(r=0.02)
    assert votes_of(outlier, established(outlier))["consistency"] is False
    assert votes_of(outlier, established(outlier, n=10))["consistency"] is True
    # safety: a buy decided while the gate was reducing was overridden by the gate
    assert votes_of(memory(risk="reducing"))["safety"] is False
    assert votes_of(memory(risk="reducing", direction=-0.5))["safety"] is True
    assert votes_of(memory(matured=T0))["safety"] is False


def test_two_of_three_commit_one_of_three_does_not_and_every_vote_is_kept() -> None:
    store, quorum = InMemoryStore(), Quorum.default(2)
    one_dissent = memory("a", risk="halted")  # only safety refuses
    two_dissents = memory("b", risk="halted", r=0.3)  # safety and support refuse
    assert propose(store, quorum, one_dissent).status == "committed"
    outcome = propose(store, quorum, two_dissents)
    assert outcome.status == "rejected"
    assert [m.key for m in store.committed("test")] == ["a"]
    assert store.status("b") == "rejected"
    kept = {v.validator: v for v in store.votes("b")}
    assert set(kept) == {"support", "consistency", "safety"}
    assert not kept["support"].approve and "volatilities" in kept["support"].reason
    assert not kept["safety"].approve and "halted" in kept["safety"].reason
    assert kept["consistency"].approve
    # only the committed memory counts in its pattern
    (pattern,) = store.patterns("test")
    assert pattern.count == 1 and pattern.hits == 1


def test_three_of_three_is_unanimous() -> None:
    store = InMemoryStore()
    assert propose(store, Quorum.default(3), memory("a", risk="halted")).status == "rejected"
    assert propose(store, Quorum.default(3), memory("b")).status == "committed"


def test_a_key_is_decided_once() -> None:
    store, quorum = InMemoryStore(), Quorum.default(2)
    assert propose(store, quorum, memory("a")).status == "committed"
    again = propose(store, quorum, memory("a", r=-0.001))
    assert again.status == "duplicate" and again.votes == ()
    assert len(store.committed("test")) == 1 and store.patterns("test")[0].count == 1


def test_a_failing_validator_refuses() -> None:
    class Broken:
        name = "broken"

        def validate(self, proposal: MemoryProposal, pattern: PatternStats) -> ValidatorVote:
            raise RuntimeError("boom")

    quorum = Quorum([Broken()], required=1)
    committed, votes = quorum.vote(memory(), PatternStats(memory().pattern_key))
    assert not committed and "boom" in votes[0].reason


@pytest.mark.parametrize("required", [0, 4])
def test_quorum_size_is_checked(required: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 3"):
        Quorum.default(required)


def test_pattern_statistics_match_numpy() -> None:
    returns = np.random.default_rng(7).normal(0.0, 0.01, 200)
    pattern = PatternStats(memory().pattern_key)
    for i, r in enumerate(returns):
        pattern = pattern.updated(memory(str(i), r=float(r)))
    assert pattern.count == 200
    assert pattern.mean_return == pytest.approx(returns.mean())
    assert pattern.std_return == pytest.approx(returns.std(ddof=1))
    assert pattern.hits == int((returns > 0).sum())  # long side: a hit when the market rose
    assert pattern.sum_signed_return == pytest.approx(returns.sum())


# -- recall -----------------------------------------------------------------------------------


def test_exact_index_matches_brute_force_and_respects_time() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.uniform(-1, 1, (500, STATE_DIM))
    memories = [
        memory(str(i), embedding=tuple(v), matured=T0 + timedelta(minutes=i))
        for i, v in enumerate(vectors)
    ]
    index = ExactIndex(memories[:250])
    for m in memories[250:]:
        index.add(m)
    query = rng.uniform(-1, 1, STATE_DIM)
    found = index.search(query, 10)
    expected = np.argsort(((vectors - query) ** 2).sum(axis=1), kind="stable")[:10]
    assert [m.key for m, _ in found] == [str(i) for i in expected]
    as_of = T0 + timedelta(minutes=99)
    early = index.search(query, 10, as_of=as_of)
    assert all(m.matured_at <= as_of for m, _ in early) and len(early) == 10
    index.remove({m.key for m, _ in found})
    assert not {m.key for m, _ in index.search(query, 10)} & {m.key for m, _ in found}


def test_ties_break_by_insertion_order() -> None:
    index = ExactIndex([memory(str(i)) for i in range(30)])  # thirty identical states
    assert [m.key for m, _ in index.search((0.1,) * STATE_DIM, 5)] == ["0", "1", "2", "3", "4"]


# -- the book -----------------------------------------------------------------------------------


def proposal_for(snapshot: MarketSnapshot, direction: float) -> Proposal:
    vote = Vote(agent="trend", symbol=snapshot.symbol, ts=snapshot.ts, direction=direction,
                confidence=0.8, rationale="test")  # fmt: skip
    return Proposal(symbol=snapshot.symbol, ts=snapshot.ts, direction=direction, confidence=0.8,
                    votes=(vote,), quorum_met=direction != 0.0)  # fmt: skip


def drive(book: MemoryBook, closes: list[float], direction: float) -> list:
    outcomes = []
    for i, close in enumerate(closes):
        snapshot = make_snapshot(FEATURES, ts=T0 + timedelta(minutes=5 * i), close=close,
                                 regime="trending_up")  # fmt: skip
        outcomes += book.mature([snapshot])
        proposal, _ = book.advise(snapshot, proposal_for(snapshot, direction))
        book.remember(snapshot, proposal, "active")
    return outcomes


def test_a_decision_is_proposed_when_its_horizon_has_passed() -> None:
    config = MemoryConfig(namespace="test", horizon_bars=3)
    store = InMemoryStore()
    book = MemoryBook(config, store)
    closes = [100.0, 101.0, 102.0, 103.0, 104.0]
    outcomes = drive(book, closes, 0.5)
    assert [o.status for o in outcomes] == ["committed", "committed"]
    first, second = store.committed("test")
    assert first.ts == T0 and first.matured_at == T0 + timedelta(minutes=15)
    assert first.realised_return == pytest.approx(103.0 / 100.0 - 1)
    assert second.realised_return == pytest.approx(104.0 / 101.0 - 1)
    assert first.key == "test/ETH/BTC/2024-03-01T00:00:00Z/h3"


def test_evidence_scales_down_against_the_memory_and_never_up() -> None:
    config = MemoryConfig(
        namespace="test", horizon_bars=1, evidence=EvidenceConfig(min_support=3.0, t_full=2.0)
    )
    falling = [100.0 * 0.99**i + (0.05 if i % 2 else 0.0) for i in range(40)]
    book = MemoryBook(config, InMemoryStore())
    drive(book, falling, 0.5)  # it kept buying into a falling market
    snapshot = make_snapshot(FEATURES, ts=T0 + timedelta(days=1), close=50.0)
    long_, evidence = book.advise(snapshot, proposal_for(snapshot, 0.5))
    assert evidence.support >= 3.0 and evidence.t_stat is not None and evidence.t_stat < 0
    assert long_.scale < 1.0 and long_.scale == evidence.scale
    short, evidence = book.advise(snapshot, proposal_for(snapshot, -0.5))
    assert short.scale == 1.0 and evidence.t_stat is not None and evidence.t_stat > 0
    flat, evidence = book.advise(snapshot, proposal_for(snapshot, 0.0))
    assert flat.scale == 1.0 and evidence.neighbours == 0


def test_evidence_needs_support_and_ignores_memories_from_the_future() -> None:
    config = MemoryConfig(namespace="test", horizon_bars=1)
    book = MemoryBook(config, InMemoryStore())
    drive(book, [100.0 * 0.99**i for i in range(40)], 0.5)
    before_any = make_snapshot(FEATURES, ts=T0 - timedelta(days=1), close=50.0)
    _, evidence = book.advise(before_any, proposal_for(before_any, 0.5))
    assert evidence.neighbours == 0 and evidence.scale == 1.0


def test_eviction_by_age_and_capacity() -> None:
    config = MemoryConfig(namespace="test", horizon_bars=1, max_age_days=1.0, capacity=10)
    store = InMemoryStore()
    book = MemoryBook(config, store)
    drive(book, [100.0 + i * 0.01 for i in range(40)], 0.5)  # 39 memories over 3h15m
    assert book.close_day(T0 + timedelta(hours=4)) == 29  # capacity keeps the newest 10
    assert len(store.committed("test")) == len(book.index) == 10
    assert book.close_day(T0 + timedelta(days=2)) == 10  # all older than a day
    assert store.committed("test") == [] and store.patterns("test") == []


def test_memory_section_is_validated_with_its_field_named() -> None:
    data = load_committee_config().model_dump(mode="json")
    data["memory"]["quorum"] = 4
    with pytest.raises(ValueError, match="memory.quorum"):
        parse_committee_config(data)
    data["memory"]["quorum"] = 2
    data["memory"]["evidence"]["floor"] = 1.5
    with pytest.raises(ValueError, match="memory.evidence.floor"):
        parse_committee_config(data)


@pytest.fixture(scope="module")
def snapshots(january_candles: pd.DataFrame) -> list[MarketSnapshot]:
    features = compute_features(january_candles)
    return build_snapshots(january_candles, features, classify_regimes(features))


def test_a_backtest_session_with_memory_is_deterministic(snapshots: list[MarketSnapshot]) -> None:
    window = snapshots[:3000]
    first = build_session(load_committee_config())
    a = first.run(window)
    second = build_session(load_committee_config())
    b = second.run(window)
    assert a.decision_rows() == b.decision_rows() and a.fill_rows() == b.fill_rows()
    assert first.memory is not None and second.memory is not None
    assert first.memory.summary() == second.memory.summary()
    summary = first.memory.summary()
    assert summary["outcomes"]["committed"] > 1000 and summary["decisions_advised"] > 0
    scales = [d.memory_scale for d in a.decisions if d.memory_scale is not None]
    assert scales and all(0.0 <= s <= 1.0 for s in scales)
