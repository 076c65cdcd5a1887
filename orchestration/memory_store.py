"""The memory's PostgreSQL store: durable, shared by concurrent writers, searchable with pgvector.

Implements ``trading.memory.store.MemoryStore`` over the ``memory`` schema (migration 0008).
Each proposal is decided in one transaction (see ``trading.memory.quorum.propose``): the
pattern row is created if missing and locked with ``SELECT ... FOR UPDATE``, the key is checked,
the votes are taken against the locked pattern, and the proposal, its votes and (when committed)
the memory and the new pattern totals are written before the lock is released. Writers of the
same key therefore queue on the same row, and the proposal's primary key refuses the rest, so
no memory is ever stored twice. Nothing is held in the process: a restarted process, or another
one, sees exactly what was committed.

``bound(conn)`` makes every proposal a savepoint inside the caller's transaction instead: the
trading job decides a day's memories and writes its decisions in one transaction, so a failed
day leaves no memory behind either.

``nearest`` asks pgvector's HNSW index directly (approximate; ``ef_search`` trades speed for
recall). The trading path recalls from the exact in-process index the book builds from
``committed``; the retrieval benchmark measures both against a numpy scan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from trading.memory.quorum import DuplicateProposal
from trading.memory.records import MemoryProposal, PatternKey, PatternStats, ValidatorVote

_LOCK_PATTERN = sa.text(
    """
    insert into memory.patterns (namespace, regime, signature)
    values (:namespace, :regime, :signature)
    on conflict do nothing
    """
)
_SELECT_PATTERN = sa.text(
    """
    select count, decided, hits, sum_return, sum_sq_return, sum_signed_return,
           first_seen, last_seen
    from memory.patterns
    where namespace = :namespace and regime = :regime and signature = :signature
    for update
    """
)
_IS_KNOWN = sa.text("select 1 from memory.proposals where key = :key")
_INSERT_PROPOSAL = sa.text(
    """
    insert into memory.proposals (key, namespace, symbol, ts, matured_at, horizon_bars, regime,
        signature, direction, confidence, risk_state, realised_return, status)
    values (:key, :namespace, :symbol, :ts, :matured_at, :horizon_bars, :regime, :signature,
        :direction, :confidence, :risk_state, :realised_return, :status)
    on conflict (key) do nothing
    returning key
    """
)
_INSERT_VOTE = sa.text(
    "insert into memory.votes (key, validator, approve, reason) "
    "values (:key, :validator, :approve, :reason)"
)
_INSERT_MEMORY = sa.text(
    """
    insert into memory.memories (key, namespace, symbol, ts, matured_at, horizon_bars, regime,
        signature, embedding, direction, confidence, risk_state, vol_short, realised_return, votes)
    values (:key, :namespace, :symbol, :ts, :matured_at, :horizon_bars, :regime, :signature,
        cast(:embedding as vector), :direction, :confidence, :risk_state, :vol_short,
        :realised_return, cast(:votes as jsonb))
    """
)
_UPDATE_PATTERN = sa.text(
    """
    update memory.patterns set count = :count, decided = :decided, hits = :hits,
        sum_return = :sum_return, sum_sq_return = :sum_sq_return,
        sum_signed_return = :sum_signed_return, first_seen = :first_seen, last_seen = :last_seen
    where namespace = :namespace and regime = :regime and signature = :signature
    """
)
_COMMITTED = sa.text(
    """
    select key, namespace, symbol, ts, matured_at, horizon_bars, regime, signature,
           embedding::real[] as embedding, direction, confidence, risk_state, vol_short,
           realised_return
    from memory.memories where namespace = :namespace order by matured_at, key
    """
)
_PATTERNS = sa.text(
    "select * from memory.patterns where namespace = :namespace order by regime, signature"
)
_VOTES = sa.text(
    "select validator, approve, reason from memory.votes where key = :key order by validator"
)
_SEARCH_SETTINGS = sa.text(
    "select set_config('hnsw.ef_search', :ef_search, true), "
    "set_config('hnsw.iterative_scan', 'strict_order', true)"
)
_NEAREST = sa.text(
    """
    select key, embedding <-> cast(:query as vector) as distance
    from memory.memories where namespace = :namespace
    order by embedding <-> cast(:query as vector) limit :k
    """
)


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form; ``repr`` keeps every digit, so float32 values round-trip exactly."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def _ts(value: Any) -> datetime:
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


class _PostgresTransaction:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def pattern(self, proposal: MemoryProposal) -> PatternStats:
        key = proposal.pattern_key
        params = {"namespace": key.namespace, "regime": key.regime, "signature": key.signature}
        self.conn.execute(_LOCK_PATTERN, params)
        row = self.conn.execute(_SELECT_PATTERN, params).mappings().one()
        return _pattern(key, row)

    def is_known(self, key: str) -> bool:
        return self.conn.execute(_IS_KNOWN, {"key": key}).first() is not None

    def record(
        self,
        proposal: MemoryProposal,
        votes: tuple[ValidatorVote, ...],
        committed: bool,
        pattern_after: PatternStats | None,
    ) -> None:
        row = _proposal_row(proposal)
        inserted = self.conn.execute(
            _INSERT_PROPOSAL, {**row, "status": "committed" if committed else "rejected"}
        ).first()
        if inserted is None:
            raise DuplicateProposal(proposal.key)
        self.conn.execute(
            _INSERT_VOTE,
            [
                {"key": proposal.key, "validator": v.validator, "approve": v.approve,
                 "reason": v.reason}
                for v in votes
            ],
        )  # fmt: skip
        if committed:
            assert pattern_after is not None
            self.conn.execute(
                _INSERT_MEMORY,
                {
                    **row,
                    "embedding": vector_literal(proposal.embedding),
                    "vol_short": proposal.vol_short,
                    "votes": json.dumps([v.model_dump(mode="json") for v in proposal.votes]),
                },
            )
            pattern = pattern_after.as_row()
            self.conn.execute(
                _UPDATE_PATTERN,
                {k: pattern[k] for k in _PATTERN_COLUMNS} | {
                    "namespace": pattern_after.key.namespace,
                    "regime": pattern_after.key.regime,
                    "signature": pattern_after.key.signature,
                },
            )  # fmt: skip


_PATTERN_COLUMNS = (
    "count", "decided", "hits", "sum_return", "sum_sq_return", "sum_signed_return",
    "first_seen", "last_seen",
)  # fmt: skip


def _pattern(key: PatternKey, row: Any) -> PatternStats:
    return PatternStats(
        key=key,
        count=row["count"],
        decided=row["decided"],
        hits=row["hits"],
        sum_return=row["sum_return"],
        sum_sq_return=row["sum_sq_return"],
        sum_signed_return=row["sum_signed_return"],
        first_seen=_ts(row["first_seen"]) if row["first_seen"] is not None else None,
        last_seen=_ts(row["last_seen"]) if row["last_seen"] is not None else None,
    )


def _proposal_row(proposal: MemoryProposal) -> dict[str, Any]:
    return {
        "key": proposal.key,
        "namespace": proposal.namespace,
        "symbol": proposal.symbol,
        "ts": proposal.ts,
        "matured_at": proposal.matured_at,
        "horizon_bars": proposal.horizon_bars,
        "regime": proposal.regime,
        "signature": proposal.signature,
        "direction": proposal.direction,
        "confidence": proposal.confidence,
        "risk_state": proposal.risk_state,
        "realised_return": proposal.realised_return,
    }


class PostgresMemoryStore:
    def __init__(self, engine: sa.Engine, conn: sa.Connection | None = None) -> None:
        self.engine = engine
        self._conn = conn

    def bound(self, conn: sa.Connection) -> PostgresMemoryStore:
        """The same store, deciding every proposal in a savepoint of ``conn``'s transaction."""
        return PostgresMemoryStore(self.engine, conn)

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        if self._conn is not None:
            with self._conn.begin_nested():
                yield _PostgresTransaction(self._conn)
        else:
            with self.engine.begin() as conn:
                yield _PostgresTransaction(conn)

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self.engine.connect() as conn:
                yield conn

    def committed(self, namespace: str) -> list[MemoryProposal]:
        with self._reading() as conn:
            rows = conn.execute(_COMMITTED, {"namespace": namespace}).mappings().all()
        return [
            MemoryProposal(
                key=row["key"],
                namespace=row["namespace"],
                symbol=row["symbol"],
                ts=_ts(row["ts"]),
                matured_at=_ts(row["matured_at"]),
                horizon_bars=row["horizon_bars"],
                regime=row["regime"],
                signature=row["signature"],
                # real[] arrives as the shortest decimal of each float32: back to that float32
                embedding=tuple(float(x) for x in np.asarray(row["embedding"], np.float32)),
                direction=row["direction"],
                confidence=row["confidence"],
                risk_state=row["risk_state"],
                vol_short=row["vol_short"],
                realised_return=row["realised_return"],
            )  # the agents' votes stay in the database: recall does not need them
            for row in rows
        ]

    def patterns(self, namespace: str) -> list[PatternStats]:
        with self._reading() as conn:
            rows = conn.execute(_PATTERNS, {"namespace": namespace}).mappings().all()
        return [
            _pattern(PatternKey(namespace, row["regime"], row["signature"]), row) for row in rows
        ]

    def votes(self, key: str) -> list[ValidatorVote]:
        with self._reading() as conn:
            rows = conn.execute(_VOTES, {"key": key}).all()
        return [ValidatorVote(validator, approve, reason) for validator, approve, reason in rows]

    def status(self, key: str) -> str | None:
        with self._reading() as conn:
            return conn.execute(
                sa.text("select status from memory.proposals where key = :key"), {"key": key}
            ).scalar_one_or_none()

    def evict(
        self, namespace: str, *, older_than: datetime | None, capacity: int | None
    ) -> list[str]:
        with self.transaction() as tx:
            conn = tx.conn
            evicted: list[str] = []
            if older_than is not None:
                evicted += (
                    conn.execute(
                        sa.text(
                            "delete from memory.memories where namespace = :namespace "
                            "and matured_at < :older_than returning key"
                        ),
                        {"namespace": namespace, "older_than": older_than},
                    )
                    .scalars()
                    .all()
                )
                conn.execute(
                    sa.text(
                        "delete from memory.patterns where namespace = :namespace "
                        "and last_seen < :older_than"
                    ),
                    {"namespace": namespace, "older_than": older_than},
                )
            if capacity is not None:
                evicted += (
                    conn.execute(
                        sa.text(
                            """
                        delete from memory.memories where key in (
                            select key from memory.memories where namespace = :namespace
                            order by matured_at desc, key desc offset :capacity)
                        returning key
                        """
                        ),
                        {"namespace": namespace, "capacity": capacity},
                    )
                    .scalars()
                    .all()
                )
            if evicted:
                conn.execute(
                    sa.text(
                        "update memory.proposals set status = 'evicted' where key = any(:keys)"
                    ),
                    {"keys": evicted},
                )
        return sorted(evicted)

    def nearest(
        self,
        namespace: str,
        query: Sequence[float],
        k: int = 10,
        *,
        ef_search: int | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` nearest memories of ``namespace`` by pgvector's HNSW index, nearest first.

        The namespace filter applies after the index scan, so with several namespaces in the
        table a plain scan of ``ef_search`` candidates can return fewer than ``k`` rows;
        ``hnsw.iterative_scan = strict_order`` (pgvector 0.8) keeps scanning until ``k`` match,
        in exact distance order.
        """
        with self.engine.begin() as conn:
            conn.execute(
                _SEARCH_SETTINGS, {"ef_search": str(int(ef_search)) if ef_search else "40"}
            )
            rows = conn.execute(
                _NEAREST, {"namespace": namespace, "query": vector_literal(query), "k": k}
            ).all()
        return [(key, float(distance)) for key, distance in rows]

    def searcher(self, namespace: str, *, ef_search: int = 40) -> NearestSearch:
        """A kept connection for many nearest-state queries (``nearest`` pays a pool checkout,
        a transaction and the settings on every call)."""
        return NearestSearch(self.engine, namespace, ef_search=ef_search)

    def statistics(self, namespace: str) -> dict[str, Any]:
        """Counts of one namespace for the memory asset's metadata."""
        params = {"namespace": namespace}
        with self._reading() as conn:
            statuses = dict(conn.execute(_STATUS_COUNTS, params).all())
            refusals = dict(conn.execute(_REFUSALS, params).all())
            live, oldest, newest = conn.execute(_LIVE, params).one()
        return {
            "proposals": {str(k): int(v) for k, v in sorted(statuses.items())},
            "refusals_by_validator": {str(k): int(v) for k, v in sorted(refusals.items())},
            "memories": int(live),
            "oldest": _ts(oldest).isoformat() if oldest is not None else None,
            "newest": _ts(newest).isoformat() if newest is not None else None,
        }


_STATUS_COUNTS = sa.text(
    "select status, count(*) from memory.proposals where namespace = :namespace group by 1"
)
_REFUSALS = sa.text(
    """
    select v.validator, count(*) from memory.votes v join memory.proposals p using (key)
    where p.namespace = :namespace and not v.approve group by 1
    """
)
_LIVE = sa.text(
    "select count(*), min(matured_at), max(matured_at) from memory.memories "
    "where namespace = :namespace"
)


_NEAREST_RAW = (
    "select key, embedding <-> %s::vector as distance from memory.memories "
    "where namespace = %s order by embedding <-> %s::vector limit %s"
)


class NearestSearch:
    """Repeated HNSW queries over one pooled psycopg connection, with a prepared statement.

    The search settings are set once for the session (``ef_search``; ``iterative_scan =
    strict_order`` so a namespace filter never returns fewer than ``k``) and reset when the
    connection goes back to the pool on ``close``. Use it as a context manager.
    """

    def __init__(self, engine: sa.Engine, namespace: str, *, ef_search: int = 40) -> None:
        if ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        self.namespace = namespace
        self._pooled = engine.raw_connection()
        self._conn = self._pooled.driver_connection
        self._conn.commit()
        self._conn.autocommit = True
        self._conn.execute(
            "select set_config('hnsw.ef_search', %s, false), "
            "set_config('hnsw.iterative_scan', 'strict_order', false)",
            (str(int(ef_search)),),
        )

    def __call__(self, query: Sequence[float], k: int = 10) -> list[tuple[str, float]]:
        vector = vector_literal(query)
        rows = self._conn.execute(
            _NEAREST_RAW, (vector, self.namespace, vector, k), prepare=True
        ).fetchall()
        return [(key, float(distance)) for key, distance in rows]

    def close(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute("reset hnsw.ef_search")
            self._conn.execute("reset hnsw.iterative_scan")
            self._conn.autocommit = False
        finally:
            self._pooled.close()  # back to the pool
            self._conn = None

    def __enter__(self) -> NearestSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
