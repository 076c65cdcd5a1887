"""Sentiment of the day's news and posts: scored documents in MongoDB, an hourly table per asset.

The text sources (NewsAPI, X/Twitter, Reddit) land their items in MongoDB's ``raw_documents``
with a ``partition_date``. ``signals/sentiment_documents`` scores each item with VADER and embeds
it (trading.sentiment), and ``signals/sentiment_hourly`` aggregates the scores per UTC hour and
ticker into PostgreSQL for the trading job. Both replace their whole partition on a re-run.
"""

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import pandas as pd

from assets.ingest.registry import DOCUMENT_FEEDS, RAW_DOCUMENTS_COLLECTION
from orchestration.groups import SIGNALS_GROUP
from orchestration.io_managers.postgres_window import read_window
from orchestration.partitions import daily_partitions
from orchestration.quality import FrameSuite, validate_frame
from orchestration.resources.embeddings import SentenceEmbedderResource
from orchestration.resources.mongo import MongoStoreResource
from orchestration.resources.postgres import PostgresStoreResource
from trading.sentiment import HOURLY_COLUMNS, document_text, hourly_sentiment, vader_scores

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

SENTIMENT_COLLECTION = "sentiment_documents"
HOURLY_TABLE = "signals.sentiment_hourly"
HOURLY_CHECK_NAME = "sentiment_hourly_valid"
RAW_TEXT_ASSET_KEYS: list[dg.AssetKey] = [dg.AssetKey(feed.key) for feed in DOCUMENT_FEEDS]
"""The text sources whose items land in ``raw_documents``."""
ROW_COUNT_KEY = "dagster/row_count"
DOCUMENTS_PER_DAY_KEY = "documents_per_day"
"""Where a text source's (and sentiment_documents') materialisation says how many items it
stored: per day, since a range backfill gives every partition the same metadata."""

HOURLY_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("hour", "timestamptz", description="start of the UTC hour of publication"),
        dg.TableColumn("symbol", "text", description="ticker the documents mention, e.g. BTC"),
        dg.TableColumn("n_documents", "integer"),
        dg.TableColumn("mean_compound", "double precision", description="mean VADER compound"),
        dg.TableColumn("pos_share", "double precision", description="share with compound >= .05"),
        dg.TableColumn("neg_share", "double precision", description="share with compound <= -.05"),
        dg.TableColumn("sources", "jsonb", description="documents per source"),
    ]
)


def _latest_metadata(
    instance: dg.DagsterInstance, key: dg.AssetKey, day: str
) -> Mapping[str, Any] | None:
    """Metadata of ``key``'s latest materialisation of partition ``day`` (None if never)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}


def _items_for_day(metadata: Mapping[str, Any], day: str) -> int | None:
    per_day = metadata.get(DOCUMENTS_PER_DAY_KEY)
    if isinstance(per_day, Mapping) and isinstance(per_day.get(day), int):
        return per_day[day]
    count = metadata.get(ROW_COUNT_KEY)
    return count if isinstance(count, int) else None


def _require_sources_were_empty(instance: dg.DagsterInstance, day: str) -> dict[str, int]:
    """An empty day is only valid when every text source ran for it and stored nothing."""
    counts: dict[str, int] = {}
    problems: list[str] = []
    for key in RAW_TEXT_ASSET_KEYS:
        name = key.to_user_string()
        metadata = _latest_metadata(instance, key, day)
        if metadata is None:
            problems.append(f"{name} has not been materialised for {day}")
            continue
        count = _items_for_day(metadata, day)
        if count is None:
            problems.append(f"{name}'s materialisation for {day} does not say how many items")
            continue
        if count > 0:
            problems.append(f"{name} stored {count} items for {day}")
        counts[name] = count
    if problems:
        raise dg.Failure(
            description=(
                f"{RAW_DOCUMENTS_COLLECTION} holds no documents for {day}, and that is not a "
                "quiet day: " + "; ".join(problems)
            ),
            metadata={"partition_date": day},
            allow_retries=False,
        )
    return counts


def _checked(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A raw document, refused with the field named when it breaks the ingest contract."""
    doc_id = raw.get("_id")

    def bad(problem: str) -> dg.Failure:
        return dg.Failure(
            description=f"{RAW_DOCUMENTS_COLLECTION} document {doc_id!r}: {problem}",
            allow_retries=False,
        )

    if not isinstance(doc_id, str) or ":" not in doc_id:
        raise bad("_id must be '<source>:<native id>'")
    source = raw.get("source")
    if not isinstance(source, str) or not source:
        raise bad("source is missing")
    published = raw.get("published_at")
    if not isinstance(published, datetime) or published.tzinfo is None:
        raise bad(f"published_at must be a UTC datetime, got {published!r}")
    day = published.astimezone(UTC).date().isoformat()
    if raw.get("partition_date") != day:
        raise bad(f"partition_date {raw.get('partition_date')!r} is not the day of {published}")
    symbols = raw.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise bad(f"symbols must be a list of tickers, got {symbols!r}")
    for field in ("title", "text"):
        if raw.get(field) is not None and not isinstance(raw[field], str):
            raise bad(f"{field} must be text, got {type(raw[field]).__name__}")
    return raw


