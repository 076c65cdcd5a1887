"""Replay of the recorded sessions through the live path, into Parquet, InfluxDB and NATS."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import nats
import pandas as pd
import pytest

from assets.ingest.streams import binance, coinbase
from orchestration.resources.ticks import InfluxTickStore, ParquetTickStore, normalize_ticks
from orchestration.streaming.publish import decode_ticks, subject_for
from orchestration.streaming.replay import read_recording
from orchestration.streaming.service import Recording, StreamConfig, StreamService
from tests.support.streaming import (
    BTC_TICKS,
    CRYPTOFEED_BINANCE,
    CRYPTOFEED_COINBASE,
    ETH_TICKS,
)

pytestmark = pytest.mark.asyncio


def _parsed(path: Path, module) -> pd.DataFrame:  # noqa: ANN001
    ticks = [t for m in read_recording(path) for t in module.parse(m.payload, m.received_ns).ticks]
    return normalize_ticks(pd.DataFrame(ticks))


def _read_all(store, expected: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    frames = [
        store.read(venue, symbol, int(group["ts"].min()), int(group["ts"].max()) + 1)
        for (venue, symbol), group in expected.groupby(["venue", "symbol"])
    ]
    return normalize_ticks(pd.concat(frames, ignore_index=True))


async def test_replay_every_recording_into_parquet(shared_data: Path, tmp_path: Path) -> None:
    recordings = [
        Recording(shared_data / BTC_TICKS, binance),
        Recording(shared_data / ETH_TICKS, binance),
        Recording(shared_data / CRYPTOFEED_BINANCE, binance),
        Recording(shared_data / CRYPTOFEED_COINBASE, coinbase),
    ]
    store = ParquetTickStore(tmp_path / "ticks")
    stats = await StreamService(store).run(recordings=recordings)

    expected = normalize_ticks(pd.concat([_parsed(r.path, r.feed) for r in recordings]))
    assert len(expected) == 28_040 + 9_757 + 24_077 + 6_106 + 86 + 214
    assert stats.ticks == stats.writer.ticks_written == len(expected)
    assert (stats.duplicates, stats.gaps, stats.malformed) == (0, 0, 0)
    pd.testing.assert_frame_equal(_read_all(store, expected), expected, check_exact=True)

    # Replaying again writes every tick again, identically: the store never duplicates.
    await StreamService(store).run(recordings=recordings[2:])
    pd.testing.assert_frame_equal(_read_all(store, expected), expected, check_exact=True)


@pytest.mark.integration
async def test_replay_into_influxdb(shared_data: Path, influx_url: str, influx_bucket: str):
    recording = Recording(shared_data / ETH_TICKS, binance)
    store = InfluxTickStore(influx_url, "token", "coinswarm", influx_bucket)
    stats = await StreamService(store).run(recordings=[recording])
    expected = _parsed(recording.path, binance)
    assert stats.writer.ticks_written == len(expected) == 30_183
    pd.testing.assert_frame_equal(_read_all(store, expected), expected, check_exact=True)


async def test_malformed_lines_are_counted_and_skipped(shared_data: Path, tmp_path: Path):
    garbled = tmp_path / "garbled.ws"
    good = []
    with gzip.open(shared_data / BTC_TICKS, "rt") as source:
        lines = [line for _, line in zip(range(600), source, strict=False)]
    bad = [
        "1723161254087891999 {not json\n",
        '1723161254087892000 {"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1}}\n',
        '1723161254087892001 ["an", "array"]\n',
    ]
    for index, line in enumerate(lines):
        good.append(line)
        if index in (100, 300, 500):
            good.append(bad[(index // 200)])
    garbled.write_text("".join(good))

    store = ParquetTickStore(tmp_path / "ticks")
    stats = await StreamService(store).run(recordings=[Recording(garbled, binance)])
    assert stats.malformed == 3
    assert stats.messages == 603
    clean = tmp_path / "clean.ws"
    clean.write_text("".join(lines))
    expected = _parsed(clean, binance)
    pd.testing.assert_frame_equal(_read_all(store, expected), expected, check_exact=True)


async def test_real_pace_honours_recorded_times(shared_data: Path, tmp_path: Path) -> None:
    """0.6 s of recording at real pace takes about 0.6 s; at 4x pace about a quarter."""
    with gzip.open(shared_data / BTC_TICKS, "rt") as source:
        lines = [line for _, line in zip(range(200), source, strict=False)]
    path = tmp_path / "short.ws"
    path.write_text("".join(lines))
    messages = list(read_recording(path))
    span = (messages[-1].received_ns - messages[0].received_ns) / 1e9
    assert 0.3 < span < 3

    loop = asyncio.get_running_loop()
    for pace in (1.0, 4.0):
        started = loop.time()
        stats = await StreamService(ParquetTickStore(tmp_path / f"p{pace}")).run(
            recordings=[Recording(path, binance)], pace=pace
        )
        took = loop.time() - started
        assert stats.messages == 200
        assert span / pace <= took < span / pace + 2.0


async def test_published_ticks_are_the_stored_ticks(
    shared_data: Path, tmp_path: Path, nats_url: str
) -> None:
    recordings = [
        Recording(shared_data / CRYPTOFEED_BINANCE, binance),
        Recording(shared_data / CRYPTOFEED_COINBASE, coinbase),
    ]
    received: dict[str, list] = {}
    client = await nats.connect(nats_url)
    done = asyncio.Event()
    expected_count = 86 + 214

    async def collect(message) -> None:  # noqa: ANN001
        received.setdefault(message.subject, []).extend(decode_ticks(message.data))
        if sum(map(len, received.values())) >= expected_count:
            done.set()

    await client.subscribe("ticks.>", cb=collect)
    await client.flush()
    store = ParquetTickStore(tmp_path / "ticks")
    config = StreamConfig(nats_url=nats_url, batch_size=50)
    stats = await StreamService(store, config).run(recordings=recordings)
    await asyncio.wait_for(done.wait(), timeout=10)
    await client.drain()

    assert stats.writer.published_ticks == expected_count
    assert stats.writer.publish_messages >= len(received) > 5
    published = normalize_ticks(pd.DataFrame([t for ts in received.values() for t in ts]))
    expected = normalize_ticks(pd.concat([_parsed(r.path, r.feed) for r in recordings]))
    pd.testing.assert_frame_equal(published, expected, check_exact=True)
    pd.testing.assert_frame_equal(_read_all(store, expected), expected, check_exact=True)
    for subject, ticks in received.items():
        assert {subject_for("ticks", t.venue, t.symbol) for t in ticks} == {subject}
    assert "ticks.binance.NKN-USDT" in received and "ticks.coinbase.SKL-USD" in received
    # Within a subject, ticks arrive in the order they were received.
    nkn = [t.trade_id for t in received["ticks.binance.NKN-USDT"] if t.kind == "book_top"]
    assert nkn == sorted(nkn, key=int)
