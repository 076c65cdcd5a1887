"""Coinbase Exchange trades (``GET /products/{product_id}/trades``) -> ``raw.coinbase_trades``.

Coinbase lists trades newest first and pages backwards with ``after`` (trades older than a trade
id); there is no time filter. So ``fetch`` asks for the newest page as of the window's end
(``get_json_at``: a replay answers for that moment, the live API for now), and if that page is
newer than the window, binary-searches the trade ids (one-trade pages) for the last trade before
the window's end; from there it pages back until it passes the window's start. It returns
Coinbase's objects untouched, by trade id, filtered to ``[start, end)``.

A trade (``side`` is the maker order's side)::

    {"time": "2021-04-17T16:43:37.089723Z", "trade_id": 280232, "price": "0.00001305",
     "size": "985", "side": "sell"}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.candles import canonical_symbol
from assets.ingest.sources.coinbase_candles import product_id
from assets.ingest.sources.fields import (
    Where,
    as_utc,
    decimal,
    field,
    iso_time,
    require_list,
    text,
    utc_column,
    whole,
)
from orchestration.resources.http import PayloadError, TimedJsonClient

VENUE = "coinbase"
PATH_TEMPLATE = "/products/{product_id}/trades"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
PAGE_LIMIT = 1000
MAX_PAGES = 10_000
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("symbol", "text", "BASE/QUOTE, e.g. ETH/BTC"),
    ("trade_id", "bigint", "Coinbase trade id (per product)"),
    ("trade_time", "timestamptz", "UTC"),
    ("price", "double precision", "in the quote asset"),
    ("size", "double precision", "in the base asset"),
    ("side", "text", "the maker order's side: buy or sell"),
)
TIME_COLUMN = "trade_time"
KEY_COLUMNS = ("symbol", "trade_id")


def trades_path(symbol: str) -> str:
    return PATH_TEMPLATE.format(product_id=product_id(symbol))


def _checked(page: object, where: Where) -> list[tuple[int, datetime, Any]]:
    """(trade id, time, trade) of a page, or a PayloadError naming the bad row."""
    rows = require_list(page, where, "trades")
    return [
        (
            whole(field(r, "trade_id", where, i), where, i, "trade_id"),
            iso_time(field(r, "time", where, i), where, i, "time"),
            r,
        )
        for i, r in enumerate(rows)
    ]


def fetch(
    client: TimedJsonClient, symbol: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Every trade of ``symbol`` with time in ``[start, end)``, by trade id."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    path = trades_path(symbol)
    where = Where(VENUE, path)

    def older_than(cursor: int, limit: int) -> list[tuple[int, datetime, Any]]:
        return _checked(client.get_json(path, {"after": cursor, "limit": limit}), where)

    newest = _checked(client.get_json_at(path, {"limit": PAGE_LIMIT}, at=end).body, where)
    if not newest:
        return []
    by_id: dict[int, Any] = {}
    if newest[-1][1] < end:
        page = newest
    else:
        # Smallest cursor whose next-older trade is at or after the end, by bisection.
        low, high = 1, max(t for t, _, _ in newest) + 1
        while low < high:
            middle = (low + high) // 2
            probe = older_than(middle, 1)
            if probe and probe[0][1] >= end:
                high = middle
            else:
                low = middle + 1
        page = older_than(low - 1, PAGE_LIMIT) if low > 1 else []
    for _ in range(MAX_PAGES):
        for trade_id, moment, trade in page:
            if start <= moment < end:
                by_id.setdefault(trade_id, trade)
        if not page or min(m for _, m, _ in page) < start:
            break
        cursor = min(t for t, _, _ in page)
        page = older_than(cursor, PAGE_LIMIT)
        if page and max(t for t, _, _ in page) >= cursor:
            raise PayloadError(
                f"paging did not move back past trade {cursor}", venue=VENUE, path=path
            )
    else:
        raise PayloadError(
            f"more than {MAX_PAGES} pages of trades in [{start}, {end})", venue=VENUE, path=path
        )
    return [by_id[t] for t in sorted(by_id)]


def parse(payload: Sequence[Any], symbol: str) -> pd.DataFrame:
    where = Where(VENUE, trades_path(symbol))
    trades = require_list(list(payload), where, "trades")
    ids, times, prices, sizes, sides = [], [], [], [], []
    for i, trade in enumerate(trades):
        ids.append(whole(field(trade, "trade_id", where, i), where, i, "trade_id"))
        times.append(iso_time(field(trade, "time", where, i), where, i, "time"))
        prices.append(decimal(field(trade, "price", where, i), where, i, "price"))
        sizes.append(decimal(field(trade, "size", where, i), where, i, "size"))
        sides.append(text(field(trade, "side", where, i), where, i, "side"))
    return pd.DataFrame(
        {
            "symbol": pd.Series([canonical_symbol(symbol)] * len(trades), dtype=object),
            "trade_id": np.asarray(ids, dtype="int64"),
            "trade_time": utc_column(times),
            "price": np.asarray(prices, dtype="float64"),
            "size": np.asarray(sizes, dtype="float64"),
            "side": pd.Series(sides, dtype=object),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
