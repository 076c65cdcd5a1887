"""Fixtures for the dbt project: an in-process dbt runner against the embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TRANSFORMS_DIR = Path(__file__).resolve().parents[2] / "transforms"
DBT_PG_VARIABLES = ("DBT_PG_HOST", "DBT_PG_PORT", "DBT_PG_USER", "DBT_PG_PASSWORD", "DBT_PG_DBNAME")


def invoke_dbt(work_dir: Path, *args: str) -> Any:
    """Run dbt in process on the project, keeping target/ and logs/ under ``work_dir``.

    Concurrent dbt runs must not share a target dir, so nothing is written into transforms/.
    Returns the ``dbtRunnerResult``; raises with dbt's own message when the command could not
    run at all (as opposed to a model or test failing, which the caller asserts on).
    """
    from dbt.cli.main import dbtRunner

    command = [
        *args,
        "--project-dir",
        str(TRANSFORMS_DIR),
        "--profiles-dir",
        str(TRANSFORMS_DIR),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
    ]
    result = dbtRunner().invoke(command)
    if result.exception is not None:
        raise AssertionError(f"dbt {' '.join(args)} could not run: {result.exception}")
    return result


@pytest.fixture
def dbt_work_dir(tmp_path: Path) -> Path:
    return tmp_path / "dbt"


@pytest.fixture
def run_dbt(dbt_work_dir: Path) -> Callable[..., Any]:
    def run(*args: str) -> Any:
        return invoke_dbt(dbt_work_dir, *args)

    return run


@pytest.fixture
def dbt_database(postgres_resource: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the dbt profile (DBT_PG_* variables) at this test's fresh migrated database."""
    for name, value in postgres_resource.dbt_env().items():
        monkeypatch.setenv(name, value)
