"""The quorum-governed memory: nearest-state retrieval with pgvector HNSW against an exact numpy
scan, and memory commits per second through the quorum against plain INSERTs, in the same run.

1. Retrieval. Real market states: ``trading.memory.state.state_embedding`` of the features
   (``trading.features.compute_features``, default windows) of every OHLCV file in
   ``../shared/data/ohlcv`` that ``trading.backtest.data.load_dataset`` accepts (the funding-rate
   file is refused and skipped): about 82k states. ``--queries`` of them (seeded sample) are held
   out as queries and never inserted. For each size N (``--sizes``) the first N of one seeded
   order of the rest are in ``memory.memories``: every real state first, then, beyond the real
   count, real states resampled with Gaussian jitter (sd 0.01, seeded ``numpy.random.Generator``,
   cast to float32); the output says how many of each. The sizes are nested: each stage COPYs
   only the rows it adds (proposals first, for the foreign key), then drops and rebuilds the
   HNSW index (m=16, ef_construction=64, maintenance_work_mem 1GB, 2 parallel maintenance
   workers) and reports both times.

   Per query, the methods take turns, in an order rotated from query to query: the exact numpy
   scan (float32 matrix, squared L2 from dot products, ``argpartition``; one BLAS thread, as one
   PostgreSQL backend serves one query), ``PostgresMemoryStore.nearest(namespace, query, k=10,
   ef_search=...)`` (a pool checkout and a transaction per call),
   ``PostgresMemoryStore.searcher`` (one kept connection, a prepared statement), and a raw
   psycopg prepared ``select key ... order by embedding <-> %s::vector limit 10`` on an
   autocommit connection with ``hnsw.ef_search`` set for the session, for
   ef_search 40 (pgvector's default) and ``--ef-high``. P50/P99 latency, and recall@10 two ways,
   both tie-aware (a returned row counts if its float64 distance is within the 10th one):
   against the numpy baseline's results, and against a float64 scan of every row (untimed), which
   also shows how exact the baseline itself is. Stored vectors are read back and compared with
   the numpy matrix, and the plans are checked: a figure is only an HNSW figure if the index was
   used. A CHECKPOINT after each build keeps the load's writes out of the timed queries.

   Then (largest size, ``--filter-fraction``): a second namespace holding that fraction of N
   rows is added, and queries restricted to it show what a ``where namespace = ...`` filter does
   when the planner still picks the HNSW index: pgvector filters after the index scan, so the
   raw query returns fewer than 10 rows; the store's paths set ``hnsw.iterative_scan =
   strict_order`` and return all 10.

2. Commits. ``trading.memory.quorum.propose(PostgresMemoryStore(engine), Quorum.default(2), p)``
   for ``--commits`` real proposals (the same states, a trend-following side, the realised
   12-bar return), one writer; 4 writer threads with separate proposals; 4 writers all proposing
   the same keys (the duplicates must be refused: the counts are printed and checked against the
   table); and the trading job's way, every proposal a savepoint of one transaction (``bound``).
   Baselines, same run, same server, same rows, same engine (``engine_for_url``, the production
   one): plain ``INSERT`` of the memory rows into ``memory.memories``, one transaction per row
   (their ``memory.proposals`` rows COPYed beforehand, untimed, for the foreign key); with
   ``ON CONFLICT DO NOTHING`` for the same-keys case; one transaction for all rows for the
   ``bound`` case. Each variant writes its own namespace of a second, fresh migrated database
   (so every commit meets the migration's HNSW index on a small table). Wall time and this
   process's CPU time (the Python side of the path) are reported.

3. Peak RSS of this process (``ru_maxrss``) at the end.

A fresh embedded PostgreSQL (with pgvector) runs in a temporary directory under /tmp and is
stopped at the end. Run from the repo root::

    .venv/bin/python benchmarks/bench_memory.py [--sizes 10000,100000,1000000] [--queries 1000]
    .venv/bin/python benchmarks/bench_memory.py --quick     # 10k only, 200 queries, 300 commits
"""

from __future__ import annotations

import os

# One BLAS thread for the numpy baseline: a PostgreSQL backend answers one query on one core,
# and idle BLAS threads spinning on a 2-core machine would slow the server between queries.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from orchestration.embedded import ensure_postgres, stop_postgres  # noqa: E402
from orchestration.memory_store import PostgresMemoryStore, vector_literal  # noqa: E402
from orchestration.migrations import upgrade_to_head  # noqa: E402
from orchestration.resources.postgres import engine_for_url  # noqa: E402
from trading.backtest.data import DatasetError, load_dataset  # noqa: E402
from trading.features import compute_features  # noqa: E402
from trading.memory import (  # noqa: E402
    STATE_DIM,
    MemoryProposal,
    Quorum,
    propose,
    state_embedding,
    state_signature,
)
from trading.regime import classify_regimes  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "ohlcv"
K = 10
HORIZON = 12
NAMESPACE = "bench"
OTHER_NAMESPACE = "other"
JITTER_SD = 0.01
COPY_CHUNK = 100_000
WARM_UP_QUERIES = 50
HNSW_INDEX = "memories_embedding_hnsw_idx"
CREATE_HNSW = (
    f"create index {HNSW_INDEX} on memory.memories "
    "using hnsw (embedding vector_l2_ops) with (m = 16, ef_construction = 64)"
)
RAW_NEAREST = (
    "select key from memory.memories where namespace = %s "
    "order by embedding <-> %s::vector limit 10"
)
PROPOSAL_COLUMNS = (
    "key", "namespace", "symbol", "ts", "matured_at", "horizon_bars", "regime", "signature",
    "direction", "confidence", "risk_state", "realised_return", "status",
)  # fmt: skip
MEMORY_COLUMNS = (
    "key", "namespace", "symbol", "ts", "matured_at", "horizon_bars", "regime", "signature",
    "embedding", "direction", "confidence", "risk_state", "vol_short", "realised_return",
)  # fmt: skip
PLAIN_INSERT = """
    insert into memory.memories (key, namespace, symbol, ts, matured_at, horizon_bars, regime,
        signature, embedding, direction, confidence, risk_state, vol_short, realised_return)
    values (:key, :namespace, :symbol, :ts, :matured_at, :horizon_bars, :regime, :signature,
        cast(:embedding as vector), :direction, :confidence, :risk_state, :vol_short,
        :realised_return)
"""
INSERT_MEMORY = sa.text(PLAIN_INSERT)
INSERT_MEMORY_IGNORE = sa.text(PLAIN_INSERT + " on conflict (key) do nothing")


