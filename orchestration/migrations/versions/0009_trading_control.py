"""Trading control: the operator's pause and kill switch, kept in the database.

A switch that lives in one process's memory is gone when that process is: the trading job, the
sensor, the live broker and the MCP server all run in different processes, so they read one row.
``trading.control`` holds the current switches (a single row); ``trading.control_events`` keeps
who flipped which switch, when and why, for the post-mortem. ``trading.order_proposals`` keeps
every paper order an assistant proposed over MCP with the risk gate's verdict, approved or not.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = [
    """
    create table trading.control (
        id                  boolean     primary key default true check (id),
        paused              boolean     not null default false,
        pause_reason        text,
        kill_switch         boolean     not null default false,
        kill_reason         text,
        live_released       boolean     not null default false,
        updated_at          timestamptz not null default now(),
        updated_by          text        not null default 'migration'
    )
    """,
    "insert into trading.control (id) values (true)",
    """
    create table trading.control_events (
        id      bigint      generated always as identity primary key,
        ts      timestamptz not null default now(),
        actor   text        not null,
        action  text        not null,
        reason  text        not null
    )
    """,
    """
    create table trading.order_proposals (
        id                bigint           generated always as identity primary key,
        ts                timestamptz      not null default now(),
        actor             text             not null,
        symbol            text             not null,
        side              text             not null check (side in ('buy', 'sell')),
        quantity          double precision not null,
        reference_price   double precision,
        approved          boolean          not null,
        approved_quantity double precision,
        risk_state        text             not null,
        reason            text             not null
    )
    """,
]

DOWNGRADE = [
    "drop table if exists trading.order_proposals",
    "drop table if exists trading.control_events",
    "drop table if exists trading.control",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
