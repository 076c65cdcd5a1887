"""Kraken OHLC (``GET /0/public/OHLC``) -> the common candle schema (``raw.kraken_ohlcv``).

Kraken serves at most 720 candles, and live only the latest 720 whatever ``since`` says, so at
one hour a candle (the feed's interval) the live API reaches back 30 days; ``fetch`` fails
clearly for an older window rather than storing a partial day. It asks from one interval
before ``start`` (Kraken's ``since`` is exclusive) and filters to ``[start, end)`` itself.

A response (the result is keyed by Kraken's pair name, e.g. ``XETHXXBT`` for ``ETHXBT``)::

    {"error": [], "result": {"XETHXXBT": [[1688671200, "0.06330", "0.06335", "0.06321",
      "0.06329", "0.06328", "153.27", 87], ...], "last": 1688671200}}

Row: ``[time s, open, high, low, close, vwap, volume, count]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from assets.ingest.sources.candles import (
    build_candle_frame,
    canonical_symbol,
    integer,
    interval_seconds,
    number,
    split_symbol,
)
from assets.ingest.sources.fields import Where, as_utc, item, require_dict, require_list
from orchestration.resources.http import JsonClient, OutOfWindowError

VENUE = "kraken"
PATH = "/0/public/OHLC"
INTERVAL = "1h"
DEFAULT_SYMBOLS: tuple[str, ...] = ("ETH/BTC", "LTC/BTC")
MAX_ROWS = 720
KRAKEN_ASSETS = {"BTC": "XBT"}
ROW_FIELDS = ("time", "open", "high", "low", "close", "vwap", "volume", "count")
WHERE = Where(VENUE, PATH)


def venue_pair(symbol: str) -> str:
    """'ETH/BTC' -> 'ETHXBT' (Kraken calls bitcoin XBT)."""
    base, quote = split_symbol(symbol)
    return KRAKEN_ASSETS.get(base, base) + KRAKEN_ASSETS.get(quote, quote)


def result_rows(body: object, what: str) -> tuple[list[Any], Any]:
    """The one pair's rows and ``last`` of a Kraken result (keyed by Kraken's own pair name)."""
    envelope = require_dict(body, WHERE, "Kraken response")
    errors = envelope.get("error")
    if errors:
        raise WHERE.error(f"Kraken error: {'; '.join(map(str, errors))}")
    result = require_dict(envelope.get("result"), WHERE, "Kraken result")
    pairs = [key for key in result if key != "last"]
    if len(pairs) != 1:
        raise WHERE.error(f"expected one pair in the result, got {pairs}")
    return require_list(result[pairs[0]], WHERE, what), result.get("last")


def fetch(
    client: JsonClient, symbol: str, start: datetime, end: datetime, interval: str = INTERVAL
) -> list[list[Any]]:
    """Kraken's rows with time in ``[start, end)``, oldest first, one per time."""
    seconds = interval_seconds(interval)
    start_s = int(as_utc(start, "start").timestamp())
    end_s = int(as_utc(end, "end").timestamp())
    by_time: dict[int, list[Any]] = {}
    since = start_s - seconds
    while since < end_s - seconds:
        rows, _ = result_rows(
            client.get_json(
                PATH, {"pair": venue_pair(symbol), "interval": seconds // 60, "since": since}
            ),
            "candles",
        )
        times = [
            integer(item(r, 0, "time", WHERE, i), venue=VENUE, path=PATH, row=i, field="time")
            for i, r in enumerate(rows)
        ]
        if not times:
            break
        if len(rows) >= MAX_ROWS and min(times) > since + seconds and min(times) > start_s:
            raise OutOfWindowError(
                f"Kraken serves only its latest {MAX_ROWS} {interval} candles (from "
                f"{datetime.fromtimestamp(min(times), UTC).isoformat()}); the window starting "
                f"{as_utc(start, 'start').isoformat()} is older",
                venue=VENUE,
                path=PATH,
            )
        for moment, row in zip(times, rows, strict=True):
            if start_s <= moment < end_s:
                by_time.setdefault(moment, row)
        if max(times) <= since:
            break
        since = max(times)
    return [by_time[t] for t in sorted(by_time)]


def parse(payload: Sequence[Any], symbol: str, interval: str = INTERVAL) -> pd.DataFrame:
    """Kraken rows -> the common candle schema (vwap and trade count are not kept)."""
    interval_seconds(interval)
    rows = require_list(list(payload), WHERE, "candles")
    times: list[int] = []
    columns: list[list[float]] = [[], [], [], [], []]
    for i, row in enumerate(rows):
        item(row, len(ROW_FIELDS) - 1, ROW_FIELDS[-1], WHERE, i)
        times.append(integer(row[0], venue=VENUE, path=PATH, row=i, field="time"))
        for position, name in enumerate(("open", "high", "low", "close"), start=1):
            columns[position - 1].append(
                number(row[position], venue=VENUE, path=PATH, row=i, field=name, allow_str=True)
            )
        columns[4].append(
            number(row[6], venue=VENUE, path=PATH, row=i, field="volume", allow_str=True)
        )
    return build_candle_frame(
        canonical_symbol(symbol), interval, times, columns, unit="s", venue=VENUE, path=PATH
    )