# -- real market states ------------------------------------------------------------------------


@dataclass
class States:
    """Every real state: its embedding and what a memory row of it needs."""

    vectors: np.ndarray  # (n, STATE_DIM) float32
    symbol: np.ndarray
    ts: np.ndarray  # datetime64[us] UTC, naive
    matured_at: np.ndarray
    regime: np.ndarray
    signature: np.ndarray
    direction: np.ndarray
    vol_short: np.ndarray
    realised_return: np.ndarray  # NaN for the last HORIZON bars of a file
    files: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.vectors)


def load_states(data_dir: Path) -> States:
    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            "vectors",
            "symbol",
            "ts",
            "matured_at",
            "regime",
            "signature",
            "direction",
            "vol_short",
            "realised_return",
        )
    }
    files: list[tuple[str, int]] = []
    skipped: list[str] = []
    for path in sorted(data_dir.glob("*.csv")):
        try:
            dataset = load_dataset(path)
        except DatasetError as exc:
            skipped.append(str(exc).split(":")[0] + ": refused by the loader")
            continue
        bars = dataset.frame
        features = compute_features(bars)
        if not (features["ts"].to_numpy() == bars["ts"].to_numpy()).all():
            raise SystemExit(f"{path.name}: features are not in the candles' order")
        regimes = classify_regimes(features).set_index("ts")["regime"]
        close = bars["close"].to_numpy()
        high, low = bars["high"].to_numpy(), bars["low"].to_numpy()
        future = bars["close"].shift(-HORIZON).to_numpy()
        gap = pd.Timedelta(seconds=dataset.bar_seconds * HORIZON)
        matured = bars["ts"].shift(-HORIZON).fillna(bars["ts"] + gap)
        found = 0
        records = features.to_dict("records")
        for i, row in enumerate(records):
            embedding = state_embedding(row, close[i], high[i], low[i])
            if embedding is None:
                continue
            direction = 0.5 if row["momentum"] > 0 else -0.5 if row["momentum"] < 0 else 0.0
            columns["vectors"].append(embedding)
            columns["symbol"].append(dataset.symbol)
            columns["ts"].append(row["ts"])
            columns["matured_at"].append(matured.iat[i])
            columns["regime"].append(regimes.get(row["ts"], "unknown"))
            columns["signature"].append(state_signature(row, direction))
            columns["direction"].append(direction)
            columns["vol_short"].append(row["vol_short"])
            columns["realised_return"].append(future[i] / close[i] - 1.0)
            found += 1
        files.append((path.name, found))

    def times(values: list[Any]) -> np.ndarray:
        return pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None).to_numpy("M8[us]")

    return States(
        vectors=np.asarray(columns["vectors"], dtype=np.float32),
        symbol=np.asarray(columns["symbol"], dtype=object),
        ts=times(columns["ts"]),
        matured_at=times(columns["matured_at"]),
        regime=np.asarray(columns["regime"], dtype=object),
        signature=np.asarray(columns["signature"], dtype=object),
        direction=np.asarray(columns["direction"], dtype=float),
        vol_short=np.asarray(columns["vol_short"], dtype=float),
        realised_return=np.asarray(columns["realised_return"], dtype=float),
        files=files,
        skipped=skipped,
    )


@dataclass
class Corpus:
    """The rows to insert, in insertion order: ``source[i]`` is the real state row i comes from;
    rows past ``real`` are jittered copies of it."""

    vectors: np.ndarray
    source: np.ndarray
    real: int
    queries: np.ndarray  # held-out real state indices


def build_corpus(states: States, n_queries: int, max_size: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(states))
    queries, pool = order[:n_queries], order[n_queries:]
    extra = max(0, max_size - len(pool))
    picked = rng.integers(0, len(pool), extra)
    jittered = states.vectors[pool[picked]].astype(np.float64) + rng.normal(
        0.0, JITTER_SD, (extra, STATE_DIM)
    )
    vectors = np.concatenate([states.vectors[pool], jittered.astype(np.float32)])[:max_size]
    source = np.concatenate([pool, pool[picked]])[:max_size]
    return Corpus(np.ascontiguousarray(vectors), source, min(len(pool), max_size), queries)


# -- loading -----------------------------------------------------------------------------------


def _iso(values: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(values, unit="s"), "+00:00")


