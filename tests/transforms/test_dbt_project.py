"""The dbt project parses offline and lines up with the ingest assets for dagster-dbt.

No `from __future__ import annotations` here: Dagster resolves the asset function's annotations
at definition time.
"""

import json

import dagster as dg
import pytest
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.partitions import daily_partitions
from tests.transforms.conftest import DBT_PG_VARIABLES, TRANSFORMS_DIR, invoke_dbt

RAW_ASSET_KEYS = {
    ("binance", "ohlcv"): ["raw", "binance", "ohlcv"],
    ("coinbase", "ohlcv"): ["raw", "coinbase", "ohlcv"],
    ("fred", "observations"): ["raw", "fred", "observations"],
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``dbt parse`` with no database and no DBT_PG_* variables, as on a fresh machine."""
    work_dir = tmp_path_factory.mktemp("dbt_parse")
    with pytest.MonkeyPatch.context() as env:
        for name in DBT_PG_VARIABLES:
            env.delenv(name, raising=False)
        result = invoke_dbt(work_dir, "parse")
    assert result.success
    return json.loads((work_dir / "target" / "manifest.json").read_text())


def test_project_needs_no_packages() -> None:
    assert not (TRANSFORMS_DIR / "packages.yml").exists()
    assert not (TRANSFORMS_DIR / "dependencies.yml").exists()


def test_sources_carry_the_ingest_asset_keys(manifest: dict) -> None:
    sources = {(s["source_name"], s["name"]): s for s in manifest["sources"].values()}

    assert set(sources) == set(RAW_ASSET_KEYS)
    for key, source in sources.items():
        assert source["schema"] == "raw"
        assert source["meta"]["dagster"]["asset_key"] == RAW_ASSET_KEYS[key]
    assert sources[("binance", "ohlcv")]["identifier"] == "binance_ohlcv"
    assert sources[("coinbase", "ohlcv")]["identifier"] == "coinbase_ohlcv"
    assert sources[("fred", "observations")]["identifier"] == "fred_observations"


def test_models_build_into_the_analytics_schema(manifest: dict) -> None:
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}

    assert {"stg_binance_ohlcv", "fct_pair_returns"} <= set(models)
    assert {m["schema"] for m in models.values()} == {"analytics"}
    fct = models["fct_pair_returns"]["config"]
    assert fct["materialized"] == "incremental"
    assert fct["incremental_strategy"] == "delete+insert"
    assert fct["unique_key"] == ["symbol", "open_time"]
    staging = models["stg_binance_ohlcv"]["config"]
    assert staging["materialized"] == "incremental"
    assert staging["unique_key"] == ["symbol", "interval", "open_time"]


def test_generic_tests_are_local_macros(manifest: dict) -> None:
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    names = {t["test_metadata"]["name"] for t in tests if t.get("test_metadata")}

    assert {"not_null", "unique_combination_of_columns", "accepted_range"} <= names
    assert any(
        t["attached_node"] == "model.coinswarm.fct_pair_returns"
        and t["test_metadata"]["name"] == "unique_combination_of_columns"
        for t in tests
    )


def test_dagster_dbt_wires_models_below_the_raw_assets(manifest: dict) -> None:
    @dbt_assets(manifest=manifest, partitions_def=daily_partitions)
    def coinswarm_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):  # noqa: ANN202
        yield from dbt.cli(["build"], context=context).stream()

    staging = dg.AssetKey(["analytics", "stg_binance_ohlcv"])
    fct = dg.AssetKey(["analytics", "fct_pair_returns"])
    assert {staging, fct} <= set(coinswarm_dbt.keys)
    assert dg.AssetKey(["raw", "binance", "ohlcv"]) in coinswarm_dbt.asset_deps[staging]
    assert staging in coinswarm_dbt.asset_deps[fct]
    assert any(check.asset_key == fct for check in coinswarm_dbt.check_keys)
