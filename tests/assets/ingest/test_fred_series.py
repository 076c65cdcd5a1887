"""FRED source module: inclusive date range, fredapi Series -> observation rows."""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd
import pytest

from assets.ingest.sources import fred_series
from orchestration.resources.fred import FredReplayClient
from orchestration.resources.http import PayloadError


class RecordingFred:
    """Stands in for a FRED client to record the range asked for (no server needed for that)."""

    venue, synthetic = "fred", True

    def __init__(self) -> None:
        self.calls: list[tuple[str, date, date]] = []

    def get_series(self, series_id: str, start: date, end: date) -> pd.Series:
        self.calls.append((series_id, start, end))
        return pd.Series({datetime(2018, 1, 10): 1.42})


def test_module_constants() -> None:
    assert fred_series.VENUE == "fred"
    assert fred_series.DEFAULT_SYMBOLS == ("DFF", "DGS10", "CPIAUCSL", "DTWEXBGS", "M2SL")


def test_fetch_passes_an_inclusive_date_range() -> None:
    client = RecordingFred()
    fred_series.fetch(client, "DFF", date(2018, 1, 10), date(2018, 1, 10))
    fred_series.fetch(client, "DFF", datetime(2018, 1, 10, 0), datetime(2018, 1, 12, 0))
    assert client.calls == [
        ("DFF", date(2018, 1, 10), date(2018, 1, 10)),
        ("DFF", date(2018, 1, 10), date(2018, 1, 12)),
    ]
    assert fred_series.fetch(client, "DFF", date(2018, 1, 11), date(2018, 1, 10)).empty
    assert len(client.calls) == 2


def test_replay_fetch_and_parse_a_daily_partition() -> None:
    frame = fred_series.parse(
        fred_series.fetch(FredReplayClient(), "DFF", date(2018, 1, 10), date(2018, 1, 10)), "DFF"
    )
    assert list(frame.columns) == ["series_id", "observation_date", "value"]
    assert frame["series_id"].tolist() == ["DFF"]
    assert frame["observation_date"].tolist() == [date(2018, 1, 10)]
    assert 0.5 < frame.loc[0, "value"] < 3.0


def test_parse_keeps_missing_values_as_nan() -> None:
    series = FredReplayClient().get_series("DGS10", date(2017, 12, 29), date(2018, 1, 3))
    frame = fred_series.parse(series, "DGS10")
    assert frame["observation_date"].tolist() == [
        date(2017, 12, 29),
        date(2018, 1, 1),
        date(2018, 1, 2),
        date(2018, 1, 3),
    ]
    assert math.isnan(frame.loc[1, "value"])  # New Year's Day: FRED's "."
    assert frame["value"].dtype == "float64"


def test_parse_of_fredapis_empty_result() -> None:
    # fredapi returns pd.Series({}) (object dtype) when a window holds no observation.
    frame = fred_series.parse(pd.Series({}), "CPIAUCSL")
    assert frame.empty
    assert list(frame.columns) == ["series_id", "observation_date", "value"]


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (pd.Series({datetime(2018, 1, 2): "2.46"}), r"DGS10 observation 0 \(2018-01-02\)"),
        (pd.Series({"not a date": 1.0}), r"'not a date' is not a date"),
        (pd.Series({datetime(2018, 1, 2): math.inf}), r"is not finite"),
        ([1.0, 2.0], r"expected fredapi's pandas Series for DGS10, got list"),
    ],
    ids=["string-value", "bad-date", "infinite", "not-a-series"],
)
def test_parse_rejects_malformed_series(series: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        fred_series.parse(series, "DGS10")  # type: ignore[arg-type]
