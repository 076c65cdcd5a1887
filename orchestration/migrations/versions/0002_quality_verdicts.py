"""Per-day quality verdicts of the raw candle checks.

The blocking check records one verdict per asset and UTC day. dbt's staging model admits only
days whose verdict passed, so a bad day never reaches the marts, features or trading, whether it
was checked in its own run or inside a range backfill.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = [
    "create schema if not exists quality",
    """
    create table quality.candle_verdicts (
        asset          text        not null,
        partition_date date        not null,
        passed         boolean     not null,
        rows_checked   integer     not null,
        failures       jsonb       not null default '[]'::jsonb,
        checked_at     timestamptz not null default now(),
        primary key (asset, partition_date)
    )
    """,
]

DOWNGRADE = [
    "drop table if exists quality.candle_verdicts",
    "drop schema if exists quality",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
