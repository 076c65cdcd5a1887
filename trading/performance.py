"""Realised, point-in-time performance of every agent and of the committee itself.

A vote made on symbol ``s`` at bar ``t`` is scored only when the ``horizon_bars``-th later
snapshot of ``s`` arrives, against the return ``close[t+h] / close[t] - 1`` of that symbol. Until
then it waits in a per-symbol queue, so nothing about a later bar can reach a statistic before
that bar has been observed: a weight computed from this tracker at ``t`` is out of sample.

Only non-neutral signals are scored (an abstention has no outcome to judge). A hit is a vote
whose sign matches the realised return's; a zero return is a tie and is left out of hit rates
(but counts, with a signed return of 0, in ``n_scored`` and the mean signed return). The signed
return is ``direction * confidence * return``: what the vote would have earned as a position.

Statistics are kept per agent, and per agent and regime (the regime at the vote, which was
known then), both over the last ``lookback`` scored votes and over the tracker's lifetime, as
cumulative sums trimmed to the lookback: memory stays bounded and a query is O(1). The
committee is scored as a pseudo-agent (``committee_name``) from its proposals that reached
quorum.

The correlation between agents' signals is computed incrementally: each decision contributes
every agent's ``direction * confidence`` (0 when it abstained); rows are buffered and folded into
running means and co-moment sums in numpy chunks (Chan et al.'s pairwise update), so memory
stays bounded and ``correlation()`` is a cheap on-demand read of those sums.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from trading.domain import REGIMES, MarketSnapshot, Proposal

Window = int | Literal["rolling", "lifetime"]
"""Which scored votes a query covers: the rolling lookback, the lifetime, or the last k."""

Score = Literal["hit_rate", "signed_return"]

Payload = TypeVar("Payload")

_CORRELATION_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Matured(Generic[Payload]):
    """What was recorded at an earlier bar, now that its horizon has passed."""

    ts: datetime
    regime: str | None
    payload: Payload
    realised_return: float


class HorizonScorer(Generic[Payload]):
    """Holds payloads per symbol until ``horizon_bars`` later snapshots of that symbol arrived.

    ``step`` must see each symbol's snapshots in strictly increasing ts; a repeated or earlier
    ts is an error, because scoring it twice (or backwards) would corrupt every statistic.
    """

    def __init__(self, horizon_bars: int = 1) -> None:
        if horizon_bars < 1:
            raise ValueError(f"horizon_bars must be >= 1, got {horizon_bars}")
        self.horizon_bars = horizon_bars
        self._pending: dict[str, deque[tuple[datetime, float, str | None, Payload]]] = {}
        self._last_ts: dict[str, datetime] = {}

    def step(self, snapshot: MarketSnapshot, payload: Payload) -> Matured[Payload] | None:
        """Record ``payload`` at this bar; return the one recorded ``horizon_bars`` bars ago."""
        symbol, ts = snapshot.symbol, snapshot.ts
        last = self._last_ts.get(symbol)
        if last is not None and ts <= last:
            raise ValueError(
                f"snapshots of {symbol} must arrive in increasing ts: got {ts.isoformat()} "
                f"after {last.isoformat()} (is one decision observed twice?)"
            )
        self._last_ts[symbol] = ts
        queue = self._pending.get(symbol)
        if queue is None:
            queue = self._pending[symbol] = deque()
        close = snapshot.bar.close
        matured = None
        if len(queue) == self.horizon_bars:
            then_ts, then_close, regime, old = queue.popleft()
            matured = Matured(then_ts, regime, old, close / then_close - 1.0)
        queue.append((ts, close, snapshot.regime, payload))
        return matured


class _Series:
    """Scored outcomes of one subject (an agent, maybe within one regime).

    Kept as running cumulative sums ``(hits, decided, signed, absolute)`` after each outcome
    (a tie adds 0 to hits and decided): the last entry is the lifetime, the last minus the one
    ``k`` entries back is the latest ``k`` outcomes, both O(1). Entries older than the lookback
    are trimmed in amortised batches, so memory stays bounded.
    """

    __slots__ = ("cumulative", "size", "trimmed")

    def __init__(self, lookback: int) -> None:
        self.cumulative: list[tuple[int, int, float, float]] = [(0, 0, 0.0, 0.0)]
        self.size = lookback
        self.trimmed = 0

    def add(self, hit: int, decided: int, signed: float, absolute: float) -> None:
        cumulative = self.cumulative
        hits, decisions, signed_sum, absolute_sum = cumulative[-1]
        cumulative.append(
            (hits + hit, decisions + decided, signed_sum + signed, absolute_sum + absolute)
        )
        if len(cumulative) > 2 * self.size + 1:
            drop = len(cumulative) - self.size - 1
            del cumulative[:drop]
            self.trimmed += drop

    def totals(self, window: Window) -> tuple[int, int, int, float, float]:
        """(n, hits, decided, sum of signed returns, sum of absolute signed returns)."""
        cumulative = self.cumulative
        last = cumulative[-1]
        available = len(cumulative) - 1
        if window == "lifetime":
            return (self.trimmed + available, *last)
        k = min(self.size if window == "rolling" else int(window), available)
        first = cumulative[-1 - k]
        return (
            k,
            last[0] - first[0],
            last[1] - first[1],
            last[2] - first[2],
            last[3] - first[3],
        )


class _SignalCorrelation:
    """Running means and co-moments of the agents' per-decision signals."""

    def __init__(self) -> None:
        self.agents: tuple[str, ...] | None = None
        self._rows: list[tuple[float, ...]] = []
        self._n = 0
        self._mean: np.ndarray | None = None
        self._comoment: np.ndarray | None = None

    def add(self, agents: tuple[str, ...], signals: tuple[float, ...]) -> None:
        if self.agents is None:
            self.agents = agents
        elif agents != self.agents:
            raise ValueError(
                f"a proposal's votes name agents {list(agents)}, but earlier proposals "
                f"named {list(self.agents)}; one tracker follows one committee"
            )
        self._rows.append(signals)
        if len(self._rows) >= _CORRELATION_CHUNK:
            self._fold()

    def _fold(self) -> None:
        if not self._rows:
            return
        chunk = np.asarray(self._rows, dtype=float)
        self._rows.clear()
        m = chunk.shape[0]
        mean_b = chunk.mean(axis=0)
        centred = chunk - mean_b
        comoment_b = centred.T @ centred
        if self._mean is None or self._comoment is None:
            self._n, self._mean, self._comoment = m, mean_b, comoment_b
            return
        n = self._n
        delta = mean_b - self._mean
        total = n + m
        self._comoment = self._comoment + comoment_b + np.outer(delta, delta) * (n * m / total)
        self._mean = self._mean + delta * (m / total)
        self._n = total

    def matrix(self) -> dict[str, dict[str, float | None]]:
        self._fold()
        if self.agents is None or self._comoment is None:
            return {}
        variance = np.diag(self._comoment)
        result: dict[str, dict[str, float | None]] = {}
        for i, a in enumerate(self.agents):
            row: dict[str, float | None] = {}
            for j, b in enumerate(self.agents):
                denominator = math.sqrt(variance[i] * variance[j])
                if denominator <= 1e-300:
                    row[b] = None  # an agent that never changed its signal has no correlation
                else:
                    row[b] = max(-1.0, min(1.0, float(self._comoment[i, j]) / denominator))
            result[a] = row
        return result


