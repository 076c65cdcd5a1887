"""The tick store goes down: a bounded buffer, retries with backoff, no loss within the bound,
and a clear error naming the store and the ticks at risk beyond it.

Two kinds of outage: :class:`FlakyStore` (a Parquet store whose writes raise, standing in for
an unreachable store), and a real InfluxDB whose HTTP front end is stopped and restarted.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

import pandas as pd
import pytest

from assets.ingest.streams import binance
from orchestration.resources.ticks import InfluxTickStore, normalize_ticks
from orchestration.streaming.batching import StoreUnavailableError
from orchestration.streaming.replay import read_recording
from orchestration.streaming.service import Recording, StreamConfig, StreamService
from tests.support.influx_shim import InfluxV2Shim
from tests.support.streaming import BTC_TICKS, FlakyStore, free_port

pytestmark = pytest.mark.asyncio

FAST_RETRY = {"store_retry_initial_s": 0.02, "store_retry_max_s": 0.1, "seed": 3}


@pytest.fixture
def btc_slice(shared_data: Path, tmp_path: Path) -> Path:
    """The first 4,000 messages of the recorded BTC/USDT session, as a recording file."""
    path = tmp_path / "btc-slice.gz"
    with gzip.open(shared_data / BTC_TICKS, "rt") as source, gzip.open(path, "wt") as out:
        for _, line in zip(range(4000), source, strict=False):
            out.write(line)
    return path


def _expected(path: Path) -> pd.DataFrame:
    return normalize_ticks(
        pd.DataFrame(
            [t for m in read_recording(path) for t in binance.parse(m.payload, m.received_ns).ticks]
        )
    )


def _window(ticks: pd.DataFrame) -> tuple[int, int]:
    return int(ticks["ts"].min()), int(ticks["ts"].max()) + 1


async def test_an_outage_within_the_bound_loses_nothing(tmp_path: Path, btc_slice: Path) -> None:
    store = FlakyStore(tmp_path / "ticks", failures=4)
    config = StreamConfig(batch_size=1_000, buffer_limit=50_000, **FAST_RETRY)
    stats = await StreamService(store, config).run(recordings=[Recording(btc_slice, binance)])

    expected = _expected(btc_slice)
    assert stats.writer.write_failures == 4
    assert stats.writer.ticks_written == len(expected)
    stored = store.read("binance", "BTC/USDT", *_window(expected))
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)


async def test_beyond_the_bound_the_stream_stops_naming_the_store(
    tmp_path: Path, btc_slice: Path
) -> None:
    store = FlakyStore(tmp_path / "ticks", failures=None)
    config = StreamConfig(batch_size=200, buffer_limit=1_000, **FAST_RETRY)
    service = StreamService(store, config)
    with pytest.raises(StoreUnavailableError) as raised:
        await service.run(recordings=[Recording(btc_slice, binance)])

    error = raised.value
    accepted = service.stats.ticks - service.stats.duplicates
    assert error.at_risk == accepted >= 1_000  # everything received, nothing stored
    message = str(error)
    assert f"FlakyStore(root='{tmp_path / 'ticks'}')" in message
    assert f"{accepted:,} received ticks were not stored" in message
    assert "the buffer is full" in message and "store outage" in message
    assert service.stats.messages < 4000, "the stream stopped at the bound"
    assert not list((tmp_path / "ticks").rglob("*.parquet"))


@pytest.mark.integration
async def test_influx_outage_then_recovery_and_then_too_long(
    influx_server, influx_bucket: str, btc_slice: Path
) -> None:
    """influxd stays up; its HTTP front end (the v2 shim) is stopped, then restarted."""
    port = free_port()
    store = InfluxTickStore(
        f"http://127.0.0.1:{port}", "token", "coinswarm", influx_bucket, timeout_s=5
    )
    config = StreamConfig(batch_size=1_000, buffer_limit=50_000, **FAST_RETRY)
    service = StreamService(store, config)
    run = asyncio.create_task(service.run(recordings=[Recording(btc_slice, binance)]))

    deadline = time.monotonic() + 30
    while service.stats.writer.write_failures < 3:  # nothing listens on the port yet
        assert time.monotonic() < deadline and not run.done()
        await asyncio.sleep(0.02)
    shim = InfluxV2Shim(influx_server.upstream_url, port=port).start()
    try:
        stats = await asyncio.wait_for(run, timeout=60)
    finally:
        shim.stop()

    expected = _expected(btc_slice)
    assert stats.writer.write_failures >= 3
    assert stats.writer.ticks_written == len(expected)
    # The shim is stopped again: read back from influxd itself.
    upstream = InfluxTickStore(influx_server.upstream_url, "", "coinswarm", influx_bucket)
    pd.testing.assert_frame_equal(
        upstream.read("binance", "BTC/USDT", *_window(expected)), expected, check_exact=True
    )

    # Down for good this time, and a small buffer: a clear error naming the store. (A new
    # store: the old one's pooled keep-alive connection would outlive the stopped shim.)
    store.close()
    store = InfluxTickStore(
        f"http://127.0.0.1:{port}", "token", "coinswarm", influx_bucket, timeout_s=5
    )
    small = StreamConfig(batch_size=200, buffer_limit=1_000, **FAST_RETRY)
    named = rf"InfluxTickStore\(url='http://127\.0\.0\.1:{port}'.*received ticks were not stored"
    with pytest.raises(StoreUnavailableError, match=named):
        await StreamService(store, small).run(recordings=[Recording(btc_slice, binance)])
