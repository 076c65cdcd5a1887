"""The learning layer: performance tracking, walk-forward weights, the planner and reflection."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tests.trading.conftest import T0, make_snapshot, minutes
from trading.agents.base import Agent
from trading.agents.mean_reversion import MeanReversionAgent
from trading.agents.trend import TrendAgent
from trading.committee import Committee
from trading.domain import Bar, MarketSnapshot, Proposal, Vote
from trading.features import compute_features
from trading.performance import PerformanceTracker, performance_multiplier
from trading.planner import Planner, PlannerConfig
from trading.reflection import Reflection, ReflectionConfig, ReflectionNote
from trading.regime import classify_regimes
from trading.snapshots import build_snapshots
from trading.weights import PerformanceWeights, WeightingConfig

ETH, LTC = "ETH/BTC", "LTC/BTC"


def at(bar: int) -> datetime:
    return T0 + minutes(5 * bar)


def vote(agent: str, snapshot: MarketSnapshot, direction: float, confidence: float = 1.0) -> Vote:
    return Vote(
        agent=agent,
        symbol=snapshot.symbol,
        ts=snapshot.ts,
        direction=direction,
        confidence=confidence,
        rationale="test",
    )


def proposal(
    snapshot: MarketSnapshot,
    votes: Sequence[Vote],
    direction: float = 0.0,
    confidence: float = 0.0,
) -> Proposal:
    return Proposal(
        symbol=snapshot.symbol,
        ts=snapshot.ts,
        direction=direction,
        confidence=confidence,
        votes=tuple(votes),
        quorum_met=direction != 0.0,
    )


class Oracle(Agent):
    """Votes the sign of the next close (taken from a price path the test owns); or against it."""

    def __init__(self, name: str, closes: dict[str, list[float]], *, right: bool = True) -> None:
        super().__init__(name)
        self.closes, self.right = closes, right

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        path = self.closes[snapshot.symbol]
        bar = int((snapshot.ts - T0) / minutes(5))
        move = path[bar + 1] - path[bar] if bar + 1 < len(path) else 0.0
        direction = math.copysign(1.0, move) * (1.0 if self.right else -1.0)
        return vote(self.name, snapshot, direction if move else 0.0, 0.8)


class Fixed(Agent):
    def __init__(self, name: str, direction: float, confidence: float = 1.0) -> None:
        super().__init__(name)
        self.direction, self.confidence = direction, confidence

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        return vote(self.name, snapshot, self.direction, self.confidence)


def zigzag(bars: int, start: float = 0.1, step: float = 0.01, seed: int = 1) -> list[float]:
    """A price path with both up and down moves and no flat bar."""
    rng = random.Random(seed)
    path = [start]
    for _ in range(bars):
        path.append(path[-1] * (1 + step * rng.choice((-1, 1)) * rng.uniform(0.5, 1.5)))
    return path


def snapshots_for(
    closes: dict[str, list[float]], regime: str | None = None, bars: int | None = None
) -> list[MarketSnapshot]:
    n = bars if bars is not None else min(len(p) for p in closes.values())
    return [
        make_snapshot(symbol=symbol, ts=at(bar), close=closes[symbol][bar], regime=regime)
        for bar in range(n)
        for symbol in sorted(closes)
    ]


def run_committee(
    agents: Sequence[Agent],
    provider: PerformanceWeights,
    snapshots: Sequence[MarketSnapshot],
    observers: Sequence[object] = (),
    quorum: int = 1,
) -> list[Proposal]:
    committee = Committee(
        list(agents), provider, quorum=quorum, min_confidence=0.0, observers=list(observers)
    )
    return [committee.decide(s) for s in snapshots]


# --- PerformanceTracker -------------------------------------------------------------------


def test_a_vote_is_scored_only_when_a_later_bar_of_its_symbol_arrives() -> None:
    tracker = PerformanceTracker()
    eth0 = make_snapshot(symbol=ETH, ts=at(0), close=0.10)
    ltc0 = make_snapshot(symbol=LTC, ts=at(0), close=0.02)
    tracker.observe(eth0, proposal(eth0, [vote("a", eth0, 1.0, 0.5)]))
    tracker.observe(ltc0, proposal(ltc0, [vote("a", ltc0, 0.0, 0.0)]))
    ltc1 = make_snapshot(symbol=LTC, ts=at(1), close=0.03)
    tracker.observe(ltc1, proposal(ltc1, [vote("a", ltc1, 0.0, 0.0)]))
    assert tracker.n_scored("a") == 0 and tracker.hit_rate("a") is None  # LTC's bar is not ETH's

    eth1 = make_snapshot(symbol=ETH, ts=at(1), close=0.11)
    tracker.observe(eth1, proposal(eth1, [vote("a", eth1, -1.0, 1.0)]))
    assert tracker.n_scored("a") == 1 and tracker.hit_rate("a") == 1.0
    assert tracker.mean_signed_return("a") == pytest.approx(0.5 * (0.11 / 0.10 - 1))
    assert tracker.last_scored == ("a",)


def test_the_horizon_scores_against_the_close_h_bars_of_that_symbol_later() -> None:
    tracker = PerformanceTracker(horizon_bars=3)
    closes = [0.10, 0.20, 0.05, 0.30, 0.30]
    for bar, close in enumerate(closes):
        snap = make_snapshot(ts=at(bar), close=close)
        tracker.observe(snap, proposal(snap, [vote("a", snap, 1.0 if bar == 0 else 0.0, 0.5)]))
        assert tracker.n_scored("a") == (0 if bar < 3 else 1)
    assert tracker.mean_signed_return("a") == pytest.approx(0.5 * (0.30 / 0.10 - 1))


def test_ties_neutral_votes_and_the_committee_pseudo_agent() -> None:
    tracker = PerformanceTracker()
    closes = [0.1, 0.1, 0.2, 0.1]  # flat, up, down
    for bar, close in enumerate(closes):
        snap = make_snapshot(ts=at(bar), close=close)
        votes = [vote("a", snap, 1.0), vote("abstains", snap, 0.0, 0.0)]
        direction = 0.5 if bar == 1 else 0.0  # the committee reaches quorum once
        tracker.observe(snap, proposal(snap, votes, direction, 0.4 if direction else 0.0))
    assert tracker.n_scored("a") == 3 and tracker.n_decided("a") == 2  # the flat bar is a tie
    assert tracker.hit_rate("a") == 0.5
    assert tracker.mean_signed_return("a") == pytest.approx((0.0 + 1.0 - 0.5) / 3)
    assert tracker.n_scored("abstains") == 0
    assert tracker.n_scored("committee") == 1 and tracker.hit_rate("committee") == 1.0
    assert tracker.mean_signed_return("committee") == pytest.approx(0.5 * 0.4 * 1.0)

    clash = make_snapshot(ts=at(0))
    with pytest.raises(ValueError, match="'committee'"):
        PerformanceTracker().observe(clash, proposal(clash, [vote("committee", clash, 1.0)]))


def test_rolling_lifetime_and_last_k_windows_and_regimes() -> None:
    tracker = PerformanceTracker(lookback=4)
    closes = [1.0, 2.0, 3.0, 2.0, 1.0, 0.5, 0.25]  # up, up, then four downs
    for bar, close in enumerate(closes):
        regime = "trending_up" if bar < 2 else "trending_down"
        snap = make_snapshot(ts=at(bar), close=close / 10, regime=regime)
        tracker.observe(snap, proposal(snap, [vote("bull", snap, 1.0)]))
    assert tracker.n_scored("bull", window="lifetime") == 6
    assert tracker.hit_rate("bull", window="lifetime") == pytest.approx(2 / 6)
    assert tracker.n_scored("bull") == 4 and tracker.hit_rate("bull") == 0.0  # last 4 lost
    assert tracker.hit_rate("bull", window=2) == 0.0
    assert tracker.hit_rate("bull", regime="trending_up") == 1.0
    assert tracker.n_scored("bull", regime="trending_down") == 4
    assert tracker.edge("bull", window="lifetime") == (pytest.approx(2 / 6 * 2 - 1), 6)
    assert tracker.n_scored("nobody") == 0 and tracker.edge("nobody") == (None, 0)
    with pytest.raises(ValueError, match="exceeds the tracker's lookback of 4"):
        tracker.hit_rate("bull", window=5)
    with pytest.raises(ValueError, match="window must be"):
        tracker.hit_rate("bull", window=0)
    with pytest.raises(ValueError, match="regime must be one of"):
        tracker.hit_rate("bull", regime="sideways")


def test_long_runs_keep_memory_bounded_and_sums_exact() -> None:
    tracker = PerformanceTracker(lookback=7)
    rng = random.Random(3)
    path = zigzag(500, seed=3)
    hits = []
    for bar, close in enumerate(path):
        snap = make_snapshot(ts=at(bar), close=close)
        direction = rng.choice((-1.0, 1.0))
        tracker.observe(snap, proposal(snap, [vote("coin", snap, direction)]))
        if bar + 1 < len(path):
            hits.append(direction * (path[bar + 1] - close) > 0)
    assert tracker.n_scored("coin", window="lifetime") == 500
    assert tracker.hit_rate("coin", window="lifetime") == pytest.approx(sum(hits) / 500)
    assert tracker.hit_rate("coin") == pytest.approx(sum(hits[-7:]) / 7)
    series = tracker._subjects["coin"][0]
    assert len(series.cumulative) <= 2 * 7 + 1


def test_repeated_or_backwards_snapshots_are_rejected() -> None:
    tracker = PerformanceTracker()
    snap = make_snapshot(ts=at(1))
    tracker.observe(snap, proposal(snap, [vote("a", snap, 1.0)]))
    with pytest.raises(ValueError, match="observed twice"):
        tracker.observe(snap, proposal(snap, [vote("a", snap, 1.0)]))
    earlier = make_snapshot(ts=at(0))
    with pytest.raises(ValueError, match="increasing ts"):
        tracker.observe(earlier, proposal(earlier, [vote("a", earlier, 1.0)]))
    other = make_snapshot(ts=at(2))
    with pytest.raises(ValueError, match="observed with snapshot"):
        tracker.observe(other, proposal(snap, [vote("a", snap, 1.0)]))


def test_signal_correlation_matches_numpy_across_chunks() -> None:
    tracker = PerformanceTracker()
    rng = random.Random(11)
    rows = []
    for bar in range(5000):  # more than one numpy chunk
        snap = make_snapshot(ts=at(bar), close=0.1)
        a = rng.choice((-1.0, 0.0, 1.0)) * rng.random()
        b = -a if rng.random() < 0.8 else rng.uniform(-1, 1)
        votes = [
            vote("a", snap, math.copysign(1.0, a) if a else 0.0, abs(a)),
            vote("b", snap, math.copysign(1.0, b) if b else 0.0, abs(b)),
            vote("mute", snap, 0.0, 0.0),
        ]
        rows.append([v.direction * v.confidence for v in votes[:2]])
        tracker.observe(snap, proposal(snap, votes))
    matrix = tracker.correlation()
    expected = np.corrcoef(np.asarray(rows).T)[0, 1]
    assert matrix["a"]["b"] == pytest.approx(expected, abs=1e-12)
    assert matrix["a"]["b"] < -0.5 and matrix["a"]["a"] == pytest.approx(1.0)
    assert matrix["mute"]["a"] is None  # never varied: no correlation, not NaN
    json.dumps(tracker.summary(), allow_nan=False)


# --- PerformanceWeights -------------------------------------------------------------------


def test_weights_are_frozen_within_a_window_and_recomputed_at_its_boundary() -> None:
    closes = {ETH: zigzag(12, seed=1), LTC: zigzag(12, start=0.02, seed=2)}
    provider = PerformanceWeights(
        {"right": 1.0, "wrong": 1.0},
        WeightingConfig(scheme="performance", window_bars=3, min_samples=0, lookback=50),
    )
    agents = [Oracle("right", closes), Oracle("wrong", closes, right=False)]
    proposals = run_committee(agents, provider, snapshots_for(closes, bars=12))

    assert [w.start for w in provider.history] == [at(0), at(3), at(6), at(9)]
    for index, window in enumerate(provider.history):
        used = [dict(p.weights) for p in proposals if window.start <= p.ts < at(3 * index + 3)]
        assert len(used) == 6 and all(w == window.weights for w in used)
    # At bar 3 the votes of bars 0 and 1 (both symbols) have been scored, not those of bar 2.
    assert provider.history[0].n_scored == {"right": 0, "wrong": 0}
    assert provider.history[1].n_scored == {"right": 4, "wrong": 4}
    assert provider.history[2].n_scored == {"right": 10, "wrong": 10}


def test_an_always_right_agent_gains_weight_over_an_always_wrong_one() -> None:
    closes = {ETH: zigzag(200, seed=4)}
    config = WeightingConfig(
        scheme="performance",
        window_bars=10,
        min_samples=5,
        lookback=50,
        sensitivity=4.0,
        floor=0.1,
        cap=3.0,
    )
    provider = PerformanceWeights({"right": 0.5, "wrong": 0.5}, config)
    agents = [Oracle("right", closes), Oracle("wrong", closes, right=False)]
    proposals = run_committee(agents, provider, snapshots_for(closes, bars=200))

    right = [w.multipliers["right"] for w in provider.history]
    wrong = [w.multipliers["wrong"] for w in provider.history]
    assert right[0] == wrong[0] == 1.0
    assert right == sorted(right) and wrong == sorted(wrong, reverse=True)
    assert right[-1] == pytest.approx(3.0) and wrong[-1] == pytest.approx(0.1)  # cap, floor
    assert provider.history[-1].weights == pytest.approx({"right": 1.5, "wrong": 0.05})
    late = proposals[-50:-1]  # the last bar has no next close: every agent abstains
    assert all(p.quorum_met for p in late)  # the right agent now outvotes the wrong one
    assert all(p.votes[0].direction * p.direction > 0 for p in late)


def test_signed_return_score_also_separates_right_from_wrong() -> None:
    closes = {ETH: zigzag(60, seed=5)}
    config = WeightingConfig(
        scheme="performance", window_bars=5, min_samples=3, score="signed_return"
    )
    provider = PerformanceWeights({"right": 1.0, "wrong": 1.0}, config)
    run_committee(
        [Oracle("right", closes), Oracle("wrong", closes, right=False)],
        provider,
        snapshots_for(closes),
    )
    last = provider.history[-1]
    assert last.edge == {"right": pytest.approx(1.0), "wrong": pytest.approx(-1.0)}
    assert last.multipliers["right"] > 1.0 > last.multipliers["wrong"]


def test_no_look_ahead_later_prices_cannot_move_earlier_weights() -> None:
    config = WeightingConfig(scheme="performance", window_bars=1, min_samples=0, lookback=20)
    base = zigzag(40, seed=6)
    perturbed = base[:20] + [2 * base[19] - c for c in base[20:]]  # every later move reversed

    def history(path: list[float]) -> list[dict[str, float]]:
        # The agents' votes must not change with the path: only the outcomes may.
        votes_from = {ETH: base}
        provider = PerformanceWeights({"up": 1.0, "down": 1.0}, config)
        agents = [Oracle("up", votes_from), Oracle("down", votes_from, right=False)]
        run_committee(agents, provider, snapshots_for({ETH: path}, bars=40))
        return [w.weights for w in provider.history]

    original, changed = history(base), history(perturbed)
    assert original[:21] == changed[:21]  # weights at bars <= 20 saw outcomes up to bar 19 only
    assert original[21] != changed[21]  # bar 20's close is scored into the bar-21 weights


def test_shrinkage_towards_one_with_few_samples() -> None:
    kwargs = {"min_samples": 20, "sensitivity": 2.0, "floor": 0.0, "cap": 10.0}
    assert performance_multiplier(1.0, 19, **kwargs) == 1.0
    assert performance_multiplier(None, 100, **kwargs) == 1.0
    assert performance_multiplier(1.0, 20, **kwargs) == pytest.approx(1 + 2 * 0.5)
    assert performance_multiplier(1.0, 180, **kwargs) == pytest.approx(1 + 2 * 0.9)
    assert performance_multiplier(-1.0, 1000, **kwargs) == 0.0
    assert performance_multiplier(-1.0, 1000, **{**kwargs, "floor": 0.2}) == 0.2

    closes = {ETH: zigzag(11, seed=7)}
    provider = PerformanceWeights(
        {"right": 1.0}, WeightingConfig(scheme="performance", window_bars=1, min_samples=20)
    )
    run_committee([Oracle("right", closes)], provider, snapshots_for(closes))
    assert provider.history[-1].n_scored["right"] == 10
    assert {w.multipliers["right"] for w in provider.history} == {1.0}


def test_static_scheme_keeps_performance_out_but_tracks_it() -> None:
    closes = {ETH: zigzag(30, seed=8)}
    provider = PerformanceWeights(
        {"right": 2.0, "wrong": 1.0},
        WeightingConfig(scheme="static", window_bars=5, min_samples=0),
    )
    run_committee(
        [Oracle("right", closes), Oracle("wrong", closes, right=False)],
        provider,
        snapshots_for(closes),
    )
    assert all(w.weights == {"right": 2.0, "wrong": 1.0} for w in provider.history)
    assert provider.tracker.hit_rate("right") == 1.0 and provider.tracker.hit_rate("wrong") == 0.0


def test_weighting_config_rejects_bad_values_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="window_bars"):
        WeightingConfig(window_bars=0)
    with pytest.raises(ValidationError, match="floor"):
        WeightingConfig(floor=1.5)
    with pytest.raises(ValidationError, match="scheme"):
        WeightingConfig(scheme="magic")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="min_samples \\(600\\) must be <= lookback"):
        WeightingConfig(min_samples=600, lookback=500)
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        WeightingConfig.model_validate({"scheme": "performance", "windows": 3})
    with pytest.raises(ValueError, match="finite and >= 0, not for \\['a'\\]"):
        PerformanceWeights({"a": -1.0})


def test_same_inputs_give_the_same_weights_history() -> None:
    closes = {ETH: zigzag(80, seed=9), LTC: zigzag(80, start=0.02, seed=10)}
    regimes = ["ranging", "volatile", None, "trending_up"]

    def history() -> list[dict[str, object]]:
        snaps = [
            s.model_copy(update={"regime": regimes[i % 4]})
            for i, s in enumerate(snapshots_for(closes))
        ]
        planner = Planner(PlannerConfig(learn=True, min_samples=2), {"a": 1.0, "b": 1.0})
        provider = PerformanceWeights(
            {"a": 1.0, "b": 1.0},
            WeightingConfig(scheme="performance", window_bars=7, min_samples=3),
            planner,
        )
        agents = [Oracle("a", closes), Fixed("b", 1.0, 0.6)]
        run_committee(agents, provider, snaps)
        return [w.model_dump() for w in provider.history]

    first = history()
    assert first == history()
    assert len({json.dumps(w["by_regime"], sort_keys=True) for w in first}) > 1


# --- Planner ------------------------------------------------------------------------------

BASE = {"trend": 0.6, "mean_reversion": 0.4}


def test_planner_priors_per_regime_with_fallback_to_base_weights() -> None:
    config = PlannerConfig(
        priors={"ranging": {"trend": 0.2, "mean_reversion": 0.8}, "volatile": {"trend": 0.1}}
    )
    planner = Planner(config, BASE)
    assert planner.prior_for("ranging") == {"trend": 0.2, "mean_reversion": 0.8}
    assert planner.prior_for("volatile") == {"trend": 0.1, "mean_reversion": 0.4}
    assert planner.prior_for("trending_up") == BASE
    assert planner.prior_for(None) == BASE
    with pytest.raises(ValueError, match="regime must be one of"):
        planner.prior_for("sideways")

    provider = PerformanceWeights(BASE, WeightingConfig(scheme="performance"), planner)
    for regime, expected in [("ranging", {"trend": 0.2, "mean_reversion": 0.8}), (None, BASE)]:
        assert provider.weights_for(make_snapshot(ts=at(0), regime=regime)) == expected


def test_planner_config_errors_name_the_regime_and_agents() -> None:
    with pytest.raises(ValidationError, match=r"priors[\s\S]*unknown regimes \['sideways'\]"):
        PlannerConfig(priors={"sideways": {"trend": 1.0}})
    with pytest.raises(ValidationError, match=r"priors\.ranging\.trend"):
        PlannerConfig.model_validate({"priors": {"ranging": {"trend": -1.0}}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        PlannerConfig.model_validate({"prior": {}})
    config = PlannerConfig(priors={"volatile": {"trend": 1.0, "momentum": 2.0}})
    with pytest.raises(
        ValueError, match=r"planner\.priors\.volatile: unknown agents \['momentum'\]"
    ):
        config.check_agents(BASE)
    with pytest.raises(ValueError, match="momentum"):
        Planner(config, BASE)
    config.model_copy(update={"priors": {"volatile": {"trend": 1.0}}}).check_agents(BASE)


def test_a_learning_planner_tilts_each_regime_by_its_own_out_of_sample_record() -> None:
    path = zigzag(120, seed=12)
    # "specialist" is right in ranging markets and wrong in volatile ones.
    regime_of = ["ranging" if bar % 2 else "volatile" for bar in range(120)]

    class Specialist(Agent):
        def vote(self, snapshot: MarketSnapshot) -> Vote:
            bar = int((snapshot.ts - T0) / minutes(5))
            move = path[bar + 1] - path[bar] if bar + 1 < len(path) else 0.0
            sign = 1.0 if snapshot.regime == "ranging" else -1.0
            return vote(self.name, snapshot, math.copysign(1.0, move) * sign if move else 0.0)

    snaps = [
        make_snapshot(ts=at(bar), close=path[bar], regime=regime_of[bar]) for bar in range(120)
    ]
    base = {"specialist": 1.0, "steady": 1.0}
    planner = Planner(
        PlannerConfig(priors={"ranging": {"steady": 0.5}}, learn=True, min_samples=5), base
    )
    provider = PerformanceWeights(base, WeightingConfig(window_bars=20), planner)  # static scheme
    run_committee([Specialist("specialist"), Fixed("steady", 1.0)], provider, snaps)

    assert provider.history[0].by_regime["ranging"] == {"specialist": 1.0, "steady": 0.5}
    last = provider.history[-1].by_regime
    assert last["ranging"]["specialist"] > 1.5 and last["volatile"]["specialist"] < 0.5
    assert last["trending_up"] == base  # no evidence in that regime: the prior stands
    assert planner.prior_for("ranging") == last["ranging"]  # learning happens at boundaries only
    json.dumps(planner.summary(), allow_nan=False)


# --- Reflection ---------------------------------------------------------------------------


def reflect(
    reflection: Reflection,
    path: list[float],
    votes_for: object,
    *,
    regime: str | None = None,
) -> None:
    for bar, close in enumerate(path):
        snap = make_snapshot(ts=at(bar), close=close, regime=regime)
        votes, direction = votes_for(bar, snap)  # type: ignore[operator]
        reflection.observe(snap, proposal(snap, votes, direction, 1.0 if direction else 0.0))


def test_reflection_notes_a_collapsing_agent_once_and_then_its_recovery() -> None:
    path = zigzag(151, seed=13)
    right_until, wrong_until = 50, 90

    def votes_for(bar: int, snap: MarketSnapshot) -> tuple[list[Vote], float]:
        move = math.copysign(1.0, path[bar + 1] - path[bar]) if bar + 1 < len(path) else 1.0
        flaky = move if bar < right_until or bar >= wrong_until else -move
        return [vote("flaky", snap, flaky), vote("steady", snap, move)], 0.0

    config = ReflectionConfig(lookback=10, min_samples=10, collapse_below=0.4, recover_above=0.6)
    reflection = Reflection(config)
    reflect(reflection, path, votes_for)

    kinds = [(n.subject, n.kind) for n in reflection.notes]
    assert kinds == [("flaky", "hit_rate_collapse"), ("flaky", "recovered")]
    collapse, recovery = reflection.notes
    assert at(right_until) < collapse.ts <= at(right_until + 10)
    assert at(wrong_until) < recovery.ts <= at(wrong_until + 10)
    assert collapse.layer == "agent" and collapse.metrics["hit_rate"] < 0.4
    assert recovery.metrics["hit_rate"] >= 0.6
    summary = reflection.summary()
    assert summary["agents"]["flaky"]["state"] == "healthy"
    assert summary["note_counts"] == {"hit_rate_collapse": 1, "recovered": 1}
    json.dumps(summary, allow_nan=False)
    with pytest.raises(ValidationError, match="frozen"):
        collapse.kind = "recovered"  # type: ignore[misc]


def test_an_agent_never_healthy_is_not_reported_as_collapsing() -> None:
    path = zigzag(60, seed=14)

    def votes_for(bar: int, snap: MarketSnapshot) -> tuple[list[Vote], float]:
        move = math.copysign(1.0, path[bar + 1] - path[bar]) if bar + 1 < len(path) else 1.0
        return [vote("hopeless", snap, -move)], 0.0

    reflection = Reflection(ReflectionConfig(lookback=10, min_samples=10))
    reflect(reflection, path, votes_for)
    assert reflection.notes == []
    assert reflection.summary()["agents"]["hopeless"]["state"] == "weak"


def test_reflection_notes_a_committee_that_trails_its_best_agent() -> None:
    path = zigzag(80, seed=15)

    def votes_for(bar: int, snap: MarketSnapshot) -> tuple[list[Vote], float]:
        move = math.copysign(1.0, path[bar + 1] - path[bar]) if bar + 1 < len(path) else 1.0
        committee = -move if bar < 40 else move  # wrong, then as right as the agent
        return [vote("sage", snap, move), vote("fool", snap, -move)], committee

    reflection = Reflection(ReflectionConfig(lookback=20, min_samples=20))
    reflect(reflection, path, votes_for)
    committee_notes = [n for n in reflection.notes if n.layer == "committee"]
    assert [n.kind for n in committee_notes] == ["committee_underperforms", "committee_recovered"]
    first = committee_notes[0]
    assert first.metrics["best_agent"] == "sage" and first.metrics["best_agent_hit_rate"] == 1.0
    assert first.ts <= at(25) and "sage" in first.message


def test_reflection_notes_weights_that_underperform_equal_weights() -> None:
    closes = {ETH: zigzag(60, seed=16)}
    reflection = Reflection(ReflectionConfig(planner_window=10), quorum=1, min_confidence=0.0)
    agents = [Oracle("loud", closes, right=False), Oracle("b", closes), Oracle("c", closes)]
    base = {"loud": 1.0, "b": 1.0, "c": 1.0}
    planner = Planner(PlannerConfig(priors={"volatile": {"loud": 10.0}}), base)
    provider = PerformanceWeights(planner.base_weights, WeightingConfig(), planner)
    proposals = run_committee(
        agents, provider, snapshots_for(closes, regime="volatile"), observers=[reflection]
    )
    assert all(p.direction * p.votes[0].direction > 0 for p in proposals[:-1])  # follows "loud"
    planner_notes = [n for n in reflection.notes if n.layer == "planner"]
    assert [n.kind for n in planner_notes] == ["planner_underperforms"]
    assert planner_notes[0].metrics["advantage"] == pytest.approx(-1.0)
    assert planner_notes[0].ts == at(10)  # the 10th scored decision fills the window
    summary = reflection.summary()["planner"]
    assert summary["state"] == "underperforms" and summary["by_regime"]["volatile"]["decisions"] > 0


def test_the_equal_weight_counterfactual_follows_the_committee_rules() -> None:
    rng = random.Random(17)
    agents = [Fixed(name, 0.0) for name in "abcd"]
    snap = make_snapshot()
    for quorum, min_confidence in [(1, 0.0), (2, 0.3), (3, 0.1)]:
        committee = Committee(agents, dict.fromkeys("abcd", 1.0), quorum, min_confidence)
        reflection = Reflection(quorum=quorum, min_confidence=min_confidence)
        for _ in range(300):
            votes = tuple(
                vote(name, snap, rng.choice((-1.0, -0.5, 0.0, 0.5, 1.0)), rng.random())
                for name in "abcd"
            )
            expected = committee.combine(snap, votes, dict.fromkeys("abcd", 1.0))
            assert reflection.equal_weight(votes) == (expected.direction, expected.confidence)


def test_reflection_can_share_the_weight_providers_tracker() -> None:
    closes = {ETH: zigzag(40, seed=18)}
    provider = PerformanceWeights({"right": 1.0}, WeightingConfig(scheme="performance"))
    config = ReflectionConfig(min_samples=5, lookback=5)
    shared = Reflection(config, tracker=provider.tracker)
    own = Reflection(config.model_copy(update={"lookback": 500}))
    run_committee([Oracle("right", closes)], provider, snapshots_for(closes), [shared, own])
    assert shared.summary()["agents"] == own.summary()["agents"]
    assert shared.tracker is provider.tracker

    lonely = Reflection(config, tracker=PerformanceTracker())
    snap = make_snapshot()
    with pytest.raises(ValueError, match="register reflection after"):
        lonely.observe(snap, proposal(snap, [vote("right", snap, 1.0)]))
    with pytest.raises(ValueError, match="horizon_bars"):
        Reflection(config, tracker=PerformanceTracker(horizon_bars=2))


def test_reflection_config_validation() -> None:
    with pytest.raises(ValidationError, match="collapse_below \\(0.6\\) must be < recover_above"):
        ReflectionConfig(collapse_below=0.6, recover_above=0.5)
    with pytest.raises(ValidationError, match="committee_margin"):
        ReflectionConfig(committee_margin=0.0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        ReflectionConfig.model_validate({"lookbak": 10})
    with pytest.raises(ValidationError, match="layer"):
        ReflectionNote(ts=T0, layer="broker", subject="x", kind="recovered", message="")  # type: ignore[arg-type]


# --- Integration over recorded candles ----------------------------------------------------


@pytest.fixture(scope="module")
def real_snapshots(january_candles: pd.DataFrame) -> list[MarketSnapshot]:
    features = compute_features(january_candles)
    return build_snapshots(january_candles, features, classify_regimes(features))


def scale_prices(snapshot: MarketSnapshot, factor: float) -> MarketSnapshot:
    """The same snapshot (same features, so the same votes) with its bar's prices scaled."""
    bar = snapshot.bar.model_dump()
    bar.update({k: bar[k] * factor for k in ("open", "high", "low", "close")})
    return snapshot.model_copy(update={"bar": Bar(**bar)})


