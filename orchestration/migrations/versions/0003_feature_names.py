"""Feature columns named for what they are, not for their window.

The windows became configuration (trading.features.FeatureWindows), so ``vol_288`` could lie;
the columns are now vol_short, vol_long, zscore, rsi and momentum.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RENAMES = {
    "vol_12": "vol_short",
    "vol_288": "vol_long",
    "zscore_48": "zscore",
    "rsi_14": "rsi",
    "momentum_12": "momentum",
}


def upgrade() -> None:
    for old, new in RENAMES.items():
        op.execute(f"alter table signals.features rename column {old} to {new}")


def downgrade() -> None:
    for old, new in RENAMES.items():
        op.execute(f"alter table signals.features rename column {new} to {old}")
