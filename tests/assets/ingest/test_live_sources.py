"""Every source's live path against a real local HTTP server speaking the venue's payloads.

The server answers with what the replay clients serve: the venues' real recorded payloads
(Binance aggregate trades and depth, Binance funding rates, Coinbase trades and books, from
``../shared/data``) or synthetic ones in the documented shapes. The live client (HttpJsonClient,
the Kraken client) and the pure fetch/parse module then run unchanged against it, so each test
shows that the source parses the venue's shape over real HTTP, that a rate limit's Retry-After
and a 5xx are waited out, and that a malformed answer is refused naming the field.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.ingest.sources import (
    binance_agg_trades,
    binance_depth,
    binance_funding,
    blockchain_charts,
    coinbase_book,
    coinbase_trades,
    coingecko_markets,
    fear_greed,
    kraken_ohlc,
    kraken_trades,
    newsapi_articles,
    reddit_posts,
)
from orchestration.resources.http import (
    HttpJsonClient,
    MissingApiKeyError,
    OutOfWindowError,
    PayloadError,
    RateLimitedError,
    UpstreamError,
)
from orchestration.resources.kraken import KrakenHttpClient, KrakenReplayClient
from orchestration.resources.market_stats import (
    BlockchainChartsReplayClient,
    CoinGeckoReplayClient,
    FearGreedReplayClient,
)
from orchestration.resources.replay import (
    BinanceFuturesReplayClient,
    BinanceReplayClient,
    CoinbaseReplayClient,
)
from orchestration.resources.text_sources import NewsApiReplayClient, RedditReplayClient

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
TODAY = (
    datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC),
    datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC) + timedelta(days=1),
)
"""Window of the live snapshot sources: a live API answers only for the present."""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@dataclass(frozen=True)
class Source:
    """One source under test: its module, a subject and window, the replay that plays the
    venue, the moment the venue "is" when asked for its present, and the live client."""

    name: str
    module: ModuleType
    subject: str
    window: tuple[datetime, datetime]
    replay: Callable[[Path], Any]
    venue_moment: datetime | None = None
    live: Callable[[str], HttpJsonClient] = field(
        default=lambda url: HttpJsonClient(venue="test", base_url=url)
    )
    recorded: bool = False


SOURCES = [
    Source(
        "binance_agg_trades",
        binance_agg_trades,
        "XRP/ETH",
        (utc(2019, 10, 12), utc(2019, 10, 12, 3)),
        lambda data: BinanceReplayClient(trades_dir=str(data / "trades")),
        recorded=True,
    ),
    Source(
        "binance_depth",
        binance_depth,
        "NKN/USDT",
        TODAY,
        lambda data: BinanceReplayClient(depth_dir=str(data / "ws")),
        venue_moment=utc(2021, 10, 12),
        recorded=True,
    ),
    Source(
        "binance_funding",
        binance_funding,
        "XRP/USDT",
        (utc(2021, 11, 20), utc(2021, 11, 23)),
        lambda data: BinanceFuturesReplayClient(data_dir=str(data / "ohlcv")),
        recorded=True,
    ),
    Source(
        "coinbase_trades",
        coinbase_trades,
        "SKL/USD",
        (utc(2021, 4, 17, 16, 43, 40), utc(2021, 4, 17, 16, 44, 5)),
        lambda data: CoinbaseReplayClient(data_dir=str(data / "ws")),
        venue_moment=utc(2021, 4, 18),
        recorded=True,
    ),
    Source(
        "coinbase_book",
        coinbase_book,
        "SKL/USD",
        TODAY,
        lambda data: CoinbaseReplayClient(data_dir=str(data / "ws")),
        venue_moment=utc(2021, 4, 17),
        recorded=True,
    ),
    Source(
        "kraken_ohlc",
        kraken_ohlc,
        "ETH/BTC",
        (utc(2018, 1, 12), utc(2018, 1, 13)),
        lambda data: KrakenReplayClient(),
        live=lambda url: KrakenHttpClient(base_url=url),
    ),
    Source(
        "kraken_trades",
        kraken_trades,
        "LTC/BTC",
        (utc(2018, 1, 12), utc(2018, 1, 12, 6)),
        lambda data: KrakenReplayClient(),
        live=lambda url: KrakenHttpClient(base_url=url),
    ),
    Source(
        "coingecko_markets",
        coingecko_markets,
        coingecko_markets.DEFAULT_COINS,
        TODAY,
        lambda data: CoinGeckoReplayClient(),
        venue_moment=NOW,
    ),
    Source(
        "fear_greed",
        fear_greed,
        "crypto",
        (utc(2018, 1, 10), utc(2018, 1, 13)),
        lambda data: FearGreedReplayClient(),
        venue_moment=utc(2018, 2, 1),
    ),
    Source(
        "blockchain_charts",
        blockchain_charts,
        "hash-rate",
        (utc(2018, 1, 12), utc(2018, 1, 14)),
        lambda data: BlockchainChartsReplayClient(),
    ),
    Source(
        "newsapi_articles",
        newsapi_articles,
        newsapi_articles.DEFAULT_SUBJECTS[0],
        (utc(2018, 1, 12), utc(2018, 1, 13)),
        lambda data: NewsApiReplayClient(),
        live=lambda url: HttpJsonClient(
            venue="newsapi",
            base_url=url,
            api_key="newsapi-test-key",
            api_key_header="X-Api-Key",
            api_key_env="NEWSAPI_API_KEY",
        ),
    ),
    Source(
        "reddit_posts",
        reddit_posts,
        "Bitcoin",
        (utc(2018, 1, 12), utc(2018, 1, 13)),
        lambda data: RedditReplayClient(),
        venue_moment=utc(2018, 1, 14),
    ),
]

BY_NAME = {source.name: source for source in SOURCES}


class FakeVenue:
    """The replay behind real HTTP; ``faults`` answer the first requests instead of it."""

    def __init__(self, replay: Any, venue_moment: datetime | None) -> None:
        self.replay = replay
        self.venue_moment = venue_moment
        self.faults: list[Callable[[Request], Response]] = []
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []

    def handle(self, request: Request) -> Response:
        self.times.append(time.monotonic())
        self.headers.append(dict(request.headers))
        if self.faults:
            return self.faults.pop(0)(request)
        params = dict(request.args.items())
        try:
            if self.venue_moment is not None and "after" not in params:
                body = self.replay.get_json_at(request.path, params, at=self.venue_moment).body
            else:
                body = self.replay.get_json(request.path, params)
        except UpstreamError as error:
            payload = error.problem.removeprefix("request rejected: ")
            return Response(payload, status=error.status or 500, mimetype="application/json")
        return Response(json.dumps(body), mimetype="application/json")


def _serve(httpserver: HTTPServer, source: Source, data: Path) -> tuple[FakeVenue, Any, Any]:
    replay = source.replay(data)
    venue = FakeVenue(replay, source.venue_moment)
    httpserver.expect_request(re.compile(r"^/.*")).respond_with_handler(venue.handle)
    live = source.live(httpserver.url_for("")).model_copy(
        update={"max_attempts": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.02}
    )
    return venue, replay, live


def _rows(source: Source, client: Any) -> pd.DataFrame | list[dict[str, Any]]:
    payload = source.module.fetch(client, source.subject, *source.window)
    return source.module.parse(payload, source.subject)


def _comparable(parsed: Any) -> pd.DataFrame:
    frame = pd.DataFrame(parsed) if isinstance(parsed, list) else parsed.copy()
    # a live answer of the present is stamped when it arrived, the replay's when it was asked
    return frame.drop(columns=["taken_at", "snapshot_date"], errors="ignore").reset_index(drop=True)


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_live_path_parses_the_venue_payload_like_the_replay(
    httpserver: HTTPServer, shared_data: Path, source: Source
) -> None:
    venue, replay, live = _serve(httpserver, source, shared_data)

    over_http = _rows(source, live)

    direct = _rows(source, _FixedMoment(replay, source.venue_moment))
    assert len(over_http) > 0
    pd.testing.assert_frame_equal(_comparable(over_http), _comparable(direct), check_exact=True)
    if source.name == "newsapi_articles":
        assert all(h.get("X-Api-Key") == "newsapi-test-key" for h in venue.headers)


class _FixedMoment:
    """A replay asked directly, answering "the present" as the fake venue does."""

    def __init__(self, replay: Any, moment: datetime | None) -> None:
        self.replay, self.moment = replay, moment
        self.venue = replay.venue

    def get_json(self, path: str, params: Any = None) -> Any:
        return self.replay.get_json(path, params)

    def get_json_at(self, path: str, params: Any = None, *, at: datetime) -> Any:
        answer = self.replay.get_json_at(path, params, at=self.moment or at)
        return type(answer)(body=answer.body, taken_at=at if self.moment else answer.taken_at)


def _json(body: object, status: int = 200, **headers: str) -> Callable[[Request], Response]:
    return lambda request: Response(
        json.dumps(body), status=status, headers=headers, mimetype="application/json"
    )


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_a_rate_limit_and_a_server_error_are_waited_out(
    httpserver: HTTPServer, shared_data: Path, source: Source
) -> None:
    venue, _, live = _serve(httpserver, source, shared_data)
    venue.faults = [
        _json({"code": -1003, "msg": "Too many requests."}, 429, **{"Retry-After": "1"}),
        _json({"message": "service unavailable"}, 503),
    ]

    rows = _rows(source, live)

    assert len(rows) > 0
    # the client's own backoff is 10-20 ms: a second's pause is the server's Retry-After
    assert venue.times[1] - venue.times[0] >= 0.95
    assert venue.times[2] - venue.times[1] < 0.5


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_persistent_5xx_gives_up_naming_venue_path_and_attempts(
    httpserver: HTTPServer, shared_data: Path, source: Source
) -> None:
    venue, _, live = _serve(httpserver, source, shared_data)
    venue.faults = [_json({"error": "bad gateway"}, 502)] * 3

    with pytest.raises(UpstreamError, match=r"HTTP 502, after 3 attempts") as raised:
        _rows(source, live)
    assert not isinstance(raised.value, RateLimitedError)
    assert len(venue.times) == 3


def _html(request: Request) -> Response:
    return Response("<html><body>502 Bad Gateway</body></html>", mimetype="text/html")


MALFORMED: dict[str, tuple[Callable[[Request], Response], str]] = {
    "binance_agg_trades": (
        _json([{"a": 1, "p": "0.1", "q": "1", "f": 1, "l": 1, "T": "soon", "m": True}]),
        "field 'T' is not an integer",
    ),
    "binance_depth": (
        _json({"lastUpdateId": 5, "bids": [["0.1", "x"]], "asks": []}),
        "'quantity' is not a finite number",
    ),
    "binance_funding": (
        _json([{"symbol": "XRPUSDT", "fundingRate": "abc", "fundingTime": 1637366400000}]),
        "'fundingRate' is not a finite number",
    ),
    "coinbase_trades": (_json([{"trade_id": 7, "price": "1"}]), "has no field 'time'"),
    "coinbase_book": (_json({"bids": [], "asks": []}), "has no field 'sequence'"),
    "kraken_ohlc": (
        _json({"error": [], "result": {"X": [[1515715200, "1"]], "last": 1515715200}}),
        "'count' (position 7) is missing",
    ),
    "kraken_trades": (
        _json({"error": [], "result": {"X": [["1", "1", 1515715200.1, "x", "m", ""]], "last": 0}}),
        "is missing",
    ),
    "coingecko_markets": (_json([{"id": "bitcoin"}]), "expected a JSON object"),
    "fear_greed": (_json({"data": [{"value": "10"}]}), "has no field 'timestamp'"),
    "blockchain_charts": (
        _json({"status": "ok", "unit": "x", "values": [{"x": 1515715200}]}),
        "has no field 'y'",
    ),
    "newsapi_articles": (_html, "not valid JSON"),
    "reddit_posts": (_json({"kind": "Listing", "data": {}}), "has no field 'children'"),
}


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_malformed_answers_are_refused_naming_the_field(
    httpserver: HTTPServer, shared_data: Path, source: Source
) -> None:
    venue, _, live = _serve(httpserver, source, shared_data)
    fault, problem = MALFORMED[source.name]
    venue.faults = [fault] * 50

    with pytest.raises(PayloadError, match=re.escape(problem)) as raised:
        _rows(source, live)
    assert raised.value.venue and raised.value.path.startswith("/")
    assert len(venue.times) <= 2, "a malformed answer is not worth a retry"


def test_a_timeout_is_retried_then_reported(httpserver: HTTPServer, shared_data: Path) -> None:
    source = SOURCES[0]
    venue, _, live = _serve(httpserver, source, shared_data)
    live = live.model_copy(update={"timeout_s": 0.2, "max_attempts": 2})

    def too_slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("[]", mimetype="application/json")

    venue.faults = [too_slow, too_slow]
    with pytest.raises(UpstreamError, match=r"timed out.*after 2 attempts"):
        _rows(source, live)


# -- venue-specific behaviour ------------------------------------------------------------------


def test_kraken_in_body_rate_limit_is_retried_and_other_errors_are_not(
    httpserver: HTTPServer, shared_data: Path
) -> None:
    source = BY_NAME["kraken_ohlc"]
    venue, _, live = _serve(httpserver, source, shared_data)
    venue.faults = [_json({"error": ["EAPI:Rate limit exceeded"], "result": {}})]
    assert len(_rows(source, live)) == 24
    assert len(venue.times) == 2

    venue.faults = [_json({"error": ["EQuery:Unknown asset pair"], "result": {}})] * 3
    with pytest.raises(UpstreamError, match="Kraken error: EQuery:Unknown asset pair"):
        _rows(source, live)
    assert len(venue.times) == 3, "a refusal is not retried"

    venue.faults = [_json({"error": ["EAPI:Rate limit exceeded"], "result": {}})] * 3
    with pytest.raises(RateLimitedError, match="after 3 attempts"):
        _rows(source, live)


def test_newsapi_without_a_key_is_a_named_failure_that_sends_nothing(
    httpserver: HTTPServer, shared_data: Path
) -> None:
    source = BY_NAME["newsapi_articles"]
    venue, _, live = _serve(httpserver, source, shared_data)
    with pytest.raises(MissingApiKeyError, match="NEWSAPI_API_KEY is not set"):
        _rows(source, live.model_copy(update={"api_key": "  "}))
    assert venue.times == []


def test_newsapi_rejected_key_is_reported_without_the_key(
    httpserver: HTTPServer, shared_data: Path
) -> None:
    source = BY_NAME["newsapi_articles"]
    venue, _, live = _serve(httpserver, source, shared_data)
    venue.faults = [
        _json(
            {
                "status": "error",
                "code": "apiKeyInvalid",
                "message": "Your API key is invalid: newsapi-test-key",
            },
            401,
        )
    ]
    with pytest.raises(UpstreamError, match="apiKeyInvalid") as raised:
        _rows(source, live)
    assert raised.value.status == 401
    assert "newsapi-test-key" not in str(raised.value)


def test_live_snapshot_for_a_past_day_is_refused(httpserver: HTTPServer, shared_data: Path) -> None:
    source = BY_NAME["binance_depth"]
    _, _, live = _serve(httpserver, source, shared_data)
    past = (utc(2018, 1, 12), utc(2018, 1, 13))
    with pytest.raises(OutOfWindowError, match="not in partition 2018-01-12"):
        binance_depth.fetch(live, "NKN/USDT", *past)


def test_reddit_listing_that_ends_before_the_window_is_refused(
    httpserver: HTTPServer, shared_data: Path
) -> None:
    source = BY_NAME["reddit_posts"]
    venue, _, live = _serve(httpserver, source, shared_data)
    first_page = RedditReplayClient().get_json_at(
        "/r/Bitcoin/new.json", {"limit": 100}, at=utc(2018, 1, 14)
    )
    listing = first_page.body
    listing["data"]["children"] = listing["data"]["children"][:10]
    listing["data"]["after"] = None  # Reddit's ~1000-post horizon, reached early
    venue.faults = [_json(listing)]
    with pytest.raises(OutOfWindowError, match="listing ends at"):
        reddit_posts.fetch(live, "Bitcoin", utc(2018, 1, 10), utc(2018, 1, 11))


def test_coinbase_trades_are_found_by_binary_search_from_the_present(
    httpserver: HTTPServer, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venue's newest page is later than the window: the trade ids are bisected, then
    paged back (pages of 5 trades, so that the recorded minute takes several)."""
    monkeypatch.setattr(coinbase_trades, "PAGE_LIMIT", 5)
    source = BY_NAME["coinbase_trades"]
    venue, replay, live = _serve(httpserver, source, shared_data)
    start, end = utc(2021, 4, 17, 16, 43, 40), utc(2021, 4, 17, 16, 43, 55)

    trades = coinbase_trades.fetch(live, "SKL/USD", start, end)

    recorded = replay.recorded().trades["SKL-USD"]
    expected = [t for t in recorded if start.isoformat() <= _iso(t["time"]) < end.isoformat()]
    assert trades == expected and len(trades) > 5
    assert recorded[-1]["time"] > end.isoformat(), "the newest trades are after the window"
    assert len(venue.times) > 10, "the ids were bisected"


def _iso(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