def learning_run(
    snapshots: Sequence[MarketSnapshot],
) -> tuple[PerformanceWeights, Reflection, list[Proposal]]:
    base = {"trend": 0.6, "mean_reversion": 0.4}
    planner = Planner(
        PlannerConfig(
            priors={"ranging": {"trend": 0.3, "mean_reversion": 0.7}}, learn=True, min_samples=20
        ),
        base,
    )
    provider = PerformanceWeights(
        base,
        WeightingConfig(scheme="performance", window_bars=288, lookback=300, min_samples=20),
        planner,
    )
    reflection = Reflection(ReflectionConfig(), quorum=1, min_confidence=0.1)
    committee = Committee(
        [TrendAgent(), MeanReversionAgent()],
        provider,
        quorum=1,
        min_confidence=0.1,
        observers=[reflection],
    )
    return provider, reflection, [committee.decide(s) for s in snapshots]


def test_learning_over_real_candles_moves_weights_point_in_time(
    real_snapshots: list[MarketSnapshot],
) -> None:
    provider, reflection, proposals = learning_run(real_snapshots)
    history = provider.history
    timestamps = sorted({s.ts for s in real_snapshots})
    assert [w.start for w in history] == timestamps[::288]
    for window in history:
        for weights in [window.weights, *window.by_regime.values()]:
            assert all(math.isfinite(w) and w >= 0.0 for w in weights.values())
    for agent in ("trend", "mean_reversion"):
        assert len({w.multipliers[agent] for w in history}) > 3  # weights do move over time
        assert provider.tracker.n_scored(agent, window="lifetime") > 100
    # Every decision used its window's weights for its regime.
    starts = [w.start for w in history]
    for snap, made in zip(real_snapshots[::97], proposals[::97], strict=True):
        window = history[max(i for i, start in enumerate(starts) if start <= snap.ts)]
        expected = window.weights if snap.regime is None else window.by_regime[snap.regime]
        assert dict(made.weights) == expected
    correlation = provider.tracker.correlation()["trend"]["mean_reversion"]
    assert correlation is not None and -1.0 <= correlation <= 1.0
    json.dumps(provider.summary(), allow_nan=False)
    json.dumps(reflection.summary(), allow_nan=False)
    assert reflection.tracker.n_scored("committee", window="lifetime") > 100

    # Same inputs, same learning; scrambled later prices leave earlier windows untouched.
    cut = timestamps[len(timestamps) // 2]
    scrambled = [
        s if s.ts <= cut else scale_prices(s, 1.5 if i % 2 else 0.6)
        for i, s in enumerate(real_snapshots)
    ]
    again, again_reflection, _ = learning_run(real_snapshots)
    assert [w.model_dump() for w in again.history] == [w.model_dump() for w in history]
    assert again_reflection.notes == reflection.notes
    moved, _, _ = learning_run(scrambled)
    early = [w.model_dump() for w in history if w.start <= cut]
    assert [w.model_dump() for w in moved.history[: len(early)]] == early
    assert [w.model_dump() for w in moved.history] != [w.model_dump() for w in history]
