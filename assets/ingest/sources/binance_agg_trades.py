"""Binance spot aggregate trades (``GET /api/v3/aggTrades``) -> ``raw.binance_agg_trades``.

Binance allows at most an hour between ``startTime`` and ``endTime`` (both inclusive) and 1000
trades a page, so ``fetch`` walks the half-open window ``[start, end)`` hour by hour and, inside
a busy hour, continues by ``fromId``; it returns Binance's objects untouched, deduplicated by
aggregate id and filtered to the window. ``parse`` checks types only.

An aggregate trade::

    {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
     "T": 1498793709153, "m": true, "M": true}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.candles import canonical_symbol, split_symbol, to_epoch_ms
from assets.ingest.sources.fields import (
    Where,
    as_utc,
    decimal,
    epoch_ms,
    field,
    flag,
    require_list,
    utc_column,
    whole,
)
from orchestration.resources.http import JsonClient

VENUE = "binance"
PATH = "/api/v3/aggTrades"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
PAGE_LIMIT = 1000
CHUNK = timedelta(hours=1)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("symbol", "text", "BASE/QUOTE, e.g. ETH/BTC"),
    ("agg_trade_id", "bigint", "Binance aggregate trade id (a)"),
    ("price", "double precision", "in the quote asset (p)"),
    ("quantity", "double precision", "in the base asset (q)"),
    ("first_trade_id", "bigint", "first trade id of the aggregate (f)"),
    ("last_trade_id", "bigint", "last trade id of the aggregate (l)"),
    ("trade_time", "timestamptz", "UTC (T)"),
    ("is_buyer_maker", "boolean", "the buyer was the resting order (m): a sell-side taker"),
    ("is_best_match", "boolean", "(M)"),
)
TIME_COLUMN = "trade_time"
KEY_COLUMNS = ("symbol", "agg_trade_id")
WHERE = Where(VENUE, PATH)


def venue_symbol(symbol: str) -> str:
    base, quote = split_symbol(symbol)
    return base + quote


def _page(client: JsonClient, params: dict[str, str | int]) -> list[Any]:
    page = require_list(client.get_json(PATH, params), WHERE, "aggregate trades")
    for index, trade in enumerate(page):
        whole(field(trade, "a", WHERE, index), WHERE, index, "a")
        whole(field(trade, "T", WHERE, index), WHERE, index, "T")
    return page


def fetch(client: JsonClient, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every aggregate trade of ``symbol`` with trade time in ``[start, end)``, by id."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)
    by_id: dict[int, dict[str, Any]] = {}
    chunk_start = start
    while chunk_start < end:
        chunk_end_ms = to_epoch_ms(min(chunk_start + CHUNK, end))
        page = _page(
            client,
            {
                "symbol": venue_symbol(symbol),
                "startTime": to_epoch_ms(chunk_start),
                "endTime": chunk_end_ms - 1,
                "limit": PAGE_LIMIT,
            },
        )
        while True:
            for trade in page:
                by_id.setdefault(int(trade["a"]), trade)
            if len(page) < PAGE_LIMIT or int(page[-1]["T"]) >= chunk_end_ms:
                break
            next_id = int(page[-1]["a"]) + 1
            page = _page(
                client, {"symbol": venue_symbol(symbol), "fromId": next_id, "limit": PAGE_LIMIT}
            )
            if not page or int(page[0]["a"]) < next_id:
                break
        chunk_start = min(chunk_start + CHUNK, end)
    return [by_id[a] for a in sorted(by_id) if start_ms <= int(by_id[a]["T"]) < end_ms]


def parse(payload: Sequence[Any], symbol: str) -> pd.DataFrame:
    """Aggregate trades -> the table's columns (types checked, values untouched)."""
    trades = require_list(list(payload) if isinstance(payload, tuple) else payload, WHERE, "trades")
    columns: dict[str, list[Any]] = {name: [] for name, _, _ in COLUMNS}
    for i, trade in enumerate(trades):
        columns["agg_trade_id"].append(whole(field(trade, "a", WHERE, i), WHERE, i, "a"))
        columns["price"].append(decimal(field(trade, "p", WHERE, i), WHERE, i, "p"))
        columns["quantity"].append(decimal(field(trade, "q", WHERE, i), WHERE, i, "q"))
        columns["first_trade_id"].append(whole(field(trade, "f", WHERE, i), WHERE, i, "f"))
        columns["last_trade_id"].append(whole(field(trade, "l", WHERE, i), WHERE, i, "l"))
        columns["trade_time"].append(epoch_ms(field(trade, "T", WHERE, i), WHERE, i, "T"))
        columns["is_buyer_maker"].append(flag(field(trade, "m", WHERE, i), WHERE, i, "m"))
        columns["is_best_match"].append(flag(trade.get("M", True), WHERE, i, "M"))
    count = len(trades)
    return pd.DataFrame(
        {
            "symbol": pd.Series([canonical_symbol(symbol)] * count, dtype=object),
            "agg_trade_id": np.asarray(columns["agg_trade_id"], dtype="int64"),
            "price": np.asarray(columns["price"], dtype="float64"),
            "quantity": np.asarray(columns["quantity"], dtype="float64"),
            "first_trade_id": np.asarray(columns["first_trade_id"], dtype="int64"),
            "last_trade_id": np.asarray(columns["last_trade_id"], dtype="int64"),
            "trade_time": utc_column(columns["trade_time"]),
            "is_buyer_maker": np.asarray(columns["is_buyer_maker"], dtype=bool),
            "is_best_match": np.asarray(columns["is_best_match"], dtype=bool),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
