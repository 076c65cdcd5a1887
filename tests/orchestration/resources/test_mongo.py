"""MongoResource against a real MongoDB wire server (secantus) through pymongo."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pymongo
import pytest
from pymongo.database import Database

from orchestration.embedded import mongo_is_running, stop_mongo
from orchestration.resources.mongo import (
    EmbeddedMongoResource,
    MongoResource,
    MongoStoreResource,
    redact_mongo_url,
)

SECRET_URL = "mongodb://news:s3cr3t-pw@mongo.example:27017/?authSource=admin"


def test_password_never_in_repr_or_display() -> None:
    resource = MongoResource(url=SECRET_URL)
    assert "s3cr3t-pw" not in repr(resource)
    assert "s3cr3t-pw" not in str(resource)
    assert (
        redact_mongo_url(SECRET_URL) == "mongodb://news:***@mongo.example:27017/?authSource=admin"
    )
    assert redact_mongo_url("mongodb://127.0.0.1:1/") == "mongodb://127.0.0.1:1/"


def test_invalid_url_is_named_without_the_password() -> None:
    with pytest.raises(ValueError, match="not a valid MongoDB URL") as err:
        MongoResource(url="http://u:s3cr3t-pw@h/").get_client()
    assert "s3cr3t-pw" not in str(err.value)


@pytest.fixture
def db(mongo_uri: str, mongo_database_name: str) -> Database:
    return MongoResource(url=mongo_uri, database=mongo_database_name).get_database()


def _window(day: datetime, texts: list[str]) -> list[dict]:
    return [
        {"source": "newsapi", "url": f"https://news.example/{t}", "published_at": day, "text": t}
        for t in texts
    ]


def _replace_window(db: Database, start: datetime, end: datetime, docs: list[dict]) -> None:
    """The ingest pattern: delete the partition window, then insert it again."""
    window = {"published_at": {"$gte": start, "$lt": end}}
    db.news.delete_many(window)
    if docs:
        db.news.insert_many(docs)


@pytest.mark.integration
def test_client_is_cached_and_insert_find(mongo_uri: str, mongo_database_name: str) -> None:
    resource = MongoResource(url=mongo_uri, database=mongo_database_name)
    assert resource.get_client() is resource.get_client()
    db = resource.get_database()
    db.docs.insert_many([{"_id": i, "v": i * i} for i in range(5)])
    assert [d["v"] for d in db.docs.find({"_id": {"$gte": 3}}).sort("_id")] == [9, 16]
    assert db.docs.count_documents({}) == 5


@pytest.mark.integration
def test_unique_index_rejects_duplicates(db: Database) -> None:
    db.news.create_index([("source", 1), ("url", 1)], unique=True)
    day = datetime(2018, 1, 10, tzinfo=UTC)
    db.news.insert_many(_window(day, ["a", "b"]))
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        db.news.insert_one(_window(day, ["a"])[0])
    assert db.news.count_documents({}) == 2


@pytest.mark.integration
def test_rewriting_a_window_is_idempotent(db: Database) -> None:
    db.news.create_index([("source", 1), ("url", 1)], unique=True)
    d1 = datetime(2018, 1, 10, tzinfo=UTC)
    d2 = d1 + timedelta(days=1)
    _replace_window(db, d1, d2, _window(d1, ["a", "b"]))
    _replace_window(db, d2, d2 + timedelta(days=1), _window(d2, ["c"]))
    for _ in range(2):
        _replace_window(db, d1, d2, _window(d1, ["a", "b"]))
    assert db.news.count_documents({}) == 3
    assert db.news.count_documents({"published_at": {"$gte": d1, "$lt": d2}}) == 2
    # A re-run that now sees fewer items shrinks the window instead of keeping stale documents.
    _replace_window(db, d1, d2, _window(d1, ["a"]))
    assert sorted(d["text"] for d in db.news.find()) == ["a", "c"]
    assert db.news.find_one({"text": "a"})["published_at"] == d1


@pytest.mark.integration
def test_idempotent_upsert_by_key(db: Database) -> None:
    ops = [
        pymongo.UpdateOne({"_id": f"doc-{i}"}, {"$set": {"score": i / 10}}, upsert=True)
        for i in range(4)
    ]
    db.sentiment.bulk_write(ops)
    db.sentiment.bulk_write(ops)
    assert db.sentiment.count_documents({}) == 4


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="cs-emongo-", dir="/tmp"))
    try:
        yield root / "mongo"
    finally:
        stop_mongo(root / "mongo")
        shutil.rmtree(root, ignore_errors=True)


@dg.asset
def news_count(mongo: MongoStoreResource) -> dg.MaterializeResult:
    db = mongo.get_database()
    db.news.insert_one({"text": "hello"})
    return dg.MaterializeResult(metadata={"documents": db.news.count_documents({})})


@pytest.mark.integration
def test_embedded_resource_starts_lazily_and_keeps_data_across_restart(
    embedded_dir: Path,
) -> None:
    resource = EmbeddedMongoResource(data_dir=str(embedded_dir))
    defs = dg.Definitions(assets=[news_count], resources={"mongo": resource})
    dg.Definitions.validate_loadable(defs)
    assert not mongo_is_running(embedded_dir), "definition time must not start a server"

    assert dg.materialize([news_count], resources={"mongo": resource}).success
    assert mongo_is_running(embedded_dir)

    assert stop_mongo(embedded_dir)
    result = dg.materialize([news_count], resources={"mongo": resource})
    assert result.success
    metadata = result.asset_materializations_for_node("news_count")[0].metadata
    assert metadata["documents"].value == 2
