"""Ticks -> the tick store in batches, off the socket reader's back.

The reader appends ticks to a bounded buffer and goes straight back to the socket. Writer tasks
(``concurrency`` of them, so one batch is prepared while another is on the wire) write batches
in a worker thread (store writes block), then publish them in the order they were taken. A full
batch (``batch_size``) goes at once; a partial one goes after ``linger_s`` and only while no
other write is in flight, and whatever arrives during a write waits to join the next batch
(group commit). So batches stay tiny and prompt when the feed is light and grow to full size
under load, with no timer deciding the write rate.

When the store fails, the batch is retried with backoff and the buffer keeps filling: nothing
is lost while it holds fewer than ``buffer_limit`` ticks. Once it is full and the store still
fails, :class:`StoreUnavailableError` stops the service and says which store and how many ticks
were not stored. A buffer that fills while the store is healthy only means the writer is behind:
the reader then waits for room (back-pressure), which a replay absorbs and a venue answers by
dropping the connection, which shows up as a reported gap after the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestration.resources.ticks import TickStore, TickValidationError
from orchestration.streaming.backoff import Backoff
from orchestration.streaming.model import Tick
from orchestration.streaming.publish import TickPublisher

log = logging.getLogger(__name__)


class StoreUnavailableError(RuntimeError):
    """The tick store kept failing until the buffer was full: the service cannot go on."""

    def __init__(self, message: str, at_risk: int) -> None:
        super().__init__(message)
        self.at_risk = at_risk


@dataclass
class WriterStats:
    batches: int = 0
    ticks_written: int = 0
    write_failures: int = 0
    publish_messages: int = 0
    published_ticks: int = 0
    publish_failures: int = 0
    largest_batch: int = 0
    latencies_ns: list[int] | None = field(default=None, repr=False)
    """Receipt -> stored and published, per tick, when the service measures latency."""


class BatchWriter:
    """The buffer between the socket readers and the store, and the task that drains it."""

    def __init__(
        self,
        store: TickStore,
        *,
        batch_size: int,
        linger_s: float,
        buffer_limit: int,
        retry: Backoff,
        publisher: TickPublisher | None = None,
        concurrency: int = 2,
        measure_latency: bool = False,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if batch_size <= 0 or buffer_limit < batch_size:
            raise ValueError(
                f"need 0 < batch_size <= buffer_limit, got {batch_size} and {buffer_limit}"
            )
        if concurrency <= 0:
            raise ValueError(f"write concurrency must be positive, got {concurrency}")
        self.store = store
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.buffer_limit = buffer_limit
        self.retry = retry
        self.publisher = publisher
        self.stats = WriterStats(latencies_ns=[] if measure_latency else None)
        self._clock_ns = clock_ns
        self._ticks: list[Tick] = []
        self._received: list[int] = []
        self._in_flight = 0
        self._writing = 0
        self._wake = asyncio.Event()
        self._published: asyncio.Future[None] | None = None
        self._has_ticks = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self.failing_since: float | None = None
        self.failed_attempts = 0
        self.last_error: BaseException | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="tick-store"
        )

    # ---------------------------------------------------------------- reader side

    @property
    def pending(self) -> int:
        """Ticks accepted but not yet stored (buffered plus the batch being written)."""
        return len(self._ticks) + self._in_flight

    @property
    def store_failing(self) -> bool:
        return self.failing_since is not None

    def put(self, tick: Tick, received_mono_ns: int) -> None:
        self._ticks.append(tick)
        self._received.append(received_mono_ns)
        self._has_ticks.set()
        if len(self._ticks) >= self.batch_size:
            self._batch_ready.set()
            self._wake.set()

    @property
    def full(self) -> bool:
        return len(self._ticks) >= self.buffer_limit

    async def wait_for_room(self) -> None:
        """Return once the buffer has room; raise if it is full because the store is down."""
        while self.full:
            if self.store_failing:
                raise self.unavailable_error()
            self._room.clear()
            await self._room.wait()

    def _outage(self) -> str:
        down_for = time.monotonic() - self.failing_since if self.failing_since else 0.0
        return (
            f"tick store {self.store!r} unavailable for {down_for:.1f}s "
            f"({self.failed_attempts} failed writes, last: {self.last_error!r})"
        )

    def unavailable_error(self) -> StoreUnavailableError:
        at_risk = self.pending
        return StoreUnavailableError(
            f"{self._outage()}; the buffer is full ({len(self._ticks):,} of "
            f"{self.buffer_limit:,} ticks), so the stream stops: {at_risk:,} received ticks "
            "were not stored",
            at_risk=at_risk,
        )

    # ---------------------------------------------------------------- writer side

    def _take(self) -> tuple[list[Tick], list[int]]:
        size = self.batch_size
        if len(self._ticks) <= size:
            ticks, received = self._ticks, self._received
            self._ticks, self._received = [], []
        else:
            ticks, received = self._ticks[:size], self._received[:size]
            del self._ticks[:size], self._received[:size]
        if not self._ticks:
            self._has_ticks.clear()
        if len(self._ticks) < self.batch_size:
            self._batch_ready.clear()
        self._room.set()
        return ticks, received

    async def _linger(self) -> None:
        if self._closing or len(self._ticks) >= self.batch_size or self.linger_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._batch_ready.wait(), timeout=self.linger_s)

    async def run(self) -> None:
        """Drain the buffer until :meth:`close`; raises only on a bug (invalid ticks)."""
        workers = [
            asyncio.create_task(self._worker(), name=f"tick-writer-{n}")
            for n in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._room.set()
            # Every way out (drained, cancelled by the service or by close) ends up here.
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._ticks:
                if self._closing:
                    return
                await self._has_ticks.wait()
                continue
            if len(self._ticks) < self.batch_size and not self._closing:
                if self._writing:
                    # Only full batches join a write in flight; a partial one waits its turn,
                    # so a busy store gets big batches rather than many small ones.
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._linger()
                partial = len(self._ticks) < self.batch_size and not self._closing
                if not self._ticks or (partial and self._writing):
                    continue  # another worker took them, or a write started meanwhile
            ticks, received = self._take()
            # Batches may be written concurrently but are published in the order taken.
            previous, mine = self._published, loop.create_future()
            self._published = mine
            self._in_flight += len(ticks)
            self._writing += 1
            try:
                await self._write(ticks)
                if previous is not None:
                    await previous
                await self._publish(ticks)
            finally:
                self._in_flight -= len(ticks)
                self._writing -= 1
                self._wake.set()
                if not mine.done():
                    mine.set_result(None)
            if self.stats.latencies_ns is not None:
                done = self._clock_ns()
                self.stats.latencies_ns.extend(done - r for r in received)

    async def _write(self, ticks: list[Tick]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                written = await loop.run_in_executor(
                    self._executor, self.store.write_records, ticks
                )
            except TickValidationError:
                raise  # a parser let an invalid tick through: a bug, not an outage
            except Exception as exc:  # noqa: BLE001 - any store error is retried
                self._failed(exc)
                self._room.set()  # a reader waiting for room must now learn the store is down
                await asyncio.sleep(self.retry.next_delay())
                continue
            self._recovered()
            self.stats.batches += 1
            self.stats.ticks_written += written
            self.stats.largest_batch = max(self.stats.largest_batch, len(ticks))
            return

    def _failed(self, exc: Exception) -> None:
        self.stats.write_failures += 1
        self.failed_attempts += 1
        self.last_error = exc
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error("tick store %r failed, retrying with backoff: %r", self.store, exc)
        elif self.failed_attempts % 10 == 0:
            log.error(
                "tick store %r still failing after %d attempts (%d ticks pending): %r",
                self.store,
                self.failed_attempts,
                self.pending,
                exc,
            )

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.warning(
                "tick store %r is back after %d failed writes (%.1fs); %d ticks pending",
                self.store,
                self.failed_attempts,
                time.monotonic() - self.failing_since,
                self.pending,
            )
        self.failing_since = None
        self.failed_attempts = 0
        self.retry.reset()

    async def _publish(self, ticks: list[Tick]) -> None:
        if self.publisher is None:
            return
        try:
            self.stats.publish_messages += await self.publisher.publish(ticks)
            self.stats.published_ticks += len(ticks)
        except Exception as exc:  # noqa: BLE001 - NATS trouble must not stop the store path
            self.stats.publish_failures += 1
            log.warning("publishing %d ticks failed: %r", len(ticks), exc)

    async def close(self, writer_task: asyncio.Task[None], timeout_s: float) -> None:
        """Flush what is buffered within ``timeout_s``; raise naming what was not stored."""
        self._closing = True
        self._has_ticks.set()
        self._batch_ready.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(writer_task), timeout=timeout_s)
        except TimeoutError:
            at_risk = self.pending
            cause = self._outage() if self.store_failing else f"tick store {self.store!r} is slow"
            reason = (
                f"{cause}; shutting down, it did not take the last {at_risk:,} ticks within "
                f"{timeout_s:.0f}s: they were not stored"
            )
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer_task
            raise StoreUnavailableError(reason, at_risk=at_risk) from None
