"""Where memories are kept, and how the nearest ones are found.

``MemoryStore`` is what the book needs from storage: a transaction for the quorum's commit
(see ``trading.memory.quorum.propose``), the committed memories to index, eviction, and the
audit trail. ``InMemoryStore`` keeps everything in dictionaries behind one lock (backtests and
unit tests); ``orchestration.memory_store.PostgresMemoryStore`` keeps it in PostgreSQL with
pgvector, durable and safe for concurrent writers.

``ExactIndex`` is the exact nearest-neighbour search over committed states that the book
recalls from: a numpy scan whose ties break by insertion order, so recall is deterministic and
identical in a backtest and in the trading job (pgvector's HNSW index is approximate; it serves
readers of the database, and the retrieval benchmark compares the two).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from trading.memory.records import MemoryProposal, PatternKey, PatternStats, ValidatorVote
from trading.memory.state import STATE_DIM


class MemoryStore(Protocol):
    def transaction(self):  # noqa: ANN201 - context manager of a MemoryTransaction
        ...

    def committed(self, namespace: str) -> list[MemoryProposal]:
        """Every live memory of ``namespace``, ordered by (matured_at, key)."""
        ...

    def patterns(self, namespace: str) -> list[PatternStats]: ...

    def votes(self, key: str) -> list[ValidatorVote]: ...

    def evict(
        self, namespace: str, *, older_than: datetime | None, capacity: int | None
    ) -> list[str]:
        """Drop memories matured before ``older_than``, then the oldest beyond ``capacity``;
        patterns not seen since ``older_than`` go too. Returns the evicted memory keys."""
        ...


class _InMemoryTransaction:
    def __init__(self, store: InMemoryStore) -> None:
        self.store = store

    def pattern(self, proposal: MemoryProposal) -> PatternStats:
        key = proposal.pattern_key
        return self.store._patterns.get(key) or PatternStats(key)

    def is_known(self, key: str) -> bool:
        return key in self.store._status

    def record(
        self,
        proposal: MemoryProposal,
        votes: tuple[ValidatorVote, ...],
        committed: bool,
        pattern_after: PatternStats | None,
    ) -> None:
        store = self.store
        store._status[proposal.key] = "committed" if committed else "rejected"
        store._votes[proposal.key] = list(votes)
        if committed:
            assert pattern_after is not None
            store._memories[proposal.key] = proposal
            store._patterns[pattern_after.key] = pattern_after


class InMemoryStore:
    """A process-local store: the same contract as PostgreSQL, without durability."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memories: dict[str, MemoryProposal] = {}
        self._patterns: dict[PatternKey, PatternStats] = {}
        self._status: dict[str, str] = {}
        self._votes: dict[str, list[ValidatorVote]] = {}

    @contextmanager
    def transaction(self) -> Iterator[_InMemoryTransaction]:
        with self._lock:
            yield _InMemoryTransaction(self)

    def committed(self, namespace: str) -> list[MemoryProposal]:
        with self._lock:
            live = [m for m in self._memories.values() if m.namespace == namespace]
        return sorted(live, key=lambda m: (m.matured_at, m.key))

    def patterns(self, namespace: str) -> list[PatternStats]:
        with self._lock:
            found = [p for k, p in self._patterns.items() if k.namespace == namespace]
        return sorted(found, key=lambda p: (p.key.regime, p.key.signature))

    def votes(self, key: str) -> list[ValidatorVote]:
        with self._lock:
            return list(self._votes.get(key, []))

    def status(self, key: str) -> str | None:
        with self._lock:
            return self._status.get(key)

    def evict(
        self, namespace: str, *, older_than: datetime | None, capacity: int | None
    ) -> list[str]:
        with self._lock:
            live = sorted(
                (m for m in self._memories.values() if m.namespace == namespace),
                key=lambda m: (m.matured_at, m.key),
            )
            doomed = [m for m in live if older_than is not None and m.matured_at < older_than]
            rest = live[len(doomed) :]
            if capacity is not None and len(rest) > capacity:
                doomed += rest[: len(rest) - capacity]
            for memory in doomed:
                del self._memories[memory.key]
                self._status[memory.key] = "evicted"
            if older_than is not None:
                stale = [
                    k
                    for k, p in self._patterns.items()
                    if k.namespace == namespace
                    and p.last_seen is not None
                    and p.last_seen < older_than
                ]
                for key in stale:
                    del self._patterns[key]
            return [m.key for m in doomed]


class ExactIndex:
    """Exact k-nearest search (Euclidean) over memories, filtered to those matured by a time."""

    def __init__(self, memories: Sequence[MemoryProposal] = ()) -> None:
        self._vectors = np.empty((max(len(memories), 1024), STATE_DIM), dtype=np.float64)
        self._matured = np.empty(self._vectors.shape[0], dtype="datetime64[us]")
        self._memories: list[MemoryProposal] = []
        for memory in memories:
            self.add(memory)

    def __len__(self) -> int:
        return len(self._memories)

    def add(self, memory: MemoryProposal) -> None:
        n = len(self._memories)
        if n == self._vectors.shape[0]:
            self._vectors = np.concatenate([self._vectors, np.empty_like(self._vectors)])
            self._matured = np.concatenate([self._matured, np.empty_like(self._matured)])
        self._vectors[n] = memory.embedding
        self._matured[n] = _as_datetime64(memory.matured_at)
        self._memories.append(memory)

    def remove(self, keys: set[str]) -> None:
        if not keys:
            return
        kept = [i for i, m in enumerate(self._memories) if m.key not in keys]
        n = len(kept)
        self._vectors[:n] = self._vectors[kept]
        self._matured[:n] = self._matured[kept]
        self._memories = [self._memories[i] for i in kept]

    def search(
        self, query: Sequence[float], k: int, as_of: datetime | None = None
    ) -> list[tuple[MemoryProposal, float]]:
        """The ``k`` nearest memories (matured at or before ``as_of``), nearest first."""
        n = len(self._memories)
        if n == 0 or k <= 0:
            return []
        diff = self._vectors[:n] - np.asarray(query, dtype=np.float64)
        distances = np.einsum("ij,ij->i", diff, diff)
        if as_of is not None:
            distances[self._matured[:n] > _as_datetime64(as_of)] = np.inf
        k = min(k, n)
        # Every point within the k-th distance (ties included), ordered by (distance,
        # insertion), so the answer does not depend on how a partition picks among ties.
        kth = np.partition(distances, k - 1)[k - 1]
        candidates = np.flatnonzero(distances <= kth)
        order = np.lexsort((candidates, distances[candidates]))[:k]
        chosen = candidates[order]
        return [
            (self._memories[i], float(np.sqrt(distances[i])))
            for i in chosen
            if np.isfinite(distances[i])
        ]


def _as_datetime64(ts: datetime) -> np.datetime64:
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(ts, "us")
