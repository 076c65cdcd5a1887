"""The service's parts on their own: de-duplication, gaps, backoff, recordings, batching, NATS
payloads and the config."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pandas as pd
import pydantic
import pytest

from orchestration.resources.ticks import TickStore
from orchestration.streaming.backoff import Backoff
from orchestration.streaming.batching import BatchWriter
from orchestration.streaming.model import SequenceMark, Tick
from orchestration.streaming.publish import (
    chunked_payloads,
    decode_ticks,
    encode_ticks,
    subject_for,
)
from orchestration.streaming.replay import (
    RecordingError,
    epoch_seconds_to_ns,
    parse_line,
    read_recording,
    recording_venue,
)
from orchestration.streaming.sequencing import GapDetector, RecentKeys
from orchestration.streaming.service import StreamConfig


def trade(trade_id: int, symbol: str = "BTC/USDT") -> Tick:
    return Tick("binance", symbol, "trade", 1_000 + trade_id, 100.0, 1.0, "buy",
                None, None, None, None, str(trade_id))  # fmt: skip


def test_recent_keys_forget_the_oldest_beyond_capacity() -> None:
    keys = RecentKeys(capacity=3)
    assert [keys.add(k) for k in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert len(keys) == 3 and "a" not in keys and "d" in keys
    assert keys.add("a") is True  # forgotten, so new again
    with pytest.raises(ValueError, match="capacity must be positive"):
        RecentKeys(0)


def test_dedupe_keys_use_venue_ids_not_receipt_times() -> None:
    top = Tick("binance", "BTC/USDT", "book_top", 5, None, None, None, 1.0, 2.0, 1.0, 1.0, "77")
    assert top.dedupe_key == top._replace(ts=999).dedupe_key
    assert top.dedupe_key != top._replace(trade_id="78").dedupe_key
    assert top._replace(trade_id=None).dedupe_key == ("binance", "BTC/USDT", "book_top", 5)


def test_gaps_have_bounds_overlaps_do_not_count() -> None:
    detector = GapDetector()

    def observe(first: int, last: int, stream: str = "depth"):  # noqa: ANN202
        return detector.observe(SequenceMark("binance", "BTC/USDT", stream, first, last), 9, 2)

    assert observe(100, 110) is None  # the first message of a stream only sets the start
    assert observe(111, 115) is None
    assert observe(105, 118) is None and detector.overlaps == 1  # partial overlap
    assert observe(110, 112) is None and detector.overlaps == 2  # stale
    gap = observe(125, 130)
    assert (gap.first_missing, gap.last_missing, gap.missing) == (119, 124, 6)
    assert (gap.received_ns, gap.connection, gap.stream) == (9, 2, "depth")
    assert gap.describe() == "binance BTC/USDT depth: ids 119..124 missing (6)"
    assert observe(131, 131) is None
    assert observe(7, 7, stream="trade") is None  # streams are independent


def test_backoff_is_exponential_capped_jittered_and_reproducible() -> None:
    first = Backoff(0.1, 2.0, jitter=0.5, seed=42)
    second = Backoff(0.1, 2.0, jitter=0.5, seed=42)
    run = [first.next_delay() for _ in range(8)]
    assert run == [second.next_delay() for _ in range(8)]
    bases = [min(2.0, 0.1 * 2**n) for n in range(8)]
    assert all(0.5 * b <= d <= min(2.0, 1.5 * b) for d, b in zip(run, bases, strict=True))
    assert run != [Backoff(0.1, 2.0, jitter=0.5, seed=43).next_delay() for _ in range(8)]
    no_jitter = Backoff(0.1, 1.0, jitter=0.0)
    assert [no_jitter.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    no_jitter.reset()
    assert no_jitter.next_delay() == 0.1
    # Hours of outage: thousands of retries stay at the cap (2.0**1024 would overflow).
    long_outage = Backoff(0.2, 10.0, seed=0)
    delays = [long_outage.next_delay() for _ in range(5_000)]
    assert all(5.0 <= d <= 10.0 for d in delays[10:])
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


def test_recording_lines_of_both_formats() -> None:
    assert parse_line('1723161254087891268 {"a": 1}\n', 3) == (1723161254087891268, '{"a": 1}', 3)
    assert parse_line("1633998512.0633569: {}\n", 1) == (1633998512063356900, "{}", 1)
    assert parse_line("wss://stream.binance.com:9443/stream?streams=x <-> 1633998511.1", 1) is None
    assert parse_line("wss://ws-feed.pro.coinbase.com <- 1618677817.02: {}", 2) is None
    assert parse_line("\n", 4) is None
    assert epoch_seconds_to_ns("1618677817") == 1618677817 * 10**9
    with pytest.raises(RecordingError, match="line 5: unknown receive time"):
        parse_line("yesterday {}", 5)
    with pytest.raises(RecordingError, match="line 6: no message"):
        parse_line("1633998512.06:", 6)


def test_recording_venue_and_missing_files(shared_data: Path, tmp_path: Path) -> None:
    assert recording_venue(shared_data / "ws" / "cryptofeed-COINBASE.ws.28.0") == "coinbase"
    assert recording_venue(shared_data / "ws" / "cryptofeed-BINANCE.ws.1.0") == "binance"
    assert recording_venue(shared_data / "ticks" / "binance-spot-btcusdt-20240808.gz") == (
        "binance"
    )
    anonymous = tmp_path / "session.txt"
    anonymous.write_text("1 {}\n")
    with pytest.raises(RecordingError, match="cannot tell the venue"):
        recording_venue(anonymous)
    with pytest.raises(RecordingError, match="does not exist"):
        list(read_recording(tmp_path / "nope.gz"))


def test_nats_payloads_round_trip_and_split() -> None:
    ticks = [trade(i) for i in range(300)]
    assert decode_ticks(encode_ticks("binance", "BTC/USDT", ticks)) == ticks
    assert subject_for("ticks", "binance", "BTC/USDT") == "ticks.binance.BTC-USDT"
    assert subject_for("ticks", "x", "A.B *>") == "ticks.x.A_B___"
    payloads = chunked_payloads("binance", "BTC/USDT", ticks, max_payload=4_000)
    assert len(payloads) > 1 and all(len(p) <= 4_000 for p in payloads)
    assert [t for p in payloads for t in decode_ticks(p)] == ticks


def test_config_is_strict_and_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="buffer_limit"):
        StreamConfig(batch_size=100, buffer_limit=10)
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        StreamConfig(batch_sise=10)
    with pytest.raises(pydantic.ValidationError, match="greater than 0"):
        StreamConfig(linger_ms=1, batch_size=0)


class RecordingStore(TickStore):
    """Keeps each write's size; ``delay_s`` makes every write slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay_s = delay_s

    def write(self, ticks: pd.DataFrame) -> int:
        time.sleep(self.delay_s)
        self.sizes.append(len(ticks))
        return len(ticks)

    def read(self, *args: object, **kwargs: object) -> pd.DataFrame:
        raise NotImplementedError


