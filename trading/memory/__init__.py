"""Quorum-governed memory: episodic recall of past market states and their outcomes, patterns
summarised per regime, and a write path that commits only what a quorum of validators approves.

Pure library (no Dagster, no database driver): storage is a ``MemoryStore``; the PostgreSQL
one lives in ``orchestration.memory_store``.
"""

from trading.memory.book import Evidence, EvidenceConfig, MemoryBook, MemoryConfig
from trading.memory.quorum import (
    PatternConsistency,
    Quorum,
    RiskSafety,
    StatisticalSupport,
    ValidatorConfig,
    propose,
)
from trading.memory.records import (
    MemoryProposal,
    PatternKey,
    PatternStats,
    QuorumOutcome,
    Recalled,
    ValidatorVote,
)
from trading.memory.state import STATE_DIM, state_embedding, state_signature
from trading.memory.store import ExactIndex, InMemoryStore, MemoryStore

__all__ = [
    "STATE_DIM",
    "Evidence",
    "EvidenceConfig",
    "ExactIndex",
    "InMemoryStore",
    "MemoryBook",
    "MemoryConfig",
    "MemoryProposal",
    "MemoryStore",
    "PatternConsistency",
    "PatternKey",
    "PatternStats",
    "Quorum",
    "QuorumOutcome",
    "Recalled",
    "RiskSafety",
    "StatisticalSupport",
    "ValidatorConfig",
    "ValidatorVote",
    "propose",
    "state_embedding",
    "state_signature",
]
