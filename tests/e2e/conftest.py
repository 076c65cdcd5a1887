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
def make_defs(coinswarm_home: Path, postgres_resource) -> Callable[..., dg.Definitions]:  # noqa: ANN001
    """Definitions of the local deployment with the test database; overrides replace resources."""
    from orchestration.definitions import build_definitions
    from orchestration.resources.by_deployment import local_resources

    def build(**overrides: object) -> dg.Definitions:
        resources = {
            **local_resources(),
            "postgres": postgres_resource,
            "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres_resource),
            **overrides,
        }
        return build_definitions(Deployment.LOCAL, resources)

    return build


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral
