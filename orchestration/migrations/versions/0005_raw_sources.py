"""Raw tables of the sources beyond candles and FRED: trades, order books, funding rates,
Kraken candles, market caps, the Fear & Greed index and on-chain statistics.

Each table mirrors its source module's ``COLUMNS`` (``assets/ingest/sources``) plus the
``ingested_at`` stamp, keyed so that a row can exist once, and indexed on the partition column
the window IO manager deletes by. As with candles there are no CHECK constraints on values: a
bad row must be storable so that its quality suite can report it. (Text sources land in
MongoDB's ``raw_documents`` instead.)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ORDER_BOOK = """
create table {table} (
    symbol        text             not null,
    snapshot_date date             not null,
    taken_at      timestamptz      not null,
    update_id     bigint           not null,
    side          text             not null,
    level         integer          not null,
    price         double precision not null,
    quantity      double precision not null,
    order_count   integer,
    ingested_at   timestamptz      not null default now(),
    primary key (symbol, snapshot_date, side, level)
)
"""

TABLES: dict[str, tuple[str, str]] = {
    "raw.binance_agg_trades": (
        """
        create table raw.binance_agg_trades (
            symbol         text             not null,
            agg_trade_id   bigint           not null,
            price          double precision not null,
            quantity       double precision not null,
            first_trade_id bigint           not null,
            last_trade_id  bigint           not null,
            trade_time     timestamptz      not null,
            is_buyer_maker boolean          not null,
            is_best_match  boolean          not null,
            ingested_at    timestamptz      not null default now(),
            primary key (symbol, agg_trade_id)
        )
        """,
        "trade_time",
    ),
    "raw.binance_order_book": (_ORDER_BOOK.format(table="raw.binance_order_book"), "snapshot_date"),
    "raw.binance_futures_funding_rates": (
        """
        create table raw.binance_futures_funding_rates (
            symbol       text             not null,
            funding_time timestamptz      not null,
            funding_rate double precision not null,
            mark_price   double precision,
            ingested_at  timestamptz      not null default now(),
            primary key (symbol, funding_time)
        )
        """,
        "funding_time",
    ),
    "raw.coinbase_trades": (
        """
        create table raw.coinbase_trades (
            symbol      text             not null,
            trade_id    bigint           not null,
            trade_time  timestamptz      not null,
            price       double precision not null,
            size        double precision not null,
            side        text             not null,
            ingested_at timestamptz      not null default now(),
            primary key (symbol, trade_id)
        )
        """,
        "trade_time",
    ),
    "raw.coinbase_order_book": (
        _ORDER_BOOK.format(table="raw.coinbase_order_book"),
        "snapshot_date",
    ),
    "raw.kraken_ohlcv": (
        """
        create table raw.kraken_ohlcv (
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
        """,
        "open_time",
    ),
    "raw.kraken_trades": (
        """
        create table raw.kraken_trades (
            symbol      text             not null,
            trade_id    bigint           not null,
            trade_time  timestamptz      not null,
            price       double precision not null,
            volume      double precision not null,
            side        text             not null,
            order_type  text             not null,
            misc        text             not null,
            ingested_at timestamptz      not null default now(),
            primary key (symbol, trade_id)
        )
        """,
        "trade_time",
    ),
    "raw.coingecko_market_caps": (
        """
        create table raw.coingecko_market_caps (
            snapshot_date        date             not null,
            taken_at             timestamptz      not null,
            coin_id              text             not null,
            symbol               text             not null,
            name                 text             not null,
            price_usd            double precision not null,
            market_cap_usd       double precision not null,
            total_volume_usd     double precision not null,
            market_cap_rank      integer,
            dominance_pct        double precision,
            total_market_cap_usd double precision not null,
            ingested_at          timestamptz      not null default now(),
            primary key (snapshot_date, coin_id)
        )
        """,
        "snapshot_date",
    ),
    "raw.fear_greed_index": (
        """
        create table raw.fear_greed_index (
            observed_at    timestamptz not null primary key,
            value          integer     not null,
            classification text        not null,
            ingested_at    timestamptz not null default now()
        )
        """,
        "observed_at",
    ),
    "raw.blockchain_network_stats": (
        """
        create table raw.blockchain_network_stats (
            chart       text             not null,
            observed_at timestamptz      not null,
            value       double precision not null,
            unit        text             not null,
            ingested_at timestamptz      not null default now(),
            primary key (chart, observed_at)
        )
        """,
        "observed_at",
    ),
}


def upgrade() -> None:
    for table, (ddl, partition_column) in TABLES.items():
        op.execute(ddl)
        name = table.removeprefix("raw.")
        op.execute(f"create index {name}_{partition_column}_idx on {table} ({partition_column})")


def downgrade() -> None:
    for table in reversed(list(TABLES)):
        op.execute(f"drop table if exists {table}")
