"""Coinbase Advanced Trade live broker: real orders, behind two switches and the kill switch.

Nothing here runs unless ``build_live_broker`` is given an environment with both
``COINSWARM_LIVE_TRADING=1`` and ``COINSWARM_LIVE_CONFIRM`` set to the exact phrase
``I understand this trades real money``; a missing or wrong switch is named in the error, and
no value is ever echoed back.

Operating rules for a live run:

* Start the risk gate in REDUCING (``RiskGate.reduce_only``): until a human releases it, the
  account may only reduce exposure, so a wiring mistake can sell but cannot build a position.
* The kill switch stops new orders. The broker asks its ``killed`` callable before every
  submit and again just before it places an order; ``risk_gate_kill_switch`` makes that callable
  from a ``RiskGate``, true while the gate is HALTED (kill switch, daily-loss or drawdown halt).
  A refused submit raises ``TradingHalted`` without a single HTTP request.

Orders are idempotent by ``client_order_id``, which the execution engine derives from the
order itself: a crash-and-resume submits the same id again. Before placing, the broker looks
the id up at Coinbase and resumes an existing order instead of placing a second one; Coinbase
also answers a duplicate id with the existing order, and a create that timed out is looked up
before it is retried. Only reads and that create are retried; cancels are not.

A market order is sent as ``market_market_ioc``; a limit order as ``limit_limit_gtc``, worked
for ``limit_wait_seconds`` (the live counterpart of the paper broker's one-bar rest). Whatever
is still open when its wait ends is cancelled, as the broker protocol requires, and the fills
Coinbase reports are returned.
"""

from __future__ import annotations

import email.utils
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from trading.domain import Bar, Fill, Order, Side, split_symbol
from trading.risk import RiskGate, RiskState

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.coinbase.com"
LIVE_FLAG_VAR = "COINSWARM_LIVE_TRADING"
LIVE_CONFIRM_VAR = "COINSWARM_LIVE_CONFIRM"
LIVE_CONFIRM_PHRASE = "I understand this trades real money"
KEY_NAME_VAR = "COINBASE_API_KEY_NAME"
PRIVATE_KEY_VAR = "COINBASE_API_PRIVATE_KEY"

JWT_LIFETIME_SECONDS = 120
KEY_NAME_PATTERN = r"^organizations/[^/\s]+/apiKeys/[^/\s]+$"
TERMINAL_STATUSES = frozenset({"FILLED", "CANCELLED", "EXPIRED", "FAILED"})

ORDERS_PATH = "/api/v3/brokerage/orders"
CANCEL_PATH = "/api/v3/brokerage/orders/batch_cancel"
LIST_ORDERS_PATH = "/api/v3/brokerage/orders/historical/batch"
FILLS_PATH = "/api/v3/brokerage/orders/historical/fills"
ORDER_PATH = "/api/v3/brokerage/orders/historical/{order_id}"
PRODUCT_PATH = "/api/v3/brokerage/products/{product_id}"


# --- errors -------------------------------------------------------------------------------


class LiveTradingRefused(RuntimeError):
    """The live switches, the credentials or the risk gate do not allow live trading."""


class TradingHalted(RuntimeError):
    """The kill switch (or a halted risk gate) refuses new orders."""


class CoinbaseError(RuntimeError):
    """A Coinbase call failed; ``endpoint`` is ``"<METHOD> <path>"``."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(f"Coinbase {endpoint}: {message}")
        self.endpoint = endpoint


class CoinbaseHTTPError(CoinbaseError):
    def __init__(self, endpoint: str, status: int, detail: str) -> None:
        super().__init__(endpoint, f"HTTP {status}: {detail}")
        self.status = status


class CoinbaseRateLimited(CoinbaseHTTPError):
    def __init__(self, endpoint: str, detail: str, retry_after: float | None) -> None:
        wait = "no Retry-After" if retry_after is None else f"Retry-After {retry_after:g}s"
        super().__init__(endpoint, 429, f"rate limited ({wait}): {detail}")
        self.retry_after = retry_after


class CoinbaseServerError(CoinbaseHTTPError):
    pass


class CoinbaseTimeout(CoinbaseError):
    pass


class CoinbaseTransportError(CoinbaseError):
    pass


class CoinbaseResponseError(CoinbaseError):
    """A body that is not the JSON shape Coinbase documents for the endpoint."""


class CoinbaseOrderRejected(CoinbaseError):
    """Coinbase answered ``success: false`` with an ``error_response``."""


class CoinbaseOrderStillOpen(CoinbaseError):
    """An order could not be brought to a final state; a human has to look at it."""


# --- credentials and JWT ------------------------------------------------------------------


def _describe(exc: ValidationError) -> str:
    """Where and what, without the offending input (which may be a secret)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg']}" for e in exc.errors()
    )


