"""Per-bar features of the traded pairs, the trading committee's view of the market."""

from datetime import timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from assets.ingest.registry import TRADED_FEED
from orchestration.groups import SIGNALS_GROUP
from orchestration.partitions import daily_partitions
from orchestration.resources.postgres import PostgresStoreResource
from trading.features import compute_features

FEATURE_COLUMNS = [
    "symbol", "ts", "close", "ret_1", "vol_short", "vol_long",
    "sma_fast", "sma_slow", "zscore", "rsi", "momentum",
]  # fmt: skip
DBT_COLUMNS = {"ret_1": "ret_1", "vol_short": "vol_12", "vol_long": "vol_288"}
"""Feature column -> the dbt mart column that supplies it (the mart is built for 5m bars, so its
12- and 288-bar volatilities are the default FeatureWindows' short and long ones)."""
LOOKBACK = timedelta(days=1)
"""Enough bars before the window for every rolling feature (48 bars) to be warm at its start."""

_CANDLES_WITH_RETURNS = sa.text(
    """
    SELECT s.symbol, s.open_time AS ts, s.open, s.high, s.low, s.close, s.volume,
           m.ret_1 AS dbt_ret_1, m.vol_12 AS dbt_vol_12, m.vol_288 AS dbt_vol_288
    FROM analytics.stg_binance_ohlcv s
    LEFT JOIN analytics.fct_pair_returns m USING (symbol, open_time)
    WHERE s."interval" = :interval AND s.open_time >= :start AND s.open_time < :end
    ORDER BY s.symbol, s.open_time
    """
)


@dg.asset(
    key=["signals", "features"],
    group_name=SIGNALS_GROUP,
    kinds={"python", "pandas", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey(["analytics", "fct_pair_returns"])],
    io_manager_key="postgres_window_io_manager",
    metadata={"table": "signals.features", "partition_expr": "ts"},
)
def features(
    context: dg.AssetExecutionContext, postgres: PostgresStoreResource
) -> dg.Output[pd.DataFrame]:
    """Moving averages, z-score, RSI and momentum per pair and bar, computed point in time by
    trading.features (the code backtests use), with returns and volatility taken from the dbt
    mart. The largest difference between dbt's and pandas' returns is reported as metadata: the
    two implementations must agree."""
    window = context.partition_time_window
    with postgres.get_engine().connect() as conn:
        candles = pd.read_sql(
            _CANDLES_WITH_RETURNS,
            conn,
            params={
                "start": window.start - LOOKBACK,
                "end": window.end,
                "interval": TRADED_FEED.interval,
            },
        )
    if candles.empty:
        raise dg.Failure(
            description=f"no staged candles for {window.start.date()}; run the dbt models first",
            allow_retries=False,
        )
    candles["ts"] = pd.to_datetime(candles["ts"], utc=True)
    computed = compute_features(candles[["symbol", "ts", "open", "high", "low", "close", "volume"]])
    merged = computed.merge(
        candles[["symbol", "ts", *(f"dbt_{c}" for c in DBT_COLUMNS.values())]], on=["symbol", "ts"]
    )
    disagreement = max(
        float((merged[ours] - merged[f"dbt_{theirs}"]).abs().max(skipna=True) or 0.0)
        for ours, theirs in DBT_COLUMNS.items()
    )
    for ours, theirs in DBT_COLUMNS.items():
        merged[ours] = merged[f"dbt_{theirs}"]
    in_window = merged[(merged["ts"] >= window.start) & (merged["ts"] < window.end)]
    result = in_window[FEATURE_COLUMNS].reset_index(drop=True)
    warm = result.dropna()
    return dg.Output(
        result,
        metadata={
            "symbols": sorted(result["symbol"].unique().tolist()),
            "bars": len(result),
            "fully_warm_rows": len(warm),
            "first_ts": result["ts"].min().isoformat(),
            "last_ts": result["ts"].max().isoformat(),
            "dbt_vs_pandas_max_abs_diff": disagreement,
        },
    )
