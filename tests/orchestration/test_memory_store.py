"""The memory's PostgreSQL store against a real embedded PostgreSQL with pgvector: the quorum's
records, concurrent writers, a server restart, eviction, savepoints, and HNSW search."""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from orchestration.memory_store import PostgresMemoryStore
from trading.memory import (
    STATE_DIM,
    ExactIndex,
    MemoryBook,
    MemoryConfig,
    MemoryProposal,
    Quorum,
    propose,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def proposals(n: int, *, seed: int = 1, namespace: str = "test") -> list[MemoryProposal]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ts = T0 + timedelta(minutes=5 * i)
        embedding = tuple(float(x) for x in rng.uniform(-1, 1, STATE_DIM).astype(np.float32))
        out.append(
            MemoryProposal(
                key=MemoryProposal.make_key(namespace, "ETH/BTC", ts, 12),
                namespace=namespace,
                symbol="ETH/BTC",
                ts=ts,
                matured_at=ts + timedelta(hours=1),
                horizon_bars=12,
                regime=["ranging", "volatile"][i % 2],
                signature=["up/mid/calm/long", "down/low/stormy/short"][i % 3 == 0],
                embedding=embedding,
                direction=[0.5, -0.5, 0.0][i % 3],
                confidence=0.6,
                # every seventh a buy under a halted gate: the safety validator refuses it
                risk_state="halted" if i % 7 == 0 else "active",
                vol_short=0.004,
                # every eleventh an implausible jump: the support validator refuses it
                realised_return=0.3 if i % 11 == 0 else float(rng.normal(0, 0.005)),
            )
        )
    return out


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresMemoryStore]:
    engine = sa.create_engine(pg_url, pool_size=8, connect_args={"options": "-c timezone=UTC"})
    yield PostgresMemoryStore(engine)
    engine.dispose()


def test_votes_commits_and_refusals_are_recorded(store: PostgresMemoryStore) -> None:
    quorum = Quorum.default(2)
    batch = proposals(80)
    outcomes = [propose(store, quorum, p) for p in batch]
    by_key = {o.key: o for o in outcomes}
    both_refuse = [p for i, p in enumerate(batch) if i % 77 == 0 and p.direction > 0]
    assert all(by_key[p.key].status == "rejected" for p in both_refuse) and both_refuse
    committed = [o.key for o in outcomes if o.committed]
    assert sorted(m.key for m in store.committed("test")) == sorted(committed)
    assert store.status(both_refuse[0].key) == "rejected"
    votes = {v.validator: v for v in store.votes(both_refuse[0].key)}
    assert not votes["safety"].approve and not votes["support"].approve
    one_dissent = batch[21]  # halted buy, plausible return: only safety refuses
    assert by_key[one_dissent.key].status == "committed"
    assert {v.validator: v.approve for v in store.votes(one_dissent.key)} == {
        "consistency": True, "safety": False, "support": True,
    }  # fmt: skip
    # what comes back is what went in, to the last bit of the float32 state
    stored = {m.key: m for m in store.committed("test")}
    assert stored[one_dissent.key].embedding == one_dissent.embedding
    assert stored[one_dissent.key].realised_return == one_dissent.realised_return
    assert sum(p.count for p in store.patterns("test")) == len(committed)
    stats = store.statistics("test")
    assert stats["memories"] == len(committed)
    assert stats["proposals"] == {"committed": len(committed), "rejected": 80 - len(committed)}
    assert stats["refusals_by_validator"]["safety"] > 0


