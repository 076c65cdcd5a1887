"""Binance spot klines (``GET /api/v3/klines``) -> the common candle schema.

``fetch`` pages through a half-open window ``[start, end)`` and returns Binance's rows untouched
(so the raw payload can be stored or replayed); the window filter is done here, in ``fetch``,
because Binance's ``endTime`` is inclusive and a replayed or misbehaving server may still send a
row outside it. ``parse`` only checks types and shape: a candle with ``high < low`` parses fine,
because catching it is the quality gate's job and it has to be stored to be caught.

A Binance kline row::

    [openTime ms, "open", "high", "low", "close", "volume", closeTime ms,
     "quoteAssetVolume", trades, "takerBuyBase", "takerBuyQuote", "ignore"]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from assets.ingest.sources.candles import (
    PRICE_COLUMNS,
    as_utc,
    build_candle_frame,
    canonical_symbol,
    integer,
    interval_seconds,
    number,
    row_time,
    split_symbol,
    to_epoch_ms,
)
from orchestration.resources.http import JsonClient, PayloadError

VENUE = "binance"
PATH = "/api/v3/klines"
INTERVAL = "5m"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "ADA/BTC", "LTC/BTC", "XMR/BTC")
PAGE_LIMIT = 1000
ROW_FIELDS: tuple[str, ...] = (
    "openTime",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "closeTime",
    "quoteAssetVolume",
    "trades",
    "takerBuyBase",
    "takerBuyQuote",
    "ignore",
)


def venue_symbol(symbol: str) -> str:
    """'ETH/BTC' -> 'ETHBTC'."""
    base, quote = split_symbol(symbol)
    return base + quote


def _open_time(row: object, index: int) -> int:
    return row_time(row, index, venue=VENUE, path=PATH, field="openTime", what="kline")


def fetch(
    client: JsonClient,
    symbol: str,
    start: datetime,
    end: datetime,
    interval: str = INTERVAL,
) -> list[list[Any]]:
    """All raw kline rows with open time in ``[start, end)``, oldest first, one per open time."""
    interval_seconds(interval)
    start_ms = to_epoch_ms(as_utc(start, "start"))
    end_ms = to_epoch_ms(as_utc(end, "end"))
    rows: list[list[Any]] = []
    cursor = start_ms
    while cursor < end_ms:
        page = client.get_json(
            PATH,
            {
                "symbol": venue_symbol(symbol),
                "interval": interval,
                "startTime": cursor,
                "endTime": end_ms - 1,
                "limit": PAGE_LIMIT,
            },
        )
        if not isinstance(page, list):
            raise PayloadError(
                f"expected a JSON array of klines, got {type(page).__name__}: {page!r:.120}",
                venue=VENUE,
                path=PATH,
            )
        if not page:
            break
        last_open = cursor - 1
        for offset, row in enumerate(page):
            open_ms = _open_time(row, len(rows) + offset)
            last_open = max(last_open, open_ms)
        rows.extend(page)
        if len(page) < PAGE_LIMIT:
            break
        if last_open < cursor:
            raise PayloadError(
                f"paging did not advance past startTime={cursor} (last openTime {last_open})",
                venue=VENUE,
                path=PATH,
            )
        cursor = last_open + 1
    seen: set[int] = set()
    in_window: list[list[Any]] = []
    for index, row in enumerate(rows):
        open_ms = _open_time(row, index)
        if start_ms <= open_ms < end_ms and open_ms not in seen:
            seen.add(open_ms)
            in_window.append(row)
    in_window.sort(key=lambda row: row[0])
    return in_window


def parse(payload: Sequence[Any], symbol: str, interval: str = INTERVAL) -> pd.DataFrame:
    """Kline rows -> the common candle schema (types and shape checked, values untouched)."""
    interval_seconds(interval)
    if not isinstance(payload, list | tuple):
        raise PayloadError(
            f"expected a list of kline rows, got {type(payload).__name__}", venue=VENUE, path=PATH
        )
    open_times: list[int] = []
    columns: list[list[float]] = [[] for _ in PRICE_COLUMNS]
    for index, row in enumerate(payload):
        if not isinstance(row, list | tuple):
            raise PayloadError(
                f"row {index} is not a kline array: {row!r:.120}", venue=VENUE, path=PATH
            )
        if len(row) < len(ROW_FIELDS):
            missing = ", ".join(ROW_FIELDS[len(row) :])
            raise PayloadError(
                f"row {index} has {len(row)} fields, expected {len(ROW_FIELDS)} "
                f"(missing: {missing})",
                venue=VENUE,
                path=PATH,
            )
        open_times.append(integer(row[0], venue=VENUE, path=PATH, row=index, field="openTime"))
        for position, name in enumerate(PRICE_COLUMNS, start=1):
            columns[position - 1].append(
                number(
                    row[position],
                    venue=VENUE,
                    path=PATH,
                    row=index,
                    field=name,
                    allow_str=True,
                )
            )
    return build_candle_frame(
        canonical_symbol(symbol), interval, open_times, columns, unit="ms", venue=VENUE, path=PATH
    )