def copy_rows(
    conn: psycopg.Connection,
    states: States,
    vectors: np.ndarray,
    source: np.ndarray,
    *,
    namespace: str,
    prefix: str,
    start: int,
) -> None:
    """COPY proposals then memories for ``vectors`` (keys ``prefix{start + i}``), in chunks."""
    for a in range(0, len(vectors), COPY_CHUNK):
        b = min(a + COPY_CHUNK, len(vectors))
        src = source[a:b]
        returns = states.realised_return[src]
        frame = pd.DataFrame(
            {
                "key": [f"{prefix}{start + i}" for i in range(a, b)],
                "namespace": namespace,
                "symbol": states.symbol[src],
                "ts": _iso(states.ts[src]),
                "matured_at": _iso(states.matured_at[src]),
                "horizon_bars": HORIZON,
                "regime": states.regime[src],
                "signature": states.signature[src],
                "direction": states.direction[src],
                "confidence": 0.5,
                "risk_state": "active",
                "realised_return": np.where(np.isfinite(returns), returns, 0.0),
                "status": "committed",
                "vol_short": states.vol_short[src],
                # %.9g round-trips float32 exactly; pgvector parses with strtof.
                "embedding": [
                    "[" + ",".join(["%.9g"] * STATE_DIM) % tuple(v) + "]"
                    for v in vectors[a:b].tolist()
                ],
            }
        )
        for table, cols in (("proposals", PROPOSAL_COLUMNS), ("memories", MEMORY_COLUMNS)):
            data = frame[list(cols)].to_csv(header=False, index=False)
            with conn.cursor().copy(
                f"copy memory.{table} ({', '.join(cols)}) from stdin (format csv)"
            ) as copy:
                copy.write(data)


def relation_mb(conn: psycopg.Connection, name: str) -> float:
    size = conn.execute("select pg_total_relation_size(%s::regclass)", (name,)).fetchone()
    return float(size[0]) / 2**20 if size else float("nan")


def build_index(conn: psycopg.Connection) -> float:
    conn.execute("set maintenance_work_mem = '1GB'")
    conn.execute("set max_parallel_maintenance_workers = 2")
    began = time.perf_counter()
    conn.execute(CREATE_HNSW)
    return time.perf_counter() - began


def plan_uses_hnsw(conn: psycopg.Connection, namespace: str, query: str) -> tuple[bool, str]:
    """Whether the planner answers both nearest paths with the HNSW index (a one-line plan)."""
    lines = [
        r[0]
        for r in conn.execute(
            "explain (costs off) select key from memory.memories where namespace = %s "
            "order by embedding <-> %s::vector limit 10",
            (namespace, query),
        )
    ]
    generic = [
        r[0]
        for r in conn.execute(
            "explain (generic_plan, costs off) select key from memory.memories "
            "where namespace = $1 order by embedding <-> $2::vector limit 10"
        )
    ]
    uses = all(any(HNSW_INDEX in line for line in plan) for plan in (lines, generic))
    summary = " / ".join(line.strip() for line in lines if "Scan" in line or "Sort" in line)
    return uses, summary


# -- retrieval ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrieval:
    size: int
    method: str
    ef_search: int | None
    queries: int
    p50_ms: float
    p99_ms: float
    recall: float
    """Tie-aware recall@10 against the exact (float64) 10 nearest."""
    recall_vs_numpy: float
    """The same against the numpy baseline's 10 results."""
    mean_returned: float
    p50_vs_numpy: float
    p99_vs_numpy: float


@dataclass(frozen=True)
class Stage:
    size: int
    real: int
    jittered: int
    copy_s: float
    build_s: float
    index_mb: float
    table_mb: float
    hnsw_plan: bool
    plan: str


