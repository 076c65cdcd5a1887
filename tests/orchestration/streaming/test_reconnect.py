"""A venue that drops the socket mid-stream, then resumes with an overlap and a skipped range.

A real local websocket server plays recorded Binance and Coinbase messages. The first
connection is cut (TCP abort, no close frame) partway; the service reconnects with backoff, and
the second connection first repeats messages already delivered (their ticks must not be stored
twice) and then skips a range (the gap must be reported with its bounds).
"""

from __future__ import annotations

import collections
from pathlib import Path

import orjson
import pandas as pd
import pytest

from assets.ingest.streams import binance, coinbase
from orchestration.resources.ticks import ParquetTickStore, normalize_ticks
from orchestration.streaming.replay import RecordedMessage
from orchestration.streaming.service import StreamConfig, StreamService, Subscription
from tests.support.streaming import DROP, ScriptedVenue

pytestmark = pytest.mark.asyncio

FAST_RECONNECT = {
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
    "max_connections": 2,
    "batch_size": 500,
    "linger_ms": 1,
    "seed": 7,
}
COMPARED = ["symbol", "kind", "trade_id", "price", "size", "side", "bid", "ask"]


def _content(frame: pd.DataFrame) -> list[tuple]:
    """Ticks without their time: live book tops are stamped with the receive clock."""
    rows = frame[COMPARED].astype(object).where(frame[COMPARED].notna(), None)
    return sorted(map(tuple, rows.itertuples(index=False)), key=repr)


