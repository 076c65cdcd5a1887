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
from orchestration.resources.fred import FredLiveClient, FredReplayClient
from orchestration.resources.http import HttpJsonClient
from orchestration.resources.mongo import EmbeddedMongoResource, MongoResource
from orchestration.resources.postgres import EmbeddedPostgresResource, PostgresResource
from orchestration.resources.replay import BinanceReplayClient, CoinbaseReplayClient
from orchestration.resources.ticks import InfluxTickStoreResource, ParquetTickStoreResource


def local_resources() -> dict[str, Any]:
    home = coinswarm_home()
    postgres = EmbeddedPostgresResource(data_dir=str(home / "postgres"))
    return {
        "postgres": postgres,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
        "mongo": EmbeddedMongoResource(data_dir=str(home / "mongo")),
        "ticks": ParquetTickStoreResource(root=str(home / "ticks")),
        "dbt": dbt_resource(),
        "committee": CommitteeConfigResource(),
        "binance_client": BinanceReplayClient(),
        "coinbase_client": CoinbaseReplayClient(),
        "fred_client": FredReplayClient(),
    }


def prod_resources() -> dict[str, Any]:
    postgres = PostgresResource(url=dg.EnvVar("COINSWARM_POSTGRES_URL"), apply_migrations=True)
    return {
        "postgres": postgres,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
        "mongo": MongoResource(url=dg.EnvVar("COINSWARM_MONGO_URL")),
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
        "fred_client": FredLiveClient(api_key=dg.EnvVar("FRED_API_KEY")),
    }


def resources_for(deployment: Deployment) -> dict[str, Any]:
    return {Deployment.LOCAL: local_resources, Deployment.PROD: prod_resources}[deployment]()