class ExactScan:
    """The baseline: a float32 matrix, squared L2 from dot products, argpartition."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.matrix = vectors
        self.sq_norms = np.einsum("ij,ij->i", vectors, vectors)
        self.matrix64 = vectors.astype(np.float64)

    def search(self, query: np.ndarray) -> np.ndarray:
        distances = self.sq_norms - 2.0 * (self.matrix @ query) + float(query @ query)
        top = np.argpartition(distances, K - 1)[:K]
        return top[np.argsort(distances[top])]

    def distances64(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        diff = self.matrix64[rows] - query.astype(np.float64)
        return np.einsum("ij,ij->i", diff, diff)

    def kth_exact64(self, query: np.ndarray) -> float:
        diff = self.matrix64 - query.astype(np.float64)
        distances = np.einsum("ij,ij->i", diff, diff)
        return float(np.partition(distances, K - 1)[K - 1])


def recall_at_k(scan: ExactScan, query: np.ndarray, kth: float, found: np.ndarray) -> float:
    if len(found) == 0:
        return 0.0
    distances = scan.distances64(query, found)
    return float(np.sum(distances <= kth * (1 + 1e-9) + 1e-12)) / K


def measure_retrieval(
    url: str,
    scan: ExactScan,
    queries: np.ndarray,
    warm: np.ndarray,
    size: int,
    efs: Sequence[int],
    namespace: str = NAMESPACE,
    key_prefix: str = "r",
    iterative: bool = False,
) -> list[Retrieval]:
    store = PostgresMemoryStore(engine_for_url(url))
    conninfo = _conninfo(url)
    raws = {}
    for ef in efs:
        raw = psycopg.connect(**conninfo, autocommit=True)
        raw.execute(f"set hnsw.ef_search = {int(ef)}")
        if iterative:
            raw.execute("set hnsw.iterative_scan = strict_order")
        raws[ef] = raw
    plen = len(key_prefix)

    def store_path(ef: int) -> Callable[[np.ndarray], np.ndarray]:
        def run(q: np.ndarray) -> np.ndarray:
            found = store.nearest(namespace, q.tolist(), k=K, ef_search=ef)
            return np.array([int(key[plen:]) for key, _ in found], dtype=np.int64)

        return run

    searchers = {ef: store.searcher(namespace, ef_search=ef) for ef in efs}

    def searcher_path(ef: int) -> Callable[[np.ndarray], np.ndarray]:
        search = searchers[ef]

        def run(q: np.ndarray) -> np.ndarray:
            found = search(q.tolist(), K)
            return np.array([int(key[plen:]) for key, _ in found], dtype=np.int64)

        return run

    def raw_path(ef: int) -> Callable[[np.ndarray], np.ndarray]:
        cursor = raws[ef].cursor()

        def run(q: np.ndarray) -> np.ndarray:
            cursor.execute(RAW_NEAREST, (namespace, vector_literal(q.tolist())), prepare=True)
            return np.array([int(row[0][plen:]) for row in cursor.fetchall()], dtype=np.int64)

        return run

    methods: list[tuple[str, int | None, Callable[[np.ndarray], np.ndarray]]] = [
        ("numpy exact scan (baseline)", None, scan.search)
    ]
    for ef in efs:
        if not iterative:
            methods.append(("PostgresMemoryStore.nearest", ef, store_path(ef)))
            methods.append(("PostgresMemoryStore.searcher", ef, searcher_path(ef)))
        raw_name = "raw psycopg, iterative_scan" if iterative else "raw psycopg prepared"
        methods.append((raw_name, ef, raw_path(ef)))
    try:
        for q in warm:
            for _, _, run in methods:
                run(q)
        latencies: list[list[float]] = [[] for _ in methods]
        recalls: list[list[float]] = [[] for _ in methods]
        versus_numpy: list[list[float]] = [[] for _ in methods]
        returned: list[list[int]] = [[] for _ in methods]
        for j, q in enumerate(queries):
            kth = scan.kth_exact64(q)
            answers: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(methods)
            # Rotate the order: whichever method runs right after the untimed float64 scan (and
            # the numpy one) finds the CPU caches cold; each method takes that turn equally.
            for step in range(len(methods)):
                m = (j + step) % len(methods)
                run = methods[m][2]
                began = time.perf_counter()
                found = run(q)
                latencies[m].append(time.perf_counter() - began)
                recalls[m].append(recall_at_k(scan, q, kth, found))
                returned[m].append(len(found))
                answers[m] = found
            kth_numpy = float(scan.distances64(q, answers[0]).max())
            for m, found in enumerate(answers):
                versus_numpy[m].append(recall_at_k(scan, q, kth_numpy, found))
    finally:
        for raw in raws.values():
            raw.close()
        for search in searchers.values():
            search.close()
    base50, base99 = (float(np.percentile(latencies[0], p)) * 1e3 for p in (50, 99))
    results = []
    for m, (name, ef, _) in enumerate(methods):
        p50, p99 = (float(np.percentile(latencies[m], p)) * 1e3 for p in (50, 99))
        results.append(
            Retrieval(
                size,
                name,
                ef,
                len(queries),
                p50,
                p99,
                float(np.mean(recalls[m])),
                float(np.mean(versus_numpy[m])),
                float(np.mean(returned[m])),
                p50 / base50,
                p99 / base99,
            )
        )
    return results


def _conninfo(url: str) -> dict[str, Any]:
    parsed = sa.make_url(url)
    host = parsed.query["host"]
    return {
        "host": host if isinstance(host, str) else host[0],
        "user": parsed.username,
        "dbname": parsed.database,
        "options": "-c timezone=UTC",
    }


def retrieval(
    url: str,
    states: States,
    corpus: Corpus,
    sizes: Sequence[int],
    efs: Sequence[int],
    filter_fraction: float,
    seed: int,
    log: Callable[[str], None],
) -> tuple[list[Stage], list[Retrieval], list[Retrieval], dict[str, Any]]:
    stages: list[Stage] = []
    results: list[Retrieval] = []
    filtered: list[Retrieval] = []
    extra: dict[str, Any] = {}
    queries = states.vectors[corpus.queries]
    rng = np.random.default_rng(seed + 1)
    with psycopg.connect(**_conninfo(url), autocommit=True) as conn:
        loaded = 0
        for size in sizes:
            # load without the index (the previous stage's is dropped), then build it
            conn.execute(f"drop index if exists memory.{HNSW_INDEX}")
            began = time.perf_counter()
            with conn.transaction():
                copy_rows(
                    conn,
                    states,
                    corpus.vectors[loaded:size],
                    corpus.source[loaded:size],
                    namespace=NAMESPACE,
                    prefix="r",
                    start=loaded,
                )
            conn.execute("vacuum analyze memory.memories")
            conn.execute("vacuum analyze memory.proposals")
            copy_s = time.perf_counter() - began
            loaded = size
            log(f"N={size:,}: COPY {copy_s:.1f}s; building the HNSW index ...")
            build_s = build_index(conn)
            conn.execute("analyze memory.memories")
            conn.execute("checkpoint")  # flush the load now, not while queries are timed
            _check_round_trip(conn, corpus.vectors[:size], rng)
            uses, plan = plan_uses_hnsw(conn, NAMESPACE, vector_literal(queries[0].tolist()))
            stage = Stage(
                size,
                min(size, corpus.real),
                max(0, size - corpus.real),
                copy_s,
                build_s,
                relation_mb(conn, f"memory.{HNSW_INDEX}"),
                relation_mb(conn, "memory.memories"),
                uses,
                plan,
            )
            stages.append(stage)
            log(f"N={size:,}: HNSW build {build_s:.1f}s, {stage.index_mb:.0f} MB; plan: {plan}")
            scan = ExactScan(corpus.vectors[:size])
            warm = corpus.vectors[rng.integers(0, size, WARM_UP_QUERIES)]
            results += measure_retrieval(url, scan, queries, warm, size, efs)
            for r in results[-len(efs) * 2 - 1 :]:
                log(
                    f"  {r.method:<30} ef={r.ef_search}: P50 {r.p50_ms:.3f} ms, "
                    f"P99 {r.p99_ms:.3f} ms, recall {r.recall:.4f}"
                )
        if filter_fraction > 0:
            filtered, extra = filtered_namespace(
                url, conn, states, corpus, loaded, queries, efs, filter_fraction, rng, log
            )
    return stages, results, filtered, extra


def _check_round_trip(
    conn: psycopg.Connection, vectors: np.ndarray, rng: np.random.Generator
) -> None:
    """The stored vectors must be the very float32 numbers numpy searches."""
    rows = rng.choice(len(vectors), size=min(500, len(vectors)), replace=False)
    keys = [f"r{i}" for i in rows]
    got = dict(
        conn.execute(
            "select key, embedding::real[] from memory.memories where key = any(%s)", (keys,)
        ).fetchall()
    )
    stored = np.array([got[k] for k in keys], dtype=np.float32)
    if not np.array_equal(stored, vectors[rows]):
        raise SystemExit("vectors read back from PostgreSQL differ from the numpy matrix")


def filtered_namespace(
    url: str,
    conn: psycopg.Connection,
    states: States,
    corpus: Corpus,
    size: int,
    queries: np.ndarray,
    efs: Sequence[int],
    fraction: float,
    rng: np.random.Generator,
    log: Callable[[str], None],
) -> tuple[list[Retrieval], dict[str, Any]]:
    """A second namespace of ``fraction * size`` rows, added with the index in place; queries
    of that namespace only."""
    m = max(K, int(size * fraction))
    picked = rng.integers(0, len(states), m)
    vectors = (
        states.vectors[picked].astype(np.float64) + rng.normal(0.0, JITTER_SD, (m, STATE_DIM))
    ).astype(np.float32)
    began = time.perf_counter()
    with conn.transaction():
        copy_rows(conn, states, vectors, picked, namespace=OTHER_NAMESPACE, prefix="o", start=0)
    copy_s = time.perf_counter() - began
    conn.execute("vacuum analyze memory.memories")
    uses, plan = plan_uses_hnsw(conn, OTHER_NAMESPACE, vector_literal(queries[0].tolist()))
    log(
        f"namespace {OTHER_NAMESPACE!r}: {m:,} rows COPYed into the indexed table in {copy_s:.1f}s;"
        f" plan: {plan}"
    )
    scan = ExactScan(vectors)
    subset = queries[: min(len(queries), 200)]
    warm = vectors[rng.integers(0, m, 20)]
    found = measure_retrieval(url, scan, subset, warm, size + m, efs, OTHER_NAMESPACE, "o")
    found += measure_retrieval(
        url, scan, subset, warm, size + m, efs[:1], OTHER_NAMESPACE, "o", iterative=True
    )[1:]
    extra = {
        "rows": m,
        "total_rows": size + m,
        "copy_with_index_s": copy_s,
        "hnsw_plan": uses,
        "plan": plan,
    }
    return found, extra


# -- commits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commits:
    variant: str
    writers: int
    proposals: int
    committed: int
    rejected: int
    duplicate: int
    wall_s: float
    client_cpu_s: float
    """CPU time of this process (all its threads) during the run: the Python side's share."""
    baseline: str

    @property
    def per_s(self) -> float:
        return self.proposals / self.wall_s


