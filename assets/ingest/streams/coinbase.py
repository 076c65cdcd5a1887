"""The Coinbase Exchange websocket feed -> ticks (pure: no I/O, no clock).

The service subscribes to the ``matches`` and ``ticker`` channels of its products:

* ``match`` (and ``last_match``, the latest trade, sent once on subscribing): one trade.
  ``trade_id`` is contiguous per product, so a jump is a gap. ``side`` is the *maker's* side,
  so the aggressor - the tick's ``side``, as on every venue - is the other one.
* ``ticker``: sent on each match with the best bid and ask after it; stored as a book top with
  the message's ``sequence`` as its update id (``trade_id`` column).

``sequence`` numbers every event of a product's full order book, most of which these channels
do not carry, so consecutive matches jump by tens to hundreds of sequence numbers with nothing
lost: the sequence identifies a message but cannot reveal a gap here; the trade id does.

``subscriptions``, ``heartbeat``, ``status`` and the ``level2`` snapshot/``l2update`` messages
are well formed and carry no tick (book tops come from ``ticker``); ``error`` is reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

import orjson

from orchestration.streaming.model import (
    IGNORED,
    MalformedMessage,
    ParsedMessage,
    SequenceMark,
    Tick,
)

VENUE = "coinbase"
DEFAULT_URL = "wss://ws-feed.exchange.coinbase.com"
DEFAULT_CHANNELS: tuple[str, ...] = ("matches", "ticker")
TRADE_TYPES = frozenset({"match", "last_match"})
TICKLESS_TYPES = frozenset(
    {"subscriptions", "heartbeat", "status", "snapshot", "l2update", "received", "open", "done",
     "change", "activate"}
)  # fmt: skip
AGGRESSOR_SIDE = {"sell": "buy", "buy": "sell"}  # keyed by the maker's side


@lru_cache(maxsize=8192)
def canonical_symbol(product_id: str) -> str:
    """``BTC-USD`` -> ``BTC/USD``."""
    if not isinstance(product_id, str):
        raise ValueError(f"symbol must be a string, got {product_id!r}")
    base, sep, quote = product_id.partition("-")
    if not sep or not base or not quote:
        raise ValueError(f"product_id {product_id!r} is not BASE-QUOTE")
    return f"{base.upper()}/{quote.upper()}"


def product_id(symbol: str) -> str:
    """``BTC/USD`` -> ``BTC-USD``."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise ValueError(f"symbol {symbol!r} is not in the venue-neutral 'BASE/QUOTE' form")
    return f"{base}-{quote}".upper()


def connect_url(base_url: str, symbols: Sequence[str]) -> str:
    return base_url.rstrip("/")


def subscribe_messages(
    symbols: Sequence[str], channels: Sequence[str] = DEFAULT_CHANNELS
) -> list[str]:
    if not symbols:
        raise ValueError("at least one symbol is needed to subscribe")
    request = {
        "type": "subscribe",
        "product_ids": [product_id(s) for s in symbols],
        "channels": list(channels),
    }
    return [orjson.dumps(request).decode()]


@lru_cache(maxsize=4096)
def _whole_seconds(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def time_ns(text: str) -> int:
    """``2021-04-17T16:43:37.089723Z`` -> ns since the epoch, exact to the digits sent."""
    if not isinstance(text, str):
        raise ValueError(f"time must be an ISO-8601 string, got {text!r}")
    head, dot, tail = text.partition(".")
    fraction = ""
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        fraction, zone = tail[:digits], tail[digits:]
        if not fraction or len(fraction) > 9:
            raise ValueError(f"time {text!r} has a bad fraction of a second")
        head += zone
    if head.endswith("Z"):
        head = head[:-1] + "+00:00"
    return _whole_seconds(head) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def _number(message: dict, field: str, positive: bool) -> float:
    try:
        value = float(message[field])
    except (TypeError, ValueError):
        raise ValueError(f"field {field!r} is not a number: {message[field]!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        wanted = "a positive" if positive else "a non-negative"
        raise ValueError(f"field {field!r} must be {wanted} number, got {message[field]!r}")
    return value


def _optional(message: dict, field: str) -> float | None:
    return _number(message, field, positive=False) if message.get(field) is not None else None


def _integer(message: dict, field: str) -> int:
    value = message[field]
    if type(value) is not int:
        raise ValueError(f"field {field!r} must be an integer, got {value!r}")
    return value


def _trade(message: dict) -> ParsedMessage:
    symbol = canonical_symbol(message["product_id"])
    trade_id = _integer(message, "trade_id")
    side = AGGRESSOR_SIDE.get(message["side"])
    if side is None:
        raise ValueError(f"field 'side' must be buy or sell, got {message['side']!r}")
    tick = Tick(
        VENUE,
        symbol,
        "trade",
        time_ns(message["time"]),
        _number(message, "price", positive=True),
        _number(message, "size", positive=False),
        side,
        None,
        None,
        None,
        None,
        str(trade_id),
    )
    return ParsedMessage((tick,), SequenceMark(VENUE, symbol, "trade", trade_id, trade_id))


def _ticker(message: dict, received_ns: int) -> ParsedMessage:
    bid, ask = _optional(message, "best_bid"), _optional(message, "best_ask")
    if bid is None and ask is None:
        return IGNORED  # a ticker of a product with an empty book
    sent = message.get("time")
    tick = Tick(
        VENUE,
        canonical_symbol(message["product_id"]),
        "book_top",
        time_ns(sent) if sent is not None else received_ns,
        None,
        None,
        None,
        bid,
        ask,
        _optional(message, "best_bid_size"),
        _optional(message, "best_ask_size"),
        str(_integer(message, "sequence")),
    )
    return ParsedMessage((tick,))


def parse(raw: str | bytes, received_ns: int) -> ParsedMessage:
    """One message from the Coinbase Exchange feed."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"coinbase: not JSON ({exc}): {raw[:120]!r}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise MalformedMessage(f"coinbase: expected an object with a 'type': {raw[:120]!r}")
    kind = message["type"]
    try:
        if kind in TRADE_TYPES:
            return _trade(message)
        if kind == "ticker":
            return _ticker(message, received_ns)
    except KeyError as exc:
        raise MalformedMessage(f"coinbase {kind}: missing field {exc}: {raw[:160]!r}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"coinbase {kind}: {exc}: {raw[:160]!r}") from None
    if kind == "error":
        reason = message.get("reason") or ""
        notice = f"coinbase error: {message.get('message')} {reason}".strip()
        return ParsedMessage(ignored=True, notice=notice)
    return IGNORED
