"""Helpers for the streaming tests: a scripted local websocket venue that can drop a
connection mid-stream, a tick store that fails on cue, free ports, a nats-server binary."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from websockets.asyncio.server import ServerConnection, serve

from orchestration.resources.ticks import ParquetTickStore, TickStore

BTC_TICKS = "ticks/binance-spot-btcusdt-20240808.gz"
ETH_TICKS = "ticks/binance-spot-ethusdt-20240808.gz"
CRYPTOFEED_BINANCE = "ws/cryptofeed-BINANCE.ws.1.0"
CRYPTOFEED_COINBASE = "ws/cryptofeed-COINBASE.ws.28.0"
NATS_SERVER_CANDIDATES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")


# --------------------------------------------------------------------------------------------
# a venue that misbehaves on cue
# --------------------------------------------------------------------------------------------

DROP = object()
"""In a connection's script: cut the TCP connection here, without a websocket close."""
HOLD = object()
"""In a connection's script: keep the connection open until the client closes it."""


@dataclass
class ScriptedVenue:
    """A real websocket server (websockets.asyncio.server) playing one script per connection.

    Connection ``n`` (0-based) sends ``scripts[n]`` frame by frame; :data:`DROP` aborts the
    socket like a network fault; a script that runs out closes the connection normally, and
    connections beyond the scripts are closed at once; :data:`HOLD` keeps it open. It records
    each connection's request path and, when ``expects_subscribe``, the first message the
    client sent.
    """

    scripts: Sequence[Sequence[str | object]]
    expects_subscribe: bool = False
    paths: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    url: str = ""

    async def _serve_one(self, connection: ServerConnection) -> None:
        index = len(self.paths)
        self.paths.append(connection.request.path)
        if self.expects_subscribe:
            self.subscriptions.append(await connection.recv())
        script = self.scripts[index] if index < len(self.scripts) else ()
        for frame in script:
            if frame is DROP:
                transport = connection.transport
                while transport.get_write_buffer_size():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)  # let the frames already sent reach the client
                transport.abort()
                return
            if frame is HOLD:
                await connection.wait_closed()
                return
            await connection.send(frame)
        await connection.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedVenue]:
        async with serve(self._serve_one, "127.0.0.1", 0) as server:
            host, port = server.sockets[0].getsockname()[:2]
            self.url = f"ws://{host}:{port}"
            yield self


# --------------------------------------------------------------------------------------------
# stores that fail (standing in for an outage of the tick store)
# --------------------------------------------------------------------------------------------


class FlakyStore(TickStore):
    """A Parquet store whose first ``failures`` writes raise, as a store outage would.

    ``failures=None`` fails every write. It stands in for an unreachable tick store; the
    InfluxDB outage test does the same with a real server behind a stopped proxy.
    """

    def __init__(self, root: Path, failures: int | None) -> None:
        self.inner = ParquetTickStore(root)
        self.failures = failures
        self.calls = 0

    def __repr__(self) -> str:
        return f"FlakyStore(root={str(self.inner.root)!r})"

    def write(self, ticks: pd.DataFrame) -> int:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise ConnectionError(f"store outage (write #{self.calls})")
        return self.inner.write(ticks)

    def read(self, *args: object, **kwargs: object) -> pd.DataFrame:
        return self.inner.read(*args, **kwargs)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str | None:
    for candidate in NATS_SERVER_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None
