"""The sentiment assets against real stores: secantus (MongoDB wire) and embedded PostgreSQL.

Raw items are inserted into ``raw_documents`` in the text sources' schema, then both assets and
the quality check are materialised for a partition as Dagster runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pymongo.database import Database

from assets.ingest.registry import RAW_DOCUMENTS_COLLECTION
from assets.ingest.sources.documents import document
from assets.signals.sentiment import (
    HOURLY_CHECK_NAME,
    HOURLY_SUITE,
    RAW_TEXT_ASSET_KEYS,
    SENTIMENT_COLLECTION,
    sentiment_documents,
    sentiment_hourly,
    sentiment_hourly_valid,
)
from orchestration.io_managers.postgres_window import PostgresWindowIOManager
from orchestration.quality import validate_frame
from orchestration.resources.embeddings import SentenceEmbedderResource
from orchestration.resources.mongo import MongoResource
from trading.sentiment import HashingEmbedder, document_text, vader_scores

pytestmark = pytest.mark.integration

DAY = "2018-01-12"
NEXT_DAY = "2018-01-13"


def _at(hour: int, minute: int, day: int = 12) -> datetime:
    return datetime(2018, 1, day, hour, minute, tzinfo=UTC)


def _raw(
    source: str,
    native_id: str,
    published_at: datetime,
    *,
    title: str | None,
    text: str | None,
    symbols: list[str],
) -> dict[str, Any]:
    """An item as the text sources store it in raw_documents, tagged with ``symbols`` (not the
    sources' ticker match) so the cases can tag an empty post or a lower-case ticker."""
    item = document(
        source=source,
        native_id=native_id,
        published_at=published_at,
        title=title,
        text=text,
        url=f"https://{source}.example/{native_id}",
        author="someone",
        raw={"id": native_id, "payload": "as the API returned it"},
    )
    return {**item, "symbols": symbols}


GOOD_NEWS = _raw(
    "newsapi", "a1", _at(10, 5), title="Bitcoin soars to a record high",
    text="Investors celebrate huge gains.", symbols=["BTC"],
)  # fmt: skip
BAD_NEWS = _raw(
    "reddit", "r2", _at(10, 40), title="Ethereum and Bitcoin crash",
    text="Terrible losses and panic everywhere.", symbols=["BTC", "ETH"],
)  # fmt: skip
NEUTRAL_POST = _raw(
    "twitter", "t3", _at(11, 15), title=None,
    text="ETH network upgrade scheduled for Tuesday", symbols=["ETH"],
)  # fmt: skip
EMPTY_POST = _raw("twitter", "t4", _at(11, 20), title=None, text="", symbols=["BTC"])
UNTAGGED_POST = _raw("reddit", "r5", _at(12, 0), title="Nice weather today", text=None, symbols=[])
OTHER_DAY = _raw(
    "newsapi", "a6", _at(9, 0, day=13), title="Bitcoin wins", text=None, symbols=["BTC"]
)
DAY_ITEMS = [GOOD_NEWS, BAD_NEWS, NEUTRAL_POST, EMPTY_POST, UNTAGGED_POST]


def _compound(raw: dict[str, Any]) -> float:
    return vader_scores(document_text(raw["title"], raw["text"])).compound


@pytest.fixture
def db(mongo_uri: str, mongo_database_name: str) -> Database:
    return MongoResource(url=mongo_uri, database=mongo_database_name).get_database()


@pytest.fixture
def resources(mongo_uri: str, mongo_database_name: str, postgres_resource: Any) -> dict[str, Any]:
    return {
        "mongo": MongoResource(url=mongo_uri, database=mongo_database_name),
        "postgres": postgres_resource,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres_resource),
        "embedder": SentenceEmbedderResource(),
    }


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("COINSWARM_HOME", str(tmp_path))  # GX context and Data Docs
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def _run(
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    partition: str = DAY,
    assets: list[Any] | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets or [sentiment_documents, sentiment_hourly, sentiment_hourly_valid],
        partition_key=partition,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def _hourly(pg_engine: sa.Engine) -> pd.DataFrame:
    with pg_engine.connect() as conn:
        return pd.read_sql(
            sa.text("SELECT * FROM signals.sentiment_hourly ORDER BY hour, symbol"), conn
        )


def _metadata(result: dg.ExecuteInProcessResult, asset: dg.AssetsDefinition) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node(asset.op.name)
    return {k: v.value for k, v in materialization.metadata.items()}


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    texts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None:
            texts.append(data.user_failure_data.description or "")
        if data.error is not None:
            texts.append(data.error.message)
    return "\n".join(texts)


def _report_sources(
    instance: dg.DagsterInstance, day: str, items: int, per_day: dict[str, int] | None = None
) -> None:
    """Record the text sources' materialisations of ``day`` as their assets report them."""
    metadata: dict[str, Any] = {"dagster/row_count": items}
    if per_day is not None:
        metadata["documents_per_day"] = per_day
    for key in RAW_TEXT_ASSET_KEYS:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition=day, metadata=metadata)
        )


