"""NewsAPI crypto headlines (``GET /v2/everything``) -> MongoDB ``raw_documents``.

``fetch`` asks for the window's articles (``from``/``to``, newest first, 100 a page) and pages
until ``totalResults`` is reached; the free plan stops at 100 results and 30 days back, which
NewsAPI itself reports as a clear error. Articles have no id, so the native id is a hash of the
URL (stable across re-runs); the URL itself is kept.

An article::

    {"source": {"id": null, "name": "CoinDesk"}, "author": "...", "title": "...",
     "description": "...", "url": "https://...", "urlToImage": "...",
     "publishedAt": "2024-05-01T12:00:00Z", "content": "..."}
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
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
    whole,
)
from orchestration.resources.http import JsonClient, UpstreamError

SOURCE = "newsapi"
VENUE = "newsapi"
PATH = "/v2/everything"
DEFAULT_SUBJECTS: tuple[str, ...] = (
    "bitcoin OR ethereum OR litecoin OR monero OR cardano OR ripple OR crypto",
)
"""One subject: the search query."""
PAGE_SIZE = 100
MAX_PAGES = 50
WHERE = Where(VENUE, PATH)


def native_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:24]


def fetch(client: JsonClient, query: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The articles published in ``[start, end)``, newest first as NewsAPI sends them."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    articles: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        body = require_dict(
            client.get_json(
                PATH,
                {
                    "q": query,
                    "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "to": (end - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "language": "en",
                    "sortBy": "publishedAt",
                    "pageSize": PAGE_SIZE,
                    "page": page,
                },
            ),
            WHERE,
            "search result",
        )
        if body.get("status") != "ok":
            raise UpstreamError(
                f"NewsAPI {body.get('code', 'error')}: {body.get('message', body)!s:.200}",
                venue=VENUE,
                path=PATH,
                status=200,
            )
        batch = require_list(field(body, "articles", WHERE, "result"), WHERE, "articles")
        total = whole(field(body, "totalResults", WHERE, "result"), WHERE, "result", "totalResults")
        for i, article in enumerate(batch):
            published = iso_time(field(article, "publishedAt", WHERE, i), WHERE, i, "publishedAt")
            if start <= published < end:
                articles.append(article)
        if not batch or page * PAGE_SIZE >= total:
            break
    return articles


def parse(payload: Sequence[Any], query: str) -> list[dict[str, Any]]:
    """Articles -> ``raw_documents`` documents (title, description + content as text)."""
    documents = []
    for i, article in enumerate(require_list(list(payload), WHERE, "articles")):
        url = text(field(article, "url", WHERE, i), WHERE, i, "url")
        title = text(article.get("title"), WHERE, i, "title", optional=True)
        parts = [
            text(article.get(name), WHERE, i, name, optional=True)
            for name in ("description", "content")
        ]
        body = "\n".join(p for p in parts if p) or None
        source = article.get("source") or {}
        author = article.get("author") or (source.get("name") if isinstance(source, dict) else None)
        documents.append(
            document(
                source=SOURCE,
                native_id=native_id(url),
                published_at=iso_time(article["publishedAt"], WHERE, i, "publishedAt"),
                title=title,
                text=body,
                url=url,
                author=text(author, WHERE, i, "author", optional=True),
                raw=article,
            )
        )
    return documents
