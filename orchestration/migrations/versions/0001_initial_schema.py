"""Initial schema: raw, signals and trading tables of the shared contract, plus pgvector.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_CANDLES = """
create table {table} (
    symbol      text             not null,
    interval    text             not null,
    open_time   timestamptz      not null,
    open        double precision not null,
    high        double precision not null,
    low         double precision not null,
    close       double precision not null,
    volume      double precision not null,
    ingested_at timestamptz      not null default now(),
    primary key (symbol, interval, open_time)
)
"""

UPGRADE = [
    "create extension if not exists vector",
    "create schema if not exists raw",
    "create schema if not exists signals",
    "create schema if not exists trading",
    # No CHECK constraints on prices: a bad candle must be storable so the blocking quality
    # check can catch it.
    _CANDLES.format(table="raw.binance_ohlcv"),
    "create index binance_ohlcv_open_time_idx on raw.binance_ohlcv (open_time)",
    _CANDLES.format(table="raw.coinbase_ohlcv"),
    "create index coinbase_ohlcv_open_time_idx on raw.coinbase_ohlcv (open_time)",
    """
    create table raw.fred_observations (
        series_id        text             not null,
        observation_date date             not null,
        value            double precision,
        ingested_at      timestamptz      not null default now(),
        primary key (series_id, observation_date)
    )
    """,
    "create index fred_observations_date_idx on raw.fred_observations (observation_date)",
    """
    create table signals.features (
        symbol      text             not null,
        ts          timestamptz      not null,
        close       double precision,
        ret_1       double precision,
        vol_12      double precision,
        vol_288     double precision,
        sma_fast    double precision,
        sma_slow    double precision,
        zscore_48   double precision,
        rsi_14      double precision,
        momentum_12 double precision,
        primary key (symbol, ts)
    )
    """,
    "create index features_ts_idx on signals.features (ts)",
    """
    create table signals.regimes (
        symbol         text             not null,
        ts             timestamptz      not null,
        regime         text             not null
            check (regime in ('trending_up', 'trending_down', 'ranging', 'volatile')),
        trend_strength double precision,
        vol_ratio      double precision,
        primary key (symbol, ts)
    )
    """,
    "create index regimes_ts_idx on signals.regimes (ts)",
    """
    create table trading.decisions (
        symbol         text             not null,
        ts             timestamptz      not null,
        partition_date date,
        direction      double precision,
        confidence     double precision,
        regime         text,
        votes          jsonb,
        outcome        text,
        reason         text,
        primary key (symbol, ts)
    )
    """,
    "create index decisions_partition_date_idx on trading.decisions (partition_date)",
    """
    create table trading.orders (
        client_order_id text             primary key,
        partition_date  date,
        ts              timestamptz,
        symbol          text             not null,
        side            text             not null check (side in ('buy', 'sell')),
        quantity        double precision not null,
        order_type      text,
        limit_price     double precision,
        status          text,
        reason          text
    )
    """,
    "create index orders_partition_date_idx on trading.orders (partition_date)",
    "create index orders_symbol_ts_idx on trading.orders (symbol, ts)",
    # Fills go with their order: deleting a partition's orders (re-run) removes its fills too.
    """
    create table trading.fills (
        fill_id         text             primary key,
        client_order_id text             not null
            references trading.orders (client_order_id) on delete cascade,
        partition_date  date,
        ts              timestamptz,
        symbol          text             not null,
        side            text             not null check (side in ('buy', 'sell')),
        quantity        double precision not null,
        price           double precision not null,
        fee             double precision,
        liquidity       text
    )
    """,
    "create index fills_client_order_id_idx on trading.fills (client_order_id)",
    "create index fills_partition_date_idx on trading.fills (partition_date)",
    "create index fills_symbol_ts_idx on trading.fills (symbol, ts)",
    """
    create table trading.positions (
        partition_date date             not null,
        symbol         text             not null,
        quantity       double precision,
        avg_price      double precision,
        mark_price     double precision,
        unrealized_pnl double precision,
        realized_pnl   double precision,
        primary key (partition_date, symbol)
    )
    """,
    """
    create table trading.pnl (
        partition_date date             primary key,
        cash           double precision,
        equity         double precision,
        realized_pnl   double precision,
        unrealized_pnl double precision,
        fees           double precision,
        gross_exposure double precision,
        net_exposure   double precision,
        risk_state     text
    )
    """,
]

DOWNGRADE = [
    "drop table if exists trading.pnl",
    "drop table if exists trading.positions",
    "drop table if exists trading.fills",
    "drop table if exists trading.orders",
    "drop table if exists trading.decisions",
    "drop table if exists signals.regimes",
    "drop table if exists signals.features",
    "drop table if exists raw.fred_observations",
    "drop table if exists raw.coinbase_ohlcv",
    "drop table if exists raw.binance_ohlcv",
    # Plain drop (restrict): refuses rather than destroy objects another tool put there.
    "drop schema if exists trading",
    "drop schema if exists signals",
    "drop schema if exists raw",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