_Signals = tuple[tuple[str, float, float], ...]


class PerformanceTracker:
    """Scores agents' and the committee's votes against realised returns, point in time.

    Feed it every decision through ``observe`` (it is a ``DecisionObserver``), in the order the
    committee made them. Queries answer from outcomes scored so far only. ``by_regime=False``
    skips the per-regime breakdown (half the work) for a watcher that does not need it.
    """

    def __init__(
        self,
        *,
        horizon_bars: int = 1,
        lookback: int = 500,
        committee_name: str = "committee",
        by_regime: bool = True,
    ) -> None:
        if lookback < 1:
            raise ValueError(f"lookback must be >= 1 scored votes, got {lookback}")
        if not committee_name.strip():
            raise ValueError("committee_name must not be blank")
        self.horizon_bars = horizon_bars
        self.lookback = lookback
        self.committee_name = committee_name
        self.by_regime = by_regime
        self._scorer: HorizonScorer[_Signals] = HorizonScorer(horizon_bars)
        self._subjects: dict[str, tuple[_Series, dict[str, _Series]]] = {}
        self._correlation = _SignalCorrelation()
        self.decisions = 0
        self.last_scored: tuple[str, ...] = ()
        """Subjects (agents, the committee) whose votes the latest ``observe`` scored."""
        self.last_observed: tuple[str, datetime] | None = None

    def observe(self, snapshot: MarketSnapshot, proposal: Proposal) -> None:
        """Score what matured at this bar, then record this decision's signals."""
        if proposal.symbol != snapshot.symbol or proposal.ts != snapshot.ts:
            raise ValueError(
                f"proposal for {proposal.symbol}@{proposal.ts.isoformat()} observed with "
                f"snapshot {snapshot.symbol}@{snapshot.ts.isoformat()}"
            )
        names = []
        row = []
        signals = []
        for vote in proposal.votes:
            name, direction, confidence = vote.agent, vote.direction, vote.confidence
            names.append(name)
            row.append(direction * confidence)
            if direction != 0.0 and confidence != 0.0:
                signals.append((name, direction, confidence))
        agents = tuple(names)
        if agents != self._correlation.agents and self.committee_name in agents:
            raise ValueError(
                f"an agent is named {self.committee_name!r}, the tracker's name for the "
                "committee; rename the agent or pass another committee_name"
            )
        if proposal.quorum_met and proposal.direction != 0.0 and proposal.confidence != 0.0:
            signals.append((self.committee_name, proposal.direction, proposal.confidence))
        matured = self._scorer.step(snapshot, tuple(signals))
        if matured is not None:
            self._score(matured)
            self.last_scored = tuple(name for name, _, _ in matured.payload)
        else:
            self.last_scored = ()
        self._correlation.add(agents, tuple(row))
        self.last_observed = (snapshot.symbol, snapshot.ts)
        self.decisions += 1

    def _score(self, matured: Matured[_Signals]) -> None:
        realised = matured.realised_return
        regime = matured.regime if self.by_regime else None
        decided = 0 if realised == 0.0 else 1
        up = realised > 0.0
        subjects = self._subjects
        for name, direction, confidence in matured.payload:
            hit = 1 if decided and (direction > 0.0) == up else 0
            signed = direction * confidence * realised
            absolute = signed if signed >= 0.0 else -signed
            subject = subjects.get(name)
            if subject is None:
                subject = subjects[name] = (_Series(self.lookback), {})
            subject[0].add(hit, decided, signed, absolute)
            if regime is not None:
                regime_series = subject[1].get(regime)
                if regime_series is None:
                    regime_series = subject[1][regime] = _Series(self.lookback)
                regime_series.add(hit, decided, signed, absolute)

    def _series(self, agent: str, regime: str | None) -> _Series | None:
        if regime is not None and regime not in REGIMES:
            raise ValueError(f"regime must be one of {sorted(REGIMES)} or None, got {regime!r}")
        subject = self._subjects.get(agent)
        if subject is None:
            return None
        return subject[0] if regime is None else subject[1].get(regime)

    def _totals(
        self, agent: str, regime: str | None, window: Window
    ) -> tuple[int, int, int, float, float]:
        if window not in ("rolling", "lifetime"):
            if isinstance(window, bool) or not isinstance(window, int) or window < 1:
                raise ValueError(
                    f"window must be 'rolling', 'lifetime' or an int >= 1, got {window!r}"
                )
            if window > self.lookback:
                raise ValueError(
                    f"window {window} exceeds the tracker's lookback of {self.lookback} votes"
                )
        series = self._series(agent, regime)
        if series is None:
            return 0, 0, 0, 0.0, 0.0
        return series.totals(window)

    def rolling_hits(self, agent: str) -> tuple[int, int]:
        """(hits, decided) over the agent's rolling lookback: the fast path for per-bar watches."""
        subject = self._subjects.get(agent)
        if subject is None:
            return 0, 0
        series = subject[0]
        cumulative = series.cumulative
        last = cumulative[-1]
        first = cumulative[-1 - min(series.size, len(cumulative) - 1)]
        return last[0] - first[0], last[1] - first[1]

    @property
    def agents(self) -> tuple[str, ...]:
        """Subjects with at least one scored vote, in the order they were first scored."""
        return tuple(self._subjects)

    def n_scored(self, agent: str, regime: str | None = None, window: Window = "rolling") -> int:
        """Scored non-neutral votes (ties included)."""
        return self._totals(agent, regime, window)[0]

    def n_decided(self, agent: str, regime: str | None = None, window: Window = "rolling") -> int:
        """Scored votes that were a hit or a miss (ties excluded): the hit rate's denominator."""
        return self._totals(agent, regime, window)[2]

    def hit_rate(
        self, agent: str, regime: str | None = None, window: Window = "rolling"
    ) -> float | None:
        """Share of hits among scored, non-tied votes; None before any."""
        _, hits, decided, _, _ = self._totals(agent, regime, window)
        return hits / decided if decided else None

    def mean_signed_return(
        self, agent: str, regime: str | None = None, window: Window = "rolling"
    ) -> float | None:
        """Mean of direction * confidence * realised return over scored votes; None before any."""
        n, _, _, signed, _ = self._totals(agent, regime, window)
        return signed / n if n else None

    def edge(
        self,
        agent: str,
        regime: str | None = None,
        score: Score = "hit_rate",
        window: Window = "rolling",
    ) -> tuple[float | None, int]:
        """A scale-free skill in [-1, 1] and the number of votes behind it.

        ``hit_rate``: ``2 * hit_rate - 1`` (0 is a coin flip). ``signed_return``: the sum of
        signed returns over the sum of their absolute values (1 when every vote earned, -1
        when every vote lost, whatever the size of the moves).
        """
        n, hits, decided, signed, absolute = self._totals(agent, regime, window)
        if score == "hit_rate":
            return (2.0 * hits / decided - 1.0 if decided else None), decided
        if score == "signed_return":
            return (signed / absolute if absolute > 0.0 else None), n
        raise ValueError(f"score must be 'hit_rate' or 'signed_return', got {score!r}")

    def correlation(self) -> dict[str, dict[str, float | None]]:
        """Pearson correlation of agents' per-decision signals (None where one never varied)."""
        return self._correlation.matrix()

    def _stats(self, agent: str, regime: str | None, window: Window) -> dict[str, Any]:
        n, hits, decided, signed, _ = self._totals(agent, regime, window)
        return {
            "n_scored": n,
            "n_decided": decided,
            "hit_rate": hits / decided if decided else None,
            "mean_signed_return": signed / n if n else None,
        }

    def summary(self) -> dict[str, Any]:
        """JSON-safe: per subject, rolling and lifetime stats and a per-regime breakdown."""
        subjects: dict[str, Any] = {}
        for name, (_, by_regime) in self._subjects.items():
            subjects[name] = {
                "rolling": self._stats(name, None, "rolling"),
                "lifetime": self._stats(name, None, "lifetime"),
                "by_regime": {
                    regime: {
                        "rolling": self._stats(name, regime, "rolling"),
                        "lifetime": self._stats(name, regime, "lifetime"),
                    }
                    for regime in sorted(REGIMES)
                    if regime in by_regime
                },
            }
        return {
            "horizon_bars": self.horizon_bars,
            "lookback": self.lookback,
            "decisions": self.decisions,
            "committee_name": self.committee_name,
            "subjects": subjects,
            "signal_correlation": self.correlation(),
        }


def performance_multiplier(
    edge: float | None,
    n: int,
    *,
    min_samples: int,
    sensitivity: float,
    floor: float,
    cap: float,
) -> float:
    """Turn an out-of-sample edge into a weight multiplier around 1.

    With fewer than ``min_samples`` votes (or none) the multiplier is 1: no evidence, no change.
    Beyond that the edge is shrunk by ``n / (n + min_samples)`` towards 0, so a short lucky run
    moves a weight less than a long one, then scaled by ``sensitivity`` and clipped to
    ``[floor, cap]``; a floor above 0 keeps a losing agent's votes counted, so it can recover.
    """
    if edge is None or n <= 0 or n < min_samples:
        return 1.0
    shrink = n / (n + min_samples)
    return min(cap, max(floor, 1.0 + sensitivity * edge * shrink))
