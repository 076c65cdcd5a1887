"""The pipeline in process: the composition root's assets, jobs and sensor, bound to the test
session's PostgreSQL and an in-memory Dagster instance."""

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from orchestration.deployment import Deployment
from orchestration.io_managers.postgres_window import PostgresWindowIOManager


@pytest.fixture
def coinswarm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("COINSWARM_HOME", str(home))
    return home


@pytest.fixture
def make_defs(
    coinswarm_home: Path,
    postgres_resource,  # noqa: ANN001
    mongo_uri: str,
    mongo_database_name: str,
) -> Callable[..., dg.Definitions]:
    """Definitions of the local deployment with the test session's PostgreSQL and MongoDB
    (one server for the session, a fresh database per test); overrides replace resources."""
    from orchestration.definitions import build_definitions
    from orchestration.resources.by_deployment import local_resources
    from orchestration.resources.mongo import MongoResource

    def build(**overrides: object) -> dg.Definitions:
        resources = {
            **local_resources(),
            "postgres": postgres_resource,
            "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres_resource),
            "mongo": MongoResource(url=mongo_uri, database=mongo_database_name),
            **overrides,
        }
        return build_definitions(Deployment.LOCAL, resources)

    return build


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral
