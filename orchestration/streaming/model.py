"""What a venue parser hands the streaming service: ticks, sequence marks, and its own contract.

A parser turns one websocket message into a :class:`ParsedMessage`: the ticks it carries, in
the tick store's schema (:data:`orchestration.resources.ticks.TICK_COLUMNS`), and at most one
:class:`SequenceMark` the service checks for gaps. Parsers are pure (no I/O, no clock: the
receive time is passed in), so the live socket and the replay of a recording go through the
very same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from orchestration.resources.ticks import TICK_COLUMNS


class Tick(NamedTuple):
    """One row of the tick store, fields in :data:`TICK_COLUMNS` order; ``None`` means null.

    ``trade_id`` holds the venue's trade id for trades and the venue's book update id (or
    sequence number) for book tops: it is what tells two ticks of one instant apart.
    """

    venue: str
    symbol: str
    kind: str
    ts: int
    price: float | None
    size: float | None
    side: str | None
    bid: float | None
    ask: float | None
    bid_size: float | None
    ask_size: float | None
    trade_id: str | None

    @property
    def dedupe_key(self) -> tuple[str, str, str, str | int]:
        """Identifies the tick across reconnects: the venue's id when it has one, else its time."""
        return (self.venue, self.symbol, self.kind, self.trade_id or self.ts)


if Tick._fields != TICK_COLUMNS:  # a schema change in ticks.py must show up here
    raise RuntimeError(f"Tick fields {Tick._fields} differ from the tick store's {TICK_COLUMNS}")


class SequenceMark(NamedTuple):
    """The ids one message covers on a stream whose ids are contiguous: ``first..last``.

    The next message on ``stream`` should start at ``last + 1``; starting later means messages
    were lost (a gap), starting at or before means it overlaps what was already seen.
    """

    venue: str
    symbol: str
    stream: str
    first: int
    last: int


class ParsedMessage(NamedTuple):
    ticks: tuple[Tick, ...] = ()
    sequence: SequenceMark | None = None
    ignored: bool = False
    """A well-formed message that carries nothing for the tick store (subscription replies,
    channels the service does not store)."""
    notice: str | None = None
    """An error the venue reported in-band (e.g. a refused subscription), for the log."""


IGNORED = ParsedMessage(ignored=True)


class MalformedMessage(ValueError):
    """A message the parser cannot read: not JSON, wrong shape, a missing or bad field."""


class VenueFeed(Protocol):
    """What the service needs from a venue module (``assets.ingest.streams.<venue>``)."""

    VENUE: str
    DEFAULT_URL: str

    def connect_url(self, base_url: str, symbols: Sequence[str]) -> str:
        """The websocket URL to open for ``symbols`` (``BASE/QUOTE``)."""
        ...

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str]:
        """Messages to send once connected (empty when the URL already subscribes)."""
        ...

    def parse(self, raw: str | bytes, received_ns: int) -> ParsedMessage:
        """One received message; raises :class:`MalformedMessage` when it cannot be read."""
        ...
