"""Run a throwaway ``influxd`` 1.x (Debian's ``influxdb`` package) behind the v2-write shim."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.influx_shim import InfluxV2Shim

START_TIMEOUT_S = 30.0


class InfluxUnavailable(RuntimeError):
    """No ``influxd`` binary on this machine."""


@dataclass(frozen=True)
class InfluxServer:
    url: str  # the shim: /api/v2/write, /query, /ping
    upstream_url: str  # influxd itself (v1 API only)
    bucket: str
    org: str
    token: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(root: Path, http_port: int, rpc_port: int) -> str:
    return f"""
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / "meta"}"
  logging-enabled = false

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
"""


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
            return response.status == 204
    except OSError:
        return False


def influx_query(url: str, q: str) -> None:
    """Run an InfluxQL statement on a 1.x server (POST /query), failing loudly on error."""
    data = urllib.parse.urlencode({"q": q}).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=10) as response:
        body = response.read().decode()
    if '"error"' in body:
        raise RuntimeError(f"influxd rejected {q!r}: {body}")


@contextlib.contextmanager
def running_influx(root: Path, bucket: str = "ticks") -> Iterator[InfluxServer]:
    binary = shutil.which("influxd")
    if binary is None:
        raise InfluxUnavailable(
            "influxd not found on PATH: install Debian's 'influxdb' package (apt-get install"
            " influxdb) to run the InfluxDB tests"
        )
    root.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = _free_port(), _free_port()
    config = root / "influxdb.conf"
    config.write_text(_config(root, http_port, rpc_port))
    log = open(root / "influxd.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [binary, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=root
    )
    upstream = f"http://127.0.0.1:{http_port}"
    shim: InfluxV2Shim | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ping(upstream):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "influxd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"influxd did not start at {upstream}:\n{tail}")
            time.sleep(0.05)
        influx_query(upstream, f'CREATE DATABASE "{bucket}"')
        shim = InfluxV2Shim(upstream).start()
        yield InfluxServer(
            url=shim.url, upstream_url=upstream, bucket=bucket, org="coinswarm", token="test-token"
        )
    finally:
        if shim is not None:
            shim.stop()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
