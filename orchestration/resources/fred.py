"""FRED macro series: a live client built on fredapi and a synthetic twin.

The live client keeps fredapi's request building and XML parsing (so it returns fredapi's own
``pandas.Series``) but sends the request itself: fredapi's ``urlopen`` has no timeout, no retry
and puts the API key in the URL it might raise with. Here the key travels as a separate query
parameter, is redacted from every log line and error, and requests share the project's retry
policy. FRED has no recorded data in the project, so `FredReplayClient` serves deterministic
synthetic series in the same format and says so (``synthetic = True``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Protocol, runtime_checkable

import dagster as dg
import httpx
import pandas as pd
from fredapi import Fred
from pydantic import Field

from orchestration.resources.http import (
    MissingApiKeyError,
    PayloadError,
    RetryPolicy,
    UpstreamError,
    redact_text,
    send_with_retries,
)
from orchestration.resources.synthetic import value_noise

OBSERVATIONS_PATH = "/series/observations"


@runtime_checkable
class FredClient(Protocol):
    """What the FRED source needs: fredapi's ``get_series`` over an inclusive date range."""

    @property
    def venue(self) -> str: ...

    @property
    def synthetic(self) -> bool: ...

    def get_series(self, series_id: str, start: date, end: date) -> pd.Series: ...


class _FredApi(Fred):
    """fredapi with its one network call replaced; everything else is fredapi's."""

    def __init__(self, root_url: str, fetch_xml: Callable[[str], ET.Element]) -> None:
        # Fred.__init__ is skipped on purpose: it reads FRED_API_KEY from the environment and may
        # install a process-wide urllib opener; neither is wanted here.
        self.api_key = "<sent separately>"
        self.proxies = None
        self.root_url = root_url
        self._fetch_xml = fetch_xml

    def _Fred__fetch_data(self, url: str) -> ET.Element:  # noqa: N802 (overrides Fred.__fetch_data)
        return self._fetch_xml(url)


class FredLiveClient(dg.ConfigurableResource):
    """Live FRED client: ``get_series`` returns exactly what ``fredapi.Fred.get_series`` does."""

    api_key: str = Field(
        default="",
        repr=False,
        description="FRED API key; pass dg.EnvVar('FRED_API_KEY'), never a literal.",
    )
    base_url: str = Field(default=Fred.root_url, description="FRED API root (fredapi root_url).")
    timeout_s: float = Field(default=10.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=5, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=60.0, ge=0)

    @property
    def venue(self) -> str:
        return "fred"

    @property
    def synthetic(self) -> bool:
        return False

    def get_series(self, series_id: str, start: date, end: date) -> pd.Series:
        """Observations of ``series_id`` dated ``start`` through ``end`` (both inclusive)."""
        key = (self.api_key or "").strip()
        if not key:
            raise MissingApiKeyError(
                "FRED_API_KEY is not set: get a free key at https://fred.stlouisfed.org/docs/api/"
                "api_key.html and export it, or run the local deployment (synthetic FRED replay)",
                venue=self.venue,
                path=OBSERVATIONS_PATH,
            )
        policy = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_max_s=self.retry_after_max_s,
        )
        root_url = self.base_url.rstrip("/")
        with httpx.Client(timeout=httpx.Timeout(self.timeout_s)) as http:

            def fetch_xml(url: str) -> ET.Element:
                path = url[len(root_url) :].split("?", 1)[0] if url.startswith(root_url) else url
                response = send_with_retries(
                    http,
                    url,
                    {"api_key": key},
                    venue=self.venue,
                    path=path,
                    policy=policy,
                )
                try:
                    root = ET.fromstring(response.content)
                except ET.ParseError as exc:
                    raise PayloadError(
                        f"body is not XML ({exc}): {redact_text(response.text[:200], [key])}",
                        venue=self.venue,
                        path=path,
                        status=response.status_code,
                    ) from None
                if root.tag == "error":
                    raise UpstreamError(
                        f"FRED error: {redact_text(root.get('message') or '', [key])}",
                        venue=self.venue,
                        path=path,
                        status=response.status_code,
                    )
                if root.tag != "observations":
                    raise PayloadError(
                        f"expected an <observations> document, got <{root.tag}>",
                        venue=self.venue,
                        path=path,
                        status=response.status_code,
                    )
                return root

            fred = _FredApi(root_url, fetch_xml)
            try:
                return fred.get_series(series_id, observation_start=start, observation_end=end)
            except (ValueError, TypeError) as exc:
                raise PayloadError(
                    f"observations of {series_id} did not parse: {redact_text(str(exc), [key])}",
                    venue=self.venue,
                    path=OBSERVATIONS_PATH,
                ) from None


