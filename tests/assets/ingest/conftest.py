"""Fixtures for the source modules: replay clients, and a real HTTP server that serves them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orchestration.resources.http import HttpJsonClient, JsonClient, UpstreamError
from orchestration.resources.replay import BinanceReplayClient, CoinbaseReplayClient

RECORDED_START = datetime(2018, 1, 10, 4, 55, tzinfo=UTC)
"""First open time in the bundled Binance recordings."""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def binance_replay() -> BinanceReplayClient:
    return BinanceReplayClient()


@pytest.fixture
def coinbase_replay() -> CoinbaseReplayClient:
    return CoinbaseReplayClient()


ServeReplay = Callable[[JsonClient, str], tuple[HttpJsonClient, list[dict[str, str]]]]


@pytest.fixture
def serve_replay(httpserver: HTTPServer) -> ServeReplay:
    """Put a replay client behind the real HTTP server; returns a live client and a request log.

    The replay's payloads cross real HTTP as JSON, so the live client's fetch/parse can be
    compared with the replay's, and each request's query parameters are recorded.
    """

    def serve(replay: JsonClient, path_pattern: str) -> tuple[HttpJsonClient, list[dict[str, str]]]:
        requests: list[dict[str, str]] = []

        def handler(request: Request) -> Response:
            params = dict(request.args.items())
            requests.append(params)
            try:
                body = replay.get_json(request.path, params)
            except UpstreamError as error:
                payload = error.problem.removeprefix("request rejected: ")
                return Response(payload, status=error.status or 500, mimetype="application/json")
            return Response(json.dumps(body), mimetype="application/json")

        httpserver.expect_request(re.compile(path_pattern)).respond_with_handler(handler)
        live = HttpJsonClient(
            venue=replay.venue,
            base_url=httpserver.url_for(""),
            max_attempts=2,
            backoff_initial_s=0.01,
            backoff_max_s=0.01,
        )
        return live, requests

    return serve
