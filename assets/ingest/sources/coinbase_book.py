"""Coinbase Exchange level-2 order books (``GET /products/{product_id}/book?level=2``, the top
50 aggregated levels a side) -> ``raw.coinbase_order_book``.

As with Binance's depth, each partition day gets the book at its close (see
``fields.snapshot_for_day``); ``taken_at`` is when the venue answered.

A level-2 book::

    {"bids": [["295.96", "4.39088265", 2]], "asks": [["295.97", "25.23542881", 12]],
     "sequence": 3, "auction_mode": false, "auction": null, "time": "2024-...Z"}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from assets.ingest.sources.coinbase_candles import product_id
from assets.ingest.sources.fields import DaySnapshot, Where, as_utc, days_of, snapshot_for_day
from assets.ingest.sources.order_book import COLUMNS, KEY_COLUMNS, TIME_COLUMN, parse_snapshots
from orchestration.resources.http import TimedJsonClient

VENUE = "coinbase"
PATH_TEMPLATE = "/products/{product_id}/book"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
__all__ = ["COLUMNS", "KEY_COLUMNS", "TIME_COLUMN", "fetch", "parse"]


def book_path(symbol: str) -> str:
    return PATH_TEMPLATE.format(product_id=product_id(symbol))


def fetch(
    client: TimedJsonClient, symbol: str, start: datetime, end: datetime
) -> list[DaySnapshot]:
    """One level-2 book per day of ``[start, end)``."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    return [
        snapshot_for_day(client, book_path(symbol), {"level": 2}, day)
        for day in days_of(start, end)
    ]


def parse(payload: Sequence[DaySnapshot], symbol: str) -> pd.DataFrame:
    return parse_snapshots(
        payload,
        symbol,
        Where(VENUE, book_path(symbol)),
        what="level-2 book",
        row="book",
        sequence_field="sequence",
        with_counts=True,
    )