def _days_around(ticks: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The recording's days, with a day either side (live book tops carry today's time)."""
    first = pd.Timestamp(int(ticks["ts"].min()), tz="UTC").floor("D") - pd.Timedelta(days=1)
    now = pd.Timestamp.now(tz="UTC").ceil("D") + pd.Timedelta(days=1)
    return first, max(now, pd.Timestamp(int(ticks["ts"].max()), tz="UTC") + pd.Timedelta(days=1))


def _ticks_of(module, messages: list[str]) -> pd.DataFrame:  # noqa: ANN001
    return normalize_ticks(
        pd.DataFrame([t for m in messages for t in module.parse(m, 0).ticks]),
    )


async def test_binance_drop_overlap_and_gap(tmp_path: Path, btc_session: list[RecordedMessage]):
    frames = [m.payload for m in btc_session[10:1210]]  # 1,200 recorded messages
    cut, overlap, skip = 500, 40, 60
    first = [*frames[:cut][:250], "this is not json", *frames[250:cut], DROP]
    second = frames[cut - overlap : cut] + frames[cut + skip :]
    venue = ScriptedVenue([first, second])

    store = ParquetTickStore(tmp_path / "ticks")
    service = StreamService(store, StreamConfig(**FAST_RECONNECT))
    async with venue.running():
        stats = await service.run(
            [Subscription(binance, ("BTC/USDT",), base_url=venue.url)],
        )

    # Connected twice, to the combined-stream URL for the pair.
    assert stats.connections == 2 and stats.disconnects == 2
    assert (
        venue.paths == ["/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"] * 2
    )

    # Every tick delivered is stored exactly once; the skipped ones are not there.
    delivered = frames[:cut] + frames[cut + skip :]
    expected = _ticks_of(binance, delivered)
    stored = store.read("binance", "BTC/USDT", *_days_around(expected))
    assert len(stored) == len(expected)
    assert _content(stored) == _content(expected)
    assert stats.duplicates == len(_ticks_of(binance, frames[cut - overlap : cut]))
    assert stats.malformed == 1

    # The gap, with the bounds of what was skipped, on each contiguous stream.
    skipped = [orjson.loads(f)["data"] for f in frames[cut : cut + skip]]
    trade_ids = [d["t"] for d in skipped if d.get("e") == "trade"]
    depth = [d for d in skipped if d.get("e") == "depthUpdate"]
    assert trade_ids and depth, "the skipped range holds trades and depth updates"
    gaps = {g.stream: g for g in stats.gap_records}
    assert set(gaps) == {"trade", "depth"} and stats.gaps == 2
    assert (gaps["trade"].first_missing, gaps["trade"].last_missing) == (
        min(trade_ids),
        max(trade_ids),
    )
    assert (gaps["depth"].first_missing, gaps["depth"].last_missing) == (
        depth[0]["U"],
        depth[-1]["u"],
    )
    assert all(g.connection == 2 for g in gaps.values())


async def test_coinbase_drop_overlap_and_gap(
    tmp_path: Path, coinbase_session: list[RecordedMessage]
) -> None:
    # The session's trades and tickers (its level2 traffic carries no ticks).
    frames = [m.payload for m in coinbase_session if orjson.loads(m.payload)["type"] != "l2update"]
    cut, overlap, skip = 120, 15, 20
    first = [*frames[:cut], DROP]
    second = frames[cut - overlap : cut] + frames[cut + skip :]
    venue = ScriptedVenue([first, second], expects_subscribe=True)
    gaps_file = tmp_path / "gaps.jsonl"

    store = ParquetTickStore(tmp_path / "ticks")
    config = StreamConfig(**FAST_RECONNECT, gaps_path=gaps_file)
    service = StreamService(store, config)
    symbols = ("SKL/USD", "DASH/BTC")
    async with venue.running():
        stats = await service.run([Subscription(coinbase, symbols, base_url=venue.url)])

    assert stats.connections == 2
    subscribe = [orjson.loads(s) for s in venue.subscriptions]
    assert subscribe == [
        {"type": "subscribe", "product_ids": ["SKL-USD", "DASH-BTC"],
         "channels": ["matches", "ticker"]}
    ] * 2  # fmt: skip

    delivered = frames[:cut] + frames[cut + skip :]
    expected = _ticks_of(coinbase, delivered)
    window = _days_around(expected)
    stored = pd.concat([store.read("coinbase", s, *window) for s in set(expected["symbol"])])
    assert len(stored) == len(expected)
    assert _content(stored) == _content(normalize_ticks(expected))  # times too: venue times
    assert sorted(stored["ts"]) == sorted(expected["ts"])
    assert stats.duplicates == len(_ticks_of(coinbase, frames[cut - overlap : cut]))

    # Expected gaps, from the raw messages: per product, the skipped trade ids that later
    # trades of the same product reveal.
    skipped_ids = collections.defaultdict(list)
    for frame in frames[cut : cut + skip]:
        raw = orjson.loads(frame)
        if raw["type"] in ("match", "last_match"):
            skipped_ids[raw["product_id"].replace("-", "/")].append(raw["trade_id"])
    later = {orjson.loads(f)["product_id"].replace("-", "/") for f in frames[cut + skip :]
             if orjson.loads(f)["type"] == "match"}  # fmt: skip
    expected_gaps = {
        (symbol, min(ids), max(ids)) for symbol, ids in skipped_ids.items() if symbol in later
    }
    assert expected_gaps, "the skipped range must hide trades of a product that trades again"
    reported = {(g.symbol, g.first_missing, g.last_missing) for g in stats.gap_records}
    assert reported == expected_gaps
    assert stats.gaps == len(expected_gaps)
    # ... and each gap is on record for the operator.
    on_file = [orjson.loads(line) for line in gaps_file.read_text().splitlines()]
    assert {(r["symbol"], r["first_missing"], r["last_missing"]) for r in on_file} == reported
    assert all(r["missing"] == r["last_missing"] - r["first_missing"] + 1 for r in on_file)


async def test_unreachable_venue_backs_off_and_gives_up_when_told(tmp_path: Path) -> None:
    from tests.support.streaming import free_port

    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    config = StreamConfig(**{**FAST_RECONNECT, "max_connections": 3})
    service = StreamService(ParquetTickStore(tmp_path), config)
    stats = await service.run([Subscription(binance, ("BTC/USDT",), base_url=url)])
    assert (stats.connections, stats.disconnects, stats.messages) == (3, 3, 0)
