"""PostgreSQL as a Dagster resource, one interface for every deployment.

Assets annotate ``PostgresStoreResource`` and never learn where the database lives:
``PostgresResource`` takes a URL (prod: ``dg.EnvVar("COINSWARM_POSTGRES_URL")``, tests: a
fresh database), ``EmbeddedPostgresResource`` starts the embedded server under
``.coinswarm/postgres`` the first time something actually needs it.

The URL may carry a password, so it is never shown raw: ``repr`` and ``display_url`` render it
with the password hidden, and that redacted form is the only one fit for logs or metadata.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from orchestration.deployment import coinswarm_home
from orchestration.embedded import POSTGRES_DIR_NAME, ensure_postgres
from orchestration.migrations import upgrade_to_head

_lock = threading.Lock()
_engines: dict[tuple[int, str], sa.Engine] = {}
_migrated: set[tuple[int, str]] = set()
_embedded_urls: dict[tuple[int, Path], str] = {}


def parse_postgres_url(url: str | sa.URL) -> sa.URL:
    """Parse a URL and make the driver explicit (psycopg 3) when it is bare ``postgresql``."""
    try:
        parsed = sa.make_url(url)
    except Exception as exc:
        # The message must not echo the URL: it may hold a password.
        raise ValueError(f"not a valid PostgreSQL URL ({type(exc).__name__})") from None
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"expected a postgresql URL, got backend {parsed.get_backend_name()!r}"
            f" in {parsed.render_as_string(hide_password=True)}"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact_url(url: str | sa.URL) -> str:
    return parse_postgres_url(url).render_as_string(hide_password=True)


def engine_for_url(url: str | sa.URL) -> sa.Engine:
    """One pooled engine per URL per process (engines must not cross a fork)."""
    parsed = parse_postgres_url(url)
    key = (os.getpid(), parsed.render_as_string(hide_password=False))
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            # Pin the session to UTC: dates compared with partition timestamps (and ::date casts)
            # must not depend on the server's or the client's time zone.
            engine = sa.create_engine(
                parsed, pool_pre_ping=True, connect_args={"options": "-c timezone=UTC"}
            )
            _engines[key] = engine
        return engine


def dispose_engine(url: str | sa.URL) -> None:
    """Close this process's pooled engine for ``url`` (before dropping that database)."""
    parsed = parse_postgres_url(url)
    key = (os.getpid(), parsed.render_as_string(hide_password=False))
    with _lock:
        engine = _engines.pop(key, None)
        _migrated.discard(key)
    if engine is not None:
        engine.dispose()


def migrate_once(url: str | sa.URL) -> None:
    """Bring the database to the newest migration, at most once per process."""
    parsed = parse_postgres_url(url)
    key = (os.getpid(), parsed.render_as_string(hide_password=False))
    if key in _migrated:
        return
    upgrade_to_head(engine_for_url(parsed))
    _migrated.add(key)


def _first(value: str | tuple[str, ...] | None) -> str | None:
    if isinstance(value, tuple):
        return value[0] if value else None
    return value


def dbt_env_for_url(url: str | sa.URL) -> dict[str, str]:
    """The ``DBT_PG_*`` variables the dbt profile reads (host may be a unix socket dir)."""
    parsed = parse_postgres_url(url)
    host = parsed.host or _first(parsed.query.get("host")) or "localhost"
    port = parsed.port or _first(parsed.query.get("port")) or 5432
    return {
        "DBT_PG_HOST": str(host),
        "DBT_PG_PORT": str(port),
        "DBT_PG_USER": parsed.username or "postgres",
        "DBT_PG_PASSWORD": parsed.password or "",
        "DBT_PG_DBNAME": parsed.database or "postgres",
    }


class PostgresStoreResource(dg.ConfigurableResource):
    """The PostgreSQL interface assets depend on, whatever the deployment."""

    def _resolve_url(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} does not say where its database is")

    def _wants_migrations(self) -> bool:
        return False

    def get_url(self) -> sa.URL:
        """The full URL, password included: hand it to a driver, never to a log."""
        url = parse_postgres_url(self._resolve_url())
        if self._wants_migrations():
            migrate_once(url)
        return url

    def get_engine(self) -> sa.Engine:
        return engine_for_url(self.get_url())

    def dbt_env(self) -> dict[str, str]:
        return dbt_env_for_url(self.get_url())

    def display_url(self) -> str:
        """The URL with its password hidden: the form for logs, reprs and metadata."""
        return self.get_url().render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{self._describe()}>)"

    __str__ = __repr__

    def _describe(self) -> str:
        return "postgres"


class PostgresResource(PostgresStoreResource):
    """A PostgreSQL server reached by URL (prod, tests)."""

    url: str = Field(
        description="SQLAlchemy URL; bare postgresql:// is read as postgresql+psycopg://",
        repr=False,
    )
    apply_migrations: bool = Field(
        default=False,
        description="Migrate to the newest schema on first use in each process.",
    )

    def _resolve_url(self) -> str:
        return self.url

    def _wants_migrations(self) -> bool:
        return self.apply_migrations

    def _describe(self) -> str:
        try:
            return redact_url(self.url)
        except ValueError:
            return "invalid url"


class EmbeddedPostgresResource(PostgresStoreResource):
    """The embedded PostgreSQL of the local deployment, started on first use."""

    data_dir: str = Field(
        default="",
        description="PGDATA of the embedded server; empty means <COINSWARM_HOME>/postgres.",
    )

    def _data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else coinswarm_home() / POSTGRES_DIR_NAME

    def _resolve_url(self) -> str:
        key = (os.getpid(), self._data_path().resolve())
        url = _embedded_urls.get(key)
        if url is None:
            url = ensure_postgres(key[1])
            _embedded_urls[key] = url
        return url

    def _wants_migrations(self) -> bool:
        return True

    def _describe(self) -> str:
        return f"embedded at {self._data_path()}"


POSTGRES_URL_VAR = "COINSWARM_POSTGRES_URL"


def deployment_postgres() -> PostgresStoreResource:
    """The current deployment's database outside a Dagster run (the CLI's operator commands,
    the MCP server, the metrics exporter): prod reads ``COINSWARM_POSTGRES_URL`` from the
    environment, local starts the embedded server under ``coinswarm_home()``. Both migrate."""
    from orchestration.deployment import Deployment, current_deployment

    if current_deployment() is Deployment.PROD:
        url = os.environ.get(POSTGRES_URL_VAR)
        if not url:
            raise ValueError(f"{POSTGRES_URL_VAR} is not set (the prod deployment needs it)")
        return PostgresResource(url=url, apply_migrations=True)
    return EmbeddedPostgresResource(data_dir=str(coinswarm_home() / POSTGRES_DIR_NAME))
