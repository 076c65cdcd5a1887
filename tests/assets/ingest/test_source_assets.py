"""Every raw asset of the registry, materialised from its replay client into real stores.

One partition of the offline demo window goes through each asset as the local deployment runs
it: the replay client, the pure fetch/parse module, the window IO manager into PostgreSQL (or
``raw_documents`` in MongoDB), and the Great Expectations suite run as the asset's check. Then
the same partition again, to show a re-run replaces rather than duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.ingest.factory import raw_asset_checks, raw_assets
from assets.ingest.registry import (
    CANDLE_FEEDS,
    DOCUMENT_FEEDS,
    FEEDS,
    MACRO_FEEDS,
    RAW_DOCUMENTS_COLLECTION,
    TABLE_FEEDS,
)
from orchestration.io_managers.postgres_window import PostgresWindowIOManager
from orchestration.resources.fred import FredReplayClient
from orchestration.resources.kraken import KrakenReplayClient
from orchestration.resources.market_stats import (
    BlockchainChartsReplayClient,
    CoinGeckoReplayClient,
    FearGreedReplayClient,
)
from orchestration.resources.mongo import MongoResource
from orchestration.resources.replay import (
    BinanceFuturesReplayClient,
    BinanceReplayClient,
    CoinbaseReplayClient,
)
from orchestration.resources.text_sources import (
    NewsApiReplayClient,
    RedditReplayClient,
    XReplayClient,
)

pytestmark = pytest.mark.integration

PARTITION = "2018-01-12"
DAY = (datetime(2018, 1, 12, tzinfo=UTC), datetime(2018, 1, 13, tzinfo=UTC))


@pytest.fixture
def coinswarm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COINSWARM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def resources(postgres_resource, mongo_uri: str, mongo_database_name: str, coinswarm_home):  # noqa: ANN001, ANN201
    return {
        "postgres": postgres_resource,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres_resource),
        "mongo": MongoResource(url=mongo_uri, database=mongo_database_name),
        "binance_client": BinanceReplayClient(),
        "binance_futures_client": BinanceFuturesReplayClient(),
        "coinbase_client": CoinbaseReplayClient(),
        "kraken_client": KrakenReplayClient(),
        "coingecko_client": CoinGeckoReplayClient(),
        "fear_greed_client": FearGreedReplayClient(),
        "blockchain_client": BlockchainChartsReplayClient(),
        "fred_client": FredReplayClient(),
        "newsapi_client": NewsApiReplayClient(),
        "twitter_client": XReplayClient(),
        "reddit_client": RedditReplayClient(),
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def _counts(engine: sa.Engine, mongo: MongoResource) -> dict[str, int]:
    counts = {}
    with engine.connect() as conn:
        for feed in (*CANDLE_FEEDS, *MACRO_FEEDS, *TABLE_FEEDS):
            counts[feed.asset_path] = conn.execute(
                sa.text(f"select count(*) from {feed.destination}")
            ).scalar_one()
    collection = mongo.get_database()[RAW_DOCUMENTS_COLLECTION]
    for feed in DOCUMENT_FEEDS:
        counts[feed.asset_path] = collection.count_documents({"source": feed.source_name})
    return counts


def test_the_registry_has_sixteen_sources_with_distinct_keys_and_destinations() -> None:
    assert len(FEEDS) == 16
    assert len({feed.asset_path for feed in FEEDS}) == 16
    tables = [feed.destination for feed in FEEDS if feed not in DOCUMENT_FEEDS]
    assert len(set(tables)) == len(tables) == 13
    assert {feed.destination for feed in DOCUMENT_FEEDS} == {RAW_DOCUMENTS_COLLECTION}


def test_every_source_lands_a_checked_partition_and_a_rerun_duplicates_nothing(
    resources: dict, pg_engine: sa.Engine, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [*raw_assets, *raw_asset_checks],
        partition_key=PARTITION,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures

    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }
    assert {(f.asset_path, f.check_name) for f in FEEDS} == set(evaluations)
    failed = {k: e.description for k, e in evaluations.items() if not e.passed}
    assert not failed, failed

    first = _counts(pg_engine, resources["mongo"])
    assert all(count > 0 for count in first.values()), first

    synthetic = {}
    for feed in FEEDS:
        (materialization,) = [
            m
            for m in result.get_asset_materialization_events()
            if m.asset_key == dg.AssetKey(feed.key)
        ]
        synthetic[feed.asset_path] = materialization.materialization.metadata["synthetic"].value
    # Only the recorded Binance candles are real in the demo window; everything else says so.
    assert {k for k, v in synthetic.items() if not v} == {"raw/binance/ohlcv"}

    again = dg.materialize(
        [*raw_assets, *raw_asset_checks],
        partition_key=PARTITION,
        resources=resources,
        instance=instance,
    )
    assert again.success
    assert _counts(pg_engine, resources["mongo"]) == first


def _job_over(assets: list, resources: dict) -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=assets,
        jobs=[dg.define_asset_job("backfill", selection=dg.AssetSelection.assets(*assets))],
        resources=resources,
    )
    return defs.resolve_job_def("backfill")


def _asset(feed_key: list[str]) -> dg.AssetsDefinition:
    return next(a for a in raw_assets if a.key == dg.AssetKey(feed_key))


def test_a_range_backfill_is_one_run_with_one_check_over_the_range(
    resources: dict, pg_engine: sa.Engine, instance: dg.DagsterInstance
) -> None:
    chosen = [_asset(["raw", "binance", "agg_trades"]), _asset(["raw", "reddit", "posts"])]
    result = _job_over(chosen, resources).execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2018-01-10",
            "dagster/asset_partition_range_end": "2018-01-12",
        },
    )
    assert result.success
    with pg_engine.connect() as conn:
        days = conn.execute(
            sa.text("select distinct trade_time::date::text from raw.binance_agg_trades order by 1")
        ).scalars()
        assert list(days) == ["2018-01-10", "2018-01-11", "2018-01-12"]
    collection = resources["mongo"].get_database()[RAW_DOCUMENTS_COLLECTION]
    assert sorted(collection.distinct("partition_date", {"source": "reddit"})) == [
        "2018-01-10",
        "2018-01-11",
        "2018-01-12",
    ]
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2 and all(e.passed for e in evaluations)
    materialized = {
        e.asset_key.to_user_string(): e.partition for e in result.get_asset_materialization_events()
    }
    assert set(materialized) == {"raw/binance/agg_trades", "raw/reddit/posts"}


@pytest.mark.parametrize(
    ("feed_key", "client_key", "client", "variable"),
    [
        (
            ["raw", "newsapi", "articles"],
            "newsapi_client",
            lambda: __import__("orchestration.resources.http", fromlist=["x"]).HttpJsonClient(
                venue="newsapi",
                base_url="http://127.0.0.1:9",
                api_key="",
                api_key_header="X-Api-Key",
                api_key_env="NEWSAPI_API_KEY",
            ),
            "NEWSAPI_API_KEY",
        ),
        (
            ["raw", "twitter", "posts"],
            "twitter_client",
            lambda: __import__("orchestration.resources.text_sources", fromlist=["x"]).XLiveClient(
                bearer_token="", base_url="http://127.0.0.1:9"
            ),
            "X_BEARER_TOKEN",
        ),
    ],
    ids=["newsapi", "x"],
)
def test_a_text_source_without_its_key_fails_naming_it_and_stores_nothing(
    resources: dict,
    instance: dg.DagsterInstance,
    feed_key: list[str],
    client_key: str,
    client,  # noqa: ANN001
    variable: str,
) -> None:
    asset = _asset(feed_key)
    result = dg.materialize(
        [asset],
        partition_key=PARTITION,
        resources={**resources, client_key: client()},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert f"{variable} is not set" in failure.user_failure_data.description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not result.get_asset_materialization_events()
    assert resources["mongo"].get_database()[RAW_DOCUMENTS_COLLECTION].count_documents({}) == 0


class _CrossedBinance(BinanceReplayClient):
    """Binance's replay with every synthetic book crossed: best bid above best ask."""

    def get_json_at(self, path, params=None, *, at):  # noqa: ANN001, ANN201
        answer = super().get_json_at(path, params, at=at)
        if path == "/api/v3/depth":
            bids, asks = answer.body["bids"], answer.body["asks"]
            answer.body["bids"] = [[asks[0][0], bids[0][1]], *bids[1:]]
            answer.body["asks"] = [[bids[0][0], asks[0][1]], *asks[1:]]
        return answer


