"""FRED clients: the live one (fredapi) against a real HTTP server speaking FRED's XML, and
its synthetic twin."""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from datetime import date, datetime

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.ingest.sources import fred_series
from orchestration.resources.fred import FredClient, FredLiveClient, FredReplayClient
from orchestration.resources.http import (
    MissingApiKeyError,
    PayloadError,
    RateLimitedError,
    UpstreamError,
)

API_KEY = "abcdef0123456789abcdef0123456789"
OBSERVATIONS = "/fred/series/observations"

# A real FRED observations document (DGS10 around New Year 2018), as fredapi requests it (XML).
DGS10_XML = """<?xml version="1.0" encoding="utf-8" ?>
<observations realtime_start="2018-02-01" realtime_end="2018-02-01" observation_start="2017-12-28" observation_end="2018-01-03" units="lin" output_type="1" file_type="xml" order_by="observation_date" sort_order="asc" count="5" offset="0" limit="100000">
  <observation realtime_start="2018-02-01" realtime_end="2018-02-01" date="2017-12-28" value="2.43"/>
  <observation realtime_start="2018-02-01" realtime_end="2018-02-01" date="2017-12-29" value="2.40"/>
  <observation realtime_start="2018-02-01" realtime_end="2018-02-01" date="2018-01-01" value="."/>
  <observation realtime_start="2018-02-01" realtime_end="2018-02-01" date="2018-01-02" value="2.46"/>
  <observation realtime_start="2018-02-01" realtime_end="2018-02-01" date="2018-01-03" value="2.44"/>
</observations>
"""  # noqa: E501

BAD_KEY_XML = (
    '<?xml version="1.0" encoding="utf-8" ?>\n<error code="400" message="Bad Request.  The value '
    "for variable api_key is not registered.  Read https://fred.stlouisfed.org/docs/api/"
    'api_key.html for more information."/>'
)


def observations_xml(series: pd.Series) -> str:
    """FRED's XML observations document for a fredapi-format series (NaN as ".")."""
    root = ET.Element("observations", {"units": "lin", "count": str(len(series))})
    for stamp, value in series.items():
        ET.SubElement(
            root,
            "observation",
            {
                "realtime_start": "2018-02-01",
                "realtime_end": "2018-02-01",
                "date": pd.Timestamp(stamp).strftime("%Y-%m-%d"),
                "value": "." if pd.isna(value) else repr(float(value)),
            },
        )
    return '<?xml version="1.0" encoding="utf-8" ?>\n' + ET.tostring(root, encoding="unicode")


def live_client(server: HTTPServer, **overrides: object) -> FredLiveClient:
    settings: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": server.url_for("/fred"),
        "timeout_s": 2.0,
        "max_attempts": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.02,
    }
    settings.update(overrides)
    return FredLiveClient(**settings)


