"""HttpJsonClient against a real local HTTP server: retries, Retry-After, errors, redaction."""

from __future__ import annotations

import json
import logging
import pickle
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orchestration.resources.http import (
    HttpJsonClient,
    JsonClient,
    PayloadError,
    RateLimitedError,
    RetryPolicy,
    SourceError,
    UpstreamError,
    parse_retry_after,
    redact_text,
)

KLINES = "/api/v3/klines"
BINANCE_ROW = [
    1515560100000,
    "0.09840000",
    "0.09947660",
    "0.09828605",
    "0.09947660",
    "1820.54447418",
    1515560399999,
    "179.59542812",
    4213,
    "860.06318012",
    "84.88254545",
    "0",
]


def make_client(server: HTTPServer, **overrides: object) -> HttpJsonClient:
    settings: dict[str, object] = {
        "venue": "binance",
        "base_url": server.url_for(""),
        "timeout_s": 2.0,
        "max_attempts": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.02,
    }
    settings.update(overrides)
    return HttpJsonClient(**settings)


def sequence(*responses: Response) -> tuple[list[float], object]:
    """A handler answering with ``responses`` in turn (the last one repeats), timing each call."""
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        return responses[min(len(times), len(responses)) - 1]

    return times, handler


def json_response(body: object, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


@pytest.fixture
def threaded_httpserver() -> Iterator[HTTPServer]:
    """A threaded server, so a handler that sleeps past the client timeout blocks nothing else."""
    server = HTTPServer(threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@pytest.mark.integration
def test_get_json_returns_the_decoded_body_and_sends_params(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        KLINES, query_string={"symbol": "ETHBTC", "interval": "5m", "limit": "2"}
    ).respond_with_json([BINANCE_ROW])
    client = make_client(httpserver)

    assert isinstance(client, JsonClient)
    assert client.synthetic is False
    assert client.get_json(KLINES, {"symbol": "ETHBTC", "interval": "5m", "limit": 2}) == [
        BINANCE_ROW
    ]


@pytest.mark.integration
def test_429_waits_for_retry_after_then_succeeds(httpserver: HTTPServer) -> None:
    times, handler = sequence(
        json_response({"code": -1003, "msg": "Too many requests."}, 429, **{"Retry-After": "1"}),
        json_response([BINANCE_ROW]),
    )
    httpserver.expect_request(KLINES).respond_with_handler(handler)

    assert make_client(httpserver).get_json(KLINES) == [BINANCE_ROW]
    assert len(times) == 2
    # The backoff configured is 10-20 ms: only the server's Retry-After explains a 1 s wait.
    assert times[1] - times[0] >= 0.95


@pytest.mark.integration
def test_retry_after_is_capped(httpserver: HTTPServer) -> None:
    times, handler = sequence(
        json_response({"code": -1003, "msg": "banned"}, 418, **{"Retry-After": "3600"}),
        json_response([]),
    )
    httpserver.expect_request(KLINES).respond_with_handler(handler)

    assert make_client(httpserver, retry_after_max_s=0.05).get_json(KLINES) == []
    assert len(times) == 2


@pytest.mark.integration
def test_rate_limited_until_attempts_run_out(httpserver: HTTPServer) -> None:
    times, handler = sequence(
        json_response({"code": -1003, "msg": "Too many requests."}, 429, **{"Retry-After": "0"})
    )
    httpserver.expect_request(KLINES).respond_with_handler(handler)

    with pytest.raises(RateLimitedError) as raised:
        make_client(httpserver).get_json(KLINES, {"symbol": "ETHBTC"})
    assert len(times) == 3
    error = raised.value
    assert (error.venue, error.path, error.status, error.attempts) == ("binance", KLINES, 429, 3)
    assert "binance GET /api/v3/klines" in str(error)
    assert "after 3 attempts" in str(error)


@pytest.mark.integration
def test_5xx_twice_then_success(httpserver: HTTPServer) -> None:
    times, handler = sequence(
        Response("<html>502 Bad Gateway</html>", status=502),
        json_response({"code": -1001, "msg": "Internal error."}, 503),
        json_response([BINANCE_ROW]),
    )
    httpserver.expect_request(KLINES).respond_with_handler(handler)

    assert make_client(httpserver).get_json(KLINES) == [BINANCE_ROW]
    assert len(times) == 3


@pytest.mark.integration
def test_5xx_until_attempts_run_out_is_an_upstream_error(httpserver: HTTPServer) -> None:
    times, handler = sequence(json_response({"code": -1001, "msg": "Internal error."}, 503))
    httpserver.expect_request(KLINES).respond_with_handler(handler)

    with pytest.raises(UpstreamError) as raised:
        make_client(httpserver, max_attempts=4).get_json(KLINES)
    assert len(times) == 4
    assert raised.value.status == 503
    assert raised.value.attempts == 4
    assert "Internal error." in str(raised.value)


@pytest.mark.integration
def test_timeouts_are_retried_then_fail_clearly(threaded_httpserver: HTTPServer) -> None:
    release = threading.Event()
    calls: list[float] = []

    def slow(request: Request) -> Response:
        calls.append(time.monotonic())
        release.wait(timeout=2.0)
        return json_response([])

    threaded_httpserver.expect_request(KLINES).respond_with_handler(slow)
    client = make_client(threaded_httpserver, timeout_s=0.2, max_attempts=2)
    try:
        with pytest.raises(UpstreamError) as raised:
            client.get_json(KLINES)
    finally:
        release.set()
    assert len(calls) == 2
    assert "timed out" in str(raised.value)
    assert raised.value.attempts == 2
    assert raised.value.status is None


@pytest.mark.integration
def test_a_timeout_then_success(threaded_httpserver: HTTPServer) -> None:
    release = threading.Event()
    calls: list[float] = []

    def slow_once(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            release.wait(timeout=2.0)
        return json_response([BINANCE_ROW])

    threaded_httpserver.expect_request(KLINES).respond_with_handler(slow_once)
    try:
        result = make_client(threaded_httpserver, timeout_s=0.2).get_json(KLINES)
    finally:
        release.set()
    assert result == [BINANCE_ROW]
    assert len(calls) == 2


@pytest.mark.integration
def test_connection_refused_is_retried_then_an_upstream_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpJsonClient(
        venue="binance",
        base_url=f"http://127.0.0.1:{port}",
        max_attempts=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.01,
    )
    with pytest.raises(UpstreamError) as raised:
        client.get_json(KLINES)
    assert "connection failed" in str(raised.value)
    assert raised.value.attempts == 2


@pytest.mark.integration
def test_400_invalid_symbol_is_not_retried(httpserver: HTTPServer) -> None:
    times, handler = sequence(json_response({"code": -1121, "msg": "Invalid symbol."}, 400))
    httpserver.expect_request(KLINES).respond_with_handler(handler)

    with pytest.raises(UpstreamError) as raised:
        make_client(httpserver, max_attempts=5).get_json(KLINES, {"symbol": "NOPE"})
    assert len(times) == 1
    assert raised.value.status == 400
    assert raised.value.attempts == 1
    assert "Invalid symbol." in str(raised.value)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            "<!DOCTYPE html><html><body>Cloudflare: checking your browser</body></html>",
            "text/html",
            "not valid JSON (text/html",
        ),
        ('[[1515560100000,"0.0984","0.0994766"', "application/json", "not valid JSON"),
        ("", "application/json", "<empty body>"),
    ],
    ids=["html-page", "truncated-json", "empty-body"],
)
def test_malformed_bodies_are_payload_errors(
    httpserver: HTTPServer, body: str, content_type: str, expected: str
) -> None:
    httpserver.expect_request(KLINES).respond_with_data(body, content_type=content_type)

    with pytest.raises(PayloadError) as raised:
        make_client(httpserver).get_json(KLINES)
    assert expected in str(raised.value)
    assert raised.value.status == 200
    assert str(raised.value).startswith("binance GET /api/v3/klines:")


