"""Resources per deployment: the one mapping the composition root picks from.

``local`` runs on embedded stores started on demand under ``coinswarm_home()`` and replays
recorded source payloads, so it needs no server, no network and no API key. ``prod`` reads every
URL and secret from the environment at run time through ``dg.EnvVar`` (never at import time, and
never shown in the UI).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from orchestration.deployment import Deployment, coinswarm_home
from orchestration.io_managers.postgres_window import PostgresWindowIOManager
from orchestration.resources.committee import CommitteeConfigResource
from orchestration.resources.dbt import dbt_resource
from orchestration.resources.embeddings import SentenceEmbedderResource
from orchestration.resources.fred import FredLiveClient, FredReplayClient
from orchestration.resources.http import HttpJsonClient
from orchestration.resources.kraken import KrakenHttpClient, KrakenReplayClient
from orchestration.resources.market_stats import (
    BlockchainChartsReplayClient,
    CoinGeckoReplayClient,
    FearGreedReplayClient,
)
from orchestration.resources.mongo import EmbeddedMongoResource, MongoResource
from orchestration.resources.postgres import EmbeddedPostgresResource, PostgresResource
from orchestration.resources.replay import (
    BinanceFuturesReplayClient,
    BinanceReplayClient,
    CoinbaseReplayClient,
)
from orchestration.resources.text_sources import (
    NewsApiReplayClient,
    RedditReplayClient,
    XLiveClient,
    XReplayClient,
)
from orchestration.resources.ticks import InfluxTickStoreResource, ParquetTickStoreResource


def local_resources() -> dict[str, Any]:
    home = coinswarm_home()
    postgres = EmbeddedPostgresResource(data_dir=str(home / "postgres"))
    return {
        "postgres": postgres,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
        "mongo": EmbeddedMongoResource(data_dir=str(home / "mongo")),
        "embedder": SentenceEmbedderResource(),
        "ticks": ParquetTickStoreResource(root=str(home / "ticks")),
        "dbt": dbt_resource(),
        "committee": CommitteeConfigResource(),
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


def prod_resources() -> dict[str, Any]:
    postgres = PostgresResource(url=dg.EnvVar("COINSWARM_POSTGRES_URL"), apply_migrations=True)
    return {
        "postgres": postgres,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
        "mongo": MongoResource(url=dg.EnvVar("COINSWARM_MONGO_URL")),
        "embedder": SentenceEmbedderResource(),
        "ticks": InfluxTickStoreResource(
            url=dg.EnvVar("COINSWARM_INFLUX_URL"),
            token=dg.EnvVar("COINSWARM_INFLUX_TOKEN"),
            org=dg.EnvVar("COINSWARM_INFLUX_ORG"),
            bucket=dg.EnvVar("COINSWARM_INFLUX_BUCKET"),
        ),
        "dbt": dbt_resource(),
        "committee": CommitteeConfigResource(),
        "binance_client": HttpJsonClient(venue="binance", base_url="https://api.binance.com"),
        "coinbase_client": HttpJsonClient(
            venue="coinbase", base_url="https://api.exchange.coinbase.com"
        ),
        "binance_futures_client": HttpJsonClient(
            venue="binance_futures", base_url="https://fapi.binance.com"
        ),
        "kraken_client": KrakenHttpClient(),
        "coingecko_client": HttpJsonClient(venue="coingecko", base_url="https://api.coingecko.com"),
        "fear_greed_client": HttpJsonClient(
            venue="alternative_me", base_url="https://api.alternative.me"
        ),
        "blockchain_client": HttpJsonClient(
            venue="blockchain", base_url="https://api.blockchain.info"
        ),
        "fred_client": FredLiveClient(api_key=dg.EnvVar("FRED_API_KEY")),
        "newsapi_client": HttpJsonClient(
            venue="newsapi",
            base_url="https://newsapi.org",
            api_key=dg.EnvVar("NEWSAPI_API_KEY"),
            api_key_header="X-Api-Key",
            api_key_env="NEWSAPI_API_KEY",
        ),
        "twitter_client": XLiveClient(bearer_token=dg.EnvVar("X_BEARER_TOKEN")),
        "reddit_client": HttpJsonClient(
            venue="reddit",
            base_url="https://www.reddit.com",
            user_agent="python:coinswarm:0.1 (ingestion of public listings)",
            max_attempts=4,
        ),
    }


def resources_for(deployment: Deployment) -> dict[str, Any]:
    return {Deployment.LOCAL: local_resources, Deployment.PROD: prod_resources}[deployment]()
