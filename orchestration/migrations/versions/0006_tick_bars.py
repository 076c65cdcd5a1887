"""raw.tick_bars_1m: one-minute bars built from the streamed trades in the tick store.

One row per venue, pair and minute that had trades (a minute without trades has no bar).
Volumes are in the base asset; ``buy_volume`` is the part bought by aggressors; ``vwap`` is
null only when every trade of the minute had size 0.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    create table raw.tick_bars_1m (
        venue        text             not null,
        symbol       text             not null,
        bar_time     timestamptz      not null,
        open         double precision not null,
        high         double precision not null,
        low          double precision not null,
        close        double precision not null,
        volume       double precision not null,
        quote_volume double precision not null,
        buy_volume   double precision not null,
        trades       integer          not null,
        vwap         double precision,
        ingested_at  timestamptz      not null default now(),
        primary key (venue, symbol, bar_time)
    )
    """,
    "create index tick_bars_1m_bar_time_idx on raw.tick_bars_1m (bar_time)",
]

DOWNGRADE = ["drop table if exists raw.tick_bars_1m"]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
