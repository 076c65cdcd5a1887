"""The memory book: turns decisions into proposals once their outcome is known, commits them
through the quorum, and answers "what happened the last k times the market looked like this?".

Time discipline (the same as the weight learner's): a decision made on symbol ``s`` at bar ``t``
is held until the ``horizon_bars``-th later bar of ``s`` closes; only then is its outcome known
and the proposal made. ``mature`` runs for all symbols of a timestamp before any of them
decides, and recall only sees memories matured at or before the asking bar, so a backtest, a
day-by-day trading job and a re-run of a day all recall the same memories.

Evidence: the committee's proposal is compared with what the market did after the ``k`` nearest
remembered states (each weighted by its age, halving every ``half_life_days``). Following the
proposal's side after those states earned a weighted mean ``m`` with standard error ``se`` over
an effective sample ``n_eff``; net of the round-trip cost ``c`` that gives ``t = (m - c) / se``.
With enough support (``n_eff >= min_support``) a negative ``t`` scales the proposal down,
``scale = clip(1 + t / t_full, floor, 1)``. Memory never scales up: the proposal's scale only
limits new exposure, so memory can make the committee more careful, never bolder than the risk
limits allow.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trading.domain import MarketSnapshot, Proposal, Vote
from trading.memory.quorum import Quorum, ValidatorConfig, propose
from trading.memory.records import MemoryProposal, QuorumOutcome, Recalled
from trading.memory.state import state_embedding, state_signature
from trading.memory.store import ExactIndex, MemoryStore


class EvidenceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    k: int = Field(20, ge=1, le=1000)
    min_support: float = Field(5.0, gt=0, allow_inf_nan=False)
    t_full: float = Field(2.0, gt=0, allow_inf_nan=False)
    floor: float = Field(0.0, ge=0, le=1)
    cost_bps: float | None = Field(None, ge=0, le=1000)
    """Round-trip cost an edge must beat; None: twice the config's fee plus slippage."""


class MemoryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    namespace: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    horizon_bars: int = Field(12, ge=1)
    quorum: int = Field(2, ge=1, le=3)
    validators: ValidatorConfig = ValidatorConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    half_life_days: float = Field(30.0, gt=0, allow_inf_nan=False)
    max_age_days: float | None = Field(365.0, gt=0, allow_inf_nan=False)
    capacity: int | None = Field(200_000, ge=1)


@dataclass(frozen=True, slots=True)
class Evidence:
    scale: float
    support: float
    mean_signed_return: float | None
    t_stat: float | None
    neighbours: int


@dataclass(slots=True)
class _Pending:
    index: int
    ts: datetime
    close: float
    embedding: tuple[float, ...] | None
    signature: str | None
    regime: str | None
    direction: float
    confidence: float
    risk_state: str
    vol_short: float
    votes: tuple[Vote, ...]