def test_concurrent_writers_never_store_a_memory_twice(store: PostgresMemoryStore) -> None:
    batch = proposals(120, seed=5)
    quorum = Quorum.default(2)
    statuses: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def writer(seed: int) -> None:
        mine = list(batch)
        random.Random(seed).shuffle(mine)  # every writer proposes every key, in its own order
        try:
            start.wait()
            for proposal in mine:
                outcome = propose(PostgresMemoryStore(store.engine), quorum, proposal)
                with lock:
                    statuses.append(outcome.status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    decided = statuses.count("committed") + statuses.count("rejected")
    assert decided == len(batch) and statuses.count("duplicate") == 3 * len(batch)
    with store.engine.connect() as conn:
        proposals_n, votes_n, memories_n, distinct = conn.execute(
            sa.text(
                "select (select count(*) from memory.proposals), "
                "(select count(*) from memory.votes), (select count(*) from memory.memories), "
                "(select count(distinct key) from memory.memories)"
            )
        ).one()
    assert proposals_n == len(batch) and votes_n == 3 * len(batch)
    assert memories_n == distinct == statuses.count("committed")
    assert sum(p.count for p in store.patterns("test")) == memories_n


def test_nothing_is_lost_on_a_server_restart() -> None:
    from orchestration.embedded import ensure_postgres, stop_postgres
    from orchestration.migrations import upgrade_to_head

    root = Path(tempfile.mkdtemp(prefix="cs-mem-", dir="/tmp"))  # a short unix-socket path
    data_dir = root / "pg"
    try:
        url = ensure_postgres(data_dir, database="memory_restart")
        upgrade_to_head(url)
        engine = sa.create_engine(url)
        batch = proposals(60, seed=9)
        for proposal in batch:
            propose(PostgresMemoryStore(engine), Quorum.default(2), proposal)
        before = PostgresMemoryStore(engine)
        remembered = before.committed("test")
        patterns = before.patterns("test")
        votes = {p.key: before.votes(p.key) for p in batch}
        engine.dispose()
        assert stop_postgres(data_dir)

        url = ensure_postgres(data_dir, database="memory_restart")
        engine = sa.create_engine(url)
        after = PostgresMemoryStore(engine)
        assert after.committed("test") == remembered and remembered
        assert after.patterns("test") == patterns
        assert {p.key: after.votes(p.key) for p in batch} == votes
        # a book opened after the restart recalls the same memories and refuses re-proposals
        book = MemoryBook(MemoryConfig(namespace="test"), after)
        assert len(book.index) == len(remembered)
        assert propose(after, Quorum.default(2), batch[1]).status == "duplicate"
        engine.dispose()
    finally:
        stop_postgres(data_dir)
        shutil.rmtree(root, ignore_errors=True)


def test_eviction_deletes_memories_and_keeps_the_audit_trail(store: PostgresMemoryStore) -> None:
    batch = proposals(50, seed=3)
    for proposal in batch:
        propose(store, Quorum.default(2), proposal)
    live = store.committed("test")
    cutoff = live[10].matured_at
    evicted = store.evict("test", older_than=cutoff, capacity=20)
    remaining = store.committed("test")
    assert len(remaining) == 20 and all(m.matured_at >= cutoff for m in remaining)
    assert sorted(evicted) == sorted({m.key for m in live} - {m.key for m in remaining})
    assert store.status(evicted[0]) == "evicted" and len(store.votes(evicted[0])) == 3


def test_a_bound_store_commits_only_with_its_callers_transaction(
    store: PostgresMemoryStore,
) -> None:
    batch = proposals(10, seed=4)
    with pytest.raises(RuntimeError, match="the day failed"), store.engine.begin() as conn:
        bound = store.bound(conn)
        outcomes = [propose(bound, Quorum.default(2), p) for p in batch]
        assert any(o.committed for o in outcomes)
        assert len(bound.committed("test")) > 0  # visible inside the transaction
        raise RuntimeError("the day failed")
    assert store.committed("test") == [] and store.statistics("test")["proposals"] == {}


def test_hnsw_search_agrees_with_exact_search(store: PostgresMemoryStore) -> None:
    batch = proposals(600, seed=11)
    for proposal in batch:
        propose(store, Quorum.default(1), proposal)  # one approval: keep nearly all
    remembered = store.committed("test")
    exact = ExactIndex(remembered)
    rng = np.random.default_rng(12)
    hits = total = 0
    for _ in range(20):
        query = rng.uniform(-1, 1, STATE_DIM)
        truth = {m.key for m, _ in exact.search(query, 10)}
        found = store.nearest("test", query, 10, ef_search=100)
        assert len(found) == 10
        assert [d for _, d in found] == sorted(d for _, d in found)
        with store.searcher("test", ef_search=100) as search:
            assert search(query, 10) == found
        hits += len(truth & {key for key, _ in found})
        total += 10
    assert hits / total >= 0.95
    with store.engine.connect() as conn:
        conn.execute(sa.text("set enable_seqscan = off"))
        plan = "\n".join(
            conn.execute(
                sa.text(
                    "explain select key from memory.memories "
                    "order by embedding <-> cast(:q as vector) limit 10"
                ),
                {"q": "[" + ",".join(["0"] * STATE_DIM) + "]"},
            ).scalars()
        )
    assert "memories_embedding_hnsw_idx" in plan


def test_hnsw_search_finds_k_within_a_small_namespace(pg_url: str) -> None:
    """Another namespace fills most of the table: the filter must not starve the index scan.
    (Sequential scans and the namespace index are off so this small table is searched through
    HNSW, as a large one is.)"""
    engine = sa.create_engine(
        pg_url, connect_args={"options": "-c timezone=UTC -c enable_seqscan=off"}
    )
    with engine.begin() as conn:
        conn.execute(sa.text("drop index memory.memories_namespace_matured_idx"))
    store = PostgresMemoryStore(engine)
    for proposal in proposals(1500, seed=13, namespace="big"):
        propose(store, Quorum.default(1), proposal)
    small = proposals(40, seed=14, namespace="small")
    for proposal in small:
        propose(store, Quorum.default(1), proposal)
    exact = ExactIndex(store.committed("small"))
    query = np.random.default_rng(15).uniform(-1, 1, STATE_DIM)
    found = store.nearest("small", query, 10, ef_search=10)
    assert [key for key, _ in found] == [m.key for m, _ in exact.search(query, 10)]
    engine.dispose()
