"""The dbt models (transforms/) as partitioned Dagster assets.

dbt sources are named after the raw asset keys, so the graph links raw candles to the staging view
and the returns/volatility mart; dbt tests become asset checks. The partition window reaches the
incremental models as ``--vars {min_date, max_date}``.
"""

import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.deployment import PROJECT_ROOT
from orchestration.partitions import daily_partitions
from orchestration.resources.postgres import PostgresStoreResource

TRANSFORM_GROUP = "transform"
DBT_PROJECT_DIR = PROJECT_ROOT / "transforms"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _dbt_executable() -> str:
    """dbt from this interpreter's environment, so an un-activated venv still finds it."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=_dbt_executable())


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


def _manifest_is_stale() -> bool:
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", *DBT_PROJECT_DIR.glob("models/**/*")]
    sources += list(DBT_PROJECT_DIR.glob("macros/**/*"))
    return any(p.stat().st_mtime > built for p in sources if p.is_file())


def ensure_dbt_manifest() -> None:
    """Parse the dbt project when its manifest is missing or older than its sources.

    A fresh clone has no manifest, and the asset graph is built from it; ``dagster dev`` would
    prepare it, but the demo, the tests and the code server must not depend on that.
    """
    if _manifest_is_stale():  # parsing never connects; profiles.yml has offline defaults
        dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()


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