@dg.asset(
    key=["signals", "sentiment_documents"],
    group_name=SIGNALS_GROUP,
    kinds={"python", "mongodb"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=RAW_TEXT_ASSET_KEYS,
    metadata={"collection": SENTIMENT_COLLECTION, "source_collection": RAW_DOCUMENTS_COLLECTION},
)
def sentiment_documents(
    context: dg.AssetExecutionContext,
    mongo: MongoStoreResource,
    embedder: SentenceEmbedderResource,
) -> dg.MaterializeResult:
    """Every news item and post of the day scored with VADER (compound, pos, neg, neu) and
    embedded as a 384-dimension unit vector, stored in MongoDB next to its raw document (same
    ``_id``). ``embedding_model`` names the embedder on every document: vectors of different
    models must not be compared. Items without any text are left out and counted."""
    days = context.partition_keys
    db = mongo.get_database()
    raw_docs = [
        _checked(raw)
        for raw in db[RAW_DOCUMENTS_COLLECTION]
        .find({"partition_date": {"$in": days}}, projection={"raw": 0})
        .sort("_id", 1)
    ]
    per_day = Counter(raw["partition_date"] for raw in raw_docs)
    quiet_days = {
        day: _require_sources_were_empty(context.instance, day) for day in days if not per_day[day]
    }

    with_text = [(raw, document_text(raw.get("title"), raw.get("text"))) for raw in raw_docs]
    without_text = [raw["_id"] for raw, text in with_text if not text]
    with_text = [(raw, text) for raw, text in with_text if text]
    model = embedder.get_embedder()
    vectors = model.embed([text for _, text in with_text])
    scored = [
        _scored(raw, text, vector.tolist(), model.name)
        for (raw, text), vector in zip(with_text, vectors, strict=True)
    ]

    collection = db[SENTIMENT_COLLECTION]
    collection.create_index("partition_date")
    collection.delete_many({"partition_date": {"$in": days}})
    if scored:
        collection.insert_many(scored, ordered=True)

    if without_text:
        context.log.warning("%d documents have no text: %s", len(without_text), without_text[:5])
    sources = Counter(doc["source"] for doc in scored)
    scored_per_day = Counter(doc["partition_date"] for doc in scored)
    compounds = [doc["vader"]["compound"] for doc in scored]
    return dg.MaterializeResult(
        metadata={
            "documents": len(scored),
            ROW_COUNT_KEY: len(scored),
            DOCUMENTS_PER_DAY_KEY: {day: scored_per_day[day] for day in days},
            "documents_per_source": dict(sorted(sources.items())),
            "documents_without_text": len(without_text),
            "untagged_documents": sum(not doc["symbols"] for doc in scored),
            "quiet_days": quiet_days,
            "embedding_model": model.name,
            "embedding_dim": model.dim,
            "mean_compound": round(sum(compounds) / len(compounds), 4) if compounds else None,
        }
    )


def _scored(raw: Mapping[str, Any], text: str, vector: list[float], model: str) -> dict[str, Any]:
    scores = vader_scores(text)
    return {
        "_id": raw["_id"],
        "source": raw["source"],
        "published_at": raw["published_at"],
        "partition_date": raw["partition_date"],
        "symbols": sorted({s.strip().upper() for s in raw["symbols"] if s.strip()}),
        "title": raw.get("title"),
        "vader": scores.model_dump(),
        "embedding": vector,
        "embedding_model": model,
    }


def _require_documents_were_scored(instance: dg.DagsterInstance, day: str) -> None:
    metadata = _latest_metadata(instance, sentiment_documents.key, day)
    name = sentiment_documents.key.to_user_string()
    if metadata is None:
        raise dg.Failure(
            description=f"{name} has not been materialised for {day}; run it first",
            allow_retries=False,
        )
    recorded = (metadata.get(DOCUMENTS_PER_DAY_KEY) or {}).get(day)
    if recorded:
        raise dg.Failure(
            description=(
                f"{name} scored {recorded} documents for {day} but {SENTIMENT_COLLECTION} "
                "holds none now; re-materialise it"
            ),
            allow_retries=False,
        )


@dg.asset(
    key=["signals", "sentiment_hourly"],
    group_name=SIGNALS_GROUP,
    kinds={"python", "pandas", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[sentiment_documents],
    io_manager_key="postgres_window_io_manager",
    metadata={
        "table": HOURLY_TABLE,
        "partition_expr": "hour",
        "dagster/column_schema": HOURLY_SCHEMA,
    },
)
def sentiment_hourly(
    context: dg.AssetExecutionContext, mongo: MongoStoreResource
) -> dg.Output[pd.DataFrame]:
    """Sentiment per UTC hour and ticker: how many documents mentioned the asset, their mean
    VADER compound, the shares of positive and negative ones, and the documents per source.
    A document about several tickers counts for each; hours without documents have no row."""
    days = context.partition_keys
    documents = list(
        mongo.get_database()[SENTIMENT_COLLECTION]
        .find(
            {"partition_date": {"$in": days}},
            projection={"published_at": 1, "partition_date": 1, "symbols": 1, "source": 1,
                        "vader.compound": 1},
        )
        .sort("_id", 1)
    )  # fmt: skip
    present = {doc["partition_date"] for doc in documents}
    for day in days:
        if day not in present:
            _require_documents_were_scored(context.instance, day)
    scored = pd.DataFrame(
        {
            "published_at": pd.to_datetime([d["published_at"] for d in documents], utc=True),
            "symbols": [d.get("symbols") or [] for d in documents],
            "source": [d["source"] for d in documents],
            "compound": [d["vader"]["compound"] for d in documents],
        }
    )
    hourly = hourly_sentiment(scored)
    per_symbol = hourly.groupby("symbol")["n_documents"].sum()
    return dg.Output(
        hourly,
        metadata={
            "documents": len(documents),
            "untagged_documents": sum(not d.get("symbols") for d in documents),
            "hours": int(hourly["hour"].nunique()),
            "document_mentions_per_symbol": {str(k): int(v) for k, v in dict(per_symbol).items()},
            "preview": dg.MetadataValue.md(hourly.head(10).to_markdown(index=False)),
        },
    )


SECONDS_PAST_HOUR = "seconds_past_hour"
SHARES_TOTAL = "pos_plus_neg_share"
"""Helper columns the hourly suite checks (GX cannot compute them itself)."""


def _hourly_expectations() -> list["Expectation"]:
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*HOURLY_COLUMNS, SECONDS_PAST_HOUR, SHARES_TOTAL],
            exact_match=False,
            description="hourly sentiment columns present",
        ),
    ]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} not null")
        for column in HOURLY_COLUMNS
    ]
    between = {
        "mean_compound in [-1, 1]": ("mean_compound", -1, 1),
        "pos_share in [0, 1]": ("pos_share", 0, 1),
        "neg_share in [0, 1]": ("neg_share", 0, 1),
        "pos_share + neg_share <= 1": (SHARES_TOTAL, None, 1),
        "n_documents > 0": ("n_documents", 1, None),
        "hour on the hour": (SECONDS_PAST_HOUR, 0, 0),
    }
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=low, max_value=high, description=description
        )
        for description, (column, low, high) in between.items()
    ]
    expectations.append(
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["hour", "symbol"], description="unique (hour, symbol)"
        )
    )
    return expectations