class ListPublisher:
    def __init__(self) -> None:
        self.batches: list[list[Tick]] = []

    async def publish(self, ticks) -> int:  # noqa: ANN001
        self.batches.append(list(ticks))
        return 1

    async def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_batches_fill_under_load_and_publish_in_order() -> None:
    store, publisher = RecordingStore(delay_s=0.02), ListPublisher()
    writer = BatchWriter(store, batch_size=100, linger_s=0.005, buffer_limit=10_000,
                         retry=Backoff(seed=1), publisher=publisher, concurrency=2,
                         measure_latency=True)  # fmt: skip
    task = asyncio.create_task(writer.run())
    for i in range(1_000):
        writer.put(trade(i), 0)
        if i % 50 == 0:
            await asyncio.sleep(0)
    await writer.close(task, timeout_s=10)
    assert sum(store.sizes) == 1_000 and max(store.sizes) == 100
    assert sum(size == 100 for size in store.sizes) >= 8  # a busy store gets full batches
    published = [t for batch in publisher.batches for t in batch]
    assert published == [trade(i) for i in range(1_000)]
    assert len(writer.stats.latencies_ns) == 1_000


@pytest.mark.asyncio
async def test_a_lone_tick_waits_at_most_the_linger() -> None:
    store = RecordingStore()
    writer = BatchWriter(store, batch_size=1_000, linger_s=0.05, buffer_limit=1_000,
                         retry=Backoff(seed=1))  # fmt: skip
    task = asyncio.create_task(writer.run())
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.put(trade(1), 0)
    while not store.sizes:
        await asyncio.sleep(0.005)
    assert 0.04 <= loop.time() - started < 1.0
    await writer.close(task, timeout_s=5)
    assert store.sizes == [1]


@pytest.mark.asyncio
async def test_an_unreachable_nats_fails_the_start_by_name() -> None:
    from orchestration.streaming.publish import NatsTickPublisher
    from tests.support.streaming import free_port

    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=rf"cannot connect to NATS at {url} within 0.5s"):
        await NatsTickPublisher(url, connect_timeout_s=0.5).connect()
