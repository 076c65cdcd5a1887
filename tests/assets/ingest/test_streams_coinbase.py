"""The Coinbase feed parser on the real recorded session ``ws/cryptofeed-COINBASE.ws.28.0``.

Ten products on the level2, ticker and matches channels, 2021-04-17, ~10k messages.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pandas as pd
import pytest

from assets.ingest.streams import coinbase
from orchestration.resources.ticks import normalize_ticks
from orchestration.streaming.model import MalformedMessage, ParsedMessage, Tick
from orchestration.streaming.replay import read_recording
from orchestration.streaming.sequencing import GapDetector

RECORDING = "cryptofeed-COINBASE.ws.28.0"


@pytest.fixture(scope="module")
def session(shared_data: Path) -> list[tuple[dict, ParsedMessage]]:
    return [
        (orjson.loads(m.payload), coinbase.parse(m.payload, m.received_ns))
        for m in read_recording(shared_data / "ws" / RECORDING)
    ]


def test_the_recorded_session_parses_completely(session: list[tuple[dict, ParsedMessage]]) -> None:
    types = Counter(raw["type"] for raw, _ in session)
    assert types == {
        "l2update": 9_719, "ticker": 107, "match": 97, "snapshot": 10, "last_match": 10,
        "subscriptions": 3,
    }  # fmt: skip
    ticks = [t for _, parsed in session for t in parsed.ticks]
    assert Counter(t.kind for t in ticks) == {"trade": 107, "book_top": 107}
    assert sum(parsed.ignored for _, parsed in session) == 9_719 + 10 + 3
    assert len({t.symbol for t in ticks}) == 10
    assert all(t.symbol.count("/") == 1 for t in ticks)
    assert len(normalize_ticks(pd.DataFrame(ticks))) == len(ticks)


def test_a_match_checked_by_hand(session: list[tuple[dict, ParsedMessage]]) -> None:
    # 1618677817.1295161: {"type":"match","trade_id":280232,...,"side":"sell","size":"985",
    #   "price":"0.00001305","product_id":"SKL-BTC","sequence":177100030,
    #   "time":"2021-04-17T16:43:37.089723Z"}
    parsed = next(p for raw, p in session if raw.get("trade_id") == 280232 and p.ticks)
    assert parsed.ticks == (
        Tick("coinbase", "SKL/BTC", "trade", 1_618_677_817_089_723_000, 0.00001305, 985.0,
             "buy",  # the maker sold, so the aggressor bought
             None, None, None, None, "280232"),
    )  # fmt: skip
    assert parsed.sequence == ("coinbase", "SKL/BTC", "trade", 280232, 280232)


def test_a_ticker_becomes_a_book_top(session: list[tuple[dict, ParsedMessage]]) -> None:
    # {"type":"ticker","sequence":333938798,"product_id":"BAND-GBP","price":"14.7775",...,
    #  "best_bid":"14.7550","best_ask":"14.8060","side":"buy",
    #  "time":"2021-04-17T16:43:30.244075Z","trade_id":881613,"last_size":"0.04"}
    parsed = next(p for raw, p in session if raw.get("sequence") == 333938798 and p.ticks)
    top = next(t for t in parsed.ticks if t.kind == "book_top")
    assert top == Tick(
        "coinbase", "BAND/GBP", "book_top", 1_618_677_810_244_075_000, None, None, None,
        14.755, 14.806, None, None, "333938798",
    )  # fmt: skip
    assert parsed.sequence is None


def test_trade_ids_reveal_gaps_where_sequences_cannot(
    session: list[tuple[dict, ParsedMessage]],
) -> None:
    """The matches channel skips the sequence numbers of order events it does not carry."""
    sequences: dict[str, list[int]] = defaultdict(list)
    for raw, _ in session:
        if raw["type"] == "match":
            sequences[raw["product_id"]].append(raw["sequence"])
    steps = [b - a for seq in sequences.values() for a, b in zip(seq, seq[1:], strict=False)]
    assert len(steps) > 50 and sum(step > 1 for step in steps) / len(steps) > 0.9

    detector = GapDetector()
    marks = [p.sequence for _, p in session if p.sequence is not None]
    assert [detector.observe(m, 0, 0) for m in marks] == [None] * len(marks)

    # Take one match away: its trade id goes missing, and only that one is reported.
    dropped = next(m for m in marks if m.symbol == "SKL/USD" and m.first == 1568270)
    detector = GapDetector()
    gaps = [g for m in marks if m != dropped and (g := detector.observe(m, 0, 0))]
    assert [(g.symbol, g.first_missing, g.last_missing) for g in gaps] == [
        ("SKL/USD", 1568270, 1568270)
    ]


def test_subscribe_message() -> None:
    assert coinbase.connect_url("wss://ws-feed.exchange.coinbase.com/", ["BTC/USD"]) == (
        "wss://ws-feed.exchange.coinbase.com"
    )
    (message,) = coinbase.subscribe_messages(["BTC/USD", "eth/eur"])
    assert orjson.loads(message) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD", "ETH-EUR"],
        "channels": ["matches", "ticker"],
    }
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        coinbase.subscribe_messages(["BTCUSD"])


def test_times_keep_every_digit() -> None:
    assert coinbase.time_ns("2021-04-17T16:43:37.089723Z") == 1_618_677_817_089_723_000
    assert coinbase.time_ns("2021-04-17T16:43:37.123456789Z") == 1_618_677_817_123_456_789
    assert coinbase.time_ns("2021-04-17T16:43:37Z") == 1_618_677_817_000_000_000
    assert coinbase.time_ns("2021-04-17T18:43:37.5+02:00") == 1_618_677_817_500_000_000


def test_errors_are_reported_and_other_channels_ignored() -> None:
    error = coinbase.parse(
        '{"type":"error","message":"Failed to subscribe","reason":"FOO-BAR is not a valid'
        ' product"}',
        0,
    )
    assert error.ignored
    assert error.notice == "coinbase error: Failed to subscribe FOO-BAR is not a valid product"
    heartbeat = '{"type":"heartbeat","last_trade_id":1,"product_id":"BTC-USD","sequence":9}'
    assert coinbase.parse(heartbeat, 0).ignored
    empty_book = '{"type":"ticker","product_id":"BTC-USD","sequence":4}'
    assert coinbase.parse(empty_book, 0).ignored


MATCH = {
    "type": "match", "trade_id": 10, "side": "buy", "size": "1.5", "price": "100.25",
    "product_id": "BTC-USD", "sequence": 50, "time": "2021-04-17T16:43:37.089723Z",
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"price": None}, "field 'price' is not a number: None"),
        ({"price": "0"}, "'price' must be a positive number"),
        ({"size": "-1"}, "'size' must be a non-negative number"),
        ({"trade_id": "10"}, "'trade_id' must be an integer"),
        ({"side": "long"}, "'side' must be buy or sell"),
        ({"time": "yesterday"}, "Invalid isoformat"),
        ({"product_id": "BTCUSD"}, "is not BASE-QUOTE"),
        ({"time": None}, "time must be an ISO-8601 string"),
    ],
)
def test_malformed_matches_are_named(change: dict, complaint: str) -> None:
    message = orjson.dumps({**MATCH, **change})
    with pytest.raises(MalformedMessage, match=complaint):
        coinbase.parse(message, 0)


def test_malformed_frames_are_named() -> None:
    with pytest.raises(MalformedMessage, match="not JSON"):
        coinbase.parse('{"type": "match", ', 0)
    with pytest.raises(MalformedMessage, match="object with a 'type'"):
        coinbase.parse('{"kind": "match"}', 0)
    missing = {k: v for k, v in MATCH.items() if k != "time"}
    with pytest.raises(MalformedMessage, match="missing field 'time'"):
        coinbase.parse(orjson.dumps(missing), 0)
