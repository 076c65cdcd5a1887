"""Reddit posts through the public JSON listings (``GET /r/<subreddit>/new.json``, no OAuth)
-> MongoDB ``raw_documents``.

The listing is newest first and pages backwards with ``after``; ``fetch`` asks for it as of the
window's end (a replay answers for that moment, live Reddit for now) and pages until posts are
older than the window's start. Reddit keeps only about the newest thousand posts of a listing,
so a window beyond its reach fails clearly instead of landing a partial day.

A listing::

    {"kind": "Listing", "data": {"after": "t3_1abcd", "dist": 100, "before": null,
      "children": [{"kind": "t3", "data": {"id": "1abce", "name": "t3_1abce", "title": "...",
      "selftext": "...", "author": "...", "created_utc": 1700000000.0, "permalink": "...",
      "url": "...", "subreddit": "Bitcoin", ...}}]}}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from assets.ingest.sources.documents import document
from assets.ingest.sources.fields import (
    Where,
    as_utc,
    epoch_s,
    field,
    require_dict,
    require_list,
    text,
)
from orchestration.resources.http import OutOfWindowError, PayloadError, TimedJsonClient

SOURCE = "reddit"
VENUE = "reddit"
PATH_TEMPLATE = "/r/{subreddit}/new.json"
DEFAULT_SUBJECTS: tuple[str, ...] = ("CryptoCurrency", "Bitcoin", "ethereum")
PAGE_LIMIT = 100
MAX_PAGES = 100
REDDIT = "https://www.reddit.com"


def listing_path(subreddit: str) -> str:
    return PATH_TEMPLATE.format(subreddit=subreddit)


def _posts(body: object, where: Where) -> tuple[list[dict[str, Any]], str | None]:
    listing = require_dict(body, where, "listing")
    data = require_dict(field(listing, "data", where, "listing"), where, "listing data")
    children = require_list(field(data, "children", where, "listing"), where, "posts")
    posts = [
        require_dict(field(child, "data", where, i), where, f"post {i}")
        for i, child in enumerate(children)
    ]
    after = data.get("after")
    if after is not None and not isinstance(after, str):
        raise where.error(f"listing 'after' is not a fullname: {after!r}")
    return posts, after


def fetch(
    client: TimedJsonClient, subreddit: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The subreddit's posts created in ``[start, end)``, newest first."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    path = listing_path(subreddit)
    where = Where(VENUE, path)
    params: dict[str, str | int] = {"limit": PAGE_LIMIT, "raw_json": 1}
    posts, after = _posts(client.get_json_at(path, params, at=end).body, where)
    kept: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        oldest = None
        for i, post in enumerate(posts):
            created = epoch_s(field(post, "created_utc", where, i), where, i, "created_utc")
            oldest = created if oldest is None else min(oldest, created)
            if start <= created < end:
                kept.append(post)
        if oldest is not None and oldest < start:
            return kept
        if after is None:
            reached = oldest.isoformat() if oldest else "nothing"
            raise OutOfWindowError(
                f"r/{subreddit}'s listing ends at {reached}, before reaching back to "
                f"{start.isoformat()}: Reddit keeps only its newest ~1000 posts, so this window "
                "cannot be filled from it",
                venue=VENUE,
                path=path,
            )
        posts, after = _posts(client.get_json(path, {**params, "after": after}), where)
    raise PayloadError(f"more than {MAX_PAGES} pages back to {start}", venue=VENUE, path=path)


def parse(payload: Sequence[Any], subreddit: str) -> list[dict[str, Any]]:
    where = Where(VENUE, listing_path(subreddit))
    documents = []
    for i, post in enumerate(require_list(list(payload), where, "posts")):
        permalink = text(post.get("permalink"), where, i, "permalink", optional=True)
        documents.append(
            document(
                source=SOURCE,
                native_id=text(field(post, "id", where, i), where, i, "id") or "",
                published_at=epoch_s(post["created_utc"], where, i, "created_utc"),
                title=text(post.get("title"), where, i, "title", optional=True),
                text=text(post.get("selftext"), where, i, "selftext", optional=True) or None,
                url=REDDIT + permalink if permalink else post.get("url"),
                author=text(post.get("author"), where, i, "author", optional=True),
                raw=post,
            )
        )
    return documents
