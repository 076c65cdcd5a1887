"""The quorum that decides whether a proposed memory becomes durable.

Three independent validators each vote, with a reason, on a proposal and on the pattern it
would update (read under the store's lock, so they judge the state the commit will change):

- ``StatisticalSupport``: is this a well-formed observation? A complete state, a finite outcome
  from a matured horizon, and a return that is plausible for the bar volatility at the time
  (more than ``max_sigma`` volatilities over the horizon is far more likely a data error than a
  lesson).
- ``PatternConsistency``: does it contradict what the pattern has already established? Once a
  pattern has ``min_evidence`` memories, a return more than ``max_sigma`` of its standard
  deviations from its mean is refused; a young pattern has nothing to contradict.
- ``RiskSafety``: may the committee learn from it without trading past a limit? A buy decided
  while the gate was REDUCING or HALTED was overridden by the gate, so its outcome says nothing
  about acting on it; an outcome not yet observed at the proposal time would leak the future.

``Quorum.required`` of them (2 of 3 by default, 3 of 3 for a stricter memory) must approve.
Every vote is kept, whether the proposal commits or not. The commit itself is
``propose(store, quorum, proposal)``: duplicate check, votes and write in one store transaction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from trading.memory.records import MemoryProposal, PatternStats, QuorumOutcome, ValidatorVote
from trading.memory.state import STATE_DIM


class ValidatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    support_max_sigma: float = Field(8.0, gt=0, allow_inf_nan=False)
    consistency_min_evidence: int = Field(30, ge=2)
    consistency_max_sigma: float = Field(6.0, gt=0, allow_inf_nan=False)


class DuplicateProposal(Exception):
    """Raised by a store's ``record`` when another writer already recorded this key."""


class Validator(Protocol):
    name: str

    def validate(self, proposal: MemoryProposal, pattern: PatternStats) -> ValidatorVote:
        """Approve or refuse, with the reason in words a reviewer can check."""
        ...


class StatisticalSupport:
    name = "support"

    def __init__(self, max_sigma: float = 8.0) -> None:
        self.max_sigma = max_sigma

    def validate(self, proposal: MemoryProposal, pattern: PatternStats) -> ValidatorVote:
        embedding = proposal.embedding
        if len(embedding) != STATE_DIM or not all(math.isfinite(x) for x in embedding):
            return self._no(f"state is not {STATE_DIM} finite numbers")
        r = proposal.realised_return
        if not math.isfinite(r) or r <= -1.0:
            return self._no(f"realised return {r} is not a possible return")
        if proposal.horizon_bars < 1 or proposal.matured_at <= proposal.ts:
            return self._no("the horizon has not passed: the outcome is not observed yet")
        if not proposal.vol_short > 0:
            return self._no("no bar volatility to judge the outcome against")
        sigma = proposal.vol_short * math.sqrt(proposal.horizon_bars)
        z = r / sigma
        if abs(z) > self.max_sigma:
            return self._no(
                f"return {r:+.4%} is {z:+.1f} volatilities over {proposal.horizon_bars} bars "
                f"(limit {self.max_sigma:g}): more likely a bad bar than a lesson"
            )
        return ValidatorVote(self.name, True, f"return {r:+.4%} is {z:+.1f} volatilities")

    def _no(self, reason: str) -> ValidatorVote:
        return ValidatorVote(self.name, False, reason)


class PatternConsistency:
    name = "consistency"

    def __init__(self, min_evidence: int = 30, max_sigma: float = 6.0) -> None:
        self.min_evidence = min_evidence
        self.max_sigma = max_sigma

    def validate(self, proposal: MemoryProposal, pattern: PatternStats) -> ValidatorVote:
        if pattern.count < self.min_evidence:
            return ValidatorVote(
                self.name,
                True,
                f"pattern {pattern.key} has {pattern.count} < {self.min_evidence} memories: "
                "nothing established to contradict",
            )
        mean, std = pattern.mean_return, pattern.std_return
        assert mean is not None and std is not None
        r = proposal.realised_return
        if std == 0.0:
            if r == mean:
                return ValidatorVote(self.name, True, f"matches pattern {pattern.key} exactly")
            return ValidatorVote(
                self.name,
                False,
                f"pattern {pattern.key} has never varied from {mean:+.4%} "
                f"over {pattern.count} memories; {r:+.4%} contradicts it",
            )
        z = (r - mean) / std
        if abs(z) > self.max_sigma:
            return ValidatorVote(
                self.name,
                False,
                f"return {r:+.4%} is {z:+.1f} sd from pattern {pattern.key}'s mean {mean:+.4%} "
                f"over {pattern.count} memories (limit {self.max_sigma:g})",
            )
        return ValidatorVote(
            self.name, True, f"{z:+.1f} sd from pattern {pattern.key} ({pattern.count} memories)"
        )


