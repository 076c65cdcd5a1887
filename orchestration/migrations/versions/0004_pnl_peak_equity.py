"""trading.pnl keeps the highest equity seen so far (intraday peaks included).

The next day's risk gate seeds its drawdown halt from it, so a drawdown that began yesterday
keeps counting today: trading day by day measures drawdown like one continuous run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("alter table trading.pnl add column peak_equity double precision")


def downgrade() -> None:
    op.execute("alter table trading.pnl drop column peak_equity")
