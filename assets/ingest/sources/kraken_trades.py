"""Kraken trades (``GET /0/public/Trades``) -> ``raw.kraken_trades``.

Kraken pages forwards: ``since`` is a nanosecond cursor and each answer's ``last`` is the next
one; ``fetch`` starts just before ``start`` and stops once trades pass ``end``, returning
Kraken's rows untouched, by trade id, filtered to ``[start, end)``.

A row: ``[price, volume, time s (float), "b"|"s", "m"|"l", misc, trade_id]``; b/s is the
taker's side, m/l a market or limit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.candles import canonical_symbol
from assets.ingest.sources.fields import (
    Where,
    as_utc,
    decimal,
    item,
    require_list,
    text,
    utc_column,
    whole,
)
from assets.ingest.sources.kraken_ohlc import result_rows, venue_pair
from orchestration.resources.http import JsonClient, PayloadError

VENUE = "kraken"
PATH = "/0/public/Trades"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
PAGE_COUNT = 1000
MAX_PAGES = 10_000
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("symbol", "text", "BASE/QUOTE, e.g. ETH/BTC"),
    ("trade_id", "bigint", "Kraken trade id"),
    ("trade_time", "timestamptz", "UTC"),
    ("price", "double precision", "in the quote asset"),
    ("volume", "double precision", "in the base asset"),
    ("side", "text", "the taker's side: buy or sell"),
    ("order_type", "text", "market or limit"),
    ("misc", "text", "Kraken's miscellaneous flags"),
)
TIME_COLUMN = "trade_time"
KEY_COLUMNS = ("symbol", "trade_id")
WHERE = Where(VENUE, PATH)
SIDES = {"b": "buy", "s": "sell"}
ORDER_TYPES = {"m": "market", "l": "limit"}


def fetch(client: JsonClient, symbol: str, start: datetime, end: datetime) -> list[list[Any]]:
    start_s = as_utc(start, "start").timestamp()
    end_s = as_utc(end, "end").timestamp()
    cursor = int(start_s * 1e9) - 1
    by_id: dict[int, list[Any]] = {}
    for _ in range(MAX_PAGES):
        rows, last = result_rows(
            client.get_json(
                PATH, {"pair": venue_pair(symbol), "since": cursor, "count": PAGE_COUNT}
            ),
            "trades",
        )
        times = [
            decimal(item(r, 2, "time", WHERE, i), WHERE, i, "time") for i, r in enumerate(rows)
        ]
        for i, (moment, row) in enumerate(zip(times, rows, strict=True)):
            if start_s <= moment < end_s:
                by_id.setdefault(
                    whole(item(row, 6, "trade_id", WHERE, i), WHERE, i, "trade_id"), row
                )
        next_cursor = whole(last, WHERE, "result", "last") if last is not None else None
        if not rows or max(times) >= end_s or next_cursor is None or next_cursor <= cursor:
            break
        cursor = next_cursor
    else:
        raise PayloadError(f"more than {MAX_PAGES} pages of trades", venue=VENUE, path=PATH)
    return [by_id[t] for t in sorted(by_id)]


def parse(payload: Sequence[Any], symbol: str) -> pd.DataFrame:
    rows = require_list(list(payload), WHERE, "trades")
    columns: dict[str, list[Any]] = {name: [] for name, _, _ in COLUMNS}
    for i, row in enumerate(rows):
        columns["price"].append(decimal(item(row, 0, "price", WHERE, i), WHERE, i, "price"))
        columns["volume"].append(decimal(item(row, 1, "volume", WHERE, i), WHERE, i, "volume"))
        moment = decimal(item(row, 2, "time", WHERE, i), WHERE, i, "time")
        columns["trade_time"].append(datetime.fromtimestamp(moment, UTC))
        side = item(row, 3, "side", WHERE, i)
        order_type = item(row, 4, "order_type", WHERE, i)
        if side not in SIDES or order_type not in ORDER_TYPES:
            raise WHERE.error(
                f"row {i}: side {side!r} / order type {order_type!r} is not b|s / m|l"
            )
        columns["side"].append(SIDES[side])
        columns["order_type"].append(ORDER_TYPES[order_type])
        columns["misc"].append(text(item(row, 5, "misc", WHERE, i), WHERE, i, "misc"))
        columns["trade_id"].append(whole(item(row, 6, "trade_id", WHERE, i), WHERE, i, "trade_id"))
    return pd.DataFrame(
        {
            "symbol": pd.Series([canonical_symbol(symbol)] * len(rows), dtype=object),
            "trade_id": np.asarray(columns["trade_id"], dtype="int64"),
            "trade_time": utc_column(columns["trade_time"]),
            "price": np.asarray(columns["price"], dtype="float64"),
            "volume": np.asarray(columns["volume"], dtype="float64"),
            "side": pd.Series(columns["side"], dtype=object),
            "order_type": pd.Series(columns["order_type"], dtype=object),
            "misc": pd.Series(columns["misc"], dtype=object),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
