"""Clients of the text sources: NewsAPI, Reddit and X (Twitter).

Live: NewsAPI and Reddit are plain :class:`HttpJsonClient`s (NewsAPI with its key in the
``X-Api-Key`` header; Reddit through its public JSON listings, no OAuth, with a descriptive
User-Agent). X goes through tweepy's ``Client.search_recent_tweets`` (`XLiveClient`), wrapped in
the project's retry policy, timeouts and error vocabulary, with the bearer token kept out of
every log line and error.

Replay: none of these is recorded in the project, so the replay twins write deterministic
synthetic items (headlines, posts) in each API's documented JSON shape and say so
(``synthetic = True``). Every item depends only on the source, the day and its index, so a day
replays identically whichever window asks for it. Synthetic links point at ``.example`` hosts.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import dagster as dg
import numpy as np
import requests
import tweepy
from pydantic import Field, PrivateAttr

from orchestration.resources.http import (
    MissingApiKeyError,
    PayloadError,
    RetryPolicy,
    TimedAnswer,
    TransientFailure,
    UpstreamError,
    parse_retry_after,
    redact_text,
    rejected,
    run_with_retries,
)
from orchestration.resources.replay import as_utc_moment
from orchestration.resources.synthetic import DAY_S, FIRST_DAY, rng_for

# -- synthetic text --------------------------------------------------------------------------------

_COINS: tuple[tuple[str, str], ...] = (
    ("Bitcoin", "BTC"),
    ("Ethereum", "ETH"),
    ("Litecoin", "LTC"),
    ("Monero", "XMR"),
    ("Cardano", "ADA"),
    ("Ripple", "XRP"),
)
_UP = ("surges", "jumps", "climbs", "rebounds", "rallies", "edges higher")
_DOWN = ("slides", "tumbles", "drops", "sinks", "slips", "falls")
_GOOD = (
    "institutional interest grows",
    "futures volumes hit a record",
    "a major exchange adds new trading pairs",
    "developers ship a long-awaited upgrade",
    "traders shrug off regulatory fears",
    "payment processors announce support",
)
_BAD = (
    "regulators weigh an exchange crackdown",
    "a large exchange suspends withdrawals",
    "questions about stablecoin reserves resurface",
    "traders take profits after the rally",
    "a hack drains funds from a trading platform",
    "central banks warn about speculation",
)
_OUTLETS = ("Coin Ledger", "Block Times", "Crypto Wire", "Market Desk", "Chain Report")
_AUTHORS = ("A. Rivera", "J. Chen", "M. Okafor", "S. Lindqvist", "P. Novak", None)
_SUBREDDIT_MOODS = ("Discussion", "News", "Analysis", "Question")
_USERS = ("hodl_gang", "satoshis_cat", "ledger_larry", "altcoin_annie", "chartwatcher", "defi_dan")


@dataclass(frozen=True)
class SyntheticStory:
    """One synthetic item: when it appeared, what it says, how strongly."""

    published_s: float
    headline: str
    body: str
    coin: str
    ticker: str
    bullish: bool


def synthetic_stories(source: str, day: int, per_day: float) -> list[SyntheticStory]:
    """The day's synthetic items of ``source``, oldest first (a Poisson count, uniform times)."""
    rng = rng_for("stories", source, day)
    count = int(rng.poisson(per_day))
    times = np.sort(rng.uniform(0, DAY_S, size=count))
    stories = []
    for moment in times:
        coin, ticker = _COINS[int(rng.integers(0, len(_COINS)))]
        other, other_ticker = _COINS[int(rng.integers(0, len(_COINS)))]
        bullish = bool(rng.random() < 0.5)
        move = (_UP if bullish else _DOWN)[int(rng.integers(0, 6))]
        reason = (_GOOD if bullish else _BAD)[int(rng.integers(0, 6))]
        pct = round(float(rng.uniform(1, 18)), 1)
        template = int(rng.integers(0, 4))
        if template == 0:
            headline = f"{coin} {move} {pct}% as {reason}"
        elif template == 1:
            headline = f"{coin} ({ticker}) {move} while {other} holds steady"
        elif template == 2:
            headline = f"Analysts split on {coin} after {reason}"
        else:
            headline = f"${ticker} {move} {pct}%: {reason}"
        body = (
            f"{coin} {move} {pct}% over the past 24 hours as {reason}. "
            f"{other} ({other_ticker}) moved "
            f"{'in step' if rng.random() < 0.5 else 'the other way'}, "
            f"and traders expect {'more upside' if bullish else 'further weakness'} this week."
        )
        stories.append(
            SyntheticStory(
                published_s=day * DAY_S + float(moment),
                headline=headline,
                body=body,
                coin=coin,
                ticker=ticker,
                bullish=bullish,
            )
        )
    return stories


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- NewsAPI ---------------------------------------------------------------------------------------

