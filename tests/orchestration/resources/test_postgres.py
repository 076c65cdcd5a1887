"""PostgresResource / EmbeddedPostgresResource: one interface, lazy start, secrets hidden."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from orchestration.embedded import postgres_is_running, stop_postgres
from orchestration.resources.postgres import (
    EmbeddedPostgresResource,
    PostgresResource,
    PostgresStoreResource,
    dbt_env_for_url,
    parse_postgres_url,
    redact_url,
)

SECRET_URL = "postgresql://coin:s3cr3t-pw@db.example:6543/coinswarm"


def test_bare_postgresql_url_gets_the_psycopg3_driver() -> None:
    assert parse_postgres_url(SECRET_URL).drivername == "postgresql+psycopg"
    explicit = "postgresql+psycopg2://u@h/d"
    assert parse_postgres_url(explicit).drivername == "postgresql+psycopg2"


def test_non_postgres_url_is_rejected_without_echoing_the_password() -> None:
    with pytest.raises(ValueError, match="expected a postgresql URL") as err:
        parse_postgres_url("mysql://u:s3cr3t-pw@h/d")
    assert "s3cr3t-pw" not in str(err.value)
    with pytest.raises(ValueError) as err:
        parse_postgres_url("not a url s3cr3t-pw")
    assert "s3cr3t-pw" not in str(err.value)


def test_password_never_in_repr_str_or_display() -> None:
    resource = PostgresResource(url=SECRET_URL)
    for text in (repr(resource), str(resource), resource.display_url(), redact_url(SECRET_URL)):
        assert "s3cr3t-pw" not in text
    assert "db.example:6543" in resource.display_url()


def test_dbt_env_for_tcp_and_unix_socket_urls() -> None:
    assert dbt_env_for_url(SECRET_URL) == {
        "DBT_PG_HOST": "db.example",
        "DBT_PG_PORT": "6543",
        "DBT_PG_USER": "coin",
        "DBT_PG_PASSWORD": "s3cr3t-pw",
        "DBT_PG_DBNAME": "coinswarm",
    }
    socket_env = dbt_env_for_url("postgresql+psycopg://postgres@/coinswarm?host=/tmp/pg/data")
    assert socket_env == {
        "DBT_PG_HOST": "/tmp/pg/data",
        "DBT_PG_PORT": "5432",
        "DBT_PG_USER": "postgres",
        "DBT_PG_PASSWORD": "",
        "DBT_PG_DBNAME": "coinswarm",
    }


@pytest.mark.integration
def test_engine_is_cached_per_process_and_works(postgres_resource: PostgresResource) -> None:
    engine = postgres_resource.get_engine()
    assert postgres_resource.get_engine() is engine
    assert PostgresResource(url=postgres_resource.url).get_engine() is engine
    assert engine.pool._pre_ping  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.binance_ohlcv")).scalar() == 0


@pytest.mark.integration
def test_dbt_env_connects(postgres_resource: PostgresResource) -> None:
    import psycopg

    env = postgres_resource.dbt_env()
    with psycopg.connect(
        host=env["DBT_PG_HOST"],
        port=int(env["DBT_PG_PORT"]),
        user=env["DBT_PG_USER"],
        password=env["DBT_PG_PASSWORD"] or None,
        dbname=env["DBT_PG_DBNAME"],
    ) as conn:
        assert conn.execute("select current_database()").fetchone() == (env["DBT_PG_DBNAME"],)


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="cs-epg-", dir="/tmp"))
    try:
        yield root / "postgres"
    finally:
        stop_postgres(root / "postgres")
        shutil.rmtree(root, ignore_errors=True)


@dg.asset
def candle_count(postgres: PostgresStoreResource) -> dg.MaterializeResult:
    with postgres.get_engine().connect() as conn:
        rows = conn.execute(sa.text("select count(*) from raw.binance_ohlcv")).scalar()
    return dg.MaterializeResult(metadata={"rows": rows, "store": postgres.display_url()})


@pytest.mark.integration
def test_embedded_resource_starts_lazily_and_migrates(embedded_dir: Path) -> None:
    resource = EmbeddedPostgresResource(data_dir=str(embedded_dir))
    defs = dg.Definitions(assets=[candle_count], resources={"postgres": resource})
    dg.Definitions.validate_loadable(defs)
    assert not postgres_is_running(embedded_dir), "definition time must not start a server"

    result = dg.materialize([candle_count], resources={"postgres": resource})
    assert result.success
    assert postgres_is_running(embedded_dir)
    metadata = result.asset_materializations_for_node("candle_count")[0].metadata
    assert metadata["rows"].value == 0
    assert resource.dbt_env()["DBT_PG_HOST"] == str(embedded_dir.resolve())


@pytest.mark.integration
def test_url_resource_is_interchangeable(postgres_resource: PostgresResource) -> None:
    result = dg.materialize([candle_count], resources={"postgres": postgres_resource})
    assert result.success


@pytest.mark.integration
def test_url_resource_from_env_var(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINSWARM_POSTGRES_URL", pg_url)
    resource = PostgresResource(url=dg.EnvVar("COINSWARM_POSTGRES_URL"))
    result = dg.materialize([candle_count], resources={"postgres": resource})
    assert result.success
