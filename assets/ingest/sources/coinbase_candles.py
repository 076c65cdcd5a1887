"""Coinbase Exchange candles (``GET /products/{product_id}/candles``) -> the common candle schema.

Coinbase serves at most 300 candles per request, newest first, and may include candles before
the requested ``start``; so ``fetch`` walks the half-open window ``[start, end)`` in 300-candle
chunks and does the window filter itself (here, not in ``parse``). ``parse`` only checks types
and shape, never OHLC invariants: that is the quality gate's job.

A Coinbase candle row: ``[time s, low, high, open, close, volume]`` (JSON numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from assets.ingest.sources.candles import (
    as_utc,
    build_candle_frame,
    canonical_symbol,
    integer,
    number,
    row_time,
    split_symbol,
)
from orchestration.resources.http import JsonClient, PayloadError

VENUE = "coinbase"
INTERVAL = "5m"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
MAX_CANDLES_PER_REQUEST = 300
GRANULARITY_SECONDS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "6h": 21600,
    "1d": 86400,
}
ROW_FIELDS: tuple[str, ...] = ("time", "low", "high", "open", "close", "volume")
PATH_TEMPLATE = "/products/{product_id}/candles"


def product_id(symbol: str) -> str:
    """'ETH/BTC' -> 'ETH-BTC'."""
    base, quote = split_symbol(symbol)
    return f"{base}-{quote}"


def granularity(interval: str) -> int:
    try:
        return GRANULARITY_SECONDS[interval]
    except KeyError:
        known = ", ".join(GRANULARITY_SECONDS)
        raise ValueError(
            f"Coinbase has no {interval!r} candles; granularities are: {known}"
        ) from None


def candles_path(symbol: str) -> str:
    return PATH_TEMPLATE.format(product_id=product_id(symbol))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row_time(row: object, index: int, path: str) -> int:
    return row_time(row, index, venue=VENUE, path=path, field="time")


def fetch(
    client: JsonClient,
    symbol: str,
    start: datetime,
    end: datetime,
    interval: str = INTERVAL,
) -> list[list[Any]]:
    """Raw candle rows with open time in ``[start, end)``, newest first as Coinbase sends them."""
    seconds = granularity(interval)
    start = as_utc(start, "start")
    end = as_utc(end, "end")
    path = candles_path(symbol)
    chunk = timedelta(seconds=seconds * MAX_CANDLES_PER_REQUEST)
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    by_time: dict[int, list[Any]] = {}
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + chunk, end)
        page = client.get_json(
            path,
            {
                "granularity": seconds,
                "start": _iso(chunk_start),
                # Coinbase's end is inclusive: stop one second short of the exclusive bound.
                "end": _iso(chunk_end - timedelta(seconds=1)),
            },
        )
        if not isinstance(page, list):
            raise PayloadError(
                f"expected a JSON array of candles, got {type(page).__name__}: {page!r:.120}",
                venue=VENUE,
                path=path,
            )
        for index, row in enumerate(page):
            time_s = _row_time(row, index, path)
            if start_s <= time_s < end_s:
                by_time.setdefault(time_s, row)
        chunk_start = chunk_end
    return [by_time[t] for t in sorted(by_time, reverse=True)]


def parse(payload: Sequence[Any], symbol: str, interval: str = INTERVAL) -> pd.DataFrame:
    """Candle rows -> the common candle schema (types and shape checked, values untouched)."""
    granularity(interval)
    path = candles_path(symbol)
    if not isinstance(payload, list | tuple):
        raise PayloadError(
            f"expected a list of candle rows, got {type(payload).__name__}",
            venue=VENUE,
            path=path,
        )
    open_times: list[int] = []
    opens: list[float] = []
    highs: list[float] = []
    lows: list[float] = []
    closes: list[float] = []
    volumes: list[float] = []
    for index, row in enumerate(payload):
        if not isinstance(row, list | tuple):
            raise PayloadError(
                f"row {index} is not a candle array: {row!r:.120}", venue=VENUE, path=path
            )
        if len(row) < len(ROW_FIELDS):
            missing = ", ".join(ROW_FIELDS[len(row) :])
            raise PayloadError(
                f"row {index} has {len(row)} fields, expected {len(ROW_FIELDS)} "
                f"(missing: {missing})",
                venue=VENUE,
                path=path,
            )
        open_times.append(integer(row[0], venue=VENUE, path=path, row=index, field="time"))
        values = {
            name: number(row[i], venue=VENUE, path=path, row=index, field=name, allow_str=False)
            for i, name in enumerate(ROW_FIELDS[1:], start=1)
        }
        lows.append(values["low"])
        highs.append(values["high"])
        opens.append(values["open"])
        closes.append(values["close"])
        volumes.append(values["volume"])
    return build_candle_frame(
        canonical_symbol(symbol),
        interval,
        open_times,
        [opens, highs, lows, closes, volumes],
        unit="s",
        venue=VENUE,
        path=path,
    )
