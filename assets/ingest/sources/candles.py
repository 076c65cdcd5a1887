"""The common candle schema every exchange OHLCV source parses into.

It mirrors ``raw.<venue>_ohlcv`` (minus ``ingested_at``, which the database stamps), so the
loader can write any venue's frame without knowing where it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from orchestration.resources.http import PayloadError

CANDLE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "interval",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
OPEN_TIME_DTYPE = "datetime64[ns, UTC]"

INTERVAL_SECONDS: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
}


def interval_seconds(interval: str) -> int:
    try:
        return INTERVAL_SECONDS[interval]
    except KeyError:
        known = ", ".join(INTERVAL_SECONDS)
        raise ValueError(
            f"unknown candle interval {interval!r}; expected one of: {known}"
        ) from None


def split_symbol(symbol: str) -> tuple[str, str]:
    """'ETH/BTC' -> ('ETH', 'BTC'); the venue-neutral form is the only one the tables hold."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote or "/" in quote:
        raise ValueError(f"symbol {symbol!r} is not in the venue-neutral 'BASE/QUOTE' form")
    return base.upper(), quote.upper()


def as_utc(moment: datetime, name: str) -> datetime:
    """Window bounds must be unambiguous instants: naive datetimes are refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}={moment!r} must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def to_epoch_ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def canonical_symbol(symbol: str) -> str:
    return "/".join(split_symbol(symbol))


def empty_candle_frame() -> pd.DataFrame:
    return build_candle_frame("", "", [], [[] for _ in PRICE_COLUMNS], unit="ms", venue="", path="")


def build_candle_frame(
    symbol: str,
    interval: str,
    open_times: Sequence[int],
    values: Sequence[Sequence[float]],
    *,
    unit: str,
    venue: str,
    path: str,
) -> pd.DataFrame:
    """Assemble the schema from already-validated columns; sorted by open time.

    Two rows for one open time would collide on the table's primary key, so they are refused
    here, naming the rows, rather than half-way through the load.
    """
    first_row: dict[int, int] = {}
    for index, open_time in enumerate(open_times):
        if open_time in first_row:
            raise PayloadError(
                f"rows {first_row[open_time]} and {index} share open time {open_time}",
                venue=venue,
                path=path,
            )
        first_row[open_time] = index
    frame = pd.DataFrame(
        {
            "symbol": pd.Series([symbol] * len(open_times), dtype=object),
            "interval": pd.Series([interval] * len(open_times), dtype=object),
            "open_time": pd.to_datetime(
                np.asarray(open_times, dtype="int64"), unit=unit, utc=True
            ).astype(OPEN_TIME_DTYPE),
            **{
                name: np.asarray(column, dtype="float64")
                for name, column in zip(PRICE_COLUMNS, values, strict=True)
            },
        },
        columns=list(CANDLE_COLUMNS),
    )
    return frame.sort_values("open_time", kind="stable").reset_index(drop=True)


def number(
    value: object, *, venue: str, path: str, row: int | str, field: str, allow_str: bool
) -> float:
    """One price/volume field as a finite float, or a PayloadError naming the row and field."""
    if isinstance(value, bool) or value is None:
        parsed = None
    elif isinstance(value, int | float):
        parsed = float(value)
    elif isinstance(value, str) and allow_str:
        try:
            parsed = float(value)
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None or not math.isfinite(parsed):
        raise PayloadError(
            f"row {row}: field {field!r} is not a finite number: {value!r}",
            venue=venue,
            path=path,
        )
    return parsed


def row_time(
    row: object, index: int, *, venue: str, path: str, field: str, what: str = "candle"
) -> int:
    """The integer time in the first field of a venue's candle array, or a PayloadError
    naming the row when the row is not such an array."""
    if not isinstance(row, list) or not row:
        raise PayloadError(
            f"row {index} is not a {what} array: {row!r:.120}", venue=venue, path=path
        )
    return integer(row[0], venue=venue, path=path, row=index, field=field)


def integer(value: object, *, venue: str, path: str, row: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(
            f"row {row}: field {field!r} is not an integer timestamp: {value!r}",
            venue=venue,
            path=path,
        )
    return value
