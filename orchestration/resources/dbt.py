"""The dbt project (transforms/) and the dbt CLI resource that runs it."""

import shutil
import sys
from pathlib import Path

from dagster._utils import run_with_concurrent_update_guard
from dagster_dbt import DbtCliResource, DbtProject

from orchestration.deployment import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "transforms"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _dbt_executable() -> str:
    """dbt from this interpreter's environment, so an un-activated venv still finds it."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, dbt_executable=_dbt_executable())


def _manifest_is_stale() -> bool:
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", *DBT_PROJECT_DIR.glob("models/**/*")]
    sources += list(DBT_PROJECT_DIR.glob("macros/**/*"))
    return any(p.stat().st_mtime > built for p in sources if p.is_file())


def _parse() -> None:
    # Parsing never connects: profiles.yml has offline defaults for every connection setting.
    dbt_resource().cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()


def ensure_dbt_manifest() -> None:
    """Parse the dbt project when its manifest is missing or older than its sources.

    A fresh clone has no manifest, and the asset graph is built from it; ``dagster dev`` would
    prepare it, but the demo, the tests and the code server must not depend on that. Concurrent
    processes (run workers loading the code) parse once, behind Dagster's update guard.
    """
    if _manifest_is_stale():
        run_with_concurrent_update_guard(dbt_project.manifest_path, _parse)
