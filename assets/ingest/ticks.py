"""The streamed ticks as Dagster sees them: their freshness, and one-minute bars built from them.

``coinswarm stream`` writes ticks to the tick store (InfluxDB in prod, the Parquet catalog
locally) outside Dagster, so the stream is an external asset, ``raw/ticks/stream``. Its
``ticks_fresh`` check reads the newest stored tick of each pair and fails (warning severity)
when it is older than ``max_lag_seconds``: a stopped or stuck stream shows in the UI. The
``raw/ticks/bars_1m`` asset turns a day's stored trades into OHLCV bars per pair and minute in
PostgreSQL (``raw.tick_bars_1m``), through the window IO manager like every partitioned asset.
"""

import time
from collections.abc import Mapping

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.ingest.streams import DEFAULT_SYMBOLS
from orchestration.groups import TICKS_GROUP
from orchestration.partitions import daily_partitions
from orchestration.resources.ticks import TickStore, TickStoreResource

TICK_STREAM_KEY = dg.AssetKey(["raw", "ticks", "stream"])
BARS_TABLE = "raw.tick_bars_1m"
NS_PER_MINUTE = 60 * 1_000_000_000
NS_PER_SECOND = 1_000_000_000
BAR_COLUMNS = [
    "venue", "symbol", "bar_time", "open", "high", "low", "close", "volume", "quote_volume",
    "buy_volume", "trades", "vwap",
]  # fmt: skip
FRESHNESS_LOOKBACK_S = (300, 3_600, 86_400, 7 * 86_400)
"""Windows searched, newest first, for a pair's newest tick: a fresh pair costs one small read."""


def default_pairs() -> list[str]:
    return [f"{venue}:{symbol}" for venue, symbols in DEFAULT_SYMBOLS.items() for symbol in symbols]


def split_pair(pair: str) -> tuple[str, str]:
    """``binance:BTC/USDT`` -> ``("binance", "BTC/USDT")``."""
    venue, sep, symbol = pair.partition(":")
    if not sep or not venue or "/" not in symbol:
        raise ValueError(f"pair {pair!r} is not VENUE:BASE/QUOTE, e.g. binance:BTC/USDT")
    return venue, symbol


tick_stream = dg.AssetSpec(
    key=TICK_STREAM_KEY,
    description=(
        "Trades and top-of-book quotes from the venues' websockets, written by the long-running "
        "`coinswarm stream` service (or its --replay of recorded sessions) into the tick store: "
        "InfluxDB in prod, the Parquet catalog under $COINSWARM_HOME/ticks locally."
    ),
    group_name=TICKS_GROUP,
    kinds={"influxdb", "parquet"},
    metadata={"written_by": "coinswarm stream", "pairs": default_pairs()},
)


# --------------------------------------------------------------------------------------------
# one-minute bars
# --------------------------------------------------------------------------------------------


_BAR_DTYPES = {
    "venue": "str", "symbol": "str", "bar_time": "datetime64[ns, UTC]", "trades": "int64",
    **{c: "float64" for c in ("open", "high", "low", "close", "volume", "quote_volume",
                              "buy_volume", "vwap")},
}  # fmt: skip


