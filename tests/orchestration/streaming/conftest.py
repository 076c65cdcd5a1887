"""Fixtures for the streaming service: recorded venue sessions and a real nats-server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.streaming.replay import RecordedMessage, read_recording
from tests.support.streaming import (
    BTC_TICKS,
    CRYPTOFEED_COINBASE,
    free_port,
    nats_server_binary,
)


@pytest.fixture(scope="session")
def btc_session(shared_data: Path) -> list[RecordedMessage]:
    return list(read_recording(shared_data / BTC_TICKS))


@pytest.fixture(scope="session")
def coinbase_session(shared_data: Path) -> list[RecordedMessage]:
    return list(read_recording(shared_data / CRYPTOFEED_COINBASE))


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A real nats-server on a free port for the session (Debian's ``nats-server`` package)."""
    binary = nats_server_binary()
    if binary is None:
        pytest.skip(
            "nats-server not found (looked for nats-server on PATH and in /usr/sbin): install "
            "Debian's 'nats-server' package (make test does) to run the NATS tests"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start on port {port}")
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
