"""The dbt models (transforms/) as partitioned Dagster assets.

dbt sources are named after the raw asset keys, so the graph links raw candles to the gated
staging table and the returns/volatility mart; dbt tests become asset checks. The partition
window reaches the incremental models as ``--vars {min_date, max_date}``.
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.groups import TRANSFORM_GROUP
from orchestration.partitions import daily_partitions
from orchestration.resources.dbt import dbt_project, ensure_dbt_manifest
from orchestration.resources.postgres import PostgresStoreResource


@contextmanager
def _env(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


ensure_dbt_manifest()


class CoinswarmDbtTranslator(DagsterDbtTranslator):
    """dbt models live under the ``analytics/`` key prefix, in the transform group."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] in {"model", "seed", "snapshot"}:
            return spec.replace_attributes(
                key=dg.AssetKey(["analytics", props["name"]]), group_name=TRANSFORM_GROUP
            )
        return spec


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    partitions_def=daily_partitions,
    dagster_dbt_translator=CoinswarmDbtTranslator(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="dbt",
)
def coinswarm_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, postgres: PostgresStoreResource
) -> Iterator[Any]:
    """Build and test the dbt models for the partition window."""
    window = context.partition_time_window
    dbt_vars = {"min_date": window.start.isoformat(), "max_date": window.end.isoformat()}
    with _env(postgres.dbt_env()):
        yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