def test_a_failing_suite_is_reported_and_does_not_block_a_non_trading_source(
    resources: dict, pg_engine: sa.Engine, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [_asset(["raw", "binance", "order_book"])],
        partition_key=PARTITION,
        resources={**resources, "binance_client": _CrossedBinance()},
        instance=instance,
    )
    assert result.success, "non-blocking: the data lands, the check says what is wrong"
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.check_name == "order_book_valid"
    assert evaluation.description.startswith(
        "expect_column_values_to_be_in_set (best bid below best ask): 400 of 400 rows fail, "
        "e.g. ETH/BTC ask 1; ETH/BTC ask 2"
    ), evaluation.description
    assert Path(str(evaluation.metadata["data_docs_page"].value)).is_file()
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.binance_order_book")).scalar() == 400


def test_a_live_snapshot_of_a_past_day_is_a_named_failure_without_retries(
    resources: dict, instance: dg.DagsterInstance, httpserver
) -> None:  # noqa: ANN001
    httpserver.expect_request("/api/v3/depth").respond_with_json(
        {"lastUpdateId": 1, "bids": [["0.1", "1"]], "asks": [["0.2", "1"]]}
    )
    from orchestration.resources.http import HttpJsonClient

    live = HttpJsonClient(venue="binance", base_url=httpserver.url_for(""))
    result = dg.materialize(
        [_asset(["raw", "binance", "order_book"])],
        partition_key=PARTITION,
        resources={**resources, "binance_client": live},
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "not in partition 2018-01-12" in failure.description
    assert "serves only the present" in failure.description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_replacing_a_days_documents_prunes_what_is_gone_and_touches_nothing_else(
    resources: dict,
) -> None:
    from assets.ingest.factory import replace_documents
    from assets.ingest.sources.documents import document

    collection = resources["mongo"].get_database()["raw_documents"]

    def doc(source: str, native: str, day: int) -> dict:
        return document(
            source=source,
            native_id=native,
            published_at=datetime(2018, 1, day, 12, tzinfo=UTC),
            title=f"Bitcoin item {native}",
            text=None,
            url=f"https://news.example/{native}",
            author=None,
            raw={"id": native},
        )

    replace_documents(
        collection, "reddit", ["2018-01-12"], [doc("reddit", "a", 12), doc("reddit", "b", 12)]
    )
    replace_documents(collection, "reddit", ["2018-01-13"], [doc("reddit", "c", 13)])
    replace_documents(collection, "newsapi", ["2018-01-12"], [doc("newsapi", "a", 12)])

    removed = replace_documents(collection, "reddit", ["2018-01-12"], [doc("reddit", "b", 12)])

    assert removed == 1
    assert sorted(collection.distinct("_id")) == ["newsapi:a", "reddit:b", "reddit:c"]
    stored = collection.find_one({"_id": "reddit:b"})
    assert stored["published_at"] == datetime(2018, 1, 12, 12, tzinfo=UTC)
    assert stored["partition_date"] == "2018-01-12" and stored["symbols"] == ["BTC"]


class _BlankReddit(RedditReplayClient):
    """Reddit's replay with the newest post of each listing stripped of its title and text."""

    def get_json_at(self, path, params=None, *, at):  # noqa: ANN001, ANN201
        answer = super().get_json_at(path, params, at=at)
        answer.body["data"]["children"][0]["data"].update(title="", selftext="")
        return answer


def test_a_failing_text_suite_blocks_what_reads_the_documents(
    resources: dict, instance: dg.DagsterInstance
) -> None:
    posts = _asset(["raw", "reddit", "posts"])

    @dg.asset(
        deps=[posts.key],
        partitions_def=posts.partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def reads_posts() -> None:
        """Stands in for signals/sentiment_documents."""

    result = dg.materialize(
        [posts, reads_posts],
        partition_key=PARTITION,
        resources={**resources, "reddit_client": _BlankReddit()},
        instance=instance,
        raise_on_error=False,
    )

    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.check_name == "posts_valid"
    assert "title or text not empty" in evaluation.description
    assert not result.success
    assert not [
        m for m in result.get_asset_materialization_events() if m.asset_key == reads_posts.key
    ], "blocked: the reader never ran on the bad day"