def _load_signing_key(secret: SecretStr) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(secret.get_secret_value().encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None  # the loader's message is dropped: it must not end up beside the secret
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("private_key must be an unencrypted EC P-256 private key in PEM form")
    return key


class CoinbaseCredentials(BaseModel):
    """A CDP API key for Advanced Trade: its name and its EC P-256 private key (PEM).

    The key is a ``SecretStr`` and validation errors hide their input, so it never shows in a
    repr, a log line or an error message; it is only used to sign request JWTs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    key_name: str = Field(pattern=KEY_NAME_PATTERN)
    private_key: SecretStr
    _signing_key: ec.EllipticCurvePrivateKey = PrivateAttr()

    @field_validator("private_key", mode="before")
    @classmethod
    def _unescape_newlines(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str):
            # A PEM kept on one line of an env file carries literal "\n" sequences.
            return SecretStr(raw.replace("\\n", "\n").strip() + "\n")
        return value

    @field_validator("private_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        _load_signing_key(value)
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._signing_key = _load_signing_key(self.private_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CoinbaseCredentials:
        missing = [name for name in (KEY_NAME_VAR, PRIVATE_KEY_VAR) if not env.get(name, "")]
        if missing:
            raise LiveTradingRefused(f"Coinbase credentials missing: {', '.join(missing)} not set")
        try:
            return cls(key_name=env[KEY_NAME_VAR].strip(), private_key=env[PRIVATE_KEY_VAR])
        except ValidationError as exc:
            raise LiveTradingRefused(
                f"Coinbase credentials in {KEY_NAME_VAR}/{PRIVATE_KEY_VAR} are invalid: "
                + _describe(exc)
            ) from None

    def rest_jwt(self, method: str, host: str, path: str, *, now: float, nonce: str) -> str:
        """The bearer JWT for one REST request, as the CDP docs specify for Advanced Trade.

        ES256, header ``kid`` (key name) and ``nonce``; claims ``sub``, ``iss="cdp"``, ``nbf``,
        ``exp`` two minutes later and ``uri`` = ``"<METHOD> <host><path>"`` (no query string).
        """
        issued = int(now)
        claims = {
            "sub": self.key_name,
            "iss": "cdp",
            "nbf": issued,
            "exp": issued + JWT_LIFETIME_SECONDS,
            "uri": f"{method.upper()} {host}{path}",
        }
        return jwt.encode(
            claims,
            self._signing_key,
            algorithm="ES256",
            headers={"kid": self.key_name, "nonce": nonce},
        )


def random_nonce() -> str:
    return secrets.token_hex(16)


# --- payloads -----------------------------------------------------------------------------


class _Payload(BaseModel):
    """A Coinbase response object: the fields we use are checked, the others ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


CoinbaseSide = Literal["BUY", "SELL"]
NonBlank = Annotated[str, Field(min_length=1)]
OptionalDecimal = Annotated[Decimal | None, BeforeValidator(_blank_is_none)]


class MarketMarketIoc(_Request):
    base_size: str


class LimitLimitGtc(_Request):
    base_size: str
    limit_price: str
    post_only: bool = False


class OrderConfiguration(_Request):
    market_market_ioc: MarketMarketIoc | None = None
    limit_limit_gtc: LimitLimitGtc | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> OrderConfiguration:
        if (self.market_market_ioc is None) == (self.limit_limit_gtc is None):
            raise ValueError("give exactly one of market_market_ioc and limit_limit_gtc")
        return self


class CreateOrderRequest(_Request):
    client_order_id: NonBlank
    product_id: NonBlank
    side: CoinbaseSide
    order_configuration: OrderConfiguration

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class CreateOrderSuccess(_Payload):
    order_id: NonBlank
    product_id: str
    side: CoinbaseSide
    client_order_id: str


class CreateOrderFailure(_Payload):
    error: str = ""
    message: str = ""
    error_details: str = ""
    preview_failure_reason: str = ""


class CreateOrderResponse(_Payload):
    success: bool
    success_response: CreateOrderSuccess | None = None
    error_response: CreateOrderFailure | None = None

    @model_validator(mode="after")
    def _check_branch(self) -> CreateOrderResponse:
        if self.success and self.success_response is None:
            raise ValueError("success is true but success_response is missing")
        return self


class CancelResult(_Payload):
    success: bool
    failure_reason: str = ""
    order_id: str


class CancelOrdersResponse(_Payload):
    results: list[CancelResult]


class CoinbaseOrder(_Payload):
    order_id: NonBlank
    client_order_id: str
    product_id: str
    side: CoinbaseSide
    status: NonBlank
    filled_size: OptionalDecimal = None


class GetOrderResponse(_Payload):
    order: CoinbaseOrder


class _Page(_Payload):
    @property
    def next_cursor(self) -> str:
        raise NotImplementedError


class ListOrdersResponse(_Page):
    orders: list[CoinbaseOrder]
    has_next: bool = False
    cursor: str = ""

    @property
    def next_cursor(self) -> str:
        return self.cursor if self.has_next else ""


class CoinbaseFill(_Payload):
    entry_id: str = ""
    trade_id: str = ""
    order_id: NonBlank
    trade_time: AwareDatetime
    trade_type: str = ""
    price: Decimal = Field(gt=0)
    size: Decimal = Field(gt=0)
    commission: Decimal = Field(ge=0)
    product_id: str
    sequence_timestamp: str | None = None
    liquidity_indicator: Literal["MAKER", "TAKER", "UNKNOWN_LIQUIDITY_INDICATOR"]
    size_in_quote: bool = False
    user_id: str = ""
    side: CoinbaseSide

    @model_validator(mode="after")
    def _has_id(self) -> CoinbaseFill:
        if not (self.entry_id or self.trade_id):
            raise ValueError("a fill needs an entry_id or a trade_id")
        return self

    @property
    def fill_id(self) -> str:
        return self.entry_id or self.trade_id

    @property
    def base_size(self) -> Decimal:
        return self.size / self.price if self.size_in_quote else self.size


class ListFillsResponse(_Page):
    fills: list[CoinbaseFill]
    cursor: str = ""

    @property
    def next_cursor(self) -> str:
        return self.cursor


class CoinbaseProduct(_Payload):
    product_id: str
    base_increment: Decimal = Field(gt=0)
    quote_increment: Decimal = Field(gt=0)
    base_min_size: OptionalDecimal = None


P = TypeVar("P", bound=_Payload)
Page = TypeVar("Page", bound=_Page)


# --- REST client --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """A bounded retry budget: ``max_attempts`` tries in all, exponential backoff between
    them, and a 429's Retry-After honoured when it is at most ``max_retry_after_seconds``
    (a longer one is raised at once rather than slept through)."""

    max_attempts: int = 4
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    max_retry_after_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 10:
            raise ValueError(f"max_attempts must be in [1, 10], got {self.max_attempts}")
        if not 0 <= self.backoff_initial_seconds <= self.backoff_max_seconds:
            raise ValueError("need 0 <= backoff_initial_seconds <= backoff_max_seconds")
        if self.max_retry_after_seconds < 0:
            raise ValueError("max_retry_after_seconds must be >= 0")


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"body {response.text[:200]!r}"
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "message", "error_details") if body.get(k)]
        if parts:
            return " - ".join(parts)
    return f"body {response.text[:200]!r}"


def product_id_for(symbol: str) -> str:
    """Our 'BTC/USD' is Coinbase's 'BTC-USD'."""
    base, quote_currency = split_symbol(symbol)
    return f"{base}-{quote_currency}"


class CoinbaseAdvancedClient:
    """A small synchronous client for the Advanced Trade endpoints the live broker needs.

    Every response is validated before use; failures raise a ``CoinbaseError`` naming the
    endpoint. GETs are retried within the ``RetryPolicy`` on 429 (after Retry-After), 5xx,
    timeouts and transport errors; ``create_order`` too, since Coinbase deduplicates by
    ``client_order_id``, and after an ambiguous failure (the request may have been processed)
    it first looks the id up. ``clock`` (unix seconds), ``nonce`` and ``sleep`` are injectable
    so tests are deterministic.
    """

    def __init__(
        self,
        credentials: CoinbaseCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = random_nonce,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = 250,
        max_pages: int = 100,
    ) -> None:
        self._credentials = credentials
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._nonce = nonce
        self._sleep = sleep
        self.page_size = page_size
        self.max_pages = max_pages

    def __repr__(self) -> str:
        return (
            f"CoinbaseAdvancedClient(base_url={str(self._http.base_url)!r}, "
            f"key_name={self._credentials.key_name!r})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CoinbaseAdvancedClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # transport

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        endpoint = f"{method} {path}"
        request = self._http.build_request(method, path, params=params, json=body)
        token = self._credentials.rest_jwt(
            method,
            request.url.netloc.decode("ascii"),
            request.url.path,
            now=self._clock(),
            nonce=self._nonce(),
        )
        request.headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._http.send(request)
        except httpx.TimeoutException as exc:
            raise CoinbaseTimeout(endpoint, f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise CoinbaseTransportError(
                endpoint, f"transport error ({type(exc).__name__}: {exc})"
            ) from None
        status = response.status_code
        logger.debug("Coinbase %s -> HTTP %d", endpoint, status)
        if status == 429:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            raise CoinbaseRateLimited(endpoint, _error_detail(response), retry_after)
        if status >= 500:
            raise CoinbaseServerError(endpoint, status, _error_detail(response))
        if status >= 400:
            raise CoinbaseHTTPError(endpoint, status, _error_detail(response))
        try:
            return response.json()
        except ValueError:
            raise CoinbaseResponseError(
                endpoint, f"malformed JSON body (HTTP {status}): {response.text[:200]!r}"
            ) from None

    @staticmethod
    def _parse(endpoint: str, model: type[P], payload: Any) -> P:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise CoinbaseResponseError(
                endpoint, f"unexpected response shape for {model.__name__}: {_describe(exc)}"
            ) from None

    def _retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, CoinbaseRateLimited):
            return exc.retry_after is None or exc.retry_after <= self.retry.max_retry_after_seconds
        return isinstance(exc, CoinbaseServerError | CoinbaseTimeout | CoinbaseTransportError)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, CoinbaseRateLimited) and exc.retry_after is not None:
            return exc.retry_after
        policy = self.retry
        backoff = policy.backoff_initial_seconds * 2 ** (state.attempt_number - 1)
        return min(policy.backoff_max_seconds, backoff)

    def _retrying(self, endpoint: str) -> Retrying:
        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            logger.warning(
                "%s; attempt %d/%d, retrying in %.3gs",
                exc,
                state.attempt_number,
                self.retry.max_attempts,
                wait,
            )

        return Retrying(
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )

    def _get(
        self, path: str, model: type[P], *, params: Mapping[str, Any] | None = None, retry: bool
    ) -> P:
        endpoint = f"GET {path}"

        def once() -> P:
            return self._parse(endpoint, model, self._send("GET", path, params=params))

        return self._retrying(endpoint)(once) if retry else once()

    def _pages(
        self, path: str, model: type[Page], params: Mapping[str, Any], *, retry: bool
    ) -> Iterator[Page]:
        cursor = ""
        seen: set[str] = set()
        for _ in range(self.max_pages):
            query = {**params, "cursor": cursor} if cursor else dict(params)
            page = self._get(path, model, params=query, retry=retry)
            yield page
            cursor = page.next_cursor
            if not cursor:
                return
            if cursor in seen:
                raise CoinbaseResponseError(f"GET {path}", f"cursor {cursor!r} came back twice")
            seen.add(cursor)
        raise CoinbaseResponseError(f"GET {path}", f"more than {self.max_pages} pages")

    # endpoints

    def create_order(
        self, request: CreateOrderRequest, *, lookup_since: datetime | None = None
    ) -> CreateOrderSuccess:
        """Place an order; a duplicate ``client_order_id`` returns the existing order."""
        endpoint = f"POST {ORDERS_PATH}"
        ambiguous = False

        def attempt() -> CreateOrderSuccess:
            nonlocal ambiguous
            if ambiguous:
                existing = self.find_order(
                    request.client_order_id,
                    product_id=request.product_id,
                    since=lookup_since,
                    retry=False,
                )
                if existing is not None:
                    logger.warning(
                        "order %s was placed by the failed attempt (Coinbase order %s); "
                        "not placing it again",
                        request.client_order_id,
                        existing.order_id,
                    )
                    return CreateOrderSuccess(
                        order_id=existing.order_id,
                        product_id=existing.product_id,
                        side=existing.side,
                        client_order_id=existing.client_order_id,
                    )
            try:
                payload = self._send("POST", ORDERS_PATH, body=request.body())
            except (CoinbaseTimeout, CoinbaseTransportError, CoinbaseServerError):
                ambiguous = True  # the order may exist although we got no answer
                raise
            response = self._parse(endpoint, CreateOrderResponse, payload)
            if not response.success or response.success_response is None:
                failure = response.error_response or CreateOrderFailure()
                reasons = [
                    failure.error,
                    failure.message,
                    failure.error_details,
                    failure.preview_failure_reason,
                ]
                detail = " - ".join(r for r in reasons if r) or "no error_response given"
                raise CoinbaseOrderRejected(
                    endpoint, f"order {request.client_order_id} rejected: {detail}"
                )
            created = response.success_response
            if created.client_order_id and created.client_order_id != request.client_order_id:
                raise CoinbaseResponseError(
                    endpoint,
                    f"asked for client_order_id {request.client_order_id}, "
                    f"got {created.client_order_id}",
                )
            return created

        return self._retrying(endpoint)(attempt)

    def cancel_orders(self, order_ids: Sequence[str]) -> list[CancelResult]:
        """Cancel orders (not retried: the caller re-reads the order's status instead)."""
        endpoint = f"POST {CANCEL_PATH}"
        payload = self._send("POST", CANCEL_PATH, body={"order_ids": list(order_ids)})
        return self._parse(endpoint, CancelOrdersResponse, payload).results

    def get_order(self, order_id: str) -> CoinbaseOrder:
        path = ORDER_PATH.format(order_id=quote(order_id, safe=""))
        return self._get(path, GetOrderResponse, retry=True).order

    def list_fills(self, order_ids: Sequence[str]) -> list[CoinbaseFill]:
        """Every fill of ``order_ids``, following the cursor."""
        params = {"order_ids": list(order_ids), "limit": self.page_size}
        return [
            fill
            for page in self._pages(FILLS_PATH, ListFillsResponse, params, retry=True)
            for fill in page.fills
        ]

    def find_order(
        self,
        client_order_id: str,
        *,
        product_id: str,
        since: datetime | None = None,
        retry: bool = True,
    ) -> CoinbaseOrder | None:
        """The order placed with ``client_order_id``, or None: lists the product's orders
        (created since ``since``) page by page and matches the id."""
        params: dict[str, Any] = {"product_ids": [product_id], "limit": self.page_size}
        if since is not None:
            params["start_date"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for page in self._pages(LIST_ORDERS_PATH, ListOrdersResponse, params, retry=retry):
            for order in page.orders:
                if order.client_order_id == client_order_id:
                    return order
        return None

    def get_product(self, product_id: str) -> CoinbaseProduct:
        path = PRODUCT_PATH.format(product_id=quote(product_id, safe=""))
        return self._get(path, CoinbaseProduct, retry=True)


# --- broker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveBrokerSettings:
    """How long the broker works an order before cancelling what is left."""

    market_wait_seconds: float = 15.0
    limit_wait_seconds: float = 60.0
    poll_interval_seconds: float = 1.0
    cancel_wait_seconds: float = 15.0
    fill_settle_attempts: int = 5
    lookup_window: timedelta = field(default=timedelta(days=3))

    def __post_init__(self) -> None:
        for name in ("market_wait_seconds", "limit_wait_seconds", "cancel_wait_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.poll_interval_seconds <= 0:
            raise ValueError("poll_interval_seconds must be > 0")
        if self.fill_settle_attempts < 1:
            raise ValueError("fill_settle_attempts must be >= 1")
        if self.lookup_window < timedelta(0):
            raise ValueError("lookup_window must be >= 0")


def _floor_to(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_FLOOR) * increment


def _ceil_to(value: Decimal, increment: Decimal) -> Decimal:
    return (value / increment).to_integral_value(rounding=ROUND_CEILING) * increment


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


class CoinbaseLiveBroker:
    """The ``Broker`` protocol against Coinbase Advanced Trade, with real money.

    Build it through ``build_live_broker``, which enforces the live switches; start the risk
    gate in REDUCING (``RiskGate.reduce_only``) and pass ``risk_gate_kill_switch(gate)`` as
    ``killed`` so the kill switch stops new orders. ``submit`` refuses with ``TradingHalted``
    while ``killed()`` is true, before any request is made.

    Sizes are rounded down to the product's ``base_increment`` and limit prices to its
    ``quote_increment`` (buys down, sells up), so the order never asks for more than approved.
    """

    def __init__(
        self,
        client: CoinbaseAdvancedClient,
        *,
        killed: Callable[[], bool],
        settings: LiveBrokerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.settings = settings or LiveBrokerSettings()
        self._killed = killed
        self._clock = clock
        self._sleep = sleep
        self._products: dict[str, CoinbaseProduct] = {}

    def __repr__(self) -> str:
        return f"CoinbaseLiveBroker(client={self.client!r})"

    def submit(self, order: Order, bar: Bar) -> list[Fill]:
        self._refuse_if_killed(order)
        if order.symbol != bar.symbol:
            raise ValueError(
                f"order {order.client_order_id} is for {order.symbol}, the bar for {bar.symbol}"
            )
        product_id = product_id_for(order.symbol)
        since = order.ts - self.settings.lookup_window
        existing = self.client.find_order(order.client_order_id, product_id=product_id, since=since)
        if existing is not None:
            self._check_same_order(order, existing)
            order_id = existing.order_id
            logger.warning(
                "order %s already exists at Coinbase as %s (status %s): resuming it, not placing "
                "it again",
                order.client_order_id,
                order_id,
                existing.status,
            )
        else:
            request = self._create_request(order, product_id)
            if request is None:
                return []
            self._refuse_if_killed(order)
            order_id = self.client.create_order(request, lookup_since=since).order_id
            logger.info(
                "order %s placed at Coinbase as %s: %s %s %s",
                order.client_order_id,
                order_id,
                request.side,
                product_id,
                request.order_configuration.model_dump(exclude_none=True),
            )
        final = self._work(order, order_id)
        return self._fills(order, final)

    def _refuse_if_killed(self, order: Order) -> None:
        if self._killed():
            raise TradingHalted(
                f"kill switch engaged: order {order.client_order_id} ({order.side} "
                f"{order.symbol}) not sent to Coinbase"
            )

    @staticmethod
    def _check_same_order(order: Order, existing: CoinbaseOrder) -> None:
        expected = (product_id_for(order.symbol), order.side.value.upper())
        if (existing.product_id, existing.side) != expected:
            raise CoinbaseResponseError(
                f"GET {LIST_ORDERS_PATH}",
                f"client_order_id {order.client_order_id} belongs to a {existing.side} "
                f"{existing.product_id} order, not {expected[1]} {expected[0]}",
            )

    def _product(self, product_id: str) -> CoinbaseProduct:
        if product_id not in self._products:
            self._products[product_id] = self.client.get_product(product_id)
        return self._products[product_id]

    def _create_request(self, order: Order, product_id: str) -> CreateOrderRequest | None:
        product = self._product(product_id)
        size = _floor_to(Decimal(repr(order.quantity)), product.base_increment)
        minimum = product.base_min_size or product.base_increment
        if size < minimum:
            logger.warning(
                "order %s not placed: quantity %.10g is below %s's minimum size %s",
                order.client_order_id,
                order.quantity,
                product_id,
                _plain(minimum),
            )
            return None
        if order.order_type == "market":
            configuration = OrderConfiguration(
                market_market_ioc=MarketMarketIoc(base_size=_plain(size))
            )
        else:
            assert order.limit_price is not None  # guaranteed by Order validation
            rounding = _floor_to if order.side is Side.BUY else _ceil_to
            price = rounding(Decimal(repr(order.limit_price)), product.quote_increment)
            configuration = OrderConfiguration(
                limit_limit_gtc=LimitLimitGtc(base_size=_plain(size), limit_price=_plain(price))
            )
        return CreateOrderRequest(
            client_order_id=order.client_order_id,
            product_id=product_id,
            side="BUY" if order.side is Side.BUY else "SELL",
            order_configuration=configuration,
        )

    def _poll_until_final(self, order_id: str, wait: float) -> CoinbaseOrder:
        deadline = self._clock() + wait
        while True:
            current = self.client.get_order(order_id)
            if current.status in TERMINAL_STATUSES or self._clock() >= deadline:
                return current
            self._sleep(self.settings.poll_interval_seconds)

    def _work(self, order: Order, order_id: str) -> CoinbaseOrder:
        """Wait for the order to finish; cancel what is still open when the wait ends."""
        settings = self.settings
        wait = (
            settings.market_wait_seconds
            if order.order_type == "market"
            else settings.limit_wait_seconds
        )
        current = self._poll_until_final(order_id, wait)
        if current.status in TERMINAL_STATUSES:
            return current
        logger.info(
            "order %s (%s) still %s after %gs: cancelling the remainder",
            order.client_order_id,
            order_id,
            current.status,
            wait,
        )
        cancel_error: CoinbaseError | None = None
        try:
            for result in self.client.cancel_orders([order_id]):
                if not result.success:
                    logger.warning(
                        "cancel of %s failed: %s", result.order_id, result.failure_reason
                    )
        except CoinbaseError as exc:
            cancel_error = exc
            logger.warning("cancel of %s failed: %s", order_id, exc)
        current = self._poll_until_final(order_id, settings.cancel_wait_seconds)
        if current.status not in TERMINAL_STATUSES:
            raise CoinbaseOrderStillOpen(
                f"POST {CANCEL_PATH}",
                f"order {order.client_order_id} (Coinbase {order_id}) is still {current.status} "
                f"{settings.cancel_wait_seconds:g}s after the cancel"
                + (f" ({cancel_error})" if cancel_error else "")
                + "; cancel it by hand",
            )
        return current

    def _fills(self, order: Order, final: CoinbaseOrder) -> list[Fill]:
        endpoint = f"GET {FILLS_PATH}"
        expected = final.filled_size
        for attempt in range(1, self.settings.fill_settle_attempts + 1):
            raw = {f.fill_id: f for f in self.client.list_fills([final.order_id])}
            mine = [f for f in raw.values() if f.order_id == final.order_id]
            total = sum((f.base_size for f in mine), Decimal(0))
            if expected is None or total >= expected * Decimal("0.999999999"):
                break
            if attempt == self.settings.fill_settle_attempts:
                raise CoinbaseResponseError(
                    endpoint,
                    f"fills of order {final.order_id} add up to {total} but Coinbase reports "
                    f"filled_size {expected}",
                )
            self._sleep(self.settings.poll_interval_seconds)
        if total > Decimal(repr(order.quantity)) * Decimal("1.000000001"):
            raise CoinbaseResponseError(
                endpoint,
                f"fills of order {final.order_id} add up to {total}, more than the "
                f"{order.quantity!r} ordered",
            )
        fills = [
            self._to_fill(order, f)
            for f in sorted(
                mine, key=lambda f: (f.trade_time, f.sequence_timestamp or "", f.fill_id)
            )
        ]
        logger.info(
            "order %s (%s) %s: %d fill(s), %s of %.10g",
            order.client_order_id,
            final.order_id,
            final.status,
            len(fills),
            total,
            order.quantity,
        )
        return fills

    @staticmethod
    def _to_fill(order: Order, fill: CoinbaseFill) -> Fill:
        expected = (product_id_for(order.symbol), order.side.value.upper())
        if (fill.product_id, fill.side) != expected:
            raise CoinbaseResponseError(
                f"GET {FILLS_PATH}",
                f"fill {fill.fill_id} of order {fill.order_id} is {fill.side} {fill.product_id}, "
                f"expected {expected[1]} {expected[0]}",
            )
        if fill.liquidity_indicator == "UNKNOWN_LIQUIDITY_INDICATOR":
            logger.warning("fill %s has no liquidity indicator; booked as taker", fill.fill_id)
        return Fill(
            fill_id=fill.fill_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            ts=fill.trade_time,
            side=order.side,
            quantity=float(fill.base_size),
            price=float(fill.price),
            fee=float(fill.commission),
            liquidity="maker" if fill.liquidity_indicator == "MAKER" else "taker",
        )


# --- the live gate ------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveTradingGate:
    """Two independent switches, both required: an explicit flag and a typed confirmation.

    ``check`` names every missing or wrong variable and never repeats what was set.
    """

    flag_var: str = LIVE_FLAG_VAR
    confirm_var: str = LIVE_CONFIRM_VAR
    phrase: str = LIVE_CONFIRM_PHRASE

    def problems(self, env: Mapping[str, str]) -> list[str]:
        found: list[str] = []
        flag = env.get(self.flag_var)
        if flag is None:
            found.append(f"{self.flag_var} is not set (set it to 1)")
        elif flag != "1":
            found.append(f"{self.flag_var} is set but not to 1")
        confirm = env.get(self.confirm_var)
        if confirm is None:
            found.append(f"{self.confirm_var} is not set (set it to {self.phrase!r})")
        elif confirm != self.phrase:
            found.append(f"{self.confirm_var} does not match the phrase {self.phrase!r}")
        return found

    def check(self, env: Mapping[str, str]) -> None:
        found = self.problems(env)
        if found:
            raise LiveTradingRefused("live trading refused: " + "; ".join(found))


def risk_gate_kill_switch(
    gate: RiskGate, also: Callable[[], bool] | None = None
) -> Callable[[], bool]:
    """A ``killed`` callable for the broker: true while the gate is HALTED (its kill switch, a
    daily-loss or a drawdown halt) or while ``also`` (e.g. an operator's switch) says so."""

    def killed() -> bool:
        return gate.state is RiskState.HALTED or (also is not None and also())

    return killed


def build_live_broker(
    env: Mapping[str, str],
    *,
    risk_gate: RiskGate,
    killed: Callable[[], bool] | None = None,
    settings: LiveBrokerSettings | None = None,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    gate: LiveTradingGate | None = None,
) -> CoinbaseLiveBroker:
    """The live broker, or ``LiveTradingRefused`` naming what is missing.

    Refuses unless ``COINSWARM_LIVE_TRADING=1`` and ``COINSWARM_LIVE_CONFIRM`` is the exact
    phrase, unless ``risk_gate`` is already REDUCING or HALTED (``RiskGate.reduce_only``), and
    unless ``COINBASE_API_KEY_NAME`` / ``COINBASE_API_PRIVATE_KEY`` hold a valid key. The broker
    refuses every submit while the gate is HALTED or ``killed()`` is true. No request is made
    here.
    """
    (gate or LiveTradingGate()).check(env)
    if risk_gate.state is RiskState.ACTIVE:
        raise LiveTradingRefused(
            "live trading refused: the risk gate is ACTIVE; a live run starts in REDUCING "
            "(call RiskGate.reduce_only first)"
        )
    credentials = CoinbaseCredentials.from_env(env)
    client = CoinbaseAdvancedClient(credentials, base_url=base_url, timeout=timeout, retry=retry)
    logger.warning("LIVE trading enabled against %s with key %s", base_url, credentials.key_name)
    return CoinbaseLiveBroker(
        client, killed=risk_gate_kill_switch(risk_gate, killed), settings=settings
    )