def make_proposals(states: States, rows: np.ndarray, namespace: str) -> list[MemoryProposal]:
    out = []
    for i in rows:
        ts = pd.Timestamp(states.ts[i], tz="UTC").to_pydatetime()
        out.append(
            MemoryProposal(
                key=MemoryProposal.make_key(namespace, states.symbol[i], ts, HORIZON),
                namespace=namespace,
                symbol=states.symbol[i],
                ts=ts,
                matured_at=pd.Timestamp(states.matured_at[i], tz="UTC").to_pydatetime(),
                horizon_bars=HORIZON,
                regime=states.regime[i],
                signature=states.signature[i],
                embedding=tuple(float(x) for x in states.vectors[i]),
                direction=float(states.direction[i]),
                confidence=0.5,
                risk_state="active",
                vol_short=float(states.vol_short[i]),
                realised_return=float(states.realised_return[i]),
            )
        )
    return out


def memory_params(p: MemoryProposal) -> dict[str, Any]:
    return {
        "key": p.key,
        "namespace": p.namespace,
        "symbol": p.symbol,
        "ts": p.ts,
        "matured_at": p.matured_at,
        "horizon_bars": p.horizon_bars,
        "regime": p.regime,
        "signature": p.signature,
        "embedding": vector_literal(p.embedding),
        "direction": p.direction,
        "confidence": p.confidence,
        "risk_state": p.risk_state,
        "vol_short": p.vol_short,
        "realised_return": p.realised_return,
    }


