"""Field-level parsing shared by the source modules: every bad value becomes a PayloadError
naming the venue, the path, the row and the field, never a half-parsed frame.

Also the rule for "answers of the present" (order books, market snapshots): a live API can only
say what the book looks like now, so such an answer belongs to a partition only if it was taken
during that day or the day after it closed (when the daily schedule runs); a backfill of an
older day fails clearly instead of storing today's book under an old date.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from assets.ingest.sources.candles import as_utc, number
from orchestration.resources.http import (
    OutOfWindowError,
    PayloadError,
    TimedAnswer,
    TimedJsonClient,
)

SNAPSHOT_GRACE = timedelta(days=1)
"""How long after a day closes its snapshot may still be taken (the schedule runs after)."""


@dataclass(frozen=True)
class Where:
    """Which venue and path a value came from, for the error message."""

    venue: str
    path: str

    def error(self, problem: str) -> PayloadError:
        return PayloadError(problem, venue=self.venue, path=self.path)


def days_of(start: datetime, end: datetime) -> list[date]:
    """The UTC days the half-open window ``[start, end)`` touches."""
    first, last = (
        start.astimezone(UTC).date(),
        (end.astimezone(UTC) - timedelta(microseconds=1)).date(),
    )
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def require_list(payload: object, where: Where, what: str) -> list[Any]:
    if not isinstance(payload, list):
        raise where.error(
            f"expected a JSON array of {what}, got {type(payload).__name__}: {payload!r:.120}"
        )
    return payload


def require_dict(payload: object, where: Where, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise where.error(
            f"expected a JSON object ({what}), got {type(payload).__name__}: {payload!r:.120}"
        )
    return payload


def field(record: Mapping[str, Any], name: str, where: Where, row: int | str) -> Any:
    if not isinstance(record, Mapping):
        raise where.error(f"row {row} is not a JSON object: {record!r:.120}")
    if name not in record:
        raise where.error(f"row {row} has no field {name!r}")
    return record[name]


def item(record: Sequence[Any], index: int, name: str, where: Where, row: int | str) -> Any:
    if not isinstance(record, list | tuple):
        raise where.error(f"row {row} is not a JSON array: {record!r:.120}")
    if len(record) <= index:
        raise where.error(
            f"row {row} has {len(record)} fields; {name!r} (position {index}) is missing"
        )
    return record[index]


def decimal(
    value: object, where: Where, row: int | str, name: str, *, empty_is_null: bool = False
) -> float:
    """A price or quantity (JSON number or decimal string) as a finite float; NaN for ``""``
    when ``empty_is_null``."""
    if empty_is_null and (value == "" or value is None):
        return math.nan
    return number(value, venue=where.venue, path=where.path, row=row, field=name, allow_str=True)


def whole(value: object, where: Where, row: int | str, name: str) -> int:
    """An integer id or count: a JSON integer or a string of digits."""
    if isinstance(value, bool):
        raise where.error(f"row {row}: field {name!r} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise where.error(f"row {row}: field {name!r} is not an integer: {value!r}")


def flag(value: object, where: Where, row: int | str, name: str) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"row {row}: field {name!r} is not true/false: {value!r}")
    return value


def text(
    value: object, where: Where, row: int | str, name: str, *, optional: bool = False
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise where.error(f"row {row}: field {name!r} is not text: {value!r:.80}")
    return value


def epoch_ms(value: object, where: Where, row: int | str, name: str) -> datetime:
    ms = whole(value, where, row, name)
    return datetime.fromtimestamp(ms / 1000, UTC)


def epoch_s(value: object, where: Where, row: int | str, name: str) -> datetime:
    seconds = decimal(value, where, row, name)
    return datetime.fromtimestamp(seconds, UTC)


def iso_time(value: object, where: Where, row: int | str, name: str) -> datetime:
    """An ISO-8601 instant with its zone (``Z`` or an offset); a naive time is refused."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    raise where.error(f"row {row}: field {name!r} is not an ISO-8601 UTC time: {value!r:.60}")


def utc_column(values: Sequence[datetime]) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True), dtype="datetime64[ns, UTC]")


# -- answers of the present ------------------------------------------------------------------------


@dataclass(frozen=True)
class DaySnapshot:
    """A venue's answer for one partition day: the body, when it was taken, which day it fills."""

    body: Any
    taken_at: datetime
    snapshot_date: date


def snapshot_for_day(
    client: TimedJsonClient,
    path: str,
    params: Mapping[str, str | int],
    day: date,
) -> DaySnapshot:
    """Ask ``path`` for the state at the close of ``day``; refuse an answer taken outside the
    day and its grace period (a live API answering a backfill of an older day)."""
    close = day_start(day) + timedelta(days=1)
    answer: TimedAnswer = client.get_json_at(path, params, at=close)
    taken_at = as_utc(answer.taken_at, "taken_at")
    if not day_start(day) <= taken_at < close + SNAPSHOT_GRACE:
        raise OutOfWindowError(
            f"the venue answered as of {taken_at.isoformat()}, which is not in partition {day} "
            f"(or the day after it closed): it serves only the present, so this day cannot be "
            f"filled from it any more",
            venue=client.venue,
            path=path,
        )
    return DaySnapshot(body=answer.body, taken_at=taken_at, snapshot_date=day)