@pytest.mark.integration
def test_secret_params_never_reach_logs_or_errors(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-k3y-0123456789abcdef"
    times, handler = sequence(
        Response("upstream hiccup", status=500),
        Response(f"bad key {secret}", status=401),
    )
    httpserver.expect_request("/v2/everything").respond_with_handler(handler)
    client = make_client(httpserver, venue="newsapi")

    with caplog.at_level(logging.DEBUG), pytest.raises(UpstreamError) as raised:
        client.get_json("/v2/everything", {"q": "bitcoin", "apiKey": secret})
    assert len(times) == 2
    assert httpserver.log[0][0].args["apiKey"] == secret  # it was sent...
    assert secret not in str(raised.value)  # ...but never shown
    # werkzeug's lines are the test server's access log, not ours.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert secret not in ours
    assert "apiKey=***" in ours  # httpx's own request log line, redacted


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial_s=1.0, backoff_max_s=4.0)
    rng = random.Random(7)
    waits = [policy.backoff_s(attempt, rng) for attempt in range(1, 6)]
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert all(2.0 <= w <= 4.0 for w in waits[2:])
    assert waits == [policy.backoff_s(a, random.Random(7)) for a in range(1, 2)] + waits[1:]


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2018, 1, 10, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Wed, 10 Jan 2018 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 10 Jan 2018 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None


def test_redact_text_hides_secret_query_values() -> None:
    url = "https://api.stlouisfed.org/fred/series?series_id=DFF&api_key=abc123&x=1"
    assert (
        redact_text(url) == "https://api.stlouisfed.org/fred/series?series_id=DFF&api_key=***&x=1"
    )
    assert redact_text("key is abc123", ["abc123"]) == "key is ***"


def test_source_errors_survive_pickling() -> None:
    error = RateLimitedError("gave up", venue="binance", path=KLINES, status=429, attempts=5)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, RateLimitedError) and isinstance(copy, SourceError)
    assert str(copy) == str(error)
    assert (copy.status, copy.attempts) == (429, 5)