NEWSAPI_EVERYTHING_PATH = "/v2/everything"
NEWSAPI_MAX_PAGE_SIZE = 100
NEWS_PER_DAY = 10.0


class NewsApiReplayClient(dg.ConfigurableResource):
    """Synthetic NewsAPI ``/v2/everything`` (``synthetic = True``): crypto headlines of the
    requested ``from``..``to`` range, newest first, paged like NewsAPI. Needs no key."""

    @property
    def venue(self) -> str:
        return "newsapi"

    @property
    def synthetic(self) -> bool:
        return True

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        def error(status: int, code: str, message: str) -> UpstreamError:
            body = f'{{"status":"error","code":"{code}","message":"{message}"}}'
            return rejected(self.venue, path, status, body)

        if path.rstrip("/") != NEWSAPI_EVERYTHING_PATH:
            raise error(404, "routeNotFound", "The replay serves /v2/everything only.")
        params = dict(params or {})
        start = _parse_iso(str(params.get("from", "")))
        end = _parse_iso(str(params.get("to", "")))
        if start is None or end is None:
            raise error(
                400,
                "parameterInvalid",
                "The replay has no clock: send from and to as ISO 8601 times.",
            )
        try:
            page = int(str(params.get("page", 1)))
            size = int(str(params.get("pageSize", NEWSAPI_MAX_PAGE_SIZE)))
        except ValueError:
            raise error(400, "parameterInvalid", "page and pageSize must be integers.") from None
        if page < 1 or not 1 <= size <= NEWSAPI_MAX_PAGE_SIZE:
            raise error(400, "parameterInvalid", "page or pageSize is out of range.")
        terms = [t.strip().strip('"').lower() for t in str(params.get("q", "")).split(" OR ")]
        terms = [t for t in terms if t]
        articles = []
        for day in range(int(start) // DAY_S, int(end) // DAY_S + 1):
            for index, story in enumerate(synthetic_stories("newsapi", day, NEWS_PER_DAY)):
                if not start <= story.published_s <= end:
                    continue
                text = f"{story.headline} {story.body}".lower()
                if terms and not any(term in text for term in terms):
                    continue
                outlet = _OUTLETS[(day + index) % len(_OUTLETS)]
                published = _iso(story.published_s)
                articles.append(
                    {
                        "source": {"id": None, "name": outlet},
                        "author": _AUTHORS[(day * 7 + index) % len(_AUTHORS)],
                        "title": story.headline,
                        "description": story.body.split(". ")[0] + ".",
                        "url": f"https://{_slug(outlet)}.example/{published[:10]}/"
                        f"{_slug(story.headline)}-{day}-{index}",
                        "urlToImage": None,
                        "publishedAt": published,
                        "content": story.body,
                    }
                )
        articles.sort(key=lambda a: (a["publishedAt"], a["url"]), reverse=True)
        chosen = articles[(page - 1) * size : page * size]
        return {"status": "ok", "totalResults": len(articles), "articles": chosen}


# -- Reddit ----------------------------------------------------------------------------------------

REDDIT_NEW_PATH = re.compile(r"^/r/([A-Za-z0-9_]+)/new\.json$")
REDDIT_MAX_LIMIT = 100
POSTS_PER_DAY = 14.0
_IDS_PER_DAY = 1_000


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


class RedditReplayClient(dg.ConfigurableResource):
    """Synthetic Reddit listings ``/r/<subreddit>/new.json`` (``synthetic = True``).

    Newest first, paged with ``after`` (a post's fullname). The first page depends on when it
    is asked, so it is served through ``get_json_at``; later pages (``after`` given) do not.
    """

    @property
    def venue(self) -> str:
        return "reddit"

    @property
    def synthetic(self) -> bool:
        return True

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        params = dict(params or {})
        if not params.get("after"):
            raise rejected(
                self.venue,
                path,
                400,
                '{"message": "the replay has no clock: ask for the newest posts with '
                'get_json_at", "error": 400}',
            )
        return self._listing(path, params, None)

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        at = as_utc_moment(at)
        return TimedAnswer(body=self._listing(path, dict(params or {}), at), taken_at=at)

    def _listing(self, path: str, params: dict[str, Any], at: datetime | None) -> dict[str, Any]:
        match = REDDIT_NEW_PATH.match(path)
        if not match:
            raise rejected(self.venue, path, 404, '{"message": "Not Found", "error": 404}')
        subreddit = match.group(1)
        try:
            limit = int(str(params.get("limit", 25)))
        except ValueError:
            limit = 25
        limit = max(1, min(limit, REDDIT_MAX_LIMIT))
        after = str(params.get("after") or "")
        sub_code = sum(ord(c) for c in subreddit.lower()) % 97
        if after:
            if not after.startswith("t3_"):
                raise rejected(self.venue, path, 400, '{"message": "Bad Request", "error": 400}')
            number = int(after[3:], 36)
            day, rest = divmod(number, _IDS_PER_DAY * 100)
            before_index = rest % _IDS_PER_DAY
            before_s = None
        else:
            assert at is not None
            before_s = at.timestamp()
            day, before_index = int(before_s - 1e-9) // DAY_S, _IDS_PER_DAY
        children = []
        while len(children) < limit and day >= FIRST_DAY:
            stories = synthetic_stories(f"reddit:{subreddit.lower()}", day, POSTS_PER_DAY)
            for index in range(min(before_index, len(stories)) - 1, -1, -1):
                story = stories[index]
                if before_s is not None and story.published_s >= before_s:
                    continue
                post_id = _base36((day * 100 + sub_code) * _IDS_PER_DAY + index)
                children.append({"kind": "t3", "data": self._post(subreddit, post_id, story, day)})
                if len(children) == limit:
                    break
            day, before_index = day - 1, _IDS_PER_DAY
        return {
            "kind": "Listing",
            "data": {
                "after": children[-1]["data"]["name"] if len(children) == limit else None,
                "dist": len(children),
                "children": children,
                "before": None,
            },
        }

    @staticmethod
    def _post(subreddit: str, post_id: str, story: SyntheticStory, day: int) -> dict[str, Any]:
        rng = rng_for("reddit-post", subreddit, post_id)
        mood = _SUBREDDIT_MOODS[int(rng.integers(0, len(_SUBREDDIT_MOODS)))]
        permalink = f"/r/{subreddit}/comments/{post_id}/{_slug(story.headline)}/"
        return {
            "id": post_id,
            "name": f"t3_{post_id}",
            "subreddit": subreddit,
            "title": story.headline,
            "selftext": story.body,
            "author": _USERS[int(rng.integers(0, len(_USERS)))],
            "created_utc": float(int(story.published_s)),
            "permalink": permalink,
            "url": f"https://www.reddit.example{permalink}",
            "score": int(rng.integers(0, 500)),
            "num_comments": int(rng.integers(0, 200)),
            "link_flair_text": mood,
            "is_self": True,
            "over_18": False,
        }


# -- X (Twitter) -----------------------------------------------------------------------------------

X_SEARCH_RECENT_PATH = "/2/tweets/search/recent"
X_API_HOST = "https://api.twitter.com"
X_TWEET_FIELDS = ("created_at", "author_id", "lang", "public_metrics")
X_USER_FIELDS = ("username", "name")
X_MAX_RESULTS = 100
TWITTER_EPOCH_MS = 1_288_834_974_657
TWEETS_PER_DAY = 24.0


@runtime_checkable
class XClient(Protocol):
    """What the X source needs: tweepy's ``search_recent_tweets`` with the raw JSON back."""

    @property
    def venue(self) -> str: ...

    @property
    def synthetic(self) -> bool: ...

    def search_recent_tweets(
        self,
        query: str,
        *,
        start_time: datetime,
        end_time: datetime,
        max_results: int = X_MAX_RESULTS,
        next_token: str | None = None,
    ) -> dict[str, Any]: ...


class _BearerRedactor(logging.Filter):
    """tweepy logs request headers (the bearer token) at DEBUG: scrub them."""

    _BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9%._~+/=-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix; let logging report it
            return True
        redacted = self._BEARER.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_tweepy_logger = logging.getLogger("tweepy.client")
if not any(isinstance(f, _BearerRedactor) for f in _tweepy_logger.filters):
    _tweepy_logger.addFilter(_BearerRedactor())


class _RebasedSession(requests.Session):
    """tweepy's session, sent to ``base_url`` instead of api.twitter.com, with a timeout."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith(X_API_HOST):
            url = self.base_url + url[len(X_API_HOST) :]
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


class XLiveClient(dg.ConfigurableResource):
    """Recent search on X through tweepy (``Client.search_recent_tweets``, raw JSON back).

    Rate limits (429) wait for ``x-rate-limit-reset`` or Retry-After; 5xx, timeouts and
    connection failures back off and retry; other refusals fail at once with X's message. The
    recent-search endpoint only covers the last seven days.
    """

    bearer_token: str = Field(
        default="",
        repr=False,
        description="X API bearer token; pass dg.EnvVar('X_BEARER_TOKEN'), never a literal.",
    )
    base_url: str = Field(default=X_API_HOST, description="X API root (tests point it elsewhere).")
    timeout_s: float = Field(default=10.0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=5, ge=1)
    backoff_initial_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    retry_after_max_s: float = Field(default=900.0, ge=0)

    _client: tweepy.Client | None = PrivateAttr(default=None)

    @property
    def venue(self) -> str:
        return "twitter"

    @property
    def synthetic(self) -> bool:
        return False

    def _tweepy(self, token: str) -> tweepy.Client:
        if self._client is None:
            client = tweepy.Client(bearer_token=token, return_type=dict, wait_on_rate_limit=False)
            client.session = _RebasedSession(self.base_url, self.timeout_s)
            self._client = client
        return self._client

    def search_recent_tweets(
        self,
        query: str,
        *,
        start_time: datetime,
        end_time: datetime,
        max_results: int = X_MAX_RESULTS,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        token = (self.bearer_token or "").strip()
        path = X_SEARCH_RECENT_PATH
        if not token:
            raise MissingApiKeyError(
                "X_BEARER_TOKEN is not set: create a bearer token in the X developer portal and "
                "export it, or run the local deployment (synthetic X replay)",
                venue=self.venue,
                path=path,
            )
        client = self._tweepy(token)
        policy = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            retry_after_max_s=self.retry_after_max_s,
        )
        params: dict[str, Any] = {
            "start_time": start_time,
            "end_time": end_time,
            "max_results": max_results,
            "tweet_fields": list(X_TWEET_FIELDS),
            "expansions": ["author_id"],
            "user_fields": list(X_USER_FIELDS),
        }
        if next_token:
            params["next_token"] = next_token

        def attempt() -> dict[str, Any]:
            try:
                return client.search_recent_tweets(query, **params)
            except tweepy.TooManyRequests as exc:
                raise TransientFailure(
                    f"rate limited: {self._message(exc, token)}",
                    429,
                    self._retry_after(exc.response),
                ) from None
            except tweepy.TwitterServerError as exc:
                raise TransientFailure(
                    f"server error: {self._message(exc, token)}", exc.response.status_code
                ) from None
            except requests.Timeout as exc:
                raise TransientFailure(f"timed out ({type(exc).__name__})") from None
            except requests.ConnectionError as exc:
                problem = redact_text(f"connection failed: {type(exc).__name__}: {exc}", [token])
                raise TransientFailure(problem) from None
            except tweepy.HTTPException as exc:
                raise UpstreamError(
                    f"request rejected: {self._message(exc, token)}",
                    venue=self.venue,
                    path=path,
                    status=exc.response.status_code,
                    attempts=1,
                ) from None
            except requests.JSONDecodeError:
                raise PayloadError("body is not valid JSON", venue=self.venue, path=path) from None

        return run_with_retries(attempt, venue=self.venue, path=path, policy=policy)

    @staticmethod
    def _message(exc: tweepy.HTTPException, token: str) -> str:
        return redact_text(str(exc).replace("\n", " "), [token])[:300]

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        header = response.headers.get("Retry-After")
        if header is not None:
            return parse_retry_after(header)
        reset = response.headers.get("x-rate-limit-reset")
        if reset is not None and reset.strip().isdigit():
            return max(0.0, int(reset) - datetime.now(UTC).timestamp())
        return None


def snowflake(time_ms: int, sequence: int) -> int:
    """An X id for a moment: milliseconds since X's epoch, shifted, plus a sequence."""
    return ((time_ms - TWITTER_EPOCH_MS) << 22) | (sequence & 0x3FFFFF)


def snowflake_ms(tweet_id: int) -> int:
    return (tweet_id >> 22) + TWITTER_EPOCH_MS


class XReplayClient(dg.ConfigurableResource):
    """Synthetic X recent-search results in the API v2 JSON shape (``synthetic = True``):
    ``data`` (tweets with created_at, author_id, lang, public_metrics), ``includes.users`` and
    ``meta`` (newest_id, oldest_id, result_count, next_token), newest first."""

    @property
    def venue(self) -> str:
        return "twitter"

    @property
    def synthetic(self) -> bool:
        return True

    def search_recent_tweets(
        self,
        query: str,
        *,
        start_time: datetime,
        end_time: datetime,
        max_results: int = X_MAX_RESULTS,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        if not 10 <= max_results <= X_MAX_RESULTS:
            raise UpstreamError(
                "request rejected: The `max_results` query parameter value is not between 10 "
                "and 100",
                venue=self.venue,
                path=X_SEARCH_RECENT_PATH,
                status=400,
                attempts=1,
            )
        start_s, end_s = start_time.timestamp(), end_time.timestamp()
        until_id = (
            int(base64.urlsafe_b64decode(next_token.encode()).decode()) if next_token else None
        )
        terms = [t.strip().strip('"').lower() for t in re.split(r"\s+OR\s+", query)]
        terms = [t for t in terms if t and not t.startswith("-") and ":" not in t]
        tweets = []
        for day in range(int(start_s) // DAY_S, int(math.ceil(end_s)) // DAY_S + 1):
            for index, story in enumerate(synthetic_stories("twitter", day, TWEETS_PER_DAY)):
                if not start_s <= story.published_s < end_s:
                    continue
                text = f"{story.headline} #{story.ticker}"
                if terms and not any(term in f"{text} {story.coin}".lower() for term in terms):
                    continue
                tweet_id = snowflake(int(story.published_s * 1000), index)
                if until_id is not None and tweet_id >= until_id:
                    continue
                rng = rng_for("tweet", tweet_id)
                author = int(rng.integers(0, len(_USERS)))
                tweets.append(
                    {
                        "id": str(tweet_id),
                        "text": text,
                        "created_at": datetime.fromtimestamp(story.published_s, UTC).strftime(
                            "%Y-%m-%dT%H:%M:%S.000Z"
                        ),
                        "author_id": str(1_000_000 + author),
                        "lang": "en",
                        "public_metrics": {
                            "retweet_count": int(rng.integers(0, 50)),
                            "reply_count": int(rng.integers(0, 20)),
                            "like_count": int(rng.integers(0, 300)),
                            "quote_count": int(rng.integers(0, 10)),
                        },
                    }
                )
        tweets.sort(key=lambda t: int(t["id"]), reverse=True)
        page = tweets[:max_results]
        if not page:
            return {"meta": {"result_count": 0}}
        authors = sorted({t["author_id"] for t in page})
        meta: dict[str, Any] = {
            "newest_id": page[0]["id"],
            "oldest_id": page[-1]["id"],
            "result_count": len(page),
        }
        if len(tweets) > max_results:
            meta["next_token"] = base64.urlsafe_b64encode(page[-1]["id"].encode()).decode()
        return {
            "data": page,
            "includes": {
                "users": [
                    {
                        "id": a,
                        "name": _USERS[int(a) - 1_000_000].replace("_", " ").title(),
                        "username": _USERS[int(a) - 1_000_000],
                    }
                    for a in authors
                ]
            },
            "meta": meta,
        }


__all__ = [
    "NewsApiReplayClient",
    "RedditReplayClient",
    "XClient",
    "XLiveClient",
    "XReplayClient",
]
