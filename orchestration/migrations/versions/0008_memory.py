"""The quorum-governed memory: proposals, validator votes, memories (pgvector HNSW), patterns.

Every proposal is kept with its status and every validator's vote and reason, committed or
not, so a reviewer can see why the memory holds what it holds. ``memory.memories`` is the live
episodic memory (evicted rows are deleted; their proposal keeps the audit trail with status
``evicted``). The HNSW index serves nearest-state queries by Euclidean distance (the states are
8 squashed, scale-free numbers; see trading/memory/state.py).

trading.decisions gains the risk state a decision was made under (the safety validator reads it
when a decision is proposed on a later day) and the scale the memory's evidence allowed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = [
    "create schema if not exists memory",
    """
    create table memory.proposals (
        key             text             primary key,
        namespace       text             not null,
        symbol          text             not null,
        ts              timestamptz      not null,
        matured_at      timestamptz      not null,
        horizon_bars    integer          not null,
        regime          text,
        signature       text             not null,
        direction       double precision not null,
        confidence      double precision not null,
        risk_state      text             not null,
        realised_return double precision not null,
        status          text             not null
                        check (status in ('committed', 'rejected', 'evicted')),
        recorded_at     timestamptz      not null default now()
    )
    """,
    "create index proposals_namespace_status_idx on memory.proposals (namespace, status)",
    """
    create table memory.votes (
        key       text    not null references memory.proposals (key) on delete cascade,
        validator text    not null,
        approve   boolean not null,
        reason    text    not null,
        primary key (key, validator)
    )
    """,
    """
    create table memory.memories (
        key             text             primary key references memory.proposals (key),
        namespace       text             not null,
        symbol          text             not null,
        ts              timestamptz      not null,
        matured_at      timestamptz      not null,
        horizon_bars    integer          not null,
        regime          text,
        signature       text             not null,
        embedding       vector(8)        not null,
        direction       double precision not null,
        confidence      double precision not null,
        risk_state      text             not null,
        vol_short       double precision not null,
        realised_return double precision not null,
        votes           jsonb            not null default '[]'::jsonb
    )
    """,
    "create index memories_namespace_matured_idx on memory.memories (namespace, matured_at, key)",
    """
    create index memories_embedding_hnsw_idx on memory.memories
        using hnsw (embedding vector_l2_ops) with (m = 16, ef_construction = 64)
    """,
    """
    create table memory.patterns (
        namespace         text             not null,
        regime            text             not null,
        signature         text             not null,
        count             integer          not null default 0,
        decided           integer          not null default 0,
        hits              integer          not null default 0,
        sum_return        double precision not null default 0,
        sum_sq_return     double precision not null default 0,
        sum_signed_return double precision not null default 0,
        first_seen        timestamptz,
        last_seen         timestamptz,
        primary key (namespace, regime, signature)
    )
    """,
    "alter table trading.decisions add column decided_under text",
    "alter table trading.decisions add column memory_scale double precision",
]

DOWNGRADE = [
    "alter table trading.decisions drop column if exists memory_scale",
    "alter table trading.decisions drop column if exists decided_under",
    "drop schema if exists memory cascade",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
