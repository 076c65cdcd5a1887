"""Builds the raw assets and their quality checks from the source registry.

Raw assets are daily UTC partitions, backfilled in a single run per range and rate-limited by
one pool per API. Tabular sources land in PostgreSQL through the window IO manager (delete the
window, insert, one transaction); text sources land in MongoDB's ``raw_documents``. Sources are
fetched completely before anything is written, so a failed fetch writes nothing, and an empty
answer is a failure that says why, never an empty success.

Every raw asset has a Great Expectations suite run as an asset check. The candle gate is a check
of its own that re-reads the stored candles and records per-day verdicts for dbt; the other
suites validate, in the asset's step, exactly the frame or documents being written (one step
instead of two per partition), blocking downstream assets when the registry says so.
"""

import json
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd
import pymongo
import sqlalchemy as sa

from assets.ingest.registry import (
    CANDLE_FEEDS,
    DOCUMENT_FEEDS,
    MACRO_FEEDS,
    TABLE_FEEDS,
    CandleFeed,
    DocumentFeed,
    Feed,
    MacroFeed,
    TableFeed,
)
from assets.ingest.sources.documents import DOCUMENT_FIELDS
from assets.ingest.sources.fields import day_start, days_of
from assets.ingest.suites import IN_PARTITION
from orchestration.groups import INGEST_GROUP
from orchestration.io_managers.postgres_window import read_window
from orchestration.partitions import daily_partitions
from orchestration.quality import (
    CANDLE_SUITE,
    DocsPolicy,
    FrameSuite,
    validate_candles,
    validate_frame,
)
from orchestration.resources.http import (
    AnswerTally,
    RateLimitedError,
    SourceError,
    UpstreamError,
)
from orchestration.resources.mongo import MongoStoreResource
from orchestration.resources.postgres import PostgresStoreResource

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
    only for those (rate limits, 5xx, timeouts). Malformed payloads, refusals, a missing key and
    windows the venue can no longer serve fail at once.
    """
    status = getattr(error, "status", None)
    transient = isinstance(error, RateLimitedError) or (
        type(error) is UpstreamError and (status is None or status >= 500)
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


def _partition_label(context: dg.AssetExecutionContext) -> str:
    """The partition key, or ``first..last`` for a single-run range."""
    keys = context.partition_key_range
    return keys.start if keys.start == keys.end else f"{keys.start}..{keys.end}"


def _raw_asset_settings(feed: Feed) -> dict[str, Any]:
    """What every raw asset shares: daily partitions, single-run backfills, one pool per API,
    step retries for transient source faults."""
    return {
        "key": feed.key,
        "description": feed.description,
        "group_name": INGEST_GROUP,
        "partitions_def": daily_partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "pool": feed.pool,
        "retry_policy": _RETRY,
    }


def _table_settings(feed: Feed) -> dict[str, Any]:
    return {
        **_raw_asset_settings(feed),
        "kinds": {"python", "postgres"},
        "io_manager_key": "postgres_window_io_manager",
        "required_resource_keys": {feed.client_key},
    }


def _check_spec(feed: Feed, suite: FrameSuite) -> dg.AssetCheckSpec:
    gate = "Blocking: a failing run feeds nothing downstream. " if feed.blocking else ""
    return dg.AssetCheckSpec(
        feed.check_name,
        asset=feed.key,
        blocking=feed.blocking,
        description=(
            f"Great Expectations suite {suite.name} on what the run writes: {suite.description}. "
            f"{gate}Listed in the data-quality report."
        ),
    )


def _docs_policy(feed: Feed) -> DocsPolicy:
    """Blocking checks render their Data Docs page at once; the others only when they fail
    (a page costs more than the validation; ``quality.build_data_docs`` renders the rest)."""
    return "page" if feed.blocking else "failures"


def _suite_result(
    context: dg.AssetExecutionContext, feed: Feed, suite: FrameSuite, frame: pd.DataFrame
) -> dg.AssetCheckResult:
    result = validate_frame(
        frame,
        suite,
        asset_name=feed.asset_path,
        partition_key=_partition_label(context),
        docs=_docs_policy(feed),
    )
    for failure in result.failures:
        context.log.warning("%s %s: %s", feed.asset_path, suite.name, failure)
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(feed.key),
        check_name=feed.check_name,
        passed=result.passed,
        metadata=result.to_metadata(),
        description="; ".join(result.failures[:3])[:2000] or None,
    )


def _with_window_flag(
    frame: pd.DataFrame, column: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """A copy with the suites' ``in_partition`` column: the row's time is in ``[start, end)``."""
    checked = frame.copy()
    values = checked[column]
    if values.map(lambda v: isinstance(v, date) and not isinstance(v, datetime)).all():
        inside = values.map(lambda d: start.date() <= d < end.date())
    else:
        times = pd.to_datetime(values, utc=True)
        inside = (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
    checked[IN_PARTITION] = inside.astype(bool)
    return checked


def _fetch_all(
    feed: TableFeed | DocumentFeed, client: Any, start: datetime, end: datetime
) -> Iterator[tuple[str, Any]]:
    """(subject, parsed) for every subject, or a Failure naming the subject that failed."""
    for subject in feed.subjects:
        try:
            payload = feed.module.fetch(client, subject, start, end)
            yield subject, feed.module.parse(payload, subject)
        except SourceError as error:
            raise _source_failure(feed.provider, subject, error) from error


def _empty(
    feed: TableFeed | DocumentFeed, subject: str, start: datetime, end: datetime
) -> dg.Failure:
    return dg.Failure(
        description=(
            f"{feed.provider} returned no {feed.what} for {subject} in {_window_text(start, end)}; "
            "nothing was written (an empty partition is never a success: check that the venue "
            "covers this window)"
        ),
        allow_retries=False,
    )


def build_candle_asset(feed: CandleFeed) -> dg.AssetsDefinition:
    @dg.asset(
        **_table_settings(feed),
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
        client = AnswerTally(getattr(context.resources, feed.client_key))
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
                "synthetic": client.synthetic,
                "preview": _preview(candles),
            },
        )

    return _candles


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
        name=feed.check_name,
        blocking=feed.blocking,
        description=(
            f"Great Expectations suite on the partition's candles: {CANDLE_SUITE.description}. "
            "Records a verdict per day for dbt's staging."
            + (" Blocking: a failing partition feeds nothing downstream." if feed.blocking else "")
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, postgres: PostgresStoreResource
    ) -> dg.AssetCheckResult:
        window = context.partition_time_window
        asset = feed.asset_path
        engine = postgres.get_engine()
        candles = read_window(
            engine, feed.table, "open_time", window.start, window.end, order_by="symbol, open_time"
        )
        candles = candles.drop(columns=["ingested_at"], errors="ignore")
        days = days_of(window.start, window.end)
        results = {}
        for day in days:
            start = day_start(day)
            in_day = candles["open_time"].between(
                start, start + timedelta(days=1), inclusive="left"
            )
            results[day] = validate_candles(
                candles[in_day].reset_index(drop=True),
                interval_seconds=feed.interval_seconds,
                asset_name=asset,
                partition_key=day.isoformat(),
                docs="index" if feed.blocking else "failures",
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
        **_table_settings(feed),
        metadata={
            "table": feed.table,
            "partition_expr": "observation_date",
            "series": list(feed.series),
        },
        tags={"layer": "raw", "provider": feed.provider},
        check_specs=[_check_spec(feed, feed.suite)],
    )
    def _observations(context: dg.AssetExecutionContext) -> Iterator[Any]:
        client = AnswerTally(getattr(context.resources, feed.client_key))
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
        yield dg.Output(
            observations,
            metadata={
                "rows_per_series": {s: int(counts.get(s, 0)) for s in feed.series},
                "missing_values": int(observations["value"].isna().sum()),
                "synthetic": client.synthetic,
                "preview": _preview(observations),
            },
        )
        yield _suite_result(
            context,
            feed,
            feed.suite,
            _with_window_flag(observations, "observation_date", window.start, window.end),
        )

    return _observations


def build_table_asset(feed: TableFeed) -> dg.AssetsDefinition:
    columns = feed.module.COLUMNS
    key_columns = list(feed.module.KEY_COLUMNS)

    @dg.asset(
        **_table_settings(feed),
        metadata={
            "table": feed.table,
            "partition_expr": feed.time_column,
            "subjects": list(feed.subjects),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(n, t, description=d or None) for n, t, d in columns]
            ),
        },
        tags={"layer": "raw", "venue": feed.provider},
        check_specs=[_check_spec(feed, feed.suite)],
    )
    def _table(context: dg.AssetExecutionContext) -> Iterator[Any]:
        client = AnswerTally(getattr(context.resources, feed.client_key))
        window = context.partition_time_window
        frames = []
        for subject, frame in _fetch_all(feed, client, window.start, window.end):
            if frame.empty:
                raise _empty(feed, subject, window.start, window.end)
            frames.append(frame)
        rows = pd.concat(frames, ignore_index=True).sort_values(key_columns, kind="stable")
        rows = rows.reset_index(drop=True)
        times = rows[feed.time_column]
        per_subject = {s: int(len(f)) for s, f in zip(feed.subjects, frames, strict=True)}
        context.log.info("fetched %d rows from %s: %s", len(rows), feed.provider, per_subject)
        yield dg.Output(
            rows,
            metadata={
                "rows_per_subject": per_subject,
                "first_time": str(times.min()),
                "last_time": str(times.max()),
                "synthetic": client.synthetic,
                "preview": _preview(rows),
            },
        )
        yield _suite_result(
            context,
            feed,
            feed.suite,
            _with_window_flag(rows, feed.time_column, window.start, window.end),
        )

    return _table


def build_document_asset(feed: DocumentFeed) -> dg.AssetsDefinition:
    @dg.asset(
        **_raw_asset_settings(feed),
        kinds={"python", "mongodb"},
        required_resource_keys={feed.client_key, "mongo"},
        metadata={
            "collection": feed.destination,
            "source": feed.source_name,
            "subjects": list(feed.subjects),
            "dagster/column_schema": DOCUMENT_SCHEMA,
        },
        tags={"layer": "raw", "venue": feed.provider},
        check_specs=[_check_spec(feed, feed.suite)],
    )
    def _documents(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        mongo: MongoStoreResource = context.resources.mongo
        client = AnswerTally(getattr(context.resources, feed.client_key))
        window = context.partition_time_window
        by_id: dict[str, dict[str, Any]] = {}
        for subject, documents in _fetch_all(feed, client, window.start, window.end):
            if not documents:
                raise _empty(feed, subject, window.start, window.end)
            for document in documents:
                by_id.setdefault(document["_id"], document)
        documents = sorted(by_id.values(), key=lambda d: (d["published_at"], d["_id"]))
        days = [d.isoformat() for d in days_of(window.start, window.end)]
        stray = [d["_id"] for d in documents if d["partition_date"] not in days]
        if stray:
            raise dg.Failure(
                description=f"{len(stray)} {feed.source_name} items fall outside "
                f"{_window_text(window.start, window.end)}, e.g. {stray[0]}; nothing was written",
                allow_retries=False,
            )
        replace_documents(mongo.get_database()[feed.destination], feed.source_name, days, documents)
        per_day = {day: sum(d["partition_date"] == day for d in documents) for day in days}
        context.log.info("stored %d %s items: %s", len(documents), feed.source_name, per_day)
        frame = documents_frame(documents)
        check = _suite_result(
            context,
            feed,
            feed.suite,
            _with_window_flag(frame, "published_at", window.start, window.end),
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(documents),
                "documents_per_day": per_day,
                "collection": feed.destination,
                "synthetic": client.synthetic,
                "preview": _preview(frame[["published_at", "title", "text", "symbols"]]),
            },
            check_results=[check],
        )

    return _documents


DOCUMENT_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("_id", "string", description="'<source>:<native id>'"),
        dg.TableColumn("source", "string"),
        dg.TableColumn("native_id", "string", description="the API's id (NewsAPI: URL hash)"),
        dg.TableColumn("published_at", "datetime", description="UTC"),
        dg.TableColumn("partition_date", "string", description="YYYY-MM-DD of published_at"),
        dg.TableColumn("title", "string"),
        dg.TableColumn("text", "string"),
        dg.TableColumn("url", "string"),
        dg.TableColumn("author", "string"),
        dg.TableColumn("symbols", "array", description="tickers mentioned, e.g. ['BTC']"),
        dg.TableColumn("raw", "object", description="the item as the API sent it"),
    ]
)


def replace_documents(
    collection: Any, source: str, days: list[str], documents: list[dict[str, Any]]
) -> int:
    """Make ``collection`` hold exactly ``documents`` for ``source`` on ``days``.

    Upserts first, then deletes the days' other documents of the source: a re-run never
    duplicates, and a write interrupted half-way leaves the previous documents rather than an
    empty day (the next run converges).
    """
    collection.create_index([("source", pymongo.ASCENDING), ("partition_date", pymongo.ASCENDING)])
    if documents:
        collection.bulk_write(
            [pymongo.ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in documents],
            ordered=False,
        )
    result = collection.delete_many(
        {
            "source": source,
            "partition_date": {"$in": days},
            "_id": {"$nin": [d["_id"] for d in documents]},
        }
    )
    return result.deleted_count


def documents_frame(documents: list[dict[str, Any]]) -> pd.DataFrame:
    """The documents as a frame for the suite (``raw`` left out)."""
    fields = [f for f in DOCUMENT_FIELDS if f != "raw"]
    frame = pd.DataFrame([{f: d.get(f) for f in fields} for d in documents], columns=fields)
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


raw_candle_assets = [build_candle_asset(feed) for feed in CANDLE_FEEDS]
raw_candle_checks = [build_candle_check(feed) for feed in CANDLE_FEEDS]
raw_macro_assets = [build_macro_asset(feed) for feed in MACRO_FEEDS]
raw_table_assets = [build_table_asset(feed) for feed in TABLE_FEEDS]
raw_document_assets = [build_document_asset(feed) for feed in DOCUMENT_FEEDS]

raw_assets: list[dg.AssetsDefinition] = [
    *raw_candle_assets,
    *raw_macro_assets,
    *raw_table_assets,
    *raw_document_assets,
]
"""Every raw asset of the registry (the checks of all but the candles run inside them)."""
raw_asset_checks: list[dg.AssetChecksDefinition] = raw_candle_checks
"""The checks defined apart from their assets: the candle gate of each candle feed."""