class RiskSafety:
    name = "safety"

    def validate(self, proposal: MemoryProposal, pattern: PatternStats) -> ValidatorVote:
        if proposal.direction > 0 and proposal.risk_state != "active":
            return ValidatorVote(
                self.name,
                False,
                f"a buy decided while the risk gate was {proposal.risk_state}: the gate "
                "overrode it, so its outcome is no evidence for acting on it",
            )
        if proposal.matured_at <= proposal.ts:
            return ValidatorVote(
                self.name, False, "outcome dated at or before the decision: it would leak"
            )
        return ValidatorVote(
            self.name, True, f"decided under an {proposal.risk_state} gate, outcome observed"
        )


class Quorum:
    """``required`` approvals out of the validators' votes commit a proposal."""

    def __init__(self, validators: Sequence[Validator], required: int) -> None:
        if not validators:
            raise ValueError("a quorum needs at least one validator")
        names = [v.name for v in validators]
        if len(set(names)) != len(names):
            raise ValueError(f"validator names must be unique, got {names}")
        if not 1 <= required <= len(validators):
            raise ValueError(
                f"required approvals must be between 1 and {len(validators)}, got {required}"
            )
        self.validators = tuple(validators)
        self.required = required

    @classmethod
    def default(cls, required: int = 2, config: ValidatorConfig | None = None) -> Quorum:
        config = config or ValidatorConfig()
        return cls(
            [
                StatisticalSupport(config.support_max_sigma),
                PatternConsistency(config.consistency_min_evidence, config.consistency_max_sigma),
                RiskSafety(),
            ],
            required,
        )

    def vote(
        self, proposal: MemoryProposal, pattern: PatternStats
    ) -> tuple[bool, tuple[ValidatorVote, ...]]:
        votes = []
        for validator in self.validators:
            try:
                vote = validator.validate(proposal, pattern)
            except Exception as exc:  # a broken validator refuses; it never commits by accident
                vote = ValidatorVote(validator.name, False, f"validator failed: {exc!r}")
            votes.append(vote)
        approvals = sum(vote.approve for vote in votes)
        return approvals >= self.required, tuple(votes)


class MemoryTransaction(Protocol):
    def pattern(self, proposal: MemoryProposal) -> PatternStats:
        """The proposal's pattern, locked against other writers until the transaction ends."""
        ...

    def is_known(self, key: str) -> bool:
        """Whether a proposal with this key was decided before (committed or rejected)."""
        ...

    def record(
        self,
        proposal: MemoryProposal,
        votes: tuple[ValidatorVote, ...],
        committed: bool,
        pattern_after: PatternStats | None,
    ) -> None:
        """Keep the proposal and its votes; when committed, the memory and the new pattern."""
        ...


class TransactionalStore(Protocol):
    def transaction(self):  # noqa: ANN201 - a context manager yielding a MemoryTransaction
        ...


def propose(store: TransactionalStore, quorum: Quorum, proposal: MemoryProposal) -> QuorumOutcome:
    """Put ``proposal`` to the quorum and record the result, atomically.

    The pattern row is locked first, and every proposal of the same key has the same pattern,
    so concurrent writers of one key are serialised: the first decides, the rest see it known
    and return ``duplicate`` without voting again. (A store also refuses a second record of a
    key with ``DuplicateProposal``, for the same key proposed with different content.)
    """
    try:
        with store.transaction() as tx:
            pattern = tx.pattern(proposal)
            if tx.is_known(proposal.key):
                return QuorumOutcome(proposal.key, "duplicate")
            committed, votes = quorum.vote(proposal, pattern)
            tx.record(proposal, votes, committed, pattern.updated(proposal) if committed else None)
    except DuplicateProposal:  # the same key with other content won a race; nothing was written
        return QuorumOutcome(proposal.key, "duplicate")
    return QuorumOutcome(proposal.key, "committed" if committed else "rejected", votes)
