"""Migrations: every contract table exists, re-runs are no-ops, concurrent runs serialise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestration.migrations import current_revision, head_revision, upgrade_to_head

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]

CONTRACT: dict[str, set[str]] = {
    "raw.binance_ohlcv": {
        "symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "ingested_at",
    },
    "raw.coinbase_ohlcv": {
        "symbol", "interval", "open_time", "open", "high", "low", "close", "volume", "ingested_at",
    },
    "raw.fred_observations": {"series_id", "observation_date", "value", "ingested_at"},
    "signals.features": {
        "symbol", "ts", "close", "ret_1", "vol_short", "vol_long", "sma_fast", "sma_slow",
        "zscore", "rsi", "momentum",
    },
    "signals.regimes": {"symbol", "ts", "regime", "trend_strength", "vol_ratio"},
    "raw.binance_agg_trades": {
        "symbol", "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id",
        "trade_time", "is_buyer_maker", "is_best_match", "ingested_at",
    },
    "raw.binance_order_book": {
        "symbol", "snapshot_date", "taken_at", "update_id", "side", "level", "price",
        "quantity", "order_count", "ingested_at",
    },
    "raw.binance_futures_funding_rates": {
        "symbol", "funding_time", "funding_rate", "mark_price", "ingested_at",
    },
    "raw.coinbase_trades": {
        "symbol", "trade_id", "trade_time", "price", "size", "side", "ingested_at",
    },
    "raw.coinbase_order_book": {
        "symbol", "snapshot_date", "taken_at", "update_id", "side", "level", "price",
        "quantity", "order_count", "ingested_at",
    },
    "raw.kraken_ohlcv": {
        "symbol", "interval", "open_time", "open", "high", "low", "close", "volume",
        "ingested_at",
    },
    "raw.kraken_trades": {
        "symbol", "trade_id", "trade_time", "price", "volume", "side", "order_type", "misc",
        "ingested_at",
    },
    "raw.coingecko_market_caps": {
        "snapshot_date", "taken_at", "coin_id", "symbol", "name", "price_usd", "market_cap_usd",
        "total_volume_usd", "market_cap_rank", "dominance_pct", "total_market_cap_usd",
        "ingested_at",
    },
    "raw.fear_greed_index": {
        "observed_at", "value", "classification", "ingested_at",
    },
    "raw.blockchain_network_stats": {
        "chart", "observed_at", "value", "unit", "ingested_at",
    },
    "raw.tick_bars_1m": {
        "venue", "symbol", "bar_time", "open", "high", "low", "close", "volume", "quote_volume",
        "buy_volume", "trades", "vwap", "ingested_at",
    },
    "signals.sentiment_hourly": {
        "hour", "symbol", "n_documents", "mean_compound", "pos_share", "neg_share", "sources",
    },
    "trading.decisions": {
        "symbol", "ts", "partition_date", "direction", "confidence", "regime", "votes",
        "outcome", "reason", "decided_under", "memory_scale",
    },
    "trading.orders": {
        "client_order_id", "partition_date", "ts", "symbol", "side", "quantity", "order_type",
        "limit_price", "status", "reason",
    },
    "trading.fills": {
        "fill_id", "client_order_id", "partition_date", "ts", "symbol", "side", "quantity",
        "price", "fee", "liquidity",
    },
    "trading.positions": {
        "partition_date", "symbol", "quantity", "avg_price", "mark_price", "unrealized_pnl",
        "realized_pnl",
    },
    "trading.pnl": {
        "partition_date", "cash", "equity", "realized_pnl", "unrealized_pnl", "fees",
        "gross_exposure", "net_exposure", "risk_state", "peak_equity",
    },
    "memory.proposals": {
        "key", "namespace", "symbol", "ts", "matured_at", "horizon_bars", "regime", "signature",
        "direction", "confidence", "risk_state", "realised_return", "status", "recorded_at",
    },
    "memory.votes": {"key", "validator", "approve", "reason"},
    "memory.memories": {
        "key", "namespace", "symbol", "ts", "matured_at", "horizon_bars", "regime", "signature",
        "embedding", "direction", "confidence", "risk_state", "vol_short", "realised_return",
        "votes",
    },
    "memory.patterns": {
        "namespace", "regime", "signature", "count", "decided", "hits", "sum_return",
        "sum_sq_return", "sum_signed_return", "first_seen", "last_seen",
    },
    "trading.control": {
        "id", "paused", "pause_reason", "kill_switch", "kill_reason", "live_released",
        "updated_at", "updated_by",
    },
    "trading.control_events": {"id", "ts", "actor", "action", "reason"},
    "trading.order_proposals": {
        "id", "ts", "actor", "symbol", "side", "quantity", "reference_price", "approved",
        "approved_quantity", "risk_state", "reason",
    },
}  # fmt: skip


@pytest.fixture
def empty_db_url(pg_server_url: str):  # noqa: ANN201
    """A database with no migrations applied (pg_url is already at head)."""
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    name = "t_unmigrated"
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        conn.execute(sa.text(f'create database "{name}"'))
    yield sa.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    found: dict[str, set[str]] = {}
    for schema in ("raw", "signals", "trading", "analytics", "memory"):
        if schema not in inspector.get_schema_names():
            continue
        for table in inspector.get_table_names(schema=schema):
            found[f"{schema}.{table}"] = {c["name"] for c in inspector.get_columns(table, schema)}
    return found


def test_upgrade_creates_every_contract_table(empty_db_url: str) -> None:
    assert current_revision(empty_db_url) is None
    assert upgrade_to_head(empty_db_url) == head_revision()
    engine = sa.create_engine(empty_db_url)
    try:
        assert _columns(engine) == CONTRACT
        assert "analytics" not in sa.inspect(engine).get_schema_names()
        with engine.connect() as conn:
            ext = conn.execute(sa.text("select 1 from pg_extension where extname = 'vector'"))
            assert ext.scalar() == 1
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(pg_url: str, pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into raw.fred_observations (series_id, observation_date, value)"
                " values ('DGS10', '2018-01-10', 2.5)"
            )
        )
    assert upgrade_to_head(pg_url) == head_revision()
    assert upgrade_to_head(pg_engine) == head_revision()
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.fred_observations")).scalar() == 1


def test_concurrent_upgrades_from_two_processes(empty_db_url: str) -> None:
    script = (
        "import sys; from orchestration.migrations import upgrade_to_head;"
        " print(upgrade_to_head(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_db_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert {out.strip() for out, _ in results} == {head_revision()}


def test_contract_constraints(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into trading.orders (client_order_id, symbol, side, quantity)"
                " values ('o1', 'ETH/BTC', 'buy', 1.0)"
            )
        )
        conn.execute(
            sa.text(
                "insert into trading.fills (fill_id, client_order_id, symbol, side, quantity,"
                " price) values ('f1', 'o1', 'ETH/BTC', 'buy', 1.0, 0.1)"
            )
        )
    # Re-running a partition deletes its orders; their fills go with them.
    with pg_engine.begin() as conn:
        conn.execute(sa.text("delete from trading.orders where client_order_id = 'o1'"))
        assert conn.execute(sa.text("select count(*) from trading.fills")).scalar() == 0
    with pytest.raises(sa.exc.IntegrityError), pg_engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into signals.regimes (symbol, ts, regime)"
                " values ('ETH/BTC', now(), 'sideways')"
            )
        )
    # Prices are not constrained: the quality gate must be able to see a bad candle.
    with pg_engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into raw.binance_ohlcv (symbol, interval, open_time, open, high, low,"
                " close, volume) values ('ETH/BTC', '5m', '2018-01-10', -1, -1, -1, -1, -1)"
            )
        )


def test_downgrade_to_base_and_back(empty_db_url: str) -> None:
    from alembic import command

    from orchestration.migrations import alembic_config

    upgrade_to_head(empty_db_url)
    engine = sa.create_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert _columns(engine) == {}
        upgrade_to_head(engine)
        assert _columns(engine) == CONTRACT
    finally:
        engine.dispose()
