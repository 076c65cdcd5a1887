"""Builds the raw assets and their quality checks from the source registry.

Raw assets are daily UTC partitions written through the Postgres window IO manager (delete the
window, insert, one transaction), backfilled in a single run per range, and rate-limited by one
pool per API. Sources are fetched completely before anything is written, so a failed fetch writes
nothing.
"""

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from assets.ingest.registry import CANDLE_FEEDS, MACRO_FEEDS, CandleFeed, MacroFeed
from orchestration.groups import INGEST_GROUP
from orchestration.io_managers.postgres_window import read_window
from orchestration.partitions import daily_partitions
from orchestration.quality import validate_candles
from orchestration.resources.http import RateLimitedError, SourceError, UpstreamError
from orchestration.resources.postgres import PostgresStoreResource

CANDLE_CHECK_NAME = "candles_valid"

CANDLE_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("symbol", "text", description="BASE/QUOTE, e.g. ETH/BTC"),
        dg.TableColumn("interval", "text"),
        dg.TableColumn("open_time", "timestamptz", description="candle open time, UTC"),
        dg.TableColumn("open", "double precision"),
        dg.TableColumn("high", "double precision"),
        dg.TableColumn("low", "double precision"),
        dg.TableColumn("close", "double precision"),
        dg.TableColumn("volume", "double precision", description="in the base asset"),
    ]
)

_RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def _source_failure(source: str, subject: str, error: SourceError) -> dg.Failure:
    """A source error as a Dagster failure.

    The client has already retried transient faults with backoff; the step retries once more
    only for those (rate limits, 5xx, timeouts). Malformed payloads and refusals fail at once.
    """
    status = getattr(error, "status", None)
    transient = isinstance(error, RateLimitedError) or (
        isinstance(error, UpstreamError) and (status is None or status >= 500)
    )
    return dg.Failure(
        description=f"{source} {subject}: {error}",
        metadata={"error_type": type(error).__name__, "subject": subject, "http_status": status},
        allow_retries=transient,
    )


def _window_text(start: datetime, end: datetime) -> str:
    return f"[{start.isoformat()}, {end.isoformat()})"


