"""The composition root: loadable in both deployments, and what the UI shows is complete."""

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.ingest.registry import CANDLE_FEEDS, DOCUMENT_FEEDS, FEEDS
from orchestration.definitions import build_definitions
from orchestration.deployment import Deployment, current_deployment
from orchestration.resources.postgres import PostgresResource
from orchestration.sensors import FEATURES_KEY, REGIME_KEY, trading_run_key
from orchestration.trading_control import TradingControl

PROD_ENV = {
    "COINSWARM_POSTGRES_URL": "postgresql+psycopg://u:pw@db.example:5432/coinswarm",
    "COINSWARM_MONGO_URL": "mongodb://mongo.example:27017",
    "COINSWARM_INFLUX_URL": "http://influx.example:8086",
    "COINSWARM_INFLUX_TOKEN": "influx-token-not-real",
    "COINSWARM_INFLUX_ORG": "coinswarm",
    "COINSWARM_INFLUX_BUCKET": "ticks",
    "FRED_API_KEY": "fred-key-not-real",
    "NEWSAPI_API_KEY": "newsapi-key-not-real",
    "X_BEARER_TOKEN": "x-token-not-real",
}


@pytest.fixture(scope="module")
def local_defs() -> dg.Definitions:
    return build_definitions(Deployment.LOCAL)


def test_local_definitions_load(local_defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(local_defs)


def test_prod_definitions_load_with_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions(Deployment.PROD)
    dg.Definitions.validate_loadable(defs)
    postgres = defs.resources["postgres"]
    # EnvVar is resolved at run time: the secret is not a plain string in the definitions.
    assert isinstance(postgres.url, dg.EnvVar)
    assert isinstance(defs.resources["fred_client"].api_key, dg.EnvVar)
    assert isinstance(defs.resources["newsapi_client"].api_key, dg.EnvVar)
    assert isinstance(defs.resources["twitter_client"].bearer_token, dg.EnvVar)
    # every source's client is bound, live in prod
    for feed in FEEDS:
        client = defs.resources[feed.client_key]
        assert client.synthetic is False, feed.client_key


def test_the_deployment_switch_names_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSWARM_DEPLOYMENT", "staging")
    with pytest.raises(ValueError, match="COINSWARM_DEPLOYMENT='staging'.*local, prod"):
        current_deployment()


def test_every_asset_has_group_kinds_and_description(local_defs: dg.Definitions) -> None:
    graph = local_defs.resolve_asset_graph()
    groups = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.kinds, f"{key.to_user_string()} has no kinds"
        # a backtest report covers all history; the live tick stream is an external asset
        if node.group_name != "backtests" and not node.is_external:
            assert node.partitions_def is not None, f"{key.to_user_string()} is not partitioned"
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
    assert set(groups) == {
        "ingest", "transform", "signals", "trading", "memory", "backtests", "ticks"
    }  # fmt: skip
    assert {feed.asset_path for feed in FEEDS} <= groups["ingest"]
    assert len(FEEDS) >= 15
    assert {"analytics/stg_binance_ohlcv", "analytics/fct_pair_returns"} <= groups["transform"]
    assert groups["signals"] == {
        "signals/features", "signals/regime",
        "signals/sentiment_documents", "signals/sentiment_hourly",
    }  # fmt: skip
    assert groups["ticks"] == {"raw/ticks/stream", "raw/ticks/bars_1m"}
    assert groups["trading"] == {
        f"trading/{t}" for t in ("decisions", "orders", "fills", "positions", "pnl")
    }
    assert "backtests/default" in groups["backtests"]


def test_dbt_sources_link_to_the_raw_assets(local_defs: dg.Definitions) -> None:
    graph = local_defs.resolve_asset_graph()
    staging = graph.get(dg.AssetKey(["analytics", "stg_binance_ohlcv"]))
    assert dg.AssetKey(["raw", "binance", "ohlcv"]) in staging.parent_keys


def test_raw_candle_checks_are_blocking(local_defs: dg.Definitions) -> None:
    graph = local_defs.resolve_asset_graph()
    checks = {
        key.asset_key.to_user_string(): graph.get_check_spec(key).blocking
        for key in graph.asset_check_keys
        if key.name == "candles_valid"
    }
    assert checks == {
        "raw/binance/ohlcv": True,
        "raw/coinbase/ohlcv": True,
        "raw/kraken/ohlcv": False,  # not a trading input
    }


def test_every_raw_asset_has_its_suite_as_a_check_blocking_only_for_trading_inputs(
    local_defs: dg.Definitions,
) -> None:
    graph = local_defs.resolve_asset_graph()
    found = {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key).blocking
        for key in graph.asset_check_keys
        if key.asset_key.path[0] == "raw" and key.asset_key.path[1] != "ticks"
    }
    assert found == {(feed.asset_path, feed.check_name): feed.blocking for feed in FEEDS}
    blocking = {asset for (asset, _), is_blocking in found.items() if is_blocking}
    assert blocking == {
        "raw/binance/ohlcv",
        "raw/coinbase/ohlcv",
        *(feed.asset_path for feed in DOCUMENT_FEEDS),  # they feed signals/sentiment
    }