# -- synthetic twin --------------------------------------------------------------------------------


class _SeriesShape:
    """How a synthetic FRED series looks: its calendar, level, drift, wiggle and precision."""

    def __init__(
        self,
        frequency: str,
        level: float,
        monthly_growth: float,
        noise: tuple[tuple[int, float], ...],
        decimals: int,
        holidays_missing: bool = False,
    ) -> None:
        self.frequency = frequency
        self.level = level
        self.monthly_growth = monthly_growth
        self.noise = noise
        self.decimals = decimals
        self.holidays_missing = holidays_missing


_ANCHOR_DATE = date(2018, 1, 1)
SYNTHETIC_SERIES: dict[str, _SeriesShape] = {
    # Effective federal funds rate, percent, every calendar day.
    "DFF": _SeriesShape("daily", 1.42, 0.0, ((3, 0.01), (90, 0.25)), 2),
    # 10-year Treasury constant maturity, percent, business days, "." on market holidays.
    "DGS10": _SeriesShape("business", 2.55, 0.0, ((1, 0.01), (20, 0.12)), 2, True),
    # CPI all urban consumers, index 1982-84=100, monthly.
    "CPIAUCSL": _SeriesShape("monthly", 247.9, 0.002, ((2, 0.0015),), 3),
    # Broad trade-weighted US dollar index, Jan 2006=100, business days.
    "DTWEXBGS": _SeriesShape("business", 110.0, 0.0, ((1, 0.002), (30, 0.03)), 4, True),
    # M2 money stock, billions of dollars, monthly.
    "M2SL": _SeriesShape("monthly", 13850.0, 0.004, ((3, 0.002),), 1),
}
_FIXED_HOLIDAYS = {(1, 1), (7, 4), (12, 25)}


def _calendar(shape: _SeriesShape, start: date, end: date) -> list[date]:
    days = []
    if shape.frequency == "monthly":
        month = date(start.year, start.month, 1)
        if month < start:
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        while month <= end:
            days.append(month)
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        return days
    day = start
    while day <= end:
        if shape.frequency == "daily" or day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


class FredReplayClient(dg.ConfigurableResource):
    """Deterministic synthetic FRED series in fredapi's output format (``synthetic = True``).

    Values depend only on the series id and the date, so overlapping windows agree. Levels are
    plausible for early 2018; business-day series miss fixed holidays as FRED's "." (NaN).
    """

    @property
    def venue(self) -> str:
        return "fred"

    @property
    def synthetic(self) -> bool:
        return True

    def get_series(self, series_id: str, start: date, end: date) -> pd.Series:
        """Observations of ``series_id`` dated ``start`` through ``end`` (both inclusive)."""
        shape = SYNTHETIC_SERIES.get(series_id)
        if shape is None:
            known = ", ".join(SYNTHETIC_SERIES)
            raise UpstreamError(
                f"FRED error: Bad Request.  The series does not exist. "
                f"(the synthetic replay knows: {known})",
                venue=self.venue,
                path=OBSERVATIONS_PATH,
                status=400,
            )
        data: dict[datetime, float] = {}
        for day in _calendar(shape, _as_date(start), _as_date(end)):
            stamp = datetime(day.year, day.month, day.day)
            if shape.holidays_missing and (day.month, day.day) in _FIXED_HOLIDAYS:
                data[stamp] = float("nan")
                continue
            months = (day - _ANCHOR_DATE).days / 30.4375
            noise = value_noise(f"fred:{series_id}", (day - _ANCHOR_DATE).days, shape.noise)
            value = shape.level * math.exp(months * math.log1p(shape.monthly_growth) + noise)
            data[stamp] = round(value, shape.decimals)
        # The very construction fredapi.Fred.get_series ends with.
        return pd.Series(data)