def test_a_day_is_scored_into_mongo_and_aggregated_by_hour(
    db: Database, resources: dict[str, Any], instance: dg.DagsterInstance, pg_engine: sa.Engine
) -> None:
    db[RAW_DOCUMENTS_COLLECTION].insert_many([*DAY_ITEMS, OTHER_DAY])

    result = _run(resources, instance)

    assert result.success, _failure_text(result)
    stored = {doc["_id"]: doc for doc in db[SENTIMENT_COLLECTION].find()}
    # The empty post has nothing to score; the other day is another partition.
    assert sorted(stored) == sorted(d["_id"] for d in (GOOD_NEWS, BAD_NEWS, NEUTRAL_POST,
                                                       UNTAGGED_POST))  # fmt: skip
    good = stored[GOOD_NEWS["_id"]]
    assert set(good) == {
        "_id", "source", "published_at", "partition_date", "symbols", "title", "vader",
        "embedding", "embedding_model",
    }  # fmt: skip
    assert (good["source"], good["partition_date"], good["symbols"]) == ("newsapi", DAY, ["BTC"])
    assert good["published_at"] == GOOD_NEWS["published_at"]
    expected_scores = vader_scores(
        "Bitcoin soars to a record high\nInvestors celebrate huge gains."
    )
    assert good["vader"] == expected_scores.model_dump()
    assert good["embedding_model"] == "hashing-384-v1"
    vector = np.asarray(good["embedding"])
    assert vector.shape == (384,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(
        vector, HashingEmbedder().embed([document_text(GOOD_NEWS["title"], GOOD_NEWS["text"])])[0]
    )
    docs_meta = _metadata(result, sentiment_documents)
    assert docs_meta["documents"] == 4
    assert docs_meta["documents_without_text"] == 1
    assert docs_meta["untagged_documents"] == 1
    assert docs_meta["documents_per_source"] == {"newsapi": 1, "reddit": 2, "twitter": 1}
    assert docs_meta["embedding_model"] == "hashing-384-v1"

    # By hand: 10h BTC = good + bad news, 10h ETH = bad news, 11h ETH = the neutral post.
    good_c, bad_c, neutral_c = (_compound(r) for r in (GOOD_NEWS, BAD_NEWS, NEUTRAL_POST))
    assert good_c > 0.05 and bad_c < -0.05 and neutral_c == 0.0
    hourly = _hourly(pg_engine)
    rows = {(row.hour.hour, row.symbol): row for row in hourly.itertuples()}
    assert sorted(rows) == [(10, "BTC"), (10, "ETH"), (11, "ETH")]
    assert all(h.tzinfo is not None and h.minute == 0 for h in hourly["hour"])
    btc = rows[(10, "BTC")]
    assert btc.n_documents == 2
    assert btc.mean_compound == pytest.approx((good_c + bad_c) / 2)
    assert (btc.pos_share, btc.neg_share) == (0.5, 0.5)
    assert btc.sources == {"newsapi": 1, "reddit": 1}
    eth = rows[(10, "ETH")]
    assert (eth.n_documents, eth.pos_share, eth.neg_share, eth.sources) == (
        1, 0.0, 1.0, {"reddit": 1}
    )  # fmt: skip
    assert eth.mean_compound == pytest.approx(bad_c)
    quiet = rows[(11, "ETH")]
    assert (quiet.n_documents, quiet.mean_compound, quiet.pos_share, quiet.neg_share) == (
        1, 0.0, 0.0, 0.0
    )  # fmt: skip

    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == HOURLY_CHECK_NAME and check.passed
    assert check.metadata["rows"].value == 3
    assert Path(check.metadata["data_docs_page"].value).is_file()
    summary = Path(check.metadata["data_docs"].value).with_name("summary.html").read_text()
    assert "signals_sentiment_hourly" in summary and "sentiment_hourly" in summary


def test_a_rerun_replaces_the_partition_without_duplicates(
    db: Database, resources: dict[str, Any], instance: dg.DagsterInstance, pg_engine: sa.Engine
) -> None:
    db[RAW_DOCUMENTS_COLLECTION].insert_many([*DAY_ITEMS, OTHER_DAY])
    assert _run(resources, instance, partition=NEXT_DAY).success
    assert _run(resources, instance).success
    assert _run(resources, instance).success  # same input twice: same rows, no duplicates
    assert db[SENTIMENT_COLLECTION].count_documents({}) == 5
    assert len(_hourly(pg_engine)) == 4  # three hours of DAY, one of NEXT_DAY

    # The sources now hold one item fewer and one more for the day: the partition follows.
    db[RAW_DOCUMENTS_COLLECTION].delete_one({"_id": BAD_NEWS["_id"]})
    late = _raw("twitter", "t7", _at(23, 59), title=None, text="BTC looks great", symbols=["btc"])
    db[RAW_DOCUMENTS_COLLECTION].insert_one(late)
    assert _run(resources, instance).success

    day_ids = sorted(d["_id"] for d in db[SENTIMENT_COLLECTION].find({"partition_date": DAY}))
    assert day_ids == sorted([GOOD_NEWS["_id"], NEUTRAL_POST["_id"], UNTAGGED_POST["_id"],
                              late["_id"]])  # fmt: skip
    assert db[SENTIMENT_COLLECTION].count_documents({"partition_date": NEXT_DAY}) == 1
    hourly = _hourly(pg_engine)
    keys = [(row.hour.isoformat(), row.symbol, row.n_documents) for row in hourly.itertuples()]
    assert keys == [
        ("2018-01-12T10:00:00+00:00", "BTC", 1),
        ("2018-01-12T11:00:00+00:00", "ETH", 1),
        ("2018-01-12T23:00:00+00:00", "BTC", 1),
        ("2018-01-13T09:00:00+00:00", "BTC", 1),
    ]


def test_an_empty_day_is_valid_only_when_every_source_stored_nothing(
    db: Database, resources: dict[str, Any], instance: dg.DagsterInstance, pg_engine: sa.Engine
) -> None:
    db[RAW_DOCUMENTS_COLLECTION].insert_one(OTHER_DAY)

    never_ran = _run(resources, instance)
    assert not never_ran.success
    message = _failure_text(never_ran)
    assert f"raw_documents holds no documents for {DAY}" in message
    for key in RAW_TEXT_ASSET_KEYS:
        assert f"{key.to_user_string()} has not been materialised for {DAY}" in message

    _report_sources(instance, DAY, items=2)
    lost = _run(resources, instance)
    assert not lost.success
    assert "raw/newsapi/articles stored 2 items for 2018-01-12" in _failure_text(lost)

    # A range run reports its total on every partition; the per-day count is what matters.
    _report_sources(instance, DAY, items=3, per_day={DAY: 0, NEXT_DAY: 3})
    quiet = _run(resources, instance)
    assert quiet.success, _failure_text(quiet)
    assert _metadata(quiet, sentiment_documents)["documents"] == 0
    assert _metadata(quiet, sentiment_hourly)["documents"] == 0
    assert db[SENTIMENT_COLLECTION].count_documents({}) == 0
    assert _hourly(pg_engine).empty
    (check,) = quiet.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows"].value == 0


def test_hourly_refuses_a_day_whose_documents_were_never_scored(
    db: Database, resources: dict[str, Any], instance: dg.DagsterInstance
) -> None:
    result = _run(resources, instance, assets=[sentiment_hourly])
    assert not result.success
    assert f"signals/sentiment_documents has not been materialised for {DAY}" in _failure_text(
        result
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"partition_date": NEXT_DAY}, "partition_date '2018-01-13' is not the day of"),
        ({"symbols": "BTC"}, "symbols must be a list of tickers, got 'BTC'"),
        ({"text": 42}, "text must be text, got int"),
    ],
)
def test_a_malformed_raw_document_fails_and_writes_nothing(
    db: Database,
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    change: dict[str, Any],
    problem: str,
) -> None:
    db[RAW_DOCUMENTS_COLLECTION].insert_many(DAY_ITEMS)
    assert _run(resources, instance).success
    before = sorted(d["_id"] for d in db[SENTIMENT_COLLECTION].find())
    broken = {**GOOD_NEWS, **change, "_id": "newsapi:broken"}
    broken["partition_date"] = change.get("partition_date", DAY)
    db[RAW_DOCUMENTS_COLLECTION].insert_one(broken)
    if "partition_date" in change:  # stored under the wrong day, found by that day's run
        result = _run(resources, instance, partition=NEXT_DAY, assets=[sentiment_documents])
    else:
        result = _run(resources, instance, assets=[sentiment_documents])
    assert not result.success
    message = _failure_text(result)
    assert "raw_documents document 'newsapi:broken'" in message and problem in message
    assert sorted(d["_id"] for d in db[SENTIMENT_COLLECTION].find()) == before