def bars_from_trades(trades: pd.DataFrame) -> pd.DataFrame:
    """OHLCV bars per venue, pair and minute from trade ticks (the tick store's columns).

    Open and close are the first and last trades of the minute by time, then by trade id
    (numerically when ids are numbers), so same-instant trades keep the venue's order.
    """
    trades = trades[trades["kind"] == "trade"]
    if trades.empty:
        return pd.DataFrame({c: pd.Series(dtype=_BAR_DTYPES[c]) for c in BAR_COLUMNS})
    numeric_id = pd.to_numeric(trades["trade_id"], errors="coerce")
    frame = (
        trades.assign(
            _id=numeric_id.to_numpy(),
            minute=(trades["ts"].to_numpy() // NS_PER_MINUTE) * NS_PER_MINUTE,
            notional=trades["price"] * trades["size"],
            bought=trades["size"].where(trades["side"] == "buy", 0.0),
        )
        .sort_values(["venue", "symbol", "ts", "_id", "trade_id"], kind="stable")
        .groupby(["venue", "symbol", "minute"], sort=True)
    )
    bars = frame.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        quote_volume=("notional", "sum"),
        buy_volume=("bought", "sum"),
        trades=("price", "size"),
    ).reset_index()
    bars["vwap"] = (bars["quote_volume"] / bars["volume"]).where(bars["volume"] > 0, np.nan)
    bars["bar_time"] = pd.to_datetime(bars["minute"], unit="ns", utc=True)
    bars["trades"] = bars["trades"].astype("int64")
    return bars[BAR_COLUMNS].reset_index(drop=True)


class TickPairsConfig(dg.Config):
    pairs: list[str] = Field(
        default_factory=default_pairs,
        description="Pairs as VENUE:BASE/QUOTE (default: what coinswarm stream subscribes to).",
    )


BAR_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("venue", "text"),
        dg.TableColumn("symbol", "text", description="BASE/QUOTE"),
        dg.TableColumn("bar_time", "timestamptz", description="minute start, UTC"),
        *(dg.TableColumn(c, "double precision") for c in ("open", "high", "low", "close")),
        dg.TableColumn("volume", "double precision", description="base asset"),
        dg.TableColumn("quote_volume", "double precision", description="sum of price * size"),
        dg.TableColumn("buy_volume", "double precision", description="bought by aggressors"),
        dg.TableColumn("trades", "integer"),
        dg.TableColumn("vwap", "double precision", description="null if volume is 0"),
    ]
)


@dg.asset(
    key=["raw", "ticks", "bars_1m"],
    group_name=TICKS_GROUP,
    kinds={"python", "pandas", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[TICK_STREAM_KEY],
    io_manager_key="postgres_window_io_manager",
    metadata={
        "table": BARS_TABLE,
        "partition_expr": "bar_time",
        "dagster/column_schema": BAR_SCHEMA,
    },
    tags={"layer": "raw"},
)
def tick_bars_1m(
    context: dg.AssetExecutionContext, config: TickPairsConfig, ticks: TickStoreResource
) -> dg.Output[pd.DataFrame]:
    """One-minute OHLCV bars (with trade count, aggressor-buy volume and VWAP) per pair, built
    from the trades `coinswarm stream` stored in the tick store. Fails, naming the pairs and the
    store, when none of the pairs has a stored trade in the window: the stream was not running."""
    window = context.partition_time_window
    store = ticks.get_store()
    frames, empty = [], []
    for pair in config.pairs:
        venue, symbol = split_pair(pair)
        trades = store.read(venue, symbol, window.start, window.end, kind="trade")
        if trades.empty:
            empty.append(pair)
        else:
            frames.append(trades)
    if not frames:
        raise dg.Failure(
            description=(
                f"no trades stored for {', '.join(config.pairs)} in "
                f"[{window.start.isoformat()}, {window.end.isoformat()}) in {store!r}: was "
                "`coinswarm stream` running (or the day replayed with --replay)?"
            ),
            allow_retries=False,
        )
    trades = pd.concat(frames, ignore_index=True)
    bars = bars_from_trades(trades)
    if empty:
        context.log.warning("no trades stored for %s in this window", ", ".join(empty))
    per_pair = bars.groupby(["venue", "symbol"]).size()
    return dg.Output(
        bars,
        metadata={
            "trades_read": len(trades),
            "bars_per_pair": {f"{v}:{s}": int(n) for (v, s), n in per_pair.items()},
            "pairs_without_trades": empty,
            "first_bar": bars["bar_time"].min().isoformat(),
            "last_bar": bars["bar_time"].max().isoformat(),
            "preview": dg.MetadataValue.md(bars.head(5).to_markdown(index=False)),
        },
    )


# --------------------------------------------------------------------------------------------
# freshness
# --------------------------------------------------------------------------------------------


def newest_tick_ns(store: TickStore, venue: str, symbol: str, now_ns: int) -> int | None:
    """Time of the newest stored tick of a pair within the last week (None if there is none)."""
    end = now_ns + 60 * NS_PER_SECOND  # venue clocks may run slightly ahead of ours
    for lookback_s in FRESHNESS_LOOKBACK_S:
        start = now_ns - lookback_s * NS_PER_SECOND
        found = store.read(venue, symbol, start, end)
        if not found.empty:
            return int(found["ts"].max())
        end = start
    return None


def freshness_result(
    newest: Mapping[str, int | None], now_ns: int, max_lag_seconds: float
) -> dg.AssetCheckResult:
    lags = {
        pair: None if ts is None else max(0.0, (now_ns - ts) / NS_PER_SECOND)
        for pair, ts in newest.items()
    }
    stale = sorted(pair for pair, lag in lags.items() if lag is None or lag > max_lag_seconds)
    week = FRESHNESS_LOOKBACK_S[-1] // 86_400
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            None
            if not stale
            else "stale ticks: "
            + "; ".join(
                f"{pair} no tick in {week} days"
                if lags[pair] is None
                else f"{pair} newest tick {lags[pair]:,.0f}s old"
                for pair in stale
            )
            + f" (limit {max_lag_seconds:,.0f}s)"
        ),
        metadata={
            "max_lag_seconds": max_lag_seconds,
            "lag_seconds": {pair: lag for pair, lag in lags.items()},
            "newest_tick": {pair: None if ts is None else _iso(ts) for pair, ts in newest.items()},
            "stale_pairs": stale,
        },
    )


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


