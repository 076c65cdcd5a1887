"""The text sources' clients: X through tweepy against a real local HTTP server, and the
synthetic NewsAPI, Reddit and X replays (shapes, determinism, paging)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.ingest.sources import twitter_posts
from assets.ingest.sources.documents import mentioned_symbols
from orchestration.resources.http import (
    MissingApiKeyError,
    PayloadError,
    RateLimitedError,
    UpstreamError,
)
from orchestration.resources.text_sources import (
    X_SEARCH_RECENT_PATH,
    NewsApiReplayClient,
    RedditReplayClient,
    XClient,
    XLiveClient,
    XReplayClient,
    snowflake_ms,
)

TOKEN = "AAAA-bearer-SECRET-token"
START, END = datetime(2018, 1, 12, tzinfo=UTC), datetime(2018, 1, 13, tzinfo=UTC)


def live(server: HTTPServer, **overrides: object) -> XLiveClient:
    settings: dict[str, object] = {
        "bearer_token": TOKEN,
        "base_url": server.url_for("").rstrip("/"),
        "timeout_s": 2.0,
        "max_attempts": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.02,
    }
    return XLiveClient(**{**settings, **overrides})


class XServer:
    """Recent search served from the X replay, with injected first answers and a request log."""

    def __init__(self) -> None:
        self.replay = XReplayClient()
        self.faults: list[Callable[[Request], Response]] = []
        self.requests: list[tuple[float, dict[str, str], dict[str, str]]] = []

    def handle(self, request: Request) -> Response:
        self.requests.append((time.monotonic(), dict(request.args.items()), dict(request.headers)))
        if self.faults:
            return self.faults.pop(0)(request)
        args = request.args
        body = self.replay.search_recent_tweets(
            args["query"],
            start_time=datetime.fromisoformat(args["start_time"].replace("Z", "+00:00")),
            end_time=datetime.fromisoformat(args["end_time"].replace("Z", "+00:00")),
            max_results=int(args["max_results"]),
            next_token=args.get("next_token"),
        )
        return Response(json.dumps(body), mimetype="application/json")


@pytest.fixture
def x_server(httpserver: HTTPServer) -> XServer:
    server = XServer()
    httpserver.expect_request(X_SEARCH_RECENT_PATH).respond_with_handler(server.handle)
    return server


def _answer(body: object, status: int, **headers: str) -> Callable[[Request], Response]:
    return lambda request: Response(
        json.dumps(body), status=status, headers=headers, mimetype="application/json"
    )


@pytest.mark.integration
def test_search_sends_tweepys_request_and_returns_the_raw_json(
    httpserver: HTTPServer, x_server: XServer
) -> None:
    client = live(httpserver)
    assert isinstance(client, XClient) and client.synthetic is False

    page = client.search_recent_tweets("bitcoin", start_time=START, end_time=END, max_results=10)

    assert page == x_server.replay.search_recent_tweets(
        "bitcoin", start_time=START, end_time=END, max_results=10
    )
    _, params, headers = x_server.requests[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert params["start_time"] == "2018-01-12T00:00:00Z"
    assert params["tweet.fields"] == "created_at,author_id,lang,public_metrics"
    assert params["expansions"] == "author_id" and params["user.fields"] == "username,name"


@pytest.mark.integration
def test_fetch_pages_through_next_token_and_parses_documents(
    httpserver: HTTPServer, x_server: XServer
) -> None:
    query = "bitcoin OR ethereum OR litecoin OR monero OR cardano OR ripple"
    over_http = twitter_posts.parse(twitter_posts.fetch(live(httpserver), query, START, END), query)
    direct = twitter_posts.parse(twitter_posts.fetch(XReplayClient(), query, START, END), query)

    assert over_http == direct and len(direct) > 10
    assert len(x_server.requests) == 1  # under 100 a day: one page
    document = direct[0]
    assert document["_id"] == f"twitter:{document['native_id']}"
    assert document["url"].endswith(f"/status/{document['native_id']}")
    assert document["partition_date"] == "2018-01-12" and document["author"]
    assert document["raw"]["id"] == document["native_id"] and document["symbols"]


@pytest.mark.integration
def test_rate_limit_waits_for_the_reset_then_succeeds(
    httpserver: HTTPServer, x_server: XServer
) -> None:
    reset = int(time.time()) + 2
    x_server.faults = [
        _answer(
            {"title": "Too Many Requests", "status": 429}, 429, **{"x-rate-limit-reset": str(reset)}
        )
    ]
    page = live(httpserver).search_recent_tweets("eth", start_time=START, end_time=END)
    assert page["meta"]["result_count"] >= 0
    first, second = x_server.requests[0][0], x_server.requests[1][0]
    assert second - first >= 0.9, "waited for x-rate-limit-reset, not the 10 ms backoff"


@pytest.mark.integration
def test_persistent_rate_limit_gives_up_as_rate_limited(
    httpserver: HTTPServer, x_server: XServer
) -> None:
    x_server.faults = [_answer({"title": "Too Many Requests"}, 429, **{"Retry-After": "0"})] * 3
    with pytest.raises(RateLimitedError, match=r"twitter GET /2/tweets/search/recent.*429"):
        live(httpserver).search_recent_tweets("eth", start_time=START, end_time=END)


@pytest.mark.integration
def test_server_errors_are_retried(httpserver: HTTPServer, x_server: XServer) -> None:
    x_server.faults = [_answer({"title": "Service Unavailable"}, 503)] * 2
    page = live(httpserver).search_recent_tweets("eth", start_time=START, end_time=END)
    assert "meta" in page and len(x_server.requests) == 3


@pytest.mark.integration
def test_timeouts_are_retried_then_reported() -> None:
    server = HTTPServer(threaded=True)
    server.start()
    try:

        def slow(request: Request) -> Response:
            time.sleep(0.6)
            return Response("{}", mimetype="application/json")

        server.expect_request(X_SEARCH_RECENT_PATH).respond_with_handler(slow)
        client = live(server, timeout_s=0.2, max_attempts=2)
        with pytest.raises(UpstreamError, match=r"timed out.*after 2 attempts"):
            client.search_recent_tweets("eth", start_time=START, end_time=END)
    finally:
        server.clear()
        server.stop()


@pytest.mark.integration
def test_refusals_fail_at_once_without_the_token(
    httpserver: HTTPServer, x_server: XServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    x_server.faults = [
        _answer(
            {
                "errors": [
                    {
                        "message": "Invalid 'start_time':'2018-01-12T00:00Z'. 'start_time' "
                        "must be on or after 2026-11-17T00:00Z"
                    }
                ],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
            },
            400,
        )
    ]
    with pytest.raises(UpstreamError, match="must be on or after") as raised:
        live(httpserver).search_recent_tweets("eth", start_time=START, end_time=END)
    assert raised.value.status == 400 and len(x_server.requests) == 1
    assert TOKEN not in str(raised.value)
    assert "Bearer ***" in caplog.text or "Authorization" not in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.integration
def test_malformed_body_is_a_payload_error(httpserver: HTTPServer, x_server: XServer) -> None:
    x_server.faults = [lambda request: Response("<html>oops</html>", mimetype="text/html")]
    with pytest.raises(PayloadError, match="not valid JSON"):
        live(httpserver).search_recent_tweets("eth", start_time=START, end_time=END)


def test_missing_token_is_a_named_failure_that_sends_nothing() -> None:
    with pytest.raises(MissingApiKeyError, match="X_BEARER_TOKEN is not set"):
        XLiveClient(bearer_token="", base_url="http://127.0.0.1:9").search_recent_tweets(
            "eth", start_time=START, end_time=END
        )


def test_token_is_not_in_the_resource_repr() -> None:
    assert TOKEN not in repr(XLiveClient(bearer_token=TOKEN))


# -- the synthetic replays -----------------------------------------------------------------------


def test_x_replay_ids_are_snowflakes_of_their_time_and_pages_do_not_overlap() -> None:
    replay = XReplayClient()
    first = replay.search_recent_tweets(
        "bitcoin OR ethereum", start_time=START, end_time=END, max_results=10
    )
    second = replay.search_recent_tweets(
        "bitcoin OR ethereum",
        start_time=START,
        end_time=END,
        max_results=10,
        next_token=first["meta"]["next_token"],
    )
    ids = [int(t["id"]) for t in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    for tweet in first["data"]:
        created = datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
        assert abs(snowflake_ms(int(tweet["id"])) - created.timestamp() * 1000) < 1000
    with pytest.raises(UpstreamError, match="max_results"):
        replay.search_recent_tweets("x", start_time=START, end_time=END, max_results=5)


def test_newsapi_replay_pages_and_windows_like_newsapi() -> None:
    replay = NewsApiReplayClient()
    params = {
        "q": "bitcoin OR ethereum OR litecoin OR monero OR cardano OR ripple",
        "from": "2018-01-10T00:00:00Z",
        "to": "2018-01-12T23:59:59Z",
    }
    everything = replay.get_json("/v2/everything", {**params, "pageSize": 100})
    page_two = replay.get_json("/v2/everything", {**params, "pageSize": 5, "page": 2})
    articles = everything["articles"]
    assert everything["status"] == "ok" and everything["totalResults"] == len(articles) > 15
    assert page_two["articles"] == articles[5:10]
    times = [a["publishedAt"] for a in articles]
    assert times == sorted(times, reverse=True)
    assert times[-1] >= "2018-01-10T00:00:00Z" and times[0] <= "2018-01-12T23:59:59Z"
    assert all(a["url"].startswith("https://") and ".example/" in a["url"] for a in articles)
    with pytest.raises(UpstreamError, match="parameterInvalid"):
        replay.get_json("/v2/everything", {"q": "bitcoin"})


def test_reddit_replay_pages_backwards_without_gaps_or_repeats() -> None:
    replay = RedditReplayClient()
    at = datetime(2018, 1, 13, tzinfo=UTC)
    first = replay.get_json_at("/r/Bitcoin/new.json", {"limit": 25}, at=at).body["data"]
    second = replay.get_json("/r/Bitcoin/new.json", {"limit": 25, "after": first["after"]})["data"]
    both = [c["data"] for c in first["children"] + second["children"]]
    created = [p["created_utc"] for p in both]
    assert created == sorted(created, reverse=True) and created[0] < at.timestamp()
    assert len({p["id"] for p in both}) == 50
    # the same day asked later in the listing gives the same posts
    later = replay.get_json_at("/r/Bitcoin/new.json", {"limit": 100}, at=at + timedelta(days=1))
    later_ids = {c["data"]["id"] for c in later.body["data"]["children"]}
    assert {p["id"] for p in both if p["created_utc"] >= at.timestamp() - 86400} <= later_ids
    with pytest.raises(UpstreamError, match="no clock"):
        replay.get_json("/r/Bitcoin/new.json", {"limit": 25})


@pytest.mark.parametrize(
    ("text", "symbols"),
    [
        ("Bitcoin (BTC) slides while Ethereum holds", ["BTC", "ETH"]),
        ("$eth and $Ltc pump", ["ETH", "LTC"]),
        ("Bitcoin Cash forks again", ["BCH"]),
        ("the eth word in lower case is not a ticker; ada lovelace neither", []),
        ("Monero privacy; XMR/BTC at a high", ["BTC", "XMR"]),
    ],
)
def test_symbols_are_matched_by_name_ticker_or_cashtag(text: str, symbols: list[str]) -> None:
    assert mentioned_symbols(text) == symbols


@pytest.fixture(autouse=True)
def _no_tweepy_debug_leak() -> Iterator[None]:
    yield
    logging.getLogger("tweepy").setLevel(logging.NOTSET)
