"""Binance USD-M futures funding rates (``GET /fapi/v1/fundingRate``) ->
``raw.binance_futures_funding_rates``.

Funding settles every 8 hours; ``fetch`` pages through ``[start, end)`` by ``startTime`` (1000
rates a page) and returns Binance's objects untouched, filtered to the window. ``markPrice`` is
``""`` on old records: it is stored as NULL.

A funding rate::

    {"symbol": "BTCUSDT", "fundingRate": "-0.03750000", "fundingTime": 1570608000000,
     "markPrice": "34287.54619963"}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.binance_agg_trades import venue_symbol
from assets.ingest.sources.candles import canonical_symbol, to_epoch_ms
from assets.ingest.sources.fields import (
    Where,
    as_utc,
    decimal,
    epoch_ms,
    field,
    require_list,
    utc_column,
    whole,
)
from orchestration.resources.http import JsonClient

VENUE = "binance_futures"
PATH = "/fapi/v1/fundingRate"
DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
PAGE_LIMIT = 1000
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("symbol", "text", "BASE/QUOTE of the perpetual, e.g. BTC/USDT"),
    ("funding_time", "timestamptz", "settlement time, UTC"),
    ("funding_rate", "double precision", "per 8 hours, e.g. 0.0001 = 0.01%"),
    ("mark_price", "double precision", "mark price at settlement (NULL on old records)"),
)
TIME_COLUMN = "funding_time"
KEY_COLUMNS = ("symbol", "funding_time")
WHERE = Where(VENUE, PATH)


def fetch(client: JsonClient, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every funding settlement of ``symbol`` in ``[start, end)``, oldest first."""
    start_ms = to_epoch_ms(as_utc(start, "start"))
    end_ms = to_epoch_ms(as_utc(end, "end"))
    by_time: dict[int, dict[str, Any]] = {}
    cursor = start_ms
    while cursor < end_ms:
        page = require_list(
            client.get_json(
                PATH,
                {
                    "symbol": venue_symbol(symbol),
                    "startTime": cursor,
                    "endTime": end_ms - 1,
                    "limit": PAGE_LIMIT,
                },
            ),
            WHERE,
            "funding rates",
        )
        times = [
            whole(field(r, "fundingTime", WHERE, i), WHERE, i, "fundingTime")
            for i, r in enumerate(page)
        ]
        for moment, rate in zip(times, page, strict=True):
            by_time.setdefault(moment, rate)
        if len(page) < PAGE_LIMIT or not times or max(times) < cursor:
            break
        cursor = max(times) + 1
    return [by_time[t] for t in sorted(by_time) if start_ms <= t < end_ms]


def parse(payload: Sequence[Any], symbol: str) -> pd.DataFrame:
    rates = require_list(list(payload), WHERE, "funding rates")
    times, values, marks = [], [], []
    for i, rate in enumerate(rates):
        times.append(epoch_ms(field(rate, "fundingTime", WHERE, i), WHERE, i, "fundingTime"))
        values.append(decimal(field(rate, "fundingRate", WHERE, i), WHERE, i, "fundingRate"))
        marks.append(decimal(rate.get("markPrice", ""), WHERE, i, "markPrice", empty_is_null=True))
    return pd.DataFrame(
        {
            "symbol": pd.Series([canonical_symbol(symbol)] * len(rates), dtype=object),
            "funding_time": utc_column(times),
            "funding_rate": np.asarray(values, dtype="float64"),
            "mark_price": np.asarray(marks, dtype="float64"),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