def copy_proposal_rows(url: str, proposals: Sequence[MemoryProposal]) -> None:
    rows = [
        (
            p.key,
            p.namespace,
            p.symbol,
            p.ts,
            p.matured_at,
            p.horizon_bars,
            p.regime,
            p.signature,
            p.direction,
            p.confidence,
            p.risk_state,
            p.realised_return,
            "committed",
        )
        for p in proposals
    ]
    with (
        psycopg.connect(**_conninfo(url)) as conn,
        conn.cursor().copy(
            f"copy memory.proposals ({', '.join(PROPOSAL_COLUMNS)}) from stdin"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def in_threads(
    work: Sequence[Callable[[], Counter[str]]],
) -> tuple[float, float, Counter[str]]:
    """Run the jobs in threads at once: wall time, this process's CPU time, summed counts."""
    barrier = threading.Barrier(len(work) + 1)

    def run(job: Callable[[], Counter[str]]) -> Counter[str]:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(len(work)) as pool:
        futures = [pool.submit(run, job) for job in work]
        barrier.wait()
        began, cpu = time.perf_counter(), time.process_time()
        total: Counter[str] = Counter()
        for future in futures:
            total += future.result()
        return time.perf_counter() - began, time.process_time() - cpu, total


def commits(
    url: str, states: States, n: int, seed: int, log: Callable[[str], None]
) -> list[Commits]:
    engine = engine_for_url(url)
    store = PostgresMemoryStore(engine)
    quorum = Quorum.default(2)
    candidates = np.flatnonzero(np.isfinite(states.realised_return))
    keyed = pd.DataFrame({"symbol": states.symbol[candidates], "ts": states.ts[candidates]})
    candidates = candidates[~keyed.duplicated().to_numpy()]  # one symbol, several bar lengths
    rows = np.random.default_rng(seed + 2).choice(candidates, size=n, replace=False)
    rows.sort()  # in time order within a symbol, as a book proposes them

    def quorum_job(
        batch: Sequence[MemoryProposal], target: PostgresMemoryStore | None = None
    ) -> Callable[[], Counter[str]]:
        def job() -> Counter[str]:
            counts: Counter[str] = Counter()
            for p in batch:
                counts[propose(target or store, quorum, p).status] += 1
            return counts

        return job

    def insert_job(
        batch: Sequence[MemoryProposal], statement: sa.TextClause
    ) -> Callable[[], Counter[str]]:
        def job() -> Counter[str]:
            counts: Counter[str] = Counter()
            for p in batch:
                with engine.begin() as conn:
                    inserted = conn.execute(statement, memory_params(p)).rowcount
                counts["committed" if inserted else "duplicate"] += 1
            return counts

        return job

    def split(batch: list[MemoryProposal], parts: int) -> list[list[MemoryProposal]]:
        return [batch[i::parts] for i in range(parts)]

    # untimed warm-up of the pool, the plans and the pattern rows' pages
    quorum_job(make_proposals(states, rows[:20], "warm-q"))()
    results: list[Commits] = []

    def record(
        variant: str,
        writers: int,
        namespace: str,
        timing: tuple[float, float, Counter[str]],
        baseline: str,
        proposed: int,
    ) -> Counter[str]:
        wall, cpu, counts = timing
        results.append(
            Commits(
                variant,
                writers,
                proposed,
                counts["committed"],
                counts["rejected"],
                counts["duplicate"],
                wall,
                cpu,
                baseline,
            )
        )
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text("select count(*) from memory.memories where namespace = :ns"),
                {"ns": namespace},
            ).scalar_one()
        if stored != counts["committed"]:
            raise SystemExit(
                f"{variant}: {stored} memories stored, {counts['committed']} committed"
            )
        log(f"{variant:<48} {wall:6.2f}s (client CPU {cpu:5.2f}s)  {dict(counts)}")
        return counts

    # 1 writer
    base = make_proposals(states, rows, "plain-1")
    copy_proposal_rows(url, base)
    timing = in_threads([insert_job(base, INSERT_MEMORY)])
    record("plain INSERT, 1 txn/row", 1, "plain-1", timing, "", n)
    ours = make_proposals(states, rows, "quorum-1")
    timing = in_threads([quorum_job(ours)])
    record("quorum propose", 1, "quorum-1", timing, "plain INSERT, 1 txn/row", n)

    # 4 writers, separate proposals
    base = make_proposals(states, rows, "plain-4")
    copy_proposal_rows(url, base)
    timing = in_threads([insert_job(b, INSERT_MEMORY) for b in split(base, 4)])
    record("plain INSERT, 1 txn/row, 4 threads", 4, "plain-4", timing, "", n)
    ours = make_proposals(states, rows, "quorum-4")
    timing = in_threads([quorum_job(b) for b in split(ours, 4)])
    record(
        "quorum propose, 4 threads",
        4,
        "quorum-4",
        timing,
        "plain INSERT, 1 txn/row, 4 threads",
        n,
    )

    # 4 writers, the same keys
    base = make_proposals(states, rows, "plain-same")
    copy_proposal_rows(url, base)
    timing = in_threads([insert_job(base, INSERT_MEMORY_IGNORE) for _ in range(4)])
    record(
        "plain INSERT ON CONFLICT DO NOTHING, same keys x4",
        4,
        "plain-same",
        timing,
        "",
        4 * n,
    )
    ours = make_proposals(states, rows, "quorum-same")
    timing = in_threads([quorum_job(ours) for _ in range(4)])
    counts = record(
        "quorum propose, same keys x4",
        4,
        "quorum-same",
        timing,
        "plain INSERT ON CONFLICT DO NOTHING, same keys x4",
        4 * n,
    )
    if counts["committed"] + counts["rejected"] != n or counts["duplicate"] != 3 * n:
        raise SystemExit(f"same keys x4: expected {n} decided and {3 * n} duplicates, got {counts}")
    with engine.connect() as conn:
        decided = conn.execute(
            sa.text("select count(*) from memory.proposals where namespace = 'quorum-same'")
        ).scalar_one()
    if decided != n:
        raise SystemExit(f"same keys x4: {decided} proposals recorded, expected {n}")

    # the trading job's way: every proposal a savepoint of one transaction
    base = make_proposals(states, rows, "plain-tx")
    copy_proposal_rows(url, base)

    def one_transaction() -> Counter[str]:
        with engine.begin() as conn:
            for p in base:
                conn.execute(INSERT_MEMORY, memory_params(p))
        return Counter(committed=len(base))

    timing = in_threads([one_transaction])
    record("plain INSERT, all rows in 1 txn", 1, "plain-tx", timing, "", n)
    ours = make_proposals(states, rows, "quorum-tx")

    def bound_transaction() -> Counter[str]:
        with engine.begin() as conn:
            return quorum_job(ours, store.bound(conn))()

    timing = in_threads([bound_transaction])
    record(
        "quorum propose, bound (savepoints, 1 txn)",
        1,
        "quorum-tx",
        timing,
        "plain INSERT, all rows in 1 txn",
        n,
    )
    return results


# -- output ------------------------------------------------------------------------------------


def server_settings(url: str) -> dict[str, str]:
    with psycopg.connect(**_conninfo(url)) as conn:
        settings = {
            name: conn.execute(f"show {name}").fetchone()[0]
            for name in (
                "server_version",
                "shared_buffers",
                "work_mem",
                "synchronous_commit",
                "fsync",
                "max_parallel_maintenance_workers",
                "jit",
            )
        }
        settings["pgvector"] = conn.execute(
            "select extversion from pg_extension where extname = 'vector'"
        ).fetchone()[0]
    return settings


def postgres_rss_mb(data_dir: Path) -> float:
    pid_file = data_dir / "postmaster.pid"
    try:
        main = psutil.Process(int(pid_file.read_text().split()[0]))
        procs = [main, *main.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except (OSError, psutil.Error, ValueError):
        return float("nan")


def render(
    meta: dict[str, Any],
    stages: list[Stage],
    results: list[Retrieval],
    filtered: list[Retrieval],
    filter_info: dict[str, Any],
    commit_results: list[Commits],
) -> str:
    out = []
    out.append("### Retrieval: 10 nearest states, pgvector HNSW vs exact numpy scan\n")
    out.append("| N | real | jittered | COPY s | HNSW build s | index MB | table MB | HNSW plan |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in stages:
        out.append(
            f"| {s.size:,} | {s.real:,} | {s.jittered:,} | {s.copy_s:.1f} | "
            f"{s.build_s:.1f} | {s.index_mb:.0f} | {s.table_mb:.0f} | "
            f"{'yes' if s.hnsw_plan else 'NO'} |"
        )
    out.append("")
    out.append(
        "| N | method | ef_search | P50 ms | P99 ms | recall@10 exact | recall@10 vs numpy | "
        "P50 / numpy | P99 / numpy |"
    )
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        out.append(_retrieval_row(r))
    if filtered:
        f = filter_info
        out.append("")
        out.append(
            f"Filtered: namespace {OTHER_NAMESPACE!r} holds {f['rows']:,} of "
            f"{f['total_rows']:,} rows ({f['rows'] / f['total_rows']:.1%}), added by COPY "
            f"into the indexed table in {f['copy_with_index_s']:.1f} s; HNSW plan: "
            f"{'yes' if f['hnsw_plan'] else 'no'} ({f['plan']}).\n"
        )
        out.append(
            "| rows searched | method | ef_search | P50 ms | P99 ms | recall@10 exact | "
            "rows returned (of 10) | P50 / numpy |"
        )
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in filtered:
            out.append(
                f"| {f['rows']:,} | {r.method} | {r.ef_search or '-'} | {r.p50_ms:.3f} | "
                f"{r.p99_ms:.3f} | {r.recall:.4f} | {r.mean_returned:.2f} | "
                f"{r.p50_vs_numpy:.3f}x |"
            )
    out.append("\n### Commits through the quorum vs plain INSERTs\n")
    out.append(
        "| variant | writers | proposals | committed | rejected | duplicate | wall s | "
        "client CPU s | proposals/s | vs baseline |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    by_name = {c.variant: c for c in commit_results}
    for c in commit_results:
        ratio = f"{c.per_s / by_name[c.baseline].per_s:.3f}x" if c.baseline else "baseline"
        out.append(
            f"| {c.variant} | {c.writers} | {c.proposals:,} | {c.committed:,} | "
            f"{c.rejected:,} | {c.duplicate:,} | {c.wall_s:.2f} | {c.client_cpu_s:.2f} | "
            f"{c.per_s:,.0f} | {ratio} |"
        )
    out.append("\n### Memory\n")
    out.append("| process | peak RSS MiB |")
    out.append("|---|---:|")
    out.append(f"| this benchmark (ru_maxrss) | {meta['peak_rss_mib']:.0f} |")
    out.append(
        f"| PostgreSQL server, all processes (RSS sum at the end, shared pages counted "
        f"once per process) | {meta['postgres_rss_mib']:.0f} |"
    )
    return "\n".join(out)


def _retrieval_row(r: Retrieval) -> str:
    ratio50 = "1.000x" if r.ef_search is None else f"{r.p50_vs_numpy:.3f}x"
    ratio99 = "1.000x" if r.ef_search is None else f"{r.p99_vs_numpy:.3f}x"
    return (
        f"| {r.size:,} | {r.method} | {r.ef_search or '-'} | {r.p50_ms:.3f} | "
        f"{r.p99_ms:.3f} | {r.recall:.4f} | {r.recall_vs_numpy:.4f} | {ratio50} | {ratio99} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="memory counts to search, comma-separated (nested, ascending)",
    )
    parser.add_argument("--queries", type=int, default=1000, help="held-out query states")
    parser.add_argument("--commits", type=int, default=2000, help="proposals per commit variant")
    parser.add_argument("--ef-high", type=int, default=100, help="the higher ef_search measured")
    parser.add_argument(
        "--filter-fraction",
        type=float,
        default=0.05,
        help="size of a second namespace, as a fraction of the largest N "
        "(0: skip the filtered-query check)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="10k memories, 200 queries, 300 commits"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries, args.commits = "10000", 200, 300
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or sizes[0] <= K or args.queries < 1 or args.commits < 4:
        parser.error("sizes must be > 10, --queries >= 1, --commits >= 4")
    efs = (40, args.ef_high)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    states = load_states(args.data_dir)
    log(
        f"{len(states):,} real states from {len(states.files)} files "
        f"({time.perf_counter() - began:.1f}s); skipped: {states.skipped}"
    )
    if args.queries + args.commits > len(states):
        parser.error("not enough real states for that many queries")
    corpus = build_corpus(states, args.queries, sizes[-1], args.seed)

    root = Path(tempfile.mkdtemp(prefix="csm-", dir="/tmp"))
    pg_dir = root / "pg"
    try:
        url = ensure_postgres(pg_dir, database="bench")
        upgrade_to_head(url)
        settings = server_settings(url)
        stages, results, filtered, filter_info = retrieval(
            url, states, corpus, sizes, efs, args.filter_fraction, args.seed, log
        )
        commit_url = ensure_postgres(pg_dir, database="commits")
        upgrade_to_head(commit_url)
        commit_results = commits(commit_url, states, args.commits, args.seed, log)
        postgres_rss = postgres_rss_mb(pg_dir)
        for engine_url in (url, commit_url):
            engine_for_url(engine_url).dispose()
    finally:
        stop_postgres(pg_dir)
        shutil.rmtree(root, ignore_errors=True)

    meta: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "psycopg": version("psycopg"),
        "sqlalchemy": version("sqlalchemy"),
        "postgres": settings,
        "real_states": len(states),
        "files": states.files,
        "skipped": states.skipped,
        "queries": args.queries,
        "sizes": sizes,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "postgres_rss_mib": postgres_rss,
        "elapsed_s": round(time.perf_counter() - began, 1),
    }
    pool = len(states) - args.queries
    print(
        f"bench_memory {meta['date']}: {meta['cpus']} cores, python {meta['python']}, numpy "
        f"{meta['numpy']} (1 BLAS thread), psycopg {meta['psycopg']}, SQLAlchemy "
        f"{meta['sqlalchemy']}, PostgreSQL {settings['server_version']} (embedded), pgvector "
        f"{settings['pgvector']}; shared_buffers {settings['shared_buffers']}, synchronous_commit "
        f"{settings['synchronous_commit']}, fsync {settings['fsync']}, jit {settings['jit']}"
    )
    print(
        f"states: {len(states):,} real market states (state_embedding of compute_features) from "
        f"{len(states.files)} OHLCV files; skipped {len(states.skipped)}: "
        f"{'; '.join(states.skipped) or '-'}"
    )
    print(
        f"queries: {args.queries:,} held-out real states (seed {args.seed}), never inserted; "
        f"{pool:,} real states left to insert."
    )
    if sizes[-1] > pool:
        print(
            f"NOTE: sizes above {pool:,} are padded with real states resampled with Gaussian "
            f"jitter (sd {JITTER_SD}, seeded numpy Generator, cast to float32): "
            + ", ".join(f"N={s.size:,}: {s.jittered:,} jittered" for s in stages if s.jittered)
        )
    print(
        "recall@10 is tie-aware (a returned row counts if its float64 distance is within the "
        "10th true distance): 'exact' against a float64 scan of all rows, 'vs numpy' against the "
        "numpy baseline's 10 results (its float32 dot-product form can misorder near-ties, so "
        "its own exact recall may fall just short of 1). Latency ratios are this/numpy (below "
        "1: faster than the exact scan). Methods take turns per query, in rotating order. HNSW: "
        "m=16, ef_construction=64, built after loading with maintenance_work_mem=1GB, "
        "max_parallel_maintenance_workers=2, then CHECKPOINT before timing.\n"
    )
    print(render(meta, stages, results, filtered, filter_info, commit_results))
    print(
        f"\n{meta['elapsed_s']} s in all; 1-min load average {meta['load_1min_before']} before, "
        f"{meta['load_1min_after']} after"
    )
    if args.json is not None:
        report = {
            "meta": meta,
            "stages": [asdict(s) for s in stages],
            "retrieval": [asdict(r) for r in results],
            "filtered": [asdict(r) for r in filtered],
            "filtered_info": filter_info,
            "commits": [asdict(c) | {"per_s": c.per_s} for c in commit_results],
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
