"""What an assistant may pass to the MCP server, checked before anything reads or writes.

Every argument of a resource URI or a tool is an external payload: it is validated here with
pydantic and a failure becomes an ``InvalidArgument`` whose message names the argument and the
expected form, so the assistant can correct itself. Pairs travel in URIs, where ``/`` separates
path segments, so ``ETH-BTC`` is accepted everywhere ``ETH/BTC`` is (and lower case too); the
server always answers with the canonical ``ETH/BTC``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError

from orchestration.mcp.errors import InvalidArgument

MAX_ROWS = 1000
"""The most rows one resource read returns: enough for a chart, never a table dump."""
DEFAULT_ROWS = 100
MAX_REASON = 500
"""Same bound as ``trading.control_events.reason`` (orchestration/trading_control.py)."""

_PAIR = re.compile(r"^([A-Z0-9]{1,20})[/-]([A-Z0-9]{1,20})$")
_TICKER = re.compile(r"^[A-Z0-9]{1,20}$")
_REPORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _canonical_pair(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    match = _PAIR.match(value.strip().upper())
    if match is None:
        raise ValueError(
            f"a pair is BASE/QUOTE or BASE-QUOTE (letters and digits), e.g. ETH/BTC or ETH-BTC; "
            f"got {value[:60]!r}"
        )
    return f"{match[1]}/{match[2]}"


def _canonical_ticker(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    ticker = value.strip().upper()
    if not _TICKER.match(ticker):
        raise ValueError(f"a ticker is 1-20 letters or digits, e.g. BTC; got {value[:60]!r}")
    return ticker


def _report_name(value: str) -> str:
    if not _REPORT.match(value) or ".." in value:
        raise ValueError(
            "a report name is 1-64 letters, digits, '_', '-' or '.', starting with a letter or "
            f"digit; got {value[:80]!r}"
        )
    return value


def _non_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must say why (a non-blank reason)")
    return value


Pair = Annotated[
    str,
    BeforeValidator(_canonical_pair),
    Field(
        description="a traded pair, ETH/BTC or its URL-safe form ETH-BTC",
        examples=["ETH/BTC", "ETH-BTC"],
    ),
]
Ticker = Annotated[
    str,
    BeforeValidator(_canonical_ticker),
    Field(description="an asset ticker as sentiment is keyed, e.g. BTC", examples=["BTC"]),
]
RowLimit = Annotated[
    int,
    Field(ge=1, le=MAX_ROWS, description=f"how many rows, newest first, at most {MAX_ROWS}"),
]
Reason = Annotated[
    str,
    Field(min_length=1, max_length=MAX_REASON, description="why, in words a reviewer will read"),
    AfterValidator(_non_blank),
]
ReportName = Annotated[str, AfterValidator(_report_name)]
Side = Literal["buy", "sell"]
Quantity = Annotated[
    float,
    Field(gt=0, le=1e12, allow_inf_nan=False, description="base-asset quantity, e.g. 0.5 ETH"),
]
Day = Annotated[date, Field(description="a UTC date, YYYY-MM-DD")]

_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def parse_argument(kind: object, name: str, value: Any) -> Any:
    """Validate one argument (``kind`` is one of the annotated types above) or raise
    ``InvalidArgument`` naming it."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise InvalidArgument(f"{name}: {problems}") from None


def parse_limit(value: str | None, name: str = "limit") -> int:
    """A row limit from a URI query (a string, or absent for the default)."""
    if value is None or value == "":
        return DEFAULT_ROWS
    if not re.fullmatch(r"\d{1,7}", value.strip()):
        raise InvalidArgument(f"{name}: a whole number from 1 to {MAX_ROWS}, got {value[:20]!r}")
    return parse_argument(RowLimit, name, int(value))


def url_safe(pair: str) -> str:
    """``ETH/BTC`` -> ``ETH-BTC``, the form a resource URI carries."""
    return pair.replace("/", "-")


def _problem(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    location = ".".join(str(part) for part in error.get("loc", ()))
    return f"{location}: {message}" if location else message
