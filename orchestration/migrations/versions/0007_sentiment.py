"""signals.sentiment_hourly: sentiment per UTC hour and ticker, for the trading job.

Written by the signals/sentiment_hourly asset through the window IO manager (delete the day's
hours, insert them again). No CHECK constraints on the scores: a bad row must be storable so its
Great Expectations check can report it; only the row identity is enforced.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    create table signals.sentiment_hourly (
        hour          timestamptz      not null,
        symbol        text             not null,
        n_documents   integer          not null,
        mean_compound double precision not null,
        pos_share     double precision not null,
        neg_share     double precision not null,
        sources       jsonb            not null default '{}'::jsonb,
        primary key (hour, symbol)
    )
    """,
    "create index sentiment_hourly_symbol_hour_idx on signals.sentiment_hourly (symbol, hour)",
]

DOWNGRADE = ["drop table if exists signals.sentiment_hourly"]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