def _prepare_hourly(frame: pd.DataFrame) -> pd.DataFrame:
    past_hour = pd.Series(float("nan"), index=frame.index, dtype="float64")
    if "hour" in frame and not frame.empty:
        hours = pd.to_datetime(frame["hour"], utc=True)
        frame["hour"] = hours
        past_hour = (hours - hours.dt.floor("h")).dt.total_seconds().astype("float64")
    frame[SECONDS_PAST_HOUR] = past_hour
    if {"pos_share", "neg_share"} <= set(frame.columns):
        frame[SHARES_TOTAL] = pd.to_numeric(frame["pos_share"]) + pd.to_numeric(frame["neg_share"])
    if "sources" in frame:
        # GX hashes and renders values; a per-source count mapping is only checked for null.
        frame["sources"] = frame["sources"].map(lambda v: None if v is None else str(v))
    return frame


HOURLY_SUITE = FrameSuite(
    name="sentiment_hourly",
    description=(
        "mean compound in [-1, 1], shares in [0, 1] and together <= 1, n_documents > 0, "
        "hours on the hour, unique (hour, symbol), no nulls"
    ),
    expectations=_hourly_expectations,
    row_id_columns=("hour", "symbol"),
    prepare=_prepare_hourly,
)


@dg.asset_check(
    asset=sentiment_hourly,
    name=HOURLY_CHECK_NAME,
    blocking=False,
    description=(
        "Great Expectations suite on the hourly sentiment rows: mean compound in [-1, 1], "
        "shares in [0, 1] and together at most 1, n_documents > 0, hours on the hour, unique "
        "(hour, symbol). Not blocking: the table does not feed trading decisions yet."
    ),
)
def sentiment_hourly_valid(
    context: dg.AssetCheckExecutionContext, postgres: PostgresStoreResource
) -> dg.AssetCheckResult:
    window = context.partition_time_window
    days = context.partition_keys
    rows = read_window(
        postgres.get_engine(),
        HOURLY_TABLE,
        "hour",
        window.start,
        window.end,
        order_by="hour, symbol",
    )
    result = validate_frame(
        rows,
        HOURLY_SUITE,
        asset_name=sentiment_hourly.key.to_user_string(),
        partition_key=days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}",
    )
    for failure in result.failures:
        context.log.warning("%s: %s", HOURLY_TABLE, failure)
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=result.to_metadata(),
        description="; ".join(result.failures)[:2000] or None,
    )


sentiment_assets: Sequence[dg.AssetsDefinition] = [sentiment_documents, sentiment_hourly]
sentiment_checks: Sequence[dg.AssetChecksDefinition] = [sentiment_hourly_valid]
