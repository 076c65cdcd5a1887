"""Binance spot combined streams -> ticks (pure: no I/O, no clock).

The service opens ``<base>/stream?streams=<sym>@trade/<sym>@bookTicker/<sym>@depth@100ms`` and
every message arrives in the combined-stream envelope ``{"stream": "...", "data": {...}}``:

* ``<sym>@trade``: one trade; ``t`` (trade id) is contiguous per symbol, so a jump is a gap.
  ``m`` is true when the buyer was the maker, i.e. the aggressor sold.
* ``<sym>@aggTrade``: trades of one taker order at one price; ``a`` is contiguous. Stored with
  ``trade_id`` ``agg:<a>`` so they never collide with raw trade ids in the store (subscribe to
  one of the two trade streams per symbol, not both, or volume counts twice).
* ``<sym>@bookTicker``: the best bid and ask; ``u`` is the book's update id. Spot book tickers
  carry no exchange time, so the tick's time is the receive time (futures ones carry ``T``).
  Their ``u`` skips the ids of updates below the top, so it is not checked for gaps.
* ``<sym>@depth@100ms``: diff depth. It yields no tick, only the ids ``U..u`` it covers: each
  event must start at the previous ``u + 1``, which is how a lost message shows.

Replies to subscription requests and the REST depth snapshot recorders write next to the stream
(``{"lastUpdateId": ...}``) are well formed and ignored; kline and other streams likewise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import orjson

from orchestration.streaming.model import (
    IGNORED,
    MalformedMessage,
    ParsedMessage,
    SequenceMark,
    Tick,
)

VENUE = "binance"
DEFAULT_URL = "wss://stream.binance.com:9443"
DEFAULT_CHANNELS: tuple[str, ...] = ("trade", "bookTicker", "depth@100ms")

# Longest first, so "BTCFDUSD" splits as BTC/FDUSD, not BTCFD/USD.
QUOTE_ASSETS: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT", "FDUSD", "USDC", "TUSD", "BUSD", "USDP", "DAI", "BTC", "ETH", "BNB", "XRP",
            "TRX", "DOGE", "DOT", "EUR", "GBP", "TRY", "BRL", "AUD", "JPY", "RUB", "UAH", "NGN",
            "ZAR", "PLN", "RON", "ARS", "MXN", "COP", "CZK", "IDRT", "BIDR", "BKRW", "AEUR",
            "EURI", "PAX", "USDS", "VAI",
        ),
        key=lambda quote: (-len(quote), quote),
    )
)  # fmt: skip
NS_PER_MS = 1_000_000


@lru_cache(maxsize=8192)
def canonical_symbol(venue_symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC/USDT`` by its quote asset; a pair with no known quote stays as sent."""
    if not isinstance(venue_symbol, str):
        raise ValueError(f"symbol must be a string, got {venue_symbol!r}")
    upper = venue_symbol.upper()
    for quote in QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[: -len(quote)]}/{quote}"
    return upper


