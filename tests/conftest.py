"""Shared fixtures: real servers for the whole test session, isolated state per test.

One embedded PostgreSQL, one MongoDB-compatible server and one InfluxDB (behind the v2 write
shim) serve the session; each test gets a fresh database so tests never see each other's rows.
The servers start only when a test asks for them.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


def _short_tmp_dir(prefix: str) -> Path:
    # Unix socket paths are limited to ~107 bytes, and pytest's tmp dirs can be long and are
    # chmod-ed by other pytest sessions; a short private dir under /tmp avoids both.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The recorded real market data (read-only), ``../shared/data`` from the repo root."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"recorded market data not found at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

_TEMPLATE_DB = "coinswarm_template"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the maintenance database (``postgres``) of a session-wide embedded server.

    Also prepares ``coinswarm_template``, a database migrated to head, that ``pg_url`` clones.
    """
    from orchestration.embedded import ensure_postgres, stop_postgres
    from orchestration.migrations import upgrade_to_head

    root = _short_tmp_dir("cs-pg-")
    data_dir = root / "pgdata"
    try:
        template_url = ensure_postgres(data_dir, database=_TEMPLATE_DB)
        upgrade_to_head(template_url)
        url = sa.make_url(template_url).set(database="postgres")
        yield url.render_as_string(hide_password=False)
    finally:
        stop_postgres(data_dir)
        shutil.rmtree(root, ignore_errors=True)


def _admin_engine(server_url: str) -> sa.Engine:
    return sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database migrated to head for this test only, dropped afterwards."""
    from orchestration.resources.postgres import dispose_engine

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine(pg_server_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'create database "{name}" template "{_TEMPLATE_DB}"'))
        url = sa.make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
        yield url
        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    finally:
        admin.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_resource(pg_url: str):  # noqa: ANN201 - avoid importing dagster at collection
    from orchestration.resources.postgres import PostgresResource

    return PostgresResource(url=pg_url)


# --------------------------------------------------------------------------------------------
# MongoDB (secantusdb over the wire)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """URI of a session-wide secantus server with its storage in a temporary directory."""
    from orchestration.embedded import ensure_mongo, stop_mongo

    root = _short_tmp_dir("cs-mongo-")
    try:
        yield ensure_mongo(root / "mongo")
    finally:
        stop_mongo(root / "mongo")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mongo_database_name(mongo_uri: str) -> Iterator[str]:
    """A database name unique to this test; the database is dropped afterwards."""
    import pymongo

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        client.drop_database(name)
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# InfluxDB 1.x behind the /api/v2/write shim
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def influx_server() -> Iterator:  # noqa: ANN201
    """A session-wide ``influxd`` (1.x) with the v2-write shim in front; see tests/support."""
    from tests.support.influx import InfluxUnavailable, running_influx

    root = _short_tmp_dir("cs-influx-")
    try:
        with running_influx(root) as server:
            yield server
    except InfluxUnavailable as exc:
        pytest.skip(str(exc))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def influx_url(influx_server) -> str:  # noqa: ANN001
    """URL of the shim (speaks /api/v2/write, /query, /ping) of the session's influxd.

    Its database ``ticks`` (``influx_server.bucket``) exists; ``influx_bucket`` gives a fresh
    one per test. The org and token are accepted and ignored (the test server has no auth).
    """
    return influx_server.url


@pytest.fixture
def influx_bucket(influx_server) -> Iterator[str]:  # noqa: ANN001
    """A bucket (1.x database) unique to this test, dropped afterwards."""
    from tests.support.influx import influx_query

    name = f"t_{uuid.uuid4().hex[:16]}"
    influx_query(influx_server.upstream_url, f'CREATE DATABASE "{name}"')
    yield name
    influx_query(influx_server.upstream_url, f'DROP DATABASE "{name}"')