def xml_response(body: str, status: int = 200, **headers: str) -> Response:
    return Response(body, status=status, headers=headers, content_type="text/xml; charset=UTF-8")


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """Our log lines (werkzeug's are the test server's access log)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")


def test_clients_follow_the_protocol() -> None:
    live, replay = FredLiveClient(api_key="x"), FredReplayClient()
    assert isinstance(live, FredClient) and isinstance(replay, FredClient)
    assert (live.venue, live.synthetic) == ("fred", False)
    assert (replay.venue, replay.synthetic) == ("fred", True)
    assert live.base_url == "https://api.stlouisfed.org/fred"  # fredapi's root_url


@pytest.mark.integration
def test_live_client_returns_fredapis_series(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(
        OBSERVATIONS,
        query_string={
            "series_id": "DGS10",
            "observation_start": "2017-12-28",
            "observation_end": "2018-01-03",
            "api_key": API_KEY,
        },
    ).respond_with_response(xml_response(DGS10_XML))

    with caplog.at_level(logging.DEBUG):
        series = live_client(httpserver).get_series("DGS10", date(2017, 12, 28), date(2018, 1, 3))

    assert list(series.index) == [
        datetime(2017, 12, 28),
        datetime(2017, 12, 29),
        datetime(2018, 1, 1),
        datetime(2018, 1, 2),
        datetime(2018, 1, 3),
    ]
    assert series.dtype == "float64"
    assert series.iloc[[0, 1, 3, 4]].tolist() == [2.43, 2.40, 2.46, 2.44]
    assert math.isnan(series.iloc[2])
    assert API_KEY not in ours(caplog)
    assert "api_key=***" in ours(caplog)


def test_missing_key_is_a_named_error(caplog: pytest.LogCaptureFixture) -> None:
    for key in ("", "   "):
        with pytest.raises(MissingApiKeyError, match="FRED_API_KEY is not set"):
            FredLiveClient(api_key=key).get_series("DFF", date(2018, 1, 10), date(2018, 1, 10))


@pytest.mark.integration
def test_rejected_key_is_reported_without_the_key(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Request] = []

    def fred(request: Request) -> Response:
        calls.append(request)
        return xml_response(BAD_KEY_XML, status=400)

    httpserver.expect_request(OBSERVATIONS).respond_with_handler(fred)
    with caplog.at_level(logging.DEBUG), pytest.raises(UpstreamError) as raised:
        live_client(httpserver).get_series("DFF", date(2018, 1, 10), date(2018, 1, 10))

    assert len(calls) == 1  # a 4xx is not retried
    assert raised.value.status == 400
    assert "api_key is not registered" in str(raised.value)
    assert str(raised.value).startswith("fred GET /series/observations:")
    assert API_KEY not in str(raised.value)
    assert API_KEY not in ours(caplog)


@pytest.mark.integration
def test_server_errors_are_retried_and_never_leak_the_key(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Request] = []

    def flaky(request: Request) -> Response:
        calls.append(request)
        if len(calls) == 1:
            return Response(f"proxy error for {request.url}", status=502)  # echoes the key
        if len(calls) == 2:
            return xml_response("", status=429, **{"Retry-After": "0"})
        return xml_response(DGS10_XML)

    httpserver.expect_request(OBSERVATIONS).respond_with_handler(flaky)
    with caplog.at_level(logging.DEBUG):
        series = live_client(httpserver).get_series("DGS10", date(2017, 12, 28), date(2018, 1, 3))

    assert len(calls) == 3
    assert len(series) == 5
    assert API_KEY not in ours(caplog)


@pytest.mark.integration
def test_persistent_rate_limit_gives_up_clearly(httpserver: HTTPServer) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_response(
        xml_response(
            '<error code="429" message="Too Many Requests."/>', 429, **{"Retry-After": "0"}
        )
    )
    with pytest.raises(RateLimitedError) as raised:
        live_client(httpserver, max_attempts=2).get_series(
            "DFF", date(2018, 1, 10), date(2018, 1, 10)
        )
    assert raised.value.attempts == 2
    assert API_KEY not in str(raised.value)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html><body>Service temporarily unavailable</body>", "not XML"),
        ('<observations><observation date="2018-01-10" value="', "not XML"),
        (
            '<observations><observation date="2018-01-10" value="n/a"/></observations>',
            "observations of DFF did not parse",
        ),
        ("<series><x/></series>", "expected an <observations> document, got <series>"),
    ],
    ids=["html", "truncated", "non-numeric", "wrong-document"],
)
def test_malformed_bodies_are_payload_errors(
    httpserver: HTTPServer, body: str, message: str
) -> None:
    httpserver.expect_request(OBSERVATIONS).respond_with_response(xml_response(body))
    with pytest.raises(PayloadError, match=message) as raised:
        live_client(httpserver).get_series("DFF", date(2018, 1, 10), date(2018, 1, 10))
    assert API_KEY not in str(raised.value)


@pytest.mark.integration
def test_live_and_replay_parse_to_identical_frames(httpserver: HTTPServer) -> None:
    replay = FredReplayClient()
    start, end = date(2017, 12, 20), date(2018, 3, 5)

    def fred(request: Request) -> Response:
        series = replay.get_series(
            request.args["series_id"],
            date.fromisoformat(request.args["observation_start"]),
            date.fromisoformat(request.args["observation_end"]),
        )
        return xml_response(observations_xml(series))

    httpserver.expect_request(OBSERVATIONS).respond_with_handler(fred)
    live = live_client(httpserver)
    for series_id in fred_series.DEFAULT_SYMBOLS:
        over_http = fred_series.parse(fred_series.fetch(live, series_id, start, end), series_id)
        direct = fred_series.parse(fred_series.fetch(replay, series_id, start, end), series_id)
        pd.testing.assert_frame_equal(over_http, direct, check_exact=True)
        assert not direct.empty


# -- synthetic twin ---------------------------------------------------------------------------


def test_replay_series_calendars_and_levels() -> None:
    replay = FredReplayClient()
    start, end = date(2018, 1, 1), date(2018, 3, 31)
    dff = replay.get_series("DFF", start, end)
    dgs10 = replay.get_series("DGS10", start, end)
    cpi = replay.get_series("CPIAUCSL", start, end)
    dollar = replay.get_series("DTWEXBGS", start, end)
    m2 = replay.get_series("M2SL", start, end)

    assert len(dff) == 90  # every calendar day
    assert all(ts.weekday() < 5 for ts in dgs10.index)  # business days only
    assert list(cpi.index) == [datetime(2018, m, 1) for m in (1, 2, 3)]
    assert list(m2.index) == [datetime(2018, m, 1) for m in (1, 2, 3)]
    assert math.isnan(dgs10[datetime(2018, 1, 1)])  # holiday: FRED's "."
    assert dff.between(0.0, 6.0).all()
    assert dgs10.dropna().between(1.0, 5.0).all()
    assert cpi.between(230, 270).all()
    assert dollar.dropna().between(90, 130).all()
    assert m2.between(12_000, 16_000).all()
    assert dgs10.dropna().diff().abs().max() < 0.25  # daily moves in basis points, not percent


def test_replay_is_deterministic_and_window_independent() -> None:
    whole = FredReplayClient().get_series("DGS10", date(2018, 1, 1), date(2018, 2, 28))
    part = FredReplayClient().get_series("DGS10", date(2018, 2, 1), date(2018, 2, 10))
    pd.testing.assert_series_equal(whole.loc[part.index], part)
    assert FredReplayClient().get_series("M2SL", date(2018, 1, 2), date(2018, 1, 31)).empty


def test_replay_unknown_series_is_a_clear_error() -> None:
    with pytest.raises(UpstreamError, match="series does not exist"):
        FredReplayClient().get_series("NOPE", date(2018, 1, 1), date(2018, 1, 2))
