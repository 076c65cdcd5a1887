"""The streaming service: venue websockets (or recordings) -> ticks -> tick store -> NATS.

Every message, live or replayed, takes the same path::

    parse (venue module) -> gap check -> de-duplicate -> buffer -> batch -> store -> publish

Live, one task per venue holds a websocket open and reconnects with exponential backoff and
seeded jitter whenever it drops; the ids that resume after a reconnect are what reveal overlaps
(dropped as duplicates) and gaps (reported with their bounds, logged, counted and appended to
``gaps_path``). Replay reads recorded sessions at their recorded pace or as fast as possible.
The socket readers never wait on the store: :class:`BatchWriter` writes from its own task and
worker thread, and only a full buffer makes a reader wait (or, if the store is down, stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.resources.ticks import TickStore
from orchestration.streaming.backoff import Backoff
from orchestration.streaming.batching import BatchWriter, StoreUnavailableError, WriterStats
from orchestration.streaming.model import MalformedMessage, VenueFeed
from orchestration.streaming.publish import DEFAULT_PREFIX, NatsTickPublisher, TickPublisher
from orchestration.streaming.replay import read_recording
from orchestration.streaming.sequencing import GapDetector, RecentKeys, SequenceGap

log = logging.getLogger(__name__)

GAP_RECORDS_KEPT = 10_000
MALFORMED_LOGGED_IN_FULL = 20
REPLAY_YIELD_EVERY = 256


class StreamConfig(BaseModel):
    """How the service batches, buffers, retries and reconnects (all have working defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(5_000, gt=0, description="Most ticks per store write.")
    linger_ms: float = Field(
        2.0,
        ge=0,
        description=(
            "Longest a partial batch waits for more ticks. Short, because the write rate needs no"
            " timer to bound it: only one partial batch is ever in flight, and ticks arriving"
            " meanwhile wait and join the next batch (group commit)."
        ),
    )
    write_concurrency: int = Field(
        2, gt=0, description="Batches written at once (one prepared while one is on the wire)."
    )
    buffer_limit: int = Field(
        1_000_000, gt=0, description="Ticks held while the store is slow or down."
    )
    dedupe_capacity: int = Field(1_000_000, gt=0, description="Recent tick keys remembered.")
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    store_retry_initial_s: float = Field(0.2, gt=0)
    store_retry_max_s: float = Field(10.0, gt=0)
    seed: int = Field(0, description="Seeds the backoff jitter, so delays are reproducible.")
    open_timeout_s: float = Field(10.0, gt=0, description="Websocket handshake timeout.")
    max_connections: int | None = Field(
        None, gt=0, description="Stop after this many connections per venue (None: never)."
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On shutdown, how long the store may take the last ticks."
    )
    measure_latency: bool = Field(False, description="Record receipt -> stored+published.")
    nats_url: str | None = Field(None, description="Publish stored ticks here when set.")
    nats_subject_prefix: str = DEFAULT_PREFIX
    gaps_path: Path | None = Field(None, description="Append each gap as a JSON line here.")

    @model_validator(mode="after")
    def _bounds(self) -> StreamConfig:
        if self.buffer_limit < self.batch_size:
            raise ValueError(
                f"buffer_limit ({self.buffer_limit}) must hold a batch ({self.batch_size})"
            )
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        if self.store_retry_max_s < self.store_retry_initial_s:
            raise ValueError("store_retry_max_s must be >= store_retry_initial_s")
        return self


@dataclass(frozen=True)
class Subscription:
    """A venue to stream live: its parser module, the pairs, and where to connect."""

    feed: VenueFeed
    symbols: tuple[str, ...]
    base_url: str | None = None

    @property
    def url(self) -> str:
        return self.feed.connect_url(self.base_url or self.feed.DEFAULT_URL, self.symbols)


@dataclass(frozen=True)
class Recording:
    """A recorded session to replay through ``feed``'s parser."""

    path: Path
    feed: VenueFeed


@dataclass(slots=True)
class VenueStats:
    """One venue's share of :class:`StreamStats`, plus when it was last heard from.

    Plain integers, bumped where each message is handled; ``orchestration.metrics`` reads them
    at scrape time (cheaper on the hot path than a prometheus-client counter per message).
    """

    messages: int = 0
    received_bytes: int = 0
    ticks: int = 0
    duplicates: int = 0
    malformed: int = 0
    gaps: int = 0
    missing_ids: int = 0
    connections: int = 0
    disconnects: int = 0
    last_received_ns: int = 0
    last_tick_received_ns: int = 0
    last_event_ns: int = 0
    """Venue time of the newest tick received (its ``ts``), to tell the receive lag."""


@dataclass
class StreamStats:
    messages: int = 0
    ticks: int = 0
    duplicates: int = 0
    malformed: int = 0
    ignored: int = 0
    notices: int = 0
    gaps: int = 0
    missing_ids: int = 0
    overlaps: int = 0
    connections: int = 0
    disconnects: int = 0
    gap_records: deque[SequenceGap] = field(
        default_factory=lambda: deque(maxlen=GAP_RECORDS_KEPT), repr=False
    )
    writer: WriterStats = field(default_factory=WriterStats)
    venues: dict[str, VenueStats] = field(default_factory=dict, repr=False)

    def venue(self, name: str) -> VenueStats:
        counts = self.venues.get(name)
        if counts is None:
            counts = self.venues[name] = VenueStats()
        return counts

    def summary(self) -> str:
        w = self.writer
        line = (
            f"stream summary: messages={self.messages:,} ticks={self.ticks:,} "
            f"ticks_written={w.ticks_written:,} duplicates_dropped={self.duplicates:,} "
            f"gaps={self.gaps:,} (ids missing: {self.missing_ids:,}) "
            f"malformed={self.malformed:,} batches={w.batches:,} "
            f"store_retries={w.write_failures:,} connections={self.connections:,}"
        )
        if w.publish_messages or w.publish_failures:
            line += (
                f" published={w.published_ticks:,} ticks in {w.publish_messages:,} messages"
                f" (failed: {w.publish_failures:,})"
            )
        return line


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StreamService:
    """One run of the service; :meth:`stop` (e.g. from a signal handler) ends it gracefully."""

    def __init__(
        self,
        store: TickStore,
        config: StreamConfig | None = None,
        publisher: TickPublisher | None = None,
    ) -> None:
        self.store = store
        self.config = config or StreamConfig()
        self._publisher = publisher
        self.stats = StreamStats()
        self._dedupe = RecentKeys(self.config.dedupe_capacity)
        self._gaps = GapDetector()
        self._writer: BatchWriter | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def pending_ticks(self) -> int:
        """Ticks received but not yet stored and published."""
        return self._writer.pending if self._writer is not None else 0

    @property
    def store_failing(self) -> bool:
        return self._writer is not None and self._writer.store_failing

    # ---------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Ask the run to finish: close the sockets, flush the buffer, close NATS."""
        if self._stopping is not None:
            self._stopping.set()

    async def run(
        self,
        subscriptions: Sequence[Subscription] = (),
        recordings: Sequence[Recording] = (),
        pace: float | None = None,
    ) -> StreamStats:
        """Stream until every source ends (replays, or ``max_connections``) or :meth:`stop`.

        ``pace`` replays recordings at that multiple of recorded time (1.0: real pace); None
        replays them as fast as the store takes them.
        """
        if not subscriptions and not recordings:
            raise ValueError("nothing to stream: give subscriptions or recordings")
        if pace is not None and pace <= 0:
            raise ValueError(f"pace must be positive, got {pace}")
        config = self.config
        self._stopping = asyncio.Event()
        publisher = self._publisher
        owns_publisher = publisher is None and config.nats_url is not None
        if owns_publisher:
            publisher = await NatsTickPublisher(
                config.nats_url, prefix=config.nats_subject_prefix
            ).connect()
        writer = BatchWriter(
            self.store,
            batch_size=config.batch_size,
            linger_s=config.linger_ms / 1000.0,
            buffer_limit=config.buffer_limit,
            retry=Backoff(config.store_retry_initial_s, config.store_retry_max_s, seed=config.seed),
            publisher=publisher,
            concurrency=config.write_concurrency,
            measure_latency=config.measure_latency,
        )
        self._writer = writer
        self.stats.writer = writer.stats
        writer_task = asyncio.create_task(writer.run(), name="tick-writer")
        sources = {
            asyncio.create_task(self._live(sub, index), name=f"live-{sub.feed.VENUE}")
            for index, sub in enumerate(subscriptions)
        }
        if recordings:
            sources.add(asyncio.create_task(self._replay(recordings, pace), name="replay"))
        error: BaseException | None = None
        try:
            error = await self._wait(sources, writer_task)
        finally:
            for task in sources:
                task.cancel()
            await asyncio.gather(*sources, return_exceptions=True)
            try:
                if isinstance(error, StoreUnavailableError) or writer_task.done():
                    writer_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await writer_task
                else:
                    await writer.close(writer_task, config.drain_timeout_s)
            finally:
                if owns_publisher and publisher is not None:
                    await publisher.close()
                log.info("%s", self.stats.summary())
        if error is not None:
            raise error
        return self.stats

    async def _wait(
        self, sources: set[asyncio.Task[None]], writer_task: asyncio.Task[None]
    ) -> BaseException | None:
        assert self._stopping is not None
        stop_task = asyncio.create_task(self._stopping.wait(), name="stop")
        remaining = set(sources)
        try:
            while remaining:
                done, _ = await asyncio.wait(
                    {*remaining, writer_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if writer_task in done:
                    return writer_task.exception() or RuntimeError("the tick writer stopped")
                for task in done & remaining:
                    remaining.discard(task)
                    if not task.cancelled() and task.exception() is not None:
                        return task.exception()
                if stop_task in done:
                    return None
            return None
        finally:
            stop_task.cancel()

    # ---------------------------------------------------------------- the shared path

    def handle(self, feed: VenueFeed, raw: str | bytes, received_ns: int, connection: int) -> None:
        """One received message: parse, check its sequence, drop duplicates, buffer its ticks."""
        received_mono = time.perf_counter_ns()
        stats = self.stats
        stats.messages += 1
        venue = stats.venues.get(feed.VENUE) or stats.venue(feed.VENUE)
        venue.messages += 1
        # str.isascii is O(1) in CPython: exact bytes without encoding the venues' ASCII JSON.
        venue.received_bytes += (
            len(raw) if isinstance(raw, bytes) or raw.isascii() else len(raw.encode())
        )
        venue.last_received_ns = received_ns
        try:
            parsed = feed.parse(raw, received_ns)
        except MalformedMessage as exc:
            stats.malformed += 1
            venue.malformed += 1
            if stats.malformed <= MALFORMED_LOGGED_IN_FULL or stats.malformed % 1000 == 0:
                log.warning("skipped malformed message (#%d): %s", stats.malformed, exc)
            return
        if parsed.ignored:
            stats.ignored += 1
            if parsed.notice:
                stats.notices += 1
                log.warning("%s", parsed.notice)
            return
        mark = parsed.sequence
        if mark is not None:
            gap = self._gaps.observe(mark, received_ns, connection)
            stats.overlaps = self._gaps.overlaps
            if gap is not None:
                self._record_gap(gap)
        if parsed.ticks:
            remember, put = self._dedupe.add, self._writer.put  # type: ignore[union-attr]
            duplicates_before = stats.duplicates
            for tick in parsed.ticks:
                stats.ticks += 1
                if remember(tick.dedupe_key):
                    put(tick, received_mono)
                else:
                    stats.duplicates += 1
            venue.ticks += len(parsed.ticks)
            venue.duplicates += stats.duplicates - duplicates_before
            venue.last_tick_received_ns = received_ns
            venue.last_event_ns = parsed.ticks[-1].ts

    def _record_gap(self, gap: SequenceGap) -> None:
        self.stats.gaps += 1
        self.stats.missing_ids += gap.missing
        venue = self.stats.venue(gap.venue)
        venue.gaps += 1
        venue.missing_ids += gap.missing
        self.stats.gap_records.append(gap)
        log.warning("sequence gap: %s", gap.describe())
        path = self.config.gaps_path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as out:
                out.write(orjson.dumps(gap.as_record()) + b"\n")

    # ---------------------------------------------------------------- sources

    async def _live(self, subscription: Subscription, index: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        assert self._stopping is not None and self._writer is not None
        config, writer, feed = self.config, self._writer, subscription.feed
        url = subscription.url
        requests = feed.subscribe_messages(subscription.symbols)
        backoff = Backoff(
            config.reconnect_initial_s, config.reconnect_max_s, seed=config.seed + 1 + index
        )
        connection = 0
        while not self._stopping.is_set():
            connection += 1
            self.stats.connections += 1
            self.stats.venue(feed.VENUE).connections += 1
            received = 0
            try:
                async with connect(
                    url,
                    open_timeout=config.open_timeout_s,
                    max_size=16 * 1024 * 1024,
                    proxy=None if _is_loopback(url) else True,
                ) as socket:
                    for request in requests:
                        await socket.send(request)
                    log.info("%s connection %d open: %s", feed.VENUE, connection, url)
                    async for raw in socket:
                        if received == 0:
                            backoff.reset()
                        received += 1
                        self.handle(feed, raw, time.time_ns(), connection)
                        if writer.full:
                            await writer.wait_for_room()
                reason = "closed by the server"
            except InvalidURI:
                raise
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self.stats.disconnects += 1
            self.stats.venue(feed.VENUE).disconnects += 1
            if self._stopping.is_set():
                return
            if config.max_connections is not None and connection >= config.max_connections:
                log.info("%s: %d connections made, stopping as configured", feed.VENUE, connection)
                return
            delay = backoff.next_delay()
            log.warning(
                "%s connection %d lost after %d messages (%s); reconnecting in %.2fs",
                feed.VENUE,
                connection,
                received,
                reason,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _replay(self, recordings: Sequence[Recording], pace: float | None) -> None:
        if pace is None:
            for recording in recordings:  # one after the other: a deterministic order
                await self._replay_one(recording, None, 0.0)
            return
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*(self._replay_one(r, pace, start) for r in recordings))

    async def _replay_one(self, recording: Recording, pace: float | None, start: float) -> None:
        """Feed a recording through :meth:`handle`; paced from its own first receive time."""
        assert self._writer is not None
        writer, feed, loop = self._writer, recording.feed, asyncio.get_running_loop()
        origin: int | None = None
        log.info("replaying %s through %s", recording.path, feed.VENUE)
        for count, message in enumerate(read_recording(recording.path)):
            if pace is not None:
                if origin is None:
                    origin = message.received_ns
                delay = start + (message.received_ns - origin) / 1e9 / pace - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif count % REPLAY_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the writer task take its batches
            self.handle(feed, message.payload, message.received_ns, connection=0)
            if writer.full:
                await writer.wait_for_room()