class TickFreshnessConfig(TickPairsConfig):
    max_lag_seconds: float = Field(
        300.0, gt=0, description="A pair whose newest tick is older than this is stale."
    )


@dg.asset_check(
    asset=TICK_STREAM_KEY,
    name="ticks_fresh",
    description=(
        "The newest stored tick of every streamed pair is at most max_lag_seconds old (default "
        "5 minutes); otherwise the stream is stopped, stuck or cut off. Warns, does not block."
    ),
)
def ticks_fresh(config: TickFreshnessConfig, ticks: TickStoreResource) -> dg.AssetCheckResult:
    store = ticks.get_store()
    now_ns = time.time_ns()
    newest = {
        pair: newest_tick_ns(store, *split_pair(pair), now_ns=now_ns) for pair in config.pairs
    }
    return freshness_result(newest, now_ns, config.max_lag_seconds)


tick_bars_job = dg.define_asset_job(
    name="tick_bars_job",
    selection=dg.AssetSelection.assets(tick_bars_1m),
    partitions_def=daily_partitions,
    description="Build a day's one-minute bars from the streamed trades in the tick store.",
)

tick_freshness_job = dg.define_asset_job(
    name="tick_freshness_job",
    selection=dg.AssetSelection.checks(ticks_fresh),
    description="Check that the stream's newest ticks are recent.",
)


def tick_definitions(running: bool) -> dg.Definitions:
    """Everything about streamed ticks; schedules run when ``running`` (prod)."""
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    return dg.Definitions(
        assets=[tick_stream, tick_bars_1m],
        asset_checks=[ticks_fresh],
        jobs=[tick_bars_job, tick_freshness_job],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                tick_bars_job,
                name="tick_bars_schedule",
                description="Bars for the UTC day that just closed.",
                minute_of_hour=20,
                hour_of_day=0,
                default_status=status,
            ),
            dg.ScheduleDefinition(
                name="tick_freshness_schedule",
                job=tick_freshness_job,
                cron_schedule="*/5 * * * *",
                execution_timezone="UTC",
                description="Every five minutes: are the ticks still flowing?",
                default_status=status,
            ),
        ],
    )
