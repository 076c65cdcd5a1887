"""What the memory keeps: proposals (a decision and its realised outcome), validator votes,
and per-pattern outcome statistics.

Plain frozen dataclasses rather than pydantic models: a backtest makes one proposal per bar, and
everything in them is built by ``MemoryBook`` from already validated snapshots and proposals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from trading.domain import Vote

Status = Literal["committed", "rejected", "duplicate"]


@dataclass(frozen=True, slots=True)
class PatternKey:
    """A recurring situation: the state's signature within one regime of one namespace."""

    namespace: str
    regime: str
    signature: str

    def __str__(self) -> str:
        return f"{self.regime}:{self.signature}"


@dataclass(frozen=True, slots=True)
class MemoryProposal:
    """One decision, its market state and the outcome ``horizon_bars`` bars later.

    ``key`` identifies it across runs and writers (namespace, symbol, decision time, horizon), so
    the same decision can be proposed any number of times and is remembered at most once.
    ``realised_return`` is the market's return over the horizon (``close[t+h] / close[t] - 1``),
    whatever the committee did; ``matured_at`` is the bar that realised it, the earliest time
    the memory may be recalled.
    """

    key: str
    namespace: str
    symbol: str
    ts: datetime
    matured_at: datetime
    horizon_bars: int
    regime: str | None
    signature: str
    embedding: tuple[float, ...]
    direction: float
    confidence: float
    risk_state: str
    vol_short: float
    realised_return: float
    votes: tuple[Vote, ...] = ()

    @property
    def pattern_key(self) -> PatternKey:
        return PatternKey(self.namespace, self.regime or "unknown", self.signature)

    @property
    def side(self) -> int:
        return (self.direction > 0) - (self.direction < 0)

    @staticmethod
    def make_key(namespace: str, symbol: str, ts: datetime, horizon_bars: int) -> str:
        return f"{namespace}/{symbol}/{ts.strftime('%Y-%m-%dT%H:%M:%SZ')}/h{horizon_bars}"


@dataclass(frozen=True, slots=True)
class PatternStats:
    """Outcomes of every committed memory of one pattern, as sums (mergeable, O(1) to update).

    ``hits`` counts memories whose side matched the realised return's sign, out of ``decided``
    (memories with a side and a non-zero return); ``sum_signed_return`` is what following the
    side earned in total.
    """

    key: PatternKey
    count: int = 0
    decided: int = 0
    hits: int = 0
    sum_return: float = 0.0
    sum_sq_return: float = 0.0
    sum_signed_return: float = 0.0
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    @property
    def mean_return(self) -> float | None:
        return self.sum_return / self.count if self.count else None

    @property
    def std_return(self) -> float | None:
        """Sample standard deviation of the realised returns (None below two samples)."""
        if self.count < 2:
            return None
        mean = self.sum_return / self.count
        variance = (self.sum_sq_return - self.count * mean * mean) / (self.count - 1)
        return math.sqrt(max(variance, 0.0))

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.decided if self.decided else None

    def updated(self, memory: MemoryProposal) -> PatternStats:
        r = memory.realised_return
        signed = memory.side * r
        decided = memory.side != 0 and r != 0.0
        return replace(
            self,
            count=self.count + 1,
            decided=self.decided + decided,
            hits=self.hits + (decided and signed > 0),
            sum_return=self.sum_return + r,
            sum_sq_return=self.sum_sq_return + r * r,
            sum_signed_return=self.sum_signed_return + signed,
            first_seen=min(self.first_seen or memory.matured_at, memory.matured_at),
            last_seen=max(self.last_seen or memory.matured_at, memory.matured_at),
        )

    def as_row(self) -> dict[str, object]:
        return {
            "namespace": self.key.namespace,
            "regime": self.key.regime,
            "signature": self.key.signature,
            "count": self.count,
            "decided": self.decided,
            "hits": self.hits,
            "hit_rate": self.hit_rate,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "sum_return": self.sum_return,
            "sum_sq_return": self.sum_sq_return,
            "sum_signed_return": self.sum_signed_return,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True, slots=True)
class ValidatorVote:
    validator: str
    approve: bool
    reason: str


@dataclass(frozen=True, slots=True)
class QuorumOutcome:
    """What became of a proposal; ``votes`` is empty for a duplicate (it was decided before)."""

    key: str
    status: Status
    votes: tuple[ValidatorVote, ...] = ()

    @property
    def committed(self) -> bool:
        return self.status == "committed"


@dataclass(frozen=True, slots=True)
class Recalled:
    """A remembered state near the one asked about: its distance and its decayed weight."""

    memory: MemoryProposal
    distance: float
    weight: float
