"""X (Twitter) recent search through tweepy (``Client.search_recent_tweets``, API v2
``GET /2/tweets/search/recent``) -> MongoDB ``raw_documents``.

``fetch`` pages with ``next_token`` over the window (``start_time``/``end_time``) and joins each
tweet with its author from ``includes.users``. Recent search only reaches back seven days; X
rejects an older window with a clear 400, which is reported as is.

A page::

    {"data": [{"id": "1460323737035677698", "text": "...", "created_at": "2021-11-15T18:...Z",
      "author_id": "2244994945", "lang": "en", "public_metrics": {...}}],
     "includes": {"users": [{"id": "2244994945", "name": "...", "username": "..."}]},
     "meta": {"newest_id": "...", "oldest_id": "...", "result_count": 1, "next_token": "..."}}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from assets.ingest.sources.documents import document
from assets.ingest.sources.fields import (
    Where,
    as_utc,
    field,
    iso_time,
    require_dict,
    require_list,
    text,
)
from orchestration.resources.http import PayloadError
from orchestration.resources.text_sources import X_MAX_RESULTS, X_SEARCH_RECENT_PATH, XClient

SOURCE = "twitter"
VENUE = "twitter"
DEFAULT_SUBJECTS: tuple[str, ...] = (
    "(bitcoin OR ethereum OR litecoin OR monero OR BTC OR ETH) lang:en -is:retweet",
)
"""One subject: the search query."""
MAX_PAGES = 50
WHERE = Where(VENUE, X_SEARCH_RECENT_PATH)


def fetch(client: XClient, query: str, start: datetime, end: datetime) -> dict[str, Any]:
    """``{"tweets": [...], "users": {id: user}}`` of the tweets created in ``[start, end)``."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    tweets: list[dict[str, Any]] = []
    users: dict[str, dict[str, Any]] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = require_dict(
            client.search_recent_tweets(
                query, start_time=start, end_time=end, max_results=X_MAX_RESULTS, next_token=token
            ),
            WHERE,
            "search page",
        )
        for i, tweet in enumerate(require_list(page.get("data", []), WHERE, "tweets")):
            created = iso_time(field(tweet, "created_at", WHERE, i), WHERE, i, "created_at")
            if start <= created < end:
                tweets.append(tweet)
        includes = require_dict(page.get("includes", {}), WHERE, "includes")
        for i, user in enumerate(require_list(includes.get("users", []), WHERE, "users")):
            users[str(field(user, "id", WHERE, i))] = user
        meta = require_dict(page.get("meta", {}), WHERE, "meta")
        token = meta.get("next_token")
        if not token:
            return {"tweets": tweets, "users": users}
    raise PayloadError(f"more than {MAX_PAGES} pages of results", venue=VENUE, path=WHERE.path)


def parse(payload: Mapping[str, Any], query: str) -> list[dict[str, Any]]:
    body = require_dict(payload, WHERE, "search results")
    users = require_dict(body.get("users", {}), WHERE, "users")
    documents = []
    for i, tweet in enumerate(require_list(body.get("tweets"), WHERE, "tweets")):
        tweet_id = text(field(tweet, "id", WHERE, i), WHERE, i, "id") or ""
        user = users.get(str(tweet.get("author_id")), {})
        username = user.get("username") if isinstance(user, dict) else None
        documents.append(
            document(
                source=SOURCE,
                native_id=tweet_id,
                published_at=iso_time(tweet["created_at"], WHERE, i, "created_at"),
                title=None,
                text=text(field(tweet, "text", WHERE, i), WHERE, i, "text"),
                url=f"https://x.com/{username or 'i/web'}/status/{tweet_id}",
                author=username,
                raw=tweet,
            )
        )
    return documents
