"""The document schema of MongoDB's ``raw_documents`` collection, shared by the text sources.

One document per item, ``_id = "<source>:<native id>"``, so a re-run replaces rather than
duplicates; ``published_at`` is a UTC datetime and ``partition_date`` its day (YYYY-MM-DD), which
is what a partition re-run deletes and the sentiment assets read. ``symbols`` are the tickers an
item mentions by a simple name/ticker/cashtag match; ``raw`` is the item as the API sent it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

DOCUMENT_FIELDS: tuple[str, ...] = (
    "_id",
    "source",
    "native_id",
    "published_at",
    "partition_date",
    "title",
    "text",
    "url",
    "author",
    "symbols",
    "raw",
)

TICKER_NAMES: dict[str, tuple[str, ...]] = {
    "BTC": ("bitcoin", "xbt"),
    "ETH": ("ethereum", "ether"),
    "LTC": ("litecoin",),
    "XMR": ("monero",),
    "ADA": ("cardano",),
    "XRP": ("ripple",),
    "BCH": ("bitcoin cash",),
    "USDT": ("tether",),
    "DOGE": ("dogecoin",),
    "SOL": ("solana",),
}
"""Tickers and the names that mean them (matched case-insensitively as whole words). A ticker
itself matches as a cashtag (``$btc``, any case) or as an upper-case word (``BTC``)."""

_NAME_PATTERNS = sorted(
    ((name, ticker) for ticker, names in TICKER_NAMES.items() for name in names),
    key=lambda pair: -len(pair[0]),
)


def mentioned_symbols(*texts: str | None) -> list[str]:
    """Sorted tickers mentioned in ``texts``; longer names win ("bitcoin cash" is BCH only)."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        lowered = text.lower()
        for name, ticker in _NAME_PATTERNS:
            pattern = re.compile(rf"(?<![\w$]){re.escape(name)}(?!\w)")
            if pattern.search(lowered):
                found.add(ticker)
                lowered = pattern.sub(" ", lowered)
        for ticker in TICKER_NAMES:
            if re.search(rf"\${ticker}(?!\w)", text, flags=re.IGNORECASE) or re.search(
                rf"(?<![\w$]){ticker}(?!\w)", text
            ):
                found.add(ticker)
    return sorted(found)


def document(
    *,
    source: str,
    native_id: str,
    published_at: datetime,
    title: str | None,
    text: str | None,
    url: str | None,
    author: str | None,
    raw: Mapping[str, Any],
) -> dict[str, Any]:
    published_at = published_at.astimezone(UTC)
    return {
        "_id": f"{source}:{native_id}",
        "source": source,
        "native_id": native_id,
        "published_at": published_at,
        "partition_date": published_at.date().isoformat(),
        "title": title,
        "text": text,
        "url": url,
        "author": author,
        "symbols": mentioned_symbols(title, text),
        "raw": dict(raw),
    }