def test_the_hourly_suite_names_each_broken_rule(tmp_path: Path) -> None:
    hour = pd.Timestamp("2018-01-12T10:00Z")
    rows = pd.DataFrame(
        {
            "hour": [hour, hour, hour + pd.Timedelta(minutes=30)],
            "symbol": ["BTC", "BTC", "ETH"],
            "n_documents": [2, 0, 1],
            "mean_compound": [0.2, 1.4, 0.0],
            "pos_share": [0.5, 0.7, 0.0],
            "neg_share": [0.5, 0.6, -0.1],
            "sources": [{"newsapi": 2}, {"reddit": 1}, {"twitter": 1}],
        }
    )
    result = validate_frame(
        rows,
        HOURLY_SUITE,
        asset_name="signals/sentiment_hourly",
        partition_key=DAY,
        context_root=tmp_path / "gx",
        data_docs_dir=tmp_path / "docs",
    )
    assert not result.passed
    broken = [
        "mean_compound in [-1, 1]",
        "neg_share in [0, 1]",
        "pos_share + neg_share <= 1",
        "n_documents > 0",
        "hour on the hour",
        "unique (hour, symbol)",
    ]
    assert len(result.failures) == len(broken), result.failures
    for rule in broken:
        assert any(f"({rule}): " in failure for failure in result.failures), rule
    assert any("2018-01-12T10:30Z ETH" in f for f in result.failures), result.failures
    assert result.data_docs_page is not None and result.data_docs_page.is_file()
    assert validate_frame(
        rows.iloc[:1],
        HOURLY_SUITE,
        asset_name="signals/sentiment_hourly",
        partition_key=DAY,
        context_root=tmp_path / "gx",
        data_docs_dir=tmp_path / "docs",
    ).passed


def test_a_range_backfill_runs_once_over_every_day(
    db: Database, resources: dict[str, Any], instance: dg.DagsterInstance, pg_engine: sa.Engine
) -> None:
    db[RAW_DOCUMENTS_COLLECTION].insert_many([*DAY_ITEMS, OTHER_DAY])
    result = dg.materialize(
        [sentiment_documents, sentiment_hourly, sentiment_hourly_valid],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": DAY,
            "dagster/asset_partition_range_end": NEXT_DAY,
        },
        raise_on_error=False,
    )
    assert result.success, _failure_text(result)
    materializations = result.asset_materializations_for_node(sentiment_documents.op.name)
    assert sorted(m.partition for m in materializations) == [DAY, NEXT_DAY]
    assert materializations[0].metadata["documents_per_day"].value == {DAY: 4, NEXT_DAY: 1}
    assert db[SENTIMENT_COLLECTION].count_documents({}) == 5
    assert len(_hourly(pg_engine)) == 4
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows"].value == 4
