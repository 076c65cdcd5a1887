"""FRED observations (via fredapi) -> ``raw.fred_observations`` rows.

Unlike the candle sources (half-open ``[start, end)`` instants), ``fetch`` takes an inclusive
range of observation dates, as FRED's ``observation_start``/``observation_end`` do: a daily
partition asks for ``(day, day)``. ``parse`` keeps FRED's missing values (its "." which fredapi
reads as NaN) as NaN: a holiday gap is data, not an error.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd

from orchestration.resources.fred import OBSERVATIONS_PATH, FredClient
from orchestration.resources.http import PayloadError

VENUE = "fred"
DEFAULT_SYMBOLS: tuple[str, ...] = ("DFF", "DGS10", "CPIAUCSL", "DTWEXBGS", "M2SL")
DEFAULT_SERIES = DEFAULT_SYMBOLS
COLUMNS: tuple[str, ...] = ("series_id", "observation_date", "value")


def _day(value: date | datetime, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"{name} must be a date or datetime, got {type(value).__name__}")


def fetch(
    client: FredClient, series_id: str, start: date | datetime, end: date | datetime
) -> pd.Series:
    """fredapi's Series of observations dated ``start`` through ``end``, both inclusive.

    Datetimes count by their date. An empty range (end before start) asks FRED nothing.
    """
    first, last = _day(start, "start"), _day(end, "end")
    if last < first:
        return pd.Series({}, dtype="float64")
    return client.get_series(series_id, first, last)


def parse(series: pd.Series, series_id: str) -> pd.DataFrame:
    """fredapi's Series -> (series_id, observation_date, value); NaN where FRED had ".".

    ``observation_date`` holds ``datetime.date`` values (the column is a SQL ``date``).
    """
    if not isinstance(series, pd.Series):
        raise PayloadError(
            f"expected fredapi's pandas Series for {series_id}, got {type(series).__name__}",
            venue=VENUE,
            path=OBSERVATIONS_PATH,
        )
    dates: list[date] = []
    values: list[float] = []
    for position, (stamp, raw) in enumerate(series.items()):
        try:
            day = pd.Timestamp(stamp).date()
        except (TypeError, ValueError):
            raise PayloadError(
                f"{series_id} observation {position}: {stamp!r} is not a date",
                venue=VENUE,
                path=OBSERVATIONS_PATH,
            ) from None
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            value = math.nan
        elif isinstance(raw, bool) or not isinstance(raw, int | float):
            raise PayloadError(
                f"{series_id} observation {position} ({day}): value {raw!r} is not a number",
                venue=VENUE,
                path=OBSERVATIONS_PATH,
            )
        else:
            value = float(raw)
            if math.isinf(value):
                raise PayloadError(
                    f"{series_id} observation {position} ({day}): value {raw!r} is not finite",
                    venue=VENUE,
                    path=OBSERVATIONS_PATH,
                )
        dates.append(day)
        values.append(value)
    frame = pd.DataFrame(
        {
            "series_id": pd.Series([series_id] * len(dates), dtype=object),
            "observation_date": pd.Series(dates, dtype=object),
            "value": pd.Series(values, dtype="float64"),
        },
        columns=list(COLUMNS),
    )
    frame = frame.sort_values("observation_date", kind="stable")
    duplicated = frame["observation_date"].duplicated(keep=False)
    if duplicated.any():
        repeated = sorted(set(frame.loc[duplicated, "observation_date"]))
        raise PayloadError(
            f"{series_id} has more than one observation dated {repeated[0]}",
            venue=VENUE,
            path=OBSERVATIONS_PATH,
        )
    return frame.reset_index(drop=True)