def stream_symbol(symbol: str) -> str:
    """``BTC/USDT`` -> ``btcusdt``, the form stream names use."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise ValueError(f"symbol {symbol!r} is not in the venue-neutral 'BASE/QUOTE' form")
    return f"{base}{quote}".lower()


def stream_names(symbols: Sequence[str], channels: Sequence[str] = DEFAULT_CHANNELS) -> list[str]:
    if not symbols:
        raise ValueError("at least one symbol is needed to subscribe")
    return [f"{stream_symbol(s)}@{channel}" for s in symbols for channel in channels]


def connect_url(base_url: str, symbols: Sequence[str]) -> str:
    """Combined streams subscribe in the URL itself, so nothing needs sending afterwards."""
    return f"{base_url.rstrip('/')}/stream?streams={'/'.join(stream_names(symbols))}"


def subscribe_messages(symbols: Sequence[str]) -> list[str]:
    stream_names(symbols)  # same validation as the URL
    return []


def _float(data: dict, field: str) -> float:
    try:
        return float(data[field])
    except (TypeError, ValueError):
        raise ValueError(f"field {field!r} is not a number: {data[field]!r}") from None


def _price(data: dict, field: str) -> float:
    value = _float(data, field)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"field {field!r} must be a positive number, got {data[field]!r}")
    return value


def _amount(data: dict, field: str) -> float:
    value = _float(data, field)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"field {field!r} must be a non-negative number, got {data[field]!r}")
    return value


def _integer(data: dict, field: str) -> int:
    value = data[field]
    if type(value) is not int:
        raise ValueError(f"field {field!r} must be an integer id, got {value!r}")
    return value


def _trade(data: dict, aggregate: bool) -> ParsedMessage:
    symbol = canonical_symbol(data["s"])
    trade_id = _integer(data, "a" if aggregate else "t")
    maker_is_buyer = data["m"]
    if type(maker_is_buyer) is not bool:
        raise ValueError(f"field 'm' must be a boolean, got {maker_is_buyer!r}")
    tick = Tick(
        VENUE,
        symbol,
        "trade",
        _integer(data, "T") * NS_PER_MS,
        _price(data, "p"),
        _amount(data, "q"),
        "sell" if maker_is_buyer else "buy",
        None,
        None,
        None,
        None,
        f"agg:{trade_id}" if aggregate else str(trade_id),
    )
    stream = "aggTrade" if aggregate else "trade"
    return ParsedMessage((tick,), SequenceMark(VENUE, symbol, stream, trade_id, trade_id))


def _book_side(data: dict, price_field: str, size_field: str) -> tuple[float | None, float | None]:
    """A price of 0 means that side of the book is empty."""
    price, size = _amount(data, price_field), _amount(data, size_field)
    return (price, size) if price > 0 else (None, None)


def _book_ticker(data: dict, received_ns: int) -> ParsedMessage:
    try:
        bid, ask = float(data["b"]), float(data["a"])
        bid_size, ask_size = float(data["B"]), float(data["A"])
        usual = bid > 0 and ask > 0 and bid_size >= 0 and ask_size >= 0
        usual = usual and not math.isinf(bid + ask + bid_size + ask_size)
    except (TypeError, ValueError):
        usual = False
    if not usual:  # one cheap test for the usual message, the careful one for the rest
        bid, bid_size = _book_side(data, "b", "B")
        ask, ask_size = _book_side(data, "a", "A")
        if bid is None and ask is None:
            return IGNORED
    exchange_ms = data.get("T") or data.get("E")
    tick = Tick(
        VENUE,
        canonical_symbol(data["s"]),
        "book_top",
        int(exchange_ms) * NS_PER_MS if exchange_ms else received_ns,
        None,
        None,
        None,
        bid,
        ask,
        bid_size,
        ask_size,
        str(_integer(data, "u")),
    )
    return ParsedMessage((tick,))


def _depth(data: dict) -> ParsedMessage:
    first, last = _integer(data, "U"), _integer(data, "u")
    if last < first:
        raise ValueError(f"depth update ids run backwards: U={first} > u={last}")
    return ParsedMessage(
        sequence=SequenceMark(VENUE, canonical_symbol(data["s"]), "depth", first, last)
    )


def _event(channel: str, data: dict, received_ns: int) -> ParsedMessage:
    if channel == "bookTicker":
        return _book_ticker(data, received_ns)
    if channel == "trade":
        return _trade(data, aggregate=False)
    if channel == "aggTrade":
        return _trade(data, aggregate=True)
    if channel.startswith("depth") and "U" in data:
        return _depth(data)
    return IGNORED


_RAW_EVENT_CHANNELS = {"trade": "trade", "aggTrade": "aggTrade", "depthUpdate": "depth"}


def parse(raw: str | bytes, received_ns: int) -> ParsedMessage:
    """One message from a Binance spot stream (combined envelope or a raw event)."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"binance: not JSON ({exc}): {raw[:120]!r}") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"binance: expected a JSON object, got {raw[:120]!r}")
    stream = message.get("stream")
    if stream is not None:
        data = message.get("data")
        if not isinstance(stream, str) or "@" not in stream or not isinstance(data, dict):
            raise MalformedMessage(
                f"binance: bad combined-stream envelope (stream={stream!r}): {raw[:120]!r}"
            )
        channel = stream[stream.index("@") + 1 :]
    elif "e" in message:
        data, channel = message, _RAW_EVENT_CHANNELS.get(message["e"], str(message["e"]))
    elif {"u", "s", "b", "a"} <= message.keys():
        data, channel = message, "bookTicker"
    elif "code" in message and "msg" in message:
        return ParsedMessage(
            ignored=True, notice=f"binance error {message['code']}: {message['msg']}"
        )
    elif "lastUpdateId" in message or ("result" in message and "id" in message):
        return IGNORED
    else:
        raise MalformedMessage(f"binance: not a stream message: {raw[:120]!r}")
    try:
        return _event(channel, data, received_ns)
    except KeyError as exc:
        raise MalformedMessage(f"binance {channel}: missing field {exc}: {raw[:160]!r}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"binance {channel}: {exc}: {raw[:160]!r}") from None
