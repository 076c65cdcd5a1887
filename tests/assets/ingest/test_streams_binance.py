"""The Binance stream parser on the real recorded sessions in ../shared/data.

``ticks/binance-spot-{btc,eth}usdt-20240808.gz``: ~345 s each of the combined spot stream
(trade, bookTicker, depth@100ms); ``ws/cryptofeed-BINANCE.ws.1.0``: another session with
aggTrade and kline streams over four pairs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from assets.ingest.streams import binance
from orchestration.resources.ticks import normalize_ticks
from orchestration.streaming.model import MalformedMessage, SequenceMark, Tick
from orchestration.streaming.replay import read_recording
from orchestration.streaming.sequencing import GapDetector


def _parse_all(path: Path) -> tuple[list[Tick], list[SequenceMark], Counter]:
    ticks: list[Tick] = []
    marks: list[SequenceMark] = []
    counts: Counter = Counter()
    for message in read_recording(path):
        parsed = binance.parse(message.payload, message.received_ns)
        counts["messages"] += 1
        counts["ignored"] += parsed.ignored
        ticks.extend(parsed.ticks)
        if parsed.sequence is not None:
            marks.append(parsed.sequence)
    return ticks, marks, counts


@pytest.fixture(scope="module")
def btc(shared_data: Path) -> tuple[list[Tick], list[SequenceMark], Counter]:
    return _parse_all(shared_data / "ticks" / "binance-spot-btcusdt-20240808.gz")


@pytest.mark.parametrize(
    ("pair", "symbol", "book_tops", "trades", "depth_updates"),
    [("btc", "BTC/USDT", 28_040, 9_757, 3_451), ("eth", "ETH/USDT", 24_077, 6_106, 3_434)],
)
def test_recorded_sessions_parse_completely(
    shared_data: Path, pair: str, symbol: str, book_tops: int, trades: int, depth_updates: int
) -> None:
    ticks, marks, counts = _parse_all(
        shared_data / "ticks" / f"binance-spot-{pair}usdt-20240808.gz"
    )
    kinds = Counter(t.kind for t in ticks)
    assert kinds == {"book_top": book_tops, "trade": trades}
    assert {t.symbol for t in ticks} == {symbol}
    assert Counter(m.stream for m in marks) == {"trade": trades, "depth": depth_updates}
    # Every line is a stream message except the REST depth snapshot the recorder wrote.
    assert counts["messages"] == book_tops + trades + depth_updates + 1
    assert counts["ignored"] == 1
    # What the parser emits is exactly what the tick store accepts.
    frame = normalize_ticks(pd.DataFrame(ticks))
    assert len(frame) == len(ticks)


def test_a_trade_checked_by_hand(btc: tuple[list[Tick], list[SequenceMark], Counter]) -> None:
    # 1723161254087896568 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,
    #   "s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000",
    #   "T":1723161255342,"m":true,"M":true}}
    ticks, marks, _ = btc
    first_trade = next(t for t in ticks if t.kind == "trade")
    assert first_trade == Tick(
        venue="binance",
        symbol="BTC/USDT",
        kind="trade",
        ts=1_723_161_255_342_000_000,  # the trade time T, in ns
        price=61837.63,
        size=0.02,
        side="sell",  # m=true: the buyer was the maker, so the aggressor sold
        bid=None,
        ask=None,
        bid_size=None,
        ask_size=None,
        trade_id="3735683259",
    )
    assert marks[0] == SequenceMark("binance", "BTC/USDT", "depth", 50093239189, 50093239202)


def test_a_book_top_checked_by_hand(btc: tuple[list[Tick], list[SequenceMark], Counter]) -> None:
    # 1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,
    #   "s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}
    first_top = next(t for t in btc[0] if t.kind == "book_top")
    assert first_top == Tick(
        "binance", "BTC/USDT", "book_top", 1_723_161_254_087_891_268,  # no venue time: receipt
        None, None, None, 61837.63, 61837.64, 3.78826, 1.54698, "50093239212",
    )  # fmt: skip


def test_the_recorded_streams_have_no_gaps(
    btc: tuple[list[Tick], list[SequenceMark], Counter],
) -> None:
    detector = GapDetector()
    gaps = [detector.observe(mark, 0, 0) for mark in btc[1]]
    assert gaps == [None] * len(gaps)
    assert detector.overlaps == 0


def test_cryptofeed_session_with_aggregate_trades(shared_data: Path) -> None:
    ticks, marks, counts = _parse_all(shared_data / "ws" / "cryptofeed-BINANCE.ws.1.0")
    assert Counter((t.symbol, t.kind) for t in ticks) == {
        ("NKN/USDT", "book_top"): 74,
        ("LRC/BTC", "book_top"): 9,
        ("BLZ/ETH", "book_top"): 1,
        ("NKN/USDT", "trade"): 1,
        ("LRC/BTC", "trade"): 1,
    }
    agg = next(t for t in ticks if t.symbol == "NKN/USDT" and t.kind == "trade")
    # {"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000",
    #  "q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}
    assert agg.trade_id == "agg:15683430"
    assert (agg.price, agg.size, agg.side, agg.ts) == (0.3528, 58.0, "buy", 1633998523963 * 10**6)
    assert Counter(m.stream for m in marks) == {"depth": 177, "aggTrade": 2}
    assert {m.symbol for m in marks} == {"NKN/USDT", "LRC/BTC", "BLZ/ETH", "RUNE/EUR"}
    assert counts["ignored"] == 2  # the two kline messages


def test_subscription_urls_and_symbols() -> None:
    assert binance.connect_url("wss://stream.binance.com:9443/", ["BTC/USDT"]) == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"
    )
    assert binance.subscribe_messages(["BTC/USDT"]) == []
    assert binance.canonical_symbol("BTCFDUSD") == "BTC/FDUSD"
    assert binance.canonical_symbol("RUNEEUR") == "RUNE/EUR"
    assert binance.canonical_symbol("WEIRDPAIR") == "WEIRDPAIR"
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        binance.connect_url("wss://x", ["BTCUSDT"])
    with pytest.raises(ValueError, match="at least one symbol"):
        binance.connect_url("wss://x", [])


def test_control_messages_are_ignored_and_errors_reported() -> None:
    assert binance.parse('{"result":null,"id":1}', 0).ignored
    assert binance.parse('{"lastUpdateId":1,"bids":[],"asks":[]}', 0).ignored
    error = binance.parse('{"code":2,"msg":"Invalid request"}', 0)
    assert error.ignored and error.notice == "binance error 2: Invalid request"
    # A raw (not combined) trade event parses like its enveloped form.
    raw = '{"e":"trade","E":1,"s":"ETHBTC","t":7,"p":"0.05","q":"1.5","T":2,"m":false}'
    assert binance.parse(raw, 0).ticks[0].trade_id == "7"


def test_an_empty_book_side_is_null_not_zero() -> None:
    message = (
        '{"stream":"x@bookTicker","data":{"u":9,"s":"XUSDT","b":"0.00000000","B":"0.0",'
        '"a":"2.5","A":"3"}}'
    )
    (top,) = binance.parse(message, 5).ticks
    assert (top.bid, top.bid_size, top.ask, top.ask_size) == (None, None, 2.5, 3.0)


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ('{"stream":"btcusdt@trade","data":{"e":"trade"', "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"hello": "world"}', "not a stream message"),
        ('{"stream":"btcusdt@trade","data":[1]}', "bad combined-stream envelope"),
        (
            '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"q":"1","T":1,"m":true}}',
            "missing field 'p'",
        ),
        (
            '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":"1","p":"1","q":"1","T":1,'
            '"m":true}}',
            "'t' must be an integer",
        ),
        (
            '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,'
            '"m":true}}',
            "field 'p' is not a number: 'abc'",
        ),
        (
            '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"-3","q":"1","T":1,'
            '"m":true}}',
            "'p' must be a positive number",
        ),
        (
            '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","t":1,"p":"3","q":"1","T":1,'
            '"m":"yes"}}',
            "'m' must be a boolean",
        ),
        (
            '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"NaN","B":"1",'
            '"a":"2","A":"1"}}',
            "'b' must be a non-negative number",
        ),
        (
            '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1",'
            '"a":[2],"A":"1"}}',
            "field 'a' is not a number",
        ),
        (
            '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","s":"BTCUSDT","U":9,'
            '"u":3,"b":[],"a":[]}}',
            "run backwards",
        ),
        (
            '{"stream":"btcusdt@trade","data":{"s":7,"t":1,"p":"3","q":"1","T":1,"m":true}}',
            "symbol must be a string",
        ),
    ],
)
def test_malformed_messages_are_named(message: str, complaint: str) -> None:
    with pytest.raises(MalformedMessage, match=complaint):
        binance.parse(message, 0)


def test_bytes_frames_parse_like_text() -> None:
    text = '{"stream":"ethbtc@trade","data":{"s":"ETHBTC","t":1,"p":"3","q":"1","T":1,"m":true}}'
    assert binance.parse(text.encode(), 0) == binance.parse(text, 0)