class MemoryBook:
    def __init__(
        self,
        config: MemoryConfig,
        store: MemoryStore,
        *,
        round_trip_cost_bps: float = 0.0,
        quorum: Quorum | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.quorum = quorum or Quorum.default(config.quorum, config.validators)
        evidence_cost = config.evidence.cost_bps
        self.cost = (evidence_cost if evidence_cost is not None else round_trip_cost_bps) / 1e4
        self.index = ExactIndex(store.committed(config.namespace))
        self._pending: dict[str, deque[_Pending]] = {}
        self._bars: dict[str, int] = {}
        self.outcomes: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.evicted = 0
        self._advised = 0
        self._scaled_down = 0
        self._scale_sum = 0.0
        self._last_state: tuple[tuple[str, datetime], tuple[float, ...] | None] | None = None

    # -- the path of a decision ---------------------------------------------------------------

    def seed(self, snapshot: MarketSnapshot, direction: float, confidence: float,
             votes: tuple[Vote, ...], risk_state: str) -> None:  # fmt: skip
        """Replay an earlier decision (already proposed by the run that saw it mature, if it
        did): it only refills the pending queue, nothing is proposed."""
        self._advance(snapshot, propose_matured=False)
        self._hold(snapshot, direction, confidence, votes, risk_state)

    def mature(self, snapshots: Sequence[MarketSnapshot]) -> list[QuorumOutcome]:
        """A new bar of each of ``snapshots``: propose every decision whose horizon it ends."""
        outcomes = []
        for snapshot in snapshots:
            outcomes.extend(self._advance(snapshot, propose_matured=True))
        return outcomes

    def remember(self, snapshot: MarketSnapshot, proposal: Proposal, risk_state: str) -> None:
        """Hold this decision until its horizon passes."""
        self._hold(snapshot, proposal.direction, proposal.confidence, proposal.votes, risk_state)

    def advise(self, snapshot: MarketSnapshot, proposal: Proposal) -> tuple[Proposal, Evidence]:
        """The proposal with its scale lowered by contrary evidence (unchanged otherwise)."""
        evidence = self.evidence(snapshot, proposal)
        if evidence.t_stat is not None:  # the evidence had support: count what it did
            self._advised += 1
            self._scale_sum += evidence.scale
            self._scaled_down += evidence.scale < 1.0
        if evidence.scale >= proposal.scale:
            return proposal, evidence
        return proposal.model_copy(update={"scale": evidence.scale}), evidence

    def close_day(self, as_of: datetime) -> int:
        """Apply the eviction rules at the end of a trading day; returns how many went."""
        config = self.config
        if config.max_age_days is None and config.capacity is None:
            return 0
        older_than = (
            as_of - timedelta(days=config.max_age_days) if config.max_age_days is not None else None
        )
        keys = self.store.evict(config.namespace, older_than=older_than, capacity=config.capacity)
        self.index.remove(set(keys))
        self.evicted += len(keys)
        return len(keys)

    # -- recall and evidence ------------------------------------------------------------------

    def recall(
        self, embedding: Sequence[float], k: int | None = None, as_of: datetime | None = None
    ) -> list[Recalled]:
        """The ``k`` nearest remembered states known at ``as_of``, with their decayed weights."""
        found = self.index.search(embedding, k or self.config.evidence.k, as_of)
        half_life = self.config.half_life_days
        recalled = []
        for memory, distance in found:
            age_days = ((as_of - memory.matured_at).total_seconds() / 86400.0) if as_of else 0.0
            recalled.append(Recalled(memory, distance, 0.5 ** (max(age_days, 0.0) / half_life)))
        return recalled

    def evidence(self, snapshot: MarketSnapshot, proposal: Proposal) -> Evidence:
        side = (proposal.direction > 0) - (proposal.direction < 0)
        settings = self.config.evidence
        if side == 0 or not settings.enabled or len(self.index) == 0:
            return Evidence(1.0, 0.0, None, None, 0)
        embedding = self._state(snapshot)
        if embedding is None:
            return Evidence(1.0, 0.0, None, None, 0)
        recalled = self.recall(embedding, settings.k, snapshot.ts)
        weights = [r.weight for r in recalled]
        total = sum(weights)
        if total <= 0.0:
            return Evidence(1.0, 0.0, None, None, len(recalled))
        support = total * total / sum(w * w for w in weights)
        signed = [side * r.memory.realised_return for r in recalled]
        mean = sum(w * x for w, x in zip(weights, signed, strict=True)) / total
        variance = sum(w * (x - mean) ** 2 for w, x in zip(weights, signed, strict=True)) / total
        if support < settings.min_support:
            return Evidence(1.0, support, mean, None, len(recalled))
        standard_error = math.sqrt(variance / support)
        edge = mean - self.cost
        if standard_error == 0.0:
            t_stat = math.copysign(math.inf, edge) if edge else 0.0
        else:
            t_stat = edge / standard_error
        scale = 1.0 if t_stat >= 0 else max(settings.floor, 1.0 + t_stat / settings.t_full)
        return Evidence(scale, support, mean, t_stat, len(recalled))

    # -- summaries ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts for reports and asset metadata (plain JSON types)."""
        return {
            "namespace": self.config.namespace,
            "quorum": f"{self.quorum.required} of {len(self.quorum.validators)}",
            "proposed": sum(self.outcomes.values()),
            "outcomes": dict(sorted(self.outcomes.items())),
            "refusals_by_validator": dict(sorted(self.rejections.items())),
            "evicted": self.evicted,
            "memories": len(self.index),
            "evidence_enabled": self.config.evidence.enabled,
            "decisions_advised": self._advised,
            "decisions_scaled_down": self._scaled_down,
            "mean_evidence_scale": (self._scale_sum / self._advised) if self._advised else None,
        }

    # -- internals ----------------------------------------------------------------------------

    def _state(self, snapshot: MarketSnapshot) -> tuple[float, ...] | None:
        """The snapshot's state embedding; the last one is kept, since a decision asks for its
        evidence and is then remembered with the same state."""
        key = (snapshot.symbol, snapshot.ts)
        if self._last_state is None or self._last_state[0] != key:
            bar = snapshot.bar
            state = state_embedding(snapshot.features, bar.close, bar.high, bar.low)
            self._last_state = (key, state)
        return self._last_state[1]

    def _advance(self, snapshot: MarketSnapshot, *, propose_matured: bool) -> list[QuorumOutcome]:
        symbol = snapshot.symbol
        count = self._bars.get(symbol, 0) + 1
        self._bars[symbol] = count
        queue = self._pending.get(symbol)
        outcomes: list[QuorumOutcome] = []
        horizon = self.config.horizon_bars
        while queue and count - queue[0].index >= horizon:
            held = queue.popleft()
            if not propose_matured or held.embedding is None or held.signature is None:
                continue
            proposal = MemoryProposal(
                key=MemoryProposal.make_key(self.config.namespace, symbol, held.ts, horizon),
                namespace=self.config.namespace,
                symbol=symbol,
                ts=held.ts,
                matured_at=snapshot.ts,
                horizon_bars=horizon,
                regime=held.regime,
                signature=held.signature,
                embedding=held.embedding,
                direction=held.direction,
                confidence=held.confidence,
                risk_state=held.risk_state,
                vol_short=held.vol_short,
                realised_return=snapshot.bar.close / held.close - 1.0,
                votes=held.votes,
            )
            outcome = propose(self.store, self.quorum, proposal)
            self.outcomes[outcome.status] += 1
            for vote in outcome.votes:
                if not vote.approve:
                    self.rejections[vote.validator] += 1
            if outcome.committed:
                self.index.add(proposal)
            outcomes.append(outcome)
        return outcomes

    def _hold(self, snapshot: MarketSnapshot, direction: float, confidence: float,
              votes: tuple[Vote, ...], risk_state: str) -> None:  # fmt: skip
        bar = snapshot.bar
        features = snapshot.features
        embedding = self._state(snapshot)
        signature = state_signature(features, direction)
        queue = self._pending.setdefault(snapshot.symbol, deque())
        queue.append(
            _Pending(
                index=self._bars.get(snapshot.symbol, 0),
                ts=snapshot.ts,
                close=bar.close,
                embedding=embedding,
                signature=signature,
                regime=snapshot.regime,
                direction=direction,
                confidence=confidence,
                risk_state=risk_state,
                vol_short=float(features.get("vol_short") or 0.0),
                votes=votes,
            )
        )
