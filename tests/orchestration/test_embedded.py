"""The embedded servers: start on demand, attach when running, survive restarts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymongo
import pytest
import sqlalchemy as sa

from orchestration.embedded import (
    MONGO_STATE_FILE,
    ensure_mongo,
    ensure_postgres,
    mongo_dir,
    mongo_is_running,
    postgres_dir,
    postgres_is_running,
    stop_all,
    stop_mongo,
    stop_postgres,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def home() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="cs-home-", dir="/tmp"))
    try:
        yield root
    finally:
        stop_all(root)
        shutil.rmtree(root, ignore_errors=True)


def test_ensure_postgres_starts_once_and_returns_an_explicit_driver_url(home: Path) -> None:
    data_dir = postgres_dir(home)
    url = ensure_postgres(data_dir)
    parsed = sa.make_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.database == "coinswarm"
    assert parsed.query["host"] == str(data_dir.resolve())
    assert ensure_postgres(data_dir) == url
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        assert conn.execute(sa.text("select current_database()")).scalar() == "coinswarm"
        conn.execute(sa.text("create extension if not exists vector"))
        distance = conn.execute(sa.text("select '[1,2]'::vector <-> '[1,5]'::vector")).scalar()
    assert distance == pytest.approx(3.0)
    engine.dispose()


def test_postgres_restart_keeps_data(home: Path) -> None:
    data_dir = postgres_dir(home)
    url = ensure_postgres(data_dir)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("create table kept (x int)"))
        conn.execute(sa.text("insert into kept values (42)"))

    assert stop_postgres(data_dir) is True
    assert postgres_is_running(data_dir) is False
    assert stop_postgres(data_dir) is False

    assert ensure_postgres(data_dir) == url
    assert postgres_is_running(data_dir) is True
    with engine.connect() as conn:
        assert conn.execute(sa.text("select x from kept")).scalar() == 42
    engine.dispose()


def test_concurrent_first_starts_share_one_server(home: Path) -> None:
    data_dir = postgres_dir(home)
    script = (
        "import sys; from pathlib import Path; from orchestration.embedded import ensure_postgres;"
        " print(ensure_postgres(Path(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    urls = {out.strip() for out, _ in results}
    assert len(urls) == 1
    # The server outlived the processes that started it.
    assert postgres_is_running(data_dir)
    with psycopg.connect(
        sa.make_url(urls.pop()).set(drivername="postgresql").render_as_string(hide_password=False)
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_mongo_starts_reuses_and_keeps_data_across_restart(home: Path) -> None:
    data_dir = mongo_dir(home)
    uri = ensure_mongo(data_dir)
    assert ensure_mongo(data_dir) == uri
    state = json.loads((data_dir / MONGO_STATE_FILE).read_text())
    assert uri.endswith(f":{state['port']}/")

    client: pymongo.MongoClient = pymongo.MongoClient(uri)
    client.kept.docs.insert_one({"_id": 1, "x": 42})
    client.close()

    assert stop_mongo(data_dir) is True
    assert mongo_is_running(data_dir) is False
    assert stop_mongo(data_dir) is False

    uri2 = ensure_mongo(data_dir)
    client = pymongo.MongoClient(uri2)
    try:
        assert client.kept.docs.find_one({"_id": 1}) == {"_id": 1, "x": 42}
    finally:
        client.close()


def test_mongo_stale_state_file_starts_a_new_server(home: Path) -> None:
    data_dir = mongo_dir(home)
    data_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data_dir / MONGO_STATE_FILE).write_text(
        json.dumps({"pid": dead.pid, "create_time": 0.0, "host": "127.0.0.1", "port": 1})
    )
    uri = ensure_mongo(data_dir)
    assert not uri.endswith(":1/")
    assert mongo_is_running(data_dir)


def test_stop_all_reports_what_ran(home: Path) -> None:
    assert stop_all(home) == {"postgres": False, "mongo": False}
    ensure_postgres(postgres_dir(home))
    ensure_mongo(mongo_dir(home))
    assert stop_all(home) == {"postgres": True, "mongo": True}
    assert not postgres_is_running(postgres_dir(home))
    assert not mongo_is_running(mongo_dir(home))
