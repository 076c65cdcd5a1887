"""Reflection: watch every layer of the committee and write down what goes wrong (and right).

It only records; it never trades or changes a weight. Three watches, each scored point in time
(an outcome is known only once ``horizon_bars`` later bars of the symbol were observed):

- agents: an agent whose rolling hit rate falls below ``collapse_below`` after having been at or
  above it is noted once (``hit_rate_collapse``); it is noted again only after it ``recovered``
  to ``recover_above``. The gap between the two thresholds keeps a noisy agent from flapping.
- committee: its rolling hit rate (proposals that reached quorum) against the best single
  agent's and against a coin flip; noted when it trails the better of the two by
  ``committee_margin`` (``committee_underperforms``), and when it has caught up again.
- planner: the signed return the committee earned with the weights it used (regime priors times
  performance multipliers) against an equal-weight committee over the very same votes, under the
  same quorum and ``min_confidence`` rules, over the last ``planner_window`` regime-labelled
  decisions where either would have taken a position. The comparison is scale-free:
  ``(used - equal) / (|used| + |equal|)`` summed over the window, in [-1, 1]; noted below
  ``-planner_margin``, and again once it is back at 0 or better.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trading.domain import REGIMES, MarketSnapshot, Proposal, UtcDatetime, Vote
from trading.performance import HorizonScorer, PerformanceTracker

logger = logging.getLogger(__name__)

NoteKind = Literal[
    "hit_rate_collapse",
    "recovered",
    "committee_underperforms",
    "committee_recovered",
    "planner_underperforms",
    "planner_recovered",
]
NoteMetric = float | int | str | None


class ReflectionConfig(BaseModel):
    """Thresholds of the three watches (``reflection:`` in the committee YAML)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    horizon_bars: int = Field(1, ge=1, le=10_000)
    lookback: int = Field(500, ge=1, le=1_000_000, description="scored votes per rolling rate")
    min_samples: int = Field(100, ge=1, description="decided votes before a rate is judged")
    collapse_below: float = Field(0.45, gt=0.0, lt=1.0)
    recover_above: float = Field(0.5, gt=0.0, lt=1.0)
    committee_margin: float = Field(0.05, gt=0.0, lt=0.5)
    planner_window: int = Field(500, ge=1, le=1_000_000)
    planner_margin: float = Field(0.05, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check_thresholds(self) -> ReflectionConfig:
        if self.collapse_below >= self.recover_above:
            raise ValueError(
                f"collapse_below ({self.collapse_below}) must be < recover_above "
                f"({self.recover_above}), or a noisy agent would flap"
            )
        if self.min_samples > self.lookback:
            raise ValueError(
                f"min_samples ({self.min_samples}) must be <= lookback ({self.lookback})"
            )
        return self


class ReflectionNote(BaseModel):
    """Something reflection learned about one layer at ``ts``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: UtcDatetime
    layer: Literal["agent", "committee", "planner"]
    subject: str
    kind: NoteKind
    message: str
    metrics: dict[str, NoteMetric] = Field(default_factory=dict)


class _PlannerWindow:
    """Signed returns of the used weights and of equal weights over the last N decisions."""

    def __init__(self, size: int) -> None:
        self.recent: deque[tuple[float, float]] = deque(maxlen=size)
        self.used = self.equal = self.gross = 0.0
        self.by_regime: dict[str, list[float]] = {}

    def add(self, regime: str, used: float, equal: float) -> None:
        if len(self.recent) == self.recent.maxlen:
            old_used, old_equal = self.recent[0]
            self.used -= old_used
            self.equal -= old_equal
            self.gross -= abs(old_used) + abs(old_equal)
        self.recent.append((used, equal))
        self.used += used
        self.equal += equal
        self.gross += abs(used) + abs(equal)
        lifetime = self.by_regime.setdefault(regime, [0.0, 0.0, 0.0])
        lifetime[0] += used
        lifetime[1] += equal
        lifetime[2] += 1

    @property
    def full(self) -> bool:
        return len(self.recent) == self.recent.maxlen

    @property
    def advantage(self) -> float | None:
        return (self.used - self.equal) / self.gross if self.gross > 1e-300 else None


class Reflection:
    """A ``DecisionObserver`` that keeps ``notes`` on agents, the committee and the planner.

    ``quorum`` and ``min_confidence`` must be the committee's, so the equal-weight
    counterfactual follows the same rules as the real decision.

    By default reflection scores votes with a tracker of its own (``lookback`` and
    ``horizon_bars`` from its config). Passing ``tracker`` (e.g. ``PerformanceWeights.tracker``)
    shares one instead, halving the scoring work: reflection then reads it without feeding it,
    so whoever owns it must observe each decision first (the committee calls its weight
    provider before other observers), and the rolling rates span that tracker's lookback.
    """

    def __init__(
        self,
        config: ReflectionConfig | None = None,
        *,
        quorum: int = 1,
        min_confidence: float = 0.0,
        tracker: PerformanceTracker | None = None,
    ) -> None:
        if quorum < 1:
            raise ValueError(f"quorum must be >= 1, got {quorum}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.config = config if config is not None else ReflectionConfig()
        self.quorum = quorum
        self.min_confidence = min_confidence
        if tracker is None:
            tracker = PerformanceTracker(
                horizon_bars=self.config.horizon_bars,
                lookback=self.config.lookback,
                by_regime=False,
            )
            self._feeds_tracker = True
        else:
            if tracker.horizon_bars != self.config.horizon_bars:
                raise ValueError(
                    f"the shared tracker scores at horizon_bars={tracker.horizon_bars}, "
                    f"reflection is configured for {self.config.horizon_bars}"
                )
            if self.config.min_samples > tracker.lookback:
                raise ValueError(
                    f"reflection min_samples ({self.config.min_samples}) exceeds the shared "
                    f"tracker's lookback ({tracker.lookback})"
                )
            self._feeds_tracker = False
        self.tracker = tracker
        self.notes: list[ReflectionNote] = []
        self._agent_state: dict[str, str] = {}
        self._committee_state = "ok"
        self._planner_state = "ok"
        self._planner_scorer: HorizonScorer[tuple[float, float]] = HorizonScorer(
            self.config.horizon_bars
        )
        self._planner = _PlannerWindow(self.config.planner_window)

    def equal_weight(self, votes: Sequence[Vote]) -> tuple[float, float]:
        """(direction, confidence) the committee would propose with every weight equal."""
        directions = []
        confidence_sum = 0.0
        min_confidence = self.min_confidence
        for vote in votes:
            direction, confidence = vote.direction, vote.confidence
            if direction != 0.0 and confidence != 0.0 and confidence >= min_confidence:
                directions.append(direction)
                confidence_sum += confidence
        if not directions:
            return 0.0, 0.0
        direction = sum(directions) / len(directions)
        if direction == 0.0:
            return 0.0, 0.0
        if sum(1 for d in directions if d * direction > 0) < self.quorum:
            return 0.0, 0.0
        confidence = confidence_sum / len(directions)
        return max(-1.0, min(1.0, direction)), max(0.0, min(1.0, confidence))

    def observe(self, snapshot: MarketSnapshot, proposal: Proposal) -> None:
        if self._feeds_tracker:
            self.tracker.observe(snapshot, proposal)
        elif self.tracker.last_observed != (snapshot.symbol, snapshot.ts):
            raise ValueError(
                f"the shared tracker has not observed {snapshot.symbol}@{snapshot.ts.isoformat()}"
                " yet: register reflection after the observer that feeds it"
            )
        equal_direction, equal_confidence = self.equal_weight(proposal.votes)
        signals = (proposal.direction * proposal.confidence, equal_direction * equal_confidence)
        matured = self._planner_scorer.step(snapshot, signals)
        ts = snapshot.ts
        scored = self.tracker.last_scored
        if scored:
            committee = self.tracker.committee_name
            rates = {vote.agent: self._judged_rate(vote.agent) for vote in proposal.votes}
            for name in scored:
                if name != committee:
                    self._watch_agent(ts, name, *rates[name])
            self._watch_committee(ts, self._judged_rate(committee), rates)
        if matured is not None and matured.regime is not None:
            used, equal = matured.payload
            if used != 0.0 or equal != 0.0:
                realised = matured.realised_return
                self._planner.add(matured.regime, used * realised, equal * realised)
                self._watch_planner(ts)

    def _note(
        self,
        ts: datetime,
        layer: Literal["agent", "committee", "planner"],
        subject: str,
        kind: NoteKind,
        message: str,
        metrics: dict[str, NoteMetric],
    ) -> None:
        note = ReflectionNote(
            ts=ts, layer=layer, subject=subject, kind=kind, message=message, metrics=metrics
        )
        self.notes.append(note)
        logger.info("reflection %s/%s %s at %s: %s", layer, subject, kind, ts.isoformat(), message)

    def _judged_rate(self, name: str) -> tuple[float | None, int]:
        """The rolling hit rate once it rests on ``min_samples`` decided votes, and that count."""
        hits, decided = self.tracker.rolling_hits(name)
        if decided < self.config.min_samples:
            return None, decided
        return hits / decided, decided

    def _watch_agent(self, ts: datetime, name: str, rate: float | None, n: int) -> None:
        if rate is None:
            return
        config = self.config
        state = self._agent_state.get(name)
        if state is None:
            self._agent_state[name] = "healthy" if rate >= config.collapse_below else "weak"
        elif state == "healthy" and rate < config.collapse_below:
            self._agent_state[name] = "collapsed"
            self._note(
                ts,
                "agent",
                name,
                "hit_rate_collapse",
                f"{name}'s hit rate fell to {rate:.2%} over its last {n} decided votes "
                f"(below {config.collapse_below:.2%})",
                {"hit_rate": rate, "n_decided": n, "threshold": config.collapse_below},
            )
        elif state in ("collapsed", "weak") and rate >= config.recover_above:
            self._agent_state[name] = "healthy"
            if state == "collapsed":
                self._note(
                    ts,
                    "agent",
                    name,
                    "recovered",
                    f"{name}'s hit rate is back to {rate:.2%} over its last {n} decided votes",
                    {"hit_rate": rate, "n_decided": n, "threshold": config.recover_above},
                )

    def _watch_committee(
        self,
        ts: datetime,
        committee_rate: tuple[float | None, int],
        agent_rates: dict[str, tuple[float | None, int]],
    ) -> None:
        rate, n = committee_rate
        if rate is None:
            return
        best_name, best_rate = None, None
        for name, (agent_rate, _) in agent_rates.items():
            if agent_rate is not None and (best_rate is None or agent_rate > best_rate):
                best_name, best_rate = name, agent_rate
        reference = max(0.5, best_rate) if best_rate is not None else 0.5
        margin = self.config.committee_margin
        if self._committee_state == "ok" and rate < reference - margin:
            self._committee_state = "underperforms"
            against = (
                f"the best agent {best_name} ({best_rate:.1%})"
                if best_name is not None and best_rate is not None and best_rate >= 0.5
                else "a coin flip"
            )
            message = (
                f"the committee's hit rate {rate:.1%} over {n} decided proposals trails "
                f"{against} by more than {margin:.1%}"
            )
            kind: NoteKind = "committee_underperforms"
        elif self._committee_state == "underperforms" and rate >= reference:
            self._committee_state = "ok"
            message = f"the committee's hit rate {rate:.1%} is back at {reference:.1%} or better"
            kind = "committee_recovered"
        else:
            return
        metrics: dict[str, NoteMetric] = {
            "hit_rate": rate,
            "n_decided": n,
            "best_agent": best_name,
            "best_agent_hit_rate": best_rate,
            "reference": reference,
        }
        self._note(ts, "committee", self.tracker.committee_name, kind, message, metrics)

    def _watch_planner(self, ts: datetime) -> None:
        window = self._planner
        advantage = window.advantage
        if not window.full or advantage is None:
            return
        margin = self.config.planner_margin
        metrics: dict[str, NoteMetric] = {
            "advantage": advantage,
            "used_weights_return": window.used,
            "equal_weights_return": window.equal,
            "decisions": len(window.recent),
        }
        if self._planner_state == "ok" and advantage < -margin:
            self._planner_state = "underperforms"
            self._note(
                ts,
                "planner",
                "planner",
                "planner_underperforms",
                f"over the last {len(window.recent)} decisions the committee's weights earned "
                f"{window.used:+.4f} against {window.equal:+.4f} with equal weights "
                f"(advantage {advantage:+.2f})",
                metrics,
            )
        elif self._planner_state == "underperforms" and advantage >= 0.0:
            self._planner_state = "ok"
            self._note(
                ts,
                "planner",
                "planner",
                "planner_recovered",
                f"the committee's weights are back in line with equal weights "
                f"(advantage {advantage:+.2f})",
                metrics,
            )

    def summary(self) -> dict[str, Any]:
        """JSON-safe: every note, counts per kind, and each watch's current state."""
        committee = self.tracker.committee_name
        return {
            "config": self.config.model_dump(mode="json"),
            "notes": [note.model_dump(mode="json") for note in self.notes],
            "note_counts": dict(sorted(Counter(note.kind for note in self.notes).items())),
            "agents": {
                name: {
                    "state": self._agent_state.get(name, "unjudged"),
                    "hit_rate": self.tracker.hit_rate(name),
                    "n_decided": self.tracker.n_decided(name),
                }
                for name in self.tracker.agents
                if name != committee
            },
            "committee": {
                "state": self._committee_state,
                "hit_rate": self.tracker.hit_rate(committee),
                "n_decided": self.tracker.n_decided(committee),
            },
            "planner": {
                "state": self._planner_state,
                "advantage": self._planner.advantage,
                "decisions": len(self._planner.recent),
                "by_regime": {
                    regime: {
                        "used_weights_return": used,
                        "equal_weights_return": equal,
                        "decisions": int(count),
                    }
                    for regime, (used, equal, count) in sorted(self._planner.by_regime.items())
                    if regime in REGIMES
                },
            },
        }