def _preview(frame: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


def _raw_asset_settings(feed: CandleFeed | MacroFeed) -> dict[str, Any]:
    """What every raw asset shares: daily partitions written through the window IO manager,
    single-run backfills, one pool per API, step retries for transient source faults."""
    return {
        "key": feed.key,
        "description": feed.description,
        "group_name": INGEST_GROUP,
        "kinds": {"python", "postgres"},
        "partitions_def": daily_partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "pool": feed.pool,
        "retry_policy": _RETRY,
        "io_manager_key": "postgres_window_io_manager",
        "required_resource_keys": {feed.client_key},
    }


def build_candle_asset(feed: CandleFeed) -> dg.AssetsDefinition:
    @dg.asset(
        **_raw_asset_settings(feed),
        metadata={
            "table": feed.table,
            "partition_expr": "open_time",
            "venue": feed.venue,
            "symbols": list(feed.symbols),
            "interval": feed.interval,
            "dagster/column_schema": CANDLE_COLUMNS,
        },
        tags={"layer": "raw", "venue": feed.venue},
    )
    def _candles(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
        client = getattr(context.resources, feed.client_key)
        window = context.partition_time_window
        frames: list[pd.DataFrame] = []
        for symbol in feed.symbols:
            try:
                payload = feed.source.fetch(
                    client, symbol, window.start, window.end, interval=feed.interval
                )
                frame = feed.source.parse(payload, symbol, feed.interval)
            except SourceError as error:
                raise _source_failure(feed.venue, symbol, error) from error
            if frame.empty:
                raise dg.Failure(
                    description=(
                        f"{feed.venue} returned no {feed.interval} candles for {symbol} in "
                        f"{_window_text(window.start, window.end)}; nothing was written"
                    ),
                    allow_retries=False,
                )
            frames.append(frame)
        candles = pd.concat(frames, ignore_index=True).sort_values(["symbol", "open_time"])
        per_symbol = candles.groupby("symbol").size()
        context.log.info(
            "fetched %d candles from %s for %s", len(candles), feed.venue, dict(per_symbol)
        )
        return dg.Output(
            candles.reset_index(drop=True),
            metadata={
                "rows_per_symbol": {str(k): int(v) for k, v in per_symbol.items()},
                "first_open_time": candles["open_time"].min().isoformat(),
                "last_open_time": candles["open_time"].max().isoformat(),
                "synthetic": bool(getattr(client, "synthetic", False)),
                "preview": _preview(candles),
            },
        )

    return _candles


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def record_verdicts(engine: sa.Engine, asset: str, results: Mapping[date, Any]) -> None:
    """Replace the checked days' verdicts in one transaction; dbt staging reads them."""
    rows = [
        {
            "asset": asset,
            "day": day,
            "passed": result.passed,
            "rows": int(result.statistics.get("rows", 0)),
            "failures": json.dumps(result.failures),
        }
        for day, result in results.items()
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM quality.candle_verdicts WHERE asset = :asset "
                "AND partition_date = ANY(:days)"
            ),
            {"asset": asset, "days": list(results)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO quality.candle_verdicts "
                "(asset, partition_date, passed, rows_checked, failures) "
                "VALUES (:asset, :day, :passed, :rows, CAST(:failures AS jsonb))"
            ),
            rows,
        )


def build_candle_check(feed: CandleFeed) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=feed.key,
        name=CANDLE_CHECK_NAME,
        blocking=True,
        description=(
            "Great Expectations suite on the partition's candles: schema, no nulls, "
            "low <= open, close <= high, volume >= 0, unique increasing timestamps per pair, "
            "no gap beyond the interval. Blocking: a failing partition feeds nothing downstream."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, postgres: PostgresStoreResource
    ) -> dg.AssetCheckResult:
        window = context.partition_time_window
        asset = "/".join(feed.key)
        engine = postgres.get_engine()
        candles = read_window(
            engine, feed.table, "open_time", window.start, window.end, order_by="symbol, open_time"
        )
        candles = candles.drop(columns=["ingested_at"], errors="ignore")
        days = _days(window.start, window.end)
        results = {}
        for day in days:
            day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            in_day = candles["open_time"].between(
                day_start, day_start + timedelta(days=1), inclusive="left"
            )
            results[day] = validate_candles(
                candles[in_day].reset_index(drop=True),
                interval_seconds=feed.interval_seconds,
                asset_name=asset,
                partition_key=day.isoformat(),
            )
        record_verdicts(engine, asset, results)
        failed = {day: r for day, r in results.items() if not r.passed}
        for day, result in failed.items():
            for failure in result.failures:
                context.log.warning("%s %s: %s", asset, day, failure)
        shown = next(iter(failed.values()), results[days[-1]])
        metadata = {
            **shown.to_metadata(),
            "days_checked": len(days),
            "days_failed": [day.isoformat() for day in failed],
        }
        if not failed:
            return dg.AssetCheckResult(passed=True, metadata=metadata)
        description = "; ".join(
            f"{day}: {'; '.join(r.failures[:3])}" if len(days) > 1 else "; ".join(r.failures[:3])
            for day, r in failed.items()
        )
        # Within a run a failed ERROR check stops everything downstream, so a range run with
        # some good days reports WARN and lets them through: staging admits only days whose
        # verdict passed. A run whose every day failed blocks as usual.
        some_passed = len(failed) < len(days)
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN if some_passed else dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=description[:2000],
        )

    return _check


def build_macro_asset(feed: MacroFeed) -> dg.AssetsDefinition:
    @dg.asset(
        **_raw_asset_settings(feed),
        metadata={
            "table": feed.table,
            "partition_expr": "observation_date",
            "series": list(feed.series),
        },
        tags={"layer": "raw", "provider": feed.provider},
    )
    def _observations(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
        client = getattr(context.resources, feed.client_key)
        window = context.partition_time_window
        first_day, last_day = window.start.date(), (window.end - timedelta(days=1)).date()
        frames = []
        for series_id in feed.series:
            try:
                raw = feed.source.fetch(client, series_id, first_day, last_day)
                frames.append(feed.source.parse(raw, series_id))
            except SourceError as error:
                raise _source_failure(feed.provider, series_id, error) from error
        observations = pd.concat(frames, ignore_index=True)
        counts = observations.groupby("series_id").size()
        return dg.Output(
            observations,
            metadata={
                "rows_per_series": {s: int(counts.get(s, 0)) for s in feed.series},
                "missing_values": int(observations["value"].isna().sum()),
                "synthetic": bool(getattr(client, "synthetic", False)),
                "preview": _preview(observations),
            },
        )

    return _observations


raw_candle_assets = [build_candle_asset(feed) for feed in CANDLE_FEEDS]
raw_candle_checks = [build_candle_check(feed) for feed in CANDLE_FEEDS]
raw_macro_assets = [build_macro_asset(feed) for feed in MACRO_FEEDS]
