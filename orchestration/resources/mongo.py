"""MongoDB as a Dagster resource, one interface for every deployment.

Assets annotate ``MongoStoreResource``: ``MongoResource`` takes a URL (prod:
``dg.EnvVar("COINSWARM_MONGO_URL")``), ``EmbeddedMongoResource`` starts the secantus server under
``.coinswarm/mongo`` the first time something needs it. Clients are cached per process (a
``MongoClient`` owns a connection pool and must not cross a fork).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dagster as dg
import pymongo
from pydantic import Field
from pymongo.database import Database
from pymongo.uri_parser import parse_uri

from orchestration.deployment import coinswarm_home
from orchestration.embedded import MONGO_DIR_NAME, ensure_mongo, mongo_is_running

DEFAULT_DATABASE = "coinswarm"

_lock = threading.Lock()
_clients: dict[tuple[int, str], pymongo.MongoClient] = {}
_embedded_uris: dict[tuple[int, Path], str] = {}


def redact_mongo_url(url: str) -> str:
    """The URL with any password replaced, for logs and metadata."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, hostpart = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


def client_for_url(url: str) -> pymongo.MongoClient:
    key = (os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = pymongo.MongoClient(url, serverSelectionTimeoutMS=10_000, tz_aware=True)
            _clients[key] = client
        return client


def close_client(url: str, wait: bool = True) -> None:
    """Drop this process's cached client for ``url``.

    Closing a client whose server is gone blocks for the server-selection timeout (pymongo
    tries to end its sessions), so a stale client can be closed in the background instead.
    """
    with _lock:
        client = _clients.pop((os.getpid(), url), None)
    if client is None:
        return
    if wait:
        client.close()
    else:
        threading.Thread(target=client.close, name="mongo-close", daemon=True).start()


class MongoStoreResource(dg.ConfigurableResource):
    """The MongoDB interface assets depend on, whatever the deployment."""

    database: str = Field(
        default=DEFAULT_DATABASE,
        description="Database used by get_database(); the URL's own path is ignored.",
    )

    def _resolve_url(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} does not say where its server is")

    def get_client(self) -> pymongo.MongoClient:
        return client_for_url(self._resolve_url())

    def get_database(self, name: str | None = None) -> Database:
        return self.get_client()[name or self.database]

    def display_url(self) -> str:
        return redact_mongo_url(self._resolve_url())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<{self._describe()}>, database={self.database!r})"

    __str__ = __repr__

    def _describe(self) -> str:
        return "mongo"


class MongoResource(MongoStoreResource):
    """A MongoDB (or wire-compatible) server reached by URL (prod, tests)."""

    url: str = Field(description="mongodb:// or mongodb+srv:// URL", repr=False)

    def _resolve_url(self) -> str:
        try:
            parse_uri(self.url)
        except Exception as exc:
            raise ValueError(
                f"not a valid MongoDB URL ({type(exc).__name__}): {redact_mongo_url(self.url)}"
            ) from None
        return self.url

    def _describe(self) -> str:
        return redact_mongo_url(self.url)


class EmbeddedMongoResource(MongoStoreResource):
    """The embedded secantus server of the local deployment, started on first use."""

    data_dir: str = Field(
        default="",
        description="Storage of the embedded server; empty means <COINSWARM_HOME>/mongo.",
    )

    def _data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else coinswarm_home() / MONGO_DIR_NAME

    def _resolve_url(self) -> str:
        key = (os.getpid(), self._data_path().resolve())
        uri = _embedded_uris.get(key)
        if uri is not None and not mongo_is_running(key[1]):
            # Restarted elsewhere (coinswarm stop, tests): it may listen on a new port now.
            close_client(uri, wait=False)
            uri = None
        if uri is None:
            uri = ensure_mongo(key[1])
            _embedded_uris[key] = uri
        return uri

    def _describe(self) -> str:
        return f"embedded at {self._data_path()}"
