"""Binance spot order-book snapshots (``GET /api/v3/depth``) -> ``raw.binance_order_book``.

A book describes the moment it is asked for, so each partition day gets the book at its close:
a replay answers for exactly that moment, the live API for now, which is accepted only during
the day or the day after it closed (see ``fields.snapshot_for_day``). Binance's snapshot has no
timestamp: ``taken_at`` is when the answer arrived.

A snapshot::

    {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
     "asks": [["4.00000200", "12.00000000"]]}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from assets.ingest.sources.binance_agg_trades import venue_symbol
from assets.ingest.sources.fields import DaySnapshot, Where, as_utc, days_of, snapshot_for_day
from assets.ingest.sources.order_book import COLUMNS, KEY_COLUMNS, TIME_COLUMN, parse_snapshots
from orchestration.resources.http import TimedJsonClient

VENUE = "binance"
PATH = "/api/v3/depth"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
DEPTH = 100
WHERE = Where(VENUE, PATH)
__all__ = ["COLUMNS", "KEY_COLUMNS", "TIME_COLUMN", "fetch", "parse"]


def fetch(
    client: TimedJsonClient, symbol: str, start: datetime, end: datetime
) -> list[DaySnapshot]:
    """One snapshot of ``DEPTH`` levels a side per day of ``[start, end)``."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    params = {"symbol": venue_symbol(symbol), "limit": DEPTH}
    return [snapshot_for_day(client, PATH, params, day) for day in days_of(start, end)]


def parse(payload: Sequence[DaySnapshot], symbol: str) -> pd.DataFrame:
    return parse_snapshots(
        payload,
        symbol,
        WHERE,
        what="depth snapshot",
        row="snapshot",
        sequence_field="lastUpdateId",
        with_counts=False,
    )