def test_raw_assets_backfill_in_one_run_and_share_a_pool_per_api(
    local_defs: dg.Definitions,
) -> None:
    graph = local_defs.resolve_asset_graph()
    for feed in FEEDS:
        node = graph.get(dg.AssetKey(feed.key))
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), feed.asset_path
        assert node.pools == {feed.pool}, feed.asset_path
    venues = {feed.pool for feed in FEEDS}
    assert {"binance_api", "binance_futures_api", "coinbase_api", "kraken_api"} <= venues
    assert {f.pool for f in CANDLE_FEEDS if f.venue == "binance"} == {"binance_api"}


def test_jobs_schedule_and_sensor_are_listed(local_defs: dg.Definitions) -> None:
    for name in ("ingest_job", "daily_pipeline_job", "trading_job"):
        assert local_defs.resolve_job_def(name).partitions_def is not None
    schedule = local_defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.job_name == "daily_pipeline_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # local: off by default
    sensor = local_defs.resolve_sensor_def("fresh_signals_sensor")
    assert sensor.job_name == "trading_job"


def test_schedule_and_sensor_run_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions(Deployment.PROD)
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_sensor_def("fresh_signals_sensor").default_status == (
        dg.DefaultSensorStatus.RUNNING
    )


def _materialize_signal(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


def _sensor_context(
    instance: dg.DagsterInstance, defs: dg.Definitions, pg_url: str, cursor: str | None = None
) -> dg.MultiAssetSensorEvaluationContext:
    return dg.build_multi_asset_sensor_context(
        monitored_assets=[FEATURES_KEY, REGIME_KEY],
        instance=instance,
        definitions=defs,
        cursor=cursor,
        resources={"postgres": PostgresResource(url=pg_url)},
    )


@pytest.mark.integration
def test_sensor_requests_one_run_per_partition_once_both_signals_land(
    local_defs: dg.Definitions, pg_url: str
) -> None:
    sensor = local_defs.resolve_sensor_def("fresh_signals_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        _materialize_signal(instance, FEATURES_KEY, "2018-01-11")
        _materialize_signal(instance, REGIME_KEY, "2018-01-11")
        _materialize_signal(instance, FEATURES_KEY, "2018-01-10")
        _materialize_signal(instance, REGIME_KEY, "2018-01-10")
        _materialize_signal(instance, FEATURES_KEY, "2018-01-12")  # regime not yet landed

        requests = sensor(_sensor_context(instance, local_defs, pg_url))

    assert [r.partition_key for r in requests] == ["2018-01-10", "2018-01-11"]
    assert [r.run_key for r in requests] == [
        trading_run_key(p) for p in ("2018-01-10", "2018-01-11")
    ]


@pytest.mark.integration
def test_sensor_skips_when_nothing_is_fresh(local_defs: dg.Definitions, pg_url: str) -> None:
    sensor = local_defs.resolve_sensor_def("fresh_signals_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        result = sensor(_sensor_context(instance, local_defs, pg_url))
    assert isinstance(result, dg.SkipReason)


@pytest.mark.integration
@pytest.mark.parametrize("switch", ["pause", "kill"])
def test_sensor_requests_nothing_while_trading_is_stopped_and_catches_up_after(
    local_defs: dg.Definitions, pg_url: str, pg_engine: sa.Engine, switch: str
) -> None:
    control = TradingControl(pg_engine)
    if switch == "pause":
        control.pause("exchange maintenance", actor="ops")
    else:
        control.engage_kill_switch("runaway orders", actor="ops")
    sensor = local_defs.resolve_sensor_def("fresh_signals_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        for partition in ("2018-01-10", "2018-01-11"):
            _materialize_signal(instance, FEATURES_KEY, partition)
            _materialize_signal(instance, REGIME_KEY, partition)
        context = _sensor_context(instance, local_defs, pg_url)
        stopped = sensor(context)
        assert isinstance(stopped, dg.SkipReason)
        assert "ops" in stopped.skip_message
        assert ("exchange maintenance" if switch == "pause" else "runaway orders") in (
            stopped.skip_message
        )

        if switch == "pause":
            control.resume("maintenance over", actor="ops")
        else:
            control.reset_kill_switch("cause fixed", actor="ops")
        requests = sensor(_sensor_context(instance, local_defs, pg_url, context.cursor))
    assert [r.partition_key for r in requests] == ["2018-01-10", "2018-01-11"]
