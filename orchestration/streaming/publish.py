"""Stored ticks, published on NATS: one subject per venue and symbol.

Subject ``<prefix>.<venue>.<symbol>`` with the symbol's ``/`` as ``-`` (``ticks.binance.BTC-USDT``),
so a consumer picks one pair, a venue (``ticks.binance.>``) or everything (``ticks.>``). Each
message carries a run of ticks of that subject, columnar to stay small and fast to encode::

    {"venue": "binance", "symbol": "BTC/USDT",
     "columns": ["venue", "symbol", "kind", "ts", ...],   # the tick store's columns
     "ticks": [["binance", "BTC/USDT", "trade", 1723161255342000000, 61837.63, ...], ...]}

Ticks are published after the store accepted them, so what a subscriber sees is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import orjson

from orchestration.resources.ticks import TICK_COLUMNS
from orchestration.streaming.model import Tick

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "ticks"
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default max_payload
_SUBJECT_UNSAFE = str.maketrans({"/": "-", ".": "_", "*": "_", ">": "_", " ": "_"})


def subject_for(prefix: str, venue: str, symbol: str) -> str:
    return f"{prefix}.{venue.translate(_SUBJECT_UNSAFE)}.{symbol.translate(_SUBJECT_UNSAFE)}"


def encode_ticks(venue: str, symbol: str, ticks: Sequence[Tick]) -> bytes:
    return orjson.dumps(
        {"venue": venue, "symbol": symbol, "columns": TICK_COLUMNS, "ticks": ticks},
        default=tuple,  # Tick is a NamedTuple: encoded as a plain row
    )


def decode_ticks(payload: bytes) -> list[Tick]:
    """The inverse of :func:`encode_ticks`, for consumers and tests."""
    message = orjson.loads(payload)
    if tuple(message["columns"]) != TICK_COLUMNS:
        raise ValueError(f"unexpected tick columns {message['columns']}")
    return [Tick(*row) for row in message["ticks"]]


def group_by_subject(ticks: Sequence[Tick]) -> dict[tuple[str, str], list[Tick]]:
    groups: dict[tuple[str, str], list[Tick]] = {}
    for tick in ticks:
        key = (tick.venue, tick.symbol)
        group = groups.get(key)
        if group is None:
            groups[key] = [tick]
        else:
            group.append(tick)
    return groups


def chunked_payloads(
    venue: str, symbol: str, ticks: Sequence[Tick], max_payload: int
) -> list[bytes]:
    """Encoded runs of ``ticks``, each within ``max_payload`` bytes (halving runs that are not)."""
    payload = encode_ticks(venue, symbol, ticks)
    if len(payload) <= max_payload:
        return [payload]
    if len(ticks) == 1:
        raise ValueError(f"one {venue} {symbol} tick encodes to {len(payload)} bytes > limit")
    middle = len(ticks) // 2
    return chunked_payloads(venue, symbol, ticks[:middle], max_payload) + chunked_payloads(
        venue, symbol, ticks[middle:], max_payload
    )


class TickPublisher(Protocol):
    async def publish(self, ticks: Sequence[Tick]) -> int:
        """Publish stored ``ticks``; return how many messages were sent."""
        ...

    async def close(self) -> None: ...


class NatsTickPublisher:
    """Publishes on a NATS server through nats-py, reconnecting on its own when it drops.

    While NATS is away nats-py buffers outgoing messages up to ``pending_bytes``; past that a
    publish fails, is counted and logged by the service, and the stream goes on: NATS is a
    live fan-out, the tick store is the record.
    """

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        pending_bytes: int = 64 << 20,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.prefix = prefix
        self.pending_bytes = pending_bytes
        self._client = None
        self._max_payload = DEFAULT_MAX_PAYLOAD

    def __repr__(self) -> str:
        return f"NatsTickPublisher(url={self.url!r}, prefix={self.prefix!r})"

    async def connect(self) -> NatsTickPublisher:
        import nats

        async def on_error(exc: Exception) -> None:
            log.warning("NATS %s: %s", self.url, exc)

        # Once connected, nats-py reconnects for ever; the first connection gets a deadline so
        # that a wrong URL or a server that is down fails the start with a clear error.
        try:
            self._client = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    name="coinswarm-stream",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    pending_size=self.pending_bytes,
                    error_cb=on_error,
                ),
                timeout=self.connect_timeout_s,
            )
        except Exception as exc:  # nats-py raises its own types, OSErrors and timeouts
            raise ConnectionError(
                f"cannot connect to NATS at {self.url} within {self.connect_timeout_s:g}s: {exc!r}"
            ) from exc
        self._max_payload = self._client.max_payload or DEFAULT_MAX_PAYLOAD
        return self

    async def publish(self, ticks: Sequence[Tick]) -> int:
        if self._client is None:
            raise RuntimeError("NatsTickPublisher.publish before connect()")
        sent = 0
        for (venue, symbol), group in group_by_subject(ticks).items():
            subject = subject_for(self.prefix, venue, symbol)
            for payload in chunked_payloads(venue, symbol, group, self._max_payload):
                await self._client.publish(subject, payload)
                sent += 1
        return sent

    async def flush(self, timeout: float = 10.0) -> None:
        if self._client is not None:
            await self._client.flush(timeout=timeout)

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            await self._client.drain()
        self._client = None
