"""Versioned schema migrations (alembic) for the project's PostgreSQL tables.

No ``alembic.ini`` is needed: the alembic ``Config`` is built in code so the migrations run
from any working directory, from an installed wheel, and from tests. ``analytics.*`` is not
here: dbt owns that schema.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent

# Any constant works as long as every migrating process uses the same one.
MIGRATION_LOCK_KEY = 0x636F696E  # "coin"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _as_engine(engine_or_url: sa.Engine | sa.URL | str) -> tuple[sa.Engine, bool]:
    if isinstance(engine_or_url, sa.Engine):
        return engine_or_url, False
    return sa.create_engine(engine_or_url, poolclass=sa.pool.NullPool), True


def upgrade_to_head(engine_or_url: sa.Engine | sa.URL | str) -> str | None:
    """Migrate the database to the newest revision; return that revision.

    Runs in one transaction under a transaction-scoped advisory lock, so two processes
    migrating the same database at once serialise, and the second finds nothing to do.
    """
    engine, owned = _as_engine(engine_or_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            command.upgrade(alembic_config(conn), "head")
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def current_revision(engine_or_url: sa.Engine | sa.URL | str) -> str | None:
    engine, owned = _as_engine(engine_or_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
