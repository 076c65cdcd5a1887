"""The Coinbase live broker against a local fake of the Advanced Trade REST API.

The fake serves the documented payload shapes, checks every request's JWT against the test
key's public half, deduplicates orders by client_order_id as Coinbase does, and can inject
429s, 5xx, malformed bodies, rejections and a create that times out after being processed.
Clock, nonce and sleep are injected, so no test sleeps for real except the timeout one, which
waits out a 0.2 s client timeout.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.trading.conftest import make_bar
from trading.brokers.base import Broker
from trading.brokers.coinbase import (
    LIVE_CONFIRM_PHRASE,
    CoinbaseAdvancedClient,
    CoinbaseCredentials,
    CoinbaseHTTPError,
    CoinbaseLiveBroker,
    CoinbaseOrderRejected,
    CoinbaseOrderStillOpen,
    CoinbaseRateLimited,
    CoinbaseResponseError,
    CoinbaseServerError,
    LiveBrokerSettings,
    LiveTradingGate,
    LiveTradingRefused,
    RetryPolicy,
    TradingHalted,
    build_live_broker,
    product_id_for,
    risk_gate_kill_switch,
)
from trading.domain import Fill, Order, OrderIntent, Side
from trading.portfolio import Portfolio
from trading.risk import RiskGate, RiskLimits, RiskState

KEY_NAME = "organizations/org-1234/apiKeys/key-5678"
T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USD"
PRODUCT = "BTC-USD"

ORDERS = "/api/v3/brokerage/orders"
CANCEL = "/api/v3/brokerage/orders/batch_cancel"
LIST_ORDERS = "/api/v3/brokerage/orders/historical/batch"
FILLS = "/api/v3/brokerage/orders/historical/fills"
ORDER_PREFIX = "/api/v3/brokerage/orders/historical/"
PRODUCT_PREFIX = "/api/v3/brokerage/products/"


# --- keys, clock ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def pem(ec_key: ec.EllipticCurvePrivateKey) -> str:
    return ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN EC PRIVATE KEY", as CDP issues
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def credentials(pem: str) -> CoinbaseCredentials:
    return CoinbaseCredentials(key_name=KEY_NAME, private_key=pem)


def secret_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


class FakeClock:
    """Unix time that only moves when someone sleeps."""

    def __init__(self, start: float = 1_741_003_200.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def counting_nonce() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{next(counter):032x}"


# --- the fake Coinbase ----------------------------------------------------------------------


@dataclass
class PlannedFill:
    size: str
    price: str
    liquidity: str = "TAKER"
    commission: str = "0"


Plan = Callable[[dict[str, Any]], tuple[str, list[PlannedFill]]]


def fill_completely(order: dict[str, Any]) -> tuple[str, list[PlannedFill]]:
    """Default plan: the order fills in full, in two taker fills."""
    config = order["order_configuration"]
    base_size = next(iter(config.values()))["base_size"]
    half = (Decimal(base_size) / 2).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
    return "FILLED", [
        PlannedFill(str(half), "90000.00", "TAKER", "1.35"),
        PlannedFill(str(Decimal(base_size) - half), "90010.00", "TAKER", "1.3501"),
    ]


def json_response(payload: Any, status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(payload), status=status, headers=headers, mimetype="application/json"
    )


class FakeCoinbase:
    def __init__(self, server: HTTPServer, public_key: ec.EllipticCurvePublicKey) -> None:
        self.server = server
        self.public_key = public_key
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.creates: list[dict[str, Any]] = []
        self.cancels: list[list[str]] = []
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.tokens: list[str] = []
        self.faults: dict[str, deque[Callable[[Request], Response]]] = defaultdict(deque)
        self.plan: Plan = fill_completely
        self.page_size = 100
        self.release = threading.Event()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def route(self, method: str, path: str) -> str:
        if method == "POST" and path == ORDERS:
            return "create"
        if method == "POST" and path == CANCEL:
            return "cancel"
        if method == "GET" and path == LIST_ORDERS:
            return "list_orders"
        if method == "GET" and path == FILLS:
            return "fills"
        if method == "GET" and path.startswith(ORDER_PREFIX):
            return "get_order"
        if method == "GET" and path.startswith(PRODUCT_PREFIX):
            return "product"
        return "unknown"

    def calls(self, route: str) -> list[dict[str, list[str]]]:
        return [args for method, path, args in self.requests if self.route(method, path) == route]

    def routes(self) -> list[str]:
        return [self.route(method, path) for method, path, _ in self.requests]

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((request.method, request.path, request.args.to_dict(flat=False)))
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                options={"verify_exp": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as exc:
            return json_response({"error": "UNAUTHENTICATED", "message": str(exc)}, 401)
        if claims.get("uri") != f"{request.method} {request.host}{request.path}":
            return json_response({"error": "UNAUTHENTICATED", "message": "wrong uri"}, 401)
        self.tokens.append(token)
        route = self.route(request.method, request.path)
        if self.faults[route]:
            return self.faults[route].popleft()(request)
        return getattr(self, f"_{route}")(request)

    # endpoints

    def _create(self, request: Request) -> Response:
        body = request.get_json()
        with self._lock:
            self.creates.append(body)
            existing = self.by_client_order_id(body["client_order_id"])
            order = existing or self.place(body)
        return json_response(
            {
                "success": True,
                "success_response": {
                    "order_id": order["order_id"],
                    "product_id": order["product_id"],
                    "side": order["side"],
                    "client_order_id": order["client_order_id"],
                },
                "order_configuration": order["order_configuration"],
            }
        )

    def place(self, body: dict[str, Any]) -> dict[str, Any]:
        order_id = f"11111111-0000-0000-0000-{next(self._ids):012d}"
        status, planned = self.plan(body)
        order = {
            "order_id": order_id,
            "product_id": body["product_id"],
            "user_id": "user-1",
            "order_configuration": body["order_configuration"],
            "side": body["side"],
            "client_order_id": body["client_order_id"],
            "status": status,
            "time_in_force": "IMMEDIATE_OR_CANCEL",
            "created_time": "2025-03-03T12:00:01.123456Z",
            "completion_percentage": "100" if status == "FILLED" else "50",
            "filled_size": str(sum((Decimal(p.size) for p in planned), Decimal(0))),
            "average_filled_price": "0",
            "number_of_fills": str(len(planned)),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": "0",
            "order_type": "MARKET",
            "product_type": "SPOT",
        }
        self.orders[order_id] = order
        for n, p in enumerate(planned, start=1):
            self.fills[order_id].append(
                {
                    "entry_id": f"entry-{order_id[-4:]}-{n}",
                    "trade_id": f"trade-{order_id[-4:]}-{n}",
                    "order_id": order_id,
                    "trade_time": f"2025-03-03T12:00:0{n}.5Z",
                    "trade_type": "FILL",
                    "price": p.price,
                    "size": p.size,
                    "commission": p.commission,
                    "product_id": body["product_id"],
                    "sequence_timestamp": f"2025-03-03T12:00:0{n}.500001Z",
                    "liquidity_indicator": p.liquidity,
                    "size_in_quote": False,
                    "user_id": "user-1",
                    "side": body["side"],
                    "retail_portfolio_id": "portfolio-1",
                }
            )
        return order

    def by_client_order_id(self, client_order_id: str) -> dict[str, Any] | None:
        return next(
            (o for o in self.orders.values() if o["client_order_id"] == client_order_id), None
        )

    def _page(self, request: Request, items: list[Any]) -> tuple[list[Any], str]:
        start = int(request.args.get("cursor") or 0)
        end = start + self.page_size
        return items[start:end], (str(end) if end < len(items) else "")

    def _list_orders(self, request: Request) -> Response:
        products = request.args.getlist("product_ids")
        orders = [o for o in self.orders.values() if not products or o["product_id"] in products]
        page, cursor = self._page(request, orders)
        return json_response(
            {"orders": page, "sequence": "0", "has_next": bool(cursor), "cursor": cursor}
        )

    def _fills(self, request: Request) -> Response:
        wanted = request.args.getlist("order_ids")
        fills = [f for order_id in wanted for f in self.fills.get(order_id, [])]
        page, cursor = self._page(request, fills)
        return json_response({"fills": page, "cursor": cursor})

    def _get_order(self, request: Request) -> Response:
        order = self.orders.get(request.path.removeprefix(ORDER_PREFIX))
        if order is None:
            return json_response({"error": "NOT_FOUND", "message": "order not found"}, 404)
        return json_response({"order": order})

    def _cancel(self, request: Request) -> Response:
        order_ids = request.get_json()["order_ids"]
        self.cancels.append(order_ids)
        results = []
        for order_id in order_ids:
            order = self.orders.get(order_id)
            if order is not None and order["status"] == "OPEN":
                order["status"] = "CANCELLED"
                results.append({"success": True, "failure_reason": "", "order_id": order_id})
            else:
                results.append(
                    {
                        "success": False,
                        "failure_reason": "UNKNOWN_CANCEL_ORDER",
                        "order_id": order_id,
                    }
                )
        return json_response({"results": results})

    def _product(self, request: Request) -> Response:
        product_id = request.path.removeprefix(PRODUCT_PREFIX)
        return json_response(
            {
                "product_id": product_id,
                "price": "90000.01",
                "base_increment": "0.00000001",
                "quote_increment": "0.01",
                "base_min_size": "0.00000001",
                "base_max_size": "3400",
                "status": "online",
                "trading_disabled": False,
            }
        )

    def _unknown(self, request: Request) -> Response:
        return json_response({"error": "NOT_FOUND", "message": request.path}, 404)

    # faults

    def inject(self, route: str, *responses: Callable[[Request], Response]) -> None:
        self.faults[route].extend(responses)

    def processed_then_stalled(self, request: Request) -> Response:
        """Creates the order, then answers too late for the client."""
        response = self._create(request)
        self.release.wait(5.0)
        return response


def respond(payload: Any, status: int = 200, **headers: str) -> Callable[[Request], Response]:
    return lambda _request: json_response(payload, status, **headers)


def respond_raw(body: str, status: int = 200) -> Callable[[Request], Response]:
    return lambda _request: Response(body, status=status, mimetype="application/json")


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def fake(server: HTTPServer, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[FakeCoinbase]:
    server.clear()
    fake = FakeCoinbase(server, ec_key.public_key())
    yield fake
    fake.release.set()
    server.clear()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(
    fake: FakeCoinbase, credentials: CoinbaseCredentials, clock: FakeClock, **kwargs: Any
) -> CoinbaseAdvancedClient:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "timeout": 5.0,
        "retry": RetryPolicy(max_attempts=4, backoff_initial_seconds=0.5),
        "clock": clock,
        "nonce": counting_nonce(),
        "sleep": clock.sleep,
    }
    return CoinbaseAdvancedClient(credentials, **{**options, **kwargs})


def make_broker(
    client: CoinbaseAdvancedClient, clock: FakeClock, killed: Callable[[], bool] = lambda: False
) -> CoinbaseLiveBroker:
    settings = LiveBrokerSettings(
        market_wait_seconds=10,
        limit_wait_seconds=30,
        poll_interval_seconds=1,
        cancel_wait_seconds=5,
    )
    return CoinbaseLiveBroker(
        client, killed=killed, settings=settings, clock=clock, sleep=clock.sleep
    )


@pytest.fixture
def client(
    fake: FakeCoinbase, credentials: CoinbaseCredentials, clock: FakeClock
) -> Iterator[CoinbaseAdvancedClient]:
    with make_client(fake, credentials, clock) as client:
        yield client


@pytest.fixture
def broker(client: CoinbaseAdvancedClient, clock: FakeClock) -> CoinbaseLiveBroker:
    return make_broker(client, clock)


def market_order(quantity: float = 0.01, side: Side = Side.BUY, coid: str = "cs-abc") -> Order:
    return Order(
        client_order_id=coid,
        symbol=SYMBOL,
        ts=T0,
        side=side,
        quantity=quantity,
        order_type="market",
    )


def limit_order(quantity: float = 0.02, price: float = 89_999.999, side: Side = Side.BUY) -> Order:
    return Order(
        client_order_id="cs-limit",
        symbol=SYMBOL,
        ts=T0,
        side=side,
        quantity=quantity,
        order_type="limit",
        limit_price=price,
    )


BAR = make_bar(SYMBOL, T0, 90_000.0)


# --- JWT and secrets ------------------------------------------------------------------------


def test_jwt_verifies_with_the_public_key_and_carries_the_documented_header_and_claims(
    credentials: CoinbaseCredentials, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    token = credentials.rest_jwt(
        "post", "api.coinbase.com", ORDERS, now=1_741_003_200.7, nonce="ab" * 16
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == KEY_NAME
    assert header["nonce"] == "ab" * 16
    claims = jwt.decode(
        token,
        ec_key.public_key(),
        algorithms=["ES256"],
        options={"verify_exp": False, "verify_nbf": False},
    )
    assert claims == {
        "sub": KEY_NAME,
        "iss": "cdp",
        "nbf": 1_741_003_200,
        "exp": 1_741_003_320,
        "uri": "POST api.coinbase.com/api/v3/brokerage/orders",
    }
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["ES256"], options={"verify_exp": False})


def test_every_request_is_signed_for_its_own_method_host_and_path(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker, clock: FakeClock
) -> None:
    broker.submit(market_order(), BAR)
    host = fake.base_url.removeprefix("http://")
    uris = [jwt.decode(t, options={"verify_signature": False})["uri"] for t in fake.tokens]
    assert uris[:3] == [
        f"GET {host}{LIST_ORDERS}",  # no query string in the signed uri
        f"GET {host}{PRODUCT_PREFIX}{PRODUCT}",
        f"POST {host}{ORDERS}",
    ]
    nonces = [jwt.get_unverified_header(t)["nonce"] for t in fake.tokens]
    assert len(set(nonces)) == len(nonces) and nonces[0] == f"{1:032x}"
    assert {jwt.decode(t, options={"verify_signature": False})["nbf"] for t in fake.tokens} == {
        int(clock.now)
    }


def test_the_private_key_never_shows_in_repr_str_errors_or_logs(
    fake: FakeCoinbase,
    credentials: CoinbaseCredentials,
    client: CoinbaseAdvancedClient,
    broker: CoinbaseLiveBroker,
    pem: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.inject("create", respond({"error": "UNAVAILABLE"}, 503))
    broker.submit(market_order(), BAR)
    shown = [repr(credentials), str(credentials), repr(client), repr(broker), caplog.text]
    for text in shown:
        for line in secret_lines(pem):
            assert line not in text
        for token in fake.tokens:
            assert token not in text
    assert "**********" in repr(credentials)
    assert "retrying" in caplog.text  # the logs were captured, they just hold no secret

    broken = pem.replace(secret_lines(pem)[1], "A" * len(secret_lines(pem)[1]))
    with pytest.raises(ValueError) as raised:
        CoinbaseCredentials(key_name=KEY_NAME, private_key=broken)
    assert "EC P-256" in str(raised.value)
    for line in secret_lines(broken):
        assert line not in str(raised.value)


def test_credentials_accept_a_one_line_pem_and_reject_other_curves(pem: str) -> None:
    one_line = pem.strip().replace("\n", "\\n")
    assert CoinbaseCredentials(key_name=KEY_NAME, private_key=one_line).key_name == KEY_NAME
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="EC P-256"):
        CoinbaseCredentials(key_name=KEY_NAME, private_key=p384.decode())
    with pytest.raises(ValueError, match="key_name"):
        CoinbaseCredentials(key_name="not-a-key-name", private_key=pem)


# --- orders and fills -----------------------------------------------------------------------


def test_broker_satisfies_the_protocol(broker: CoinbaseLiveBroker) -> None:
    assert isinstance(broker, Broker)
    assert product_id_for("BTC/USD") == "BTC-USD"


def test_market_order_is_placed_ioc_and_its_fills_parsed(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    fills = broker.submit(market_order(0.0123456789123), BAR)
    assert fake.creates == [
        {
            "client_order_id": "cs-abc",
            "product_id": "BTC-USD",
            "side": "BUY",
            "order_configuration": {"market_market_ioc": {"base_size": "0.01234567"}},
        }
    ]
    (order_id,) = fake.orders
    assert fake.calls("fills") == [{"order_ids": [order_id], "limit": ["250"]}]
    assert fills == [
        Fill(
            fill_id=f"entry-{order_id[-4:]}-1",
            client_order_id="cs-abc",
            symbol=SYMBOL,
            ts=datetime(2025, 3, 3, 12, 0, 1, 500000, tzinfo=UTC),
            side=Side.BUY,
            quantity=0.00617283,
            price=90000.0,
            fee=1.35,
            liquidity="taker",
        ),
        Fill(
            fill_id=f"entry-{order_id[-4:]}-2",
            client_order_id="cs-abc",
            symbol=SYMBOL,
            ts=datetime(2025, 3, 3, 12, 0, 2, 500000, tzinfo=UTC),
            side=Side.BUY,
            quantity=0.00617284,
            price=90010.0,
            fee=1.3501,
            liquidity="taker",
        ),
    ]
    assert fake.cancels == []


def test_limit_order_rests_then_the_unfilled_remainder_is_cancelled(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker, clock: FakeClock
) -> None:
    fake.plan = lambda body: ("OPEN", [PlannedFill("0.005", "89999.99", "MAKER", "0.45")])
    fills = broker.submit(limit_order(0.02, 89_999.999, Side.BUY), BAR)
    assert fake.creates[0]["order_configuration"] == {
        "limit_limit_gtc": {"base_size": "0.02", "limit_price": "89999.99", "post_only": False}
    }
    (order_id,) = fake.orders
    assert fake.cancels == [[order_id]]
    assert fake.orders[order_id]["status"] == "CANCELLED"
    assert sum(clock.sleeps) == 30  # worked for limit_wait_seconds, polled each second
    assert [(f.quantity, f.price, f.fee, f.liquidity) for f in fills] == [
        (0.005, 89999.99, 0.45, "maker")
    ]


def test_sell_limit_price_rounds_up_never_below_the_approved_price(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    fake.plan = lambda body: ("FILLED", [PlannedFill("0.02", "90000.01", "MAKER", "0.9")])
    fills = broker.submit(limit_order(0.02, 90_000.001, Side.SELL), BAR)
    config = fake.creates[0]["order_configuration"]["limit_limit_gtc"]
    assert (config["limit_price"], fake.creates[0]["side"]) == ("90000.01", "SELL")
    assert fills[0].side is Side.SELL and fills[0].liquidity == "maker"
    assert fake.cancels == []


def test_fills_follow_the_cursor_across_pages(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    fake.page_size = 2
    fake.plan = lambda body: (
        "FILLED",
        [
            PlannedFill("0.004", "90000", "TAKER", "0.5"),
            PlannedFill("0.003", "90001", "MAKER", "0.2"),
            PlannedFill("0.003", "90002", "TAKER", "0.4"),
        ],
    )
    fills = broker.submit(market_order(0.01), BAR)
    assert [c.get("cursor") for c in fake.calls("fills")] == [None, ["2"]]
    assert [f.liquidity for f in fills] == ["taker", "maker", "taker"]
    assert sum(f.quantity for f in fills) == pytest.approx(0.01)
    assert sum(f.fee for f in fills) == pytest.approx(1.1)


def test_fills_lagging_behind_the_order_status_are_polled_again(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker, clock: FakeClock
) -> None:
    fake.inject("fills", respond({"fills": [], "cursor": ""}))
    fills = broker.submit(market_order(), BAR)
    assert len(fills) == 2 and len(fake.calls("fills")) == 2
    assert clock.sleeps == [1]


def test_an_order_that_will_not_cancel_is_raised_for_a_human(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    fake.plan = lambda body: ("OPEN", [])
    refused = {"results": [{"success": False, "failure_reason": "UNKNOWN", "order_id": "x"}]}
    fake.inject("cancel", respond(refused))
    with pytest.raises(CoinbaseOrderStillOpen, match="still OPEN .* cancel it by hand"):
        broker.submit(limit_order(), BAR)
    (order,) = fake.orders.values()
    assert order["status"] == "OPEN"


def test_an_order_too_small_for_the_product_is_not_placed(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    assert broker.submit(market_order(0.000000001), BAR) == []
    assert fake.creates == []


# --- failures and retries -------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker, clock: FakeClock
) -> None:
    slow_down = {"error": "RATE_LIMITED", "message": "slow down"}
    fake.inject("create", respond(slow_down, 429, **{"Retry-After": "3"}))
    fills = broker.submit(market_order(), BAR)
    assert clock.sleeps[0] == 3.0
    assert len(fake.creates) == 1 and len(fake.orders) == 1  # the 429 was not processed
    assert fake.routes()[:4] == ["list_orders", "product", "create", "create"]
    assert len(fills) == 2


def test_a_retry_after_beyond_the_budget_is_raised_not_slept(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient, clock: FakeClock
) -> None:
    fake.inject("product", respond({"message": "later"}, 429, **{"Retry-After": "600"}))
    with pytest.raises(CoinbaseRateLimited, match=r"GET /api/v3/brokerage/products/BTC-USD"):
        client.get_product(PRODUCT)
    assert clock.sleeps == []


def test_5xx_on_a_read_is_retried_with_backoff(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker, clock: FakeClock
) -> None:
    fake.inject("fills", respond({"error": "INTERNAL"}, 500), respond({"error": "INTERNAL"}, 502))
    fills = broker.submit(market_order(), BAR)
    assert len(fills) == 2
    assert clock.sleeps == [0.5, 1.0]
    assert len(fake.calls("fills")) == 3


def test_5xx_on_create_looks_the_order_up_before_posting_again(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    fake.inject("create", respond({"error": "UNAVAILABLE", "message": "try again"}, 503))
    broker.submit(market_order(), BAR)
    assert fake.routes()[:5] == ["list_orders", "product", "create", "list_orders", "create"]
    assert len(fake.orders) == 1


def test_persistent_5xx_gives_up_after_the_budget_naming_the_endpoint(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient, clock: FakeClock
) -> None:
    fake.inject("get_order", *[respond({"message": "down"}, 503)] * 10)
    with pytest.raises(CoinbaseServerError) as raised:
        client.get_order("order-1")
    assert "GET /api/v3/brokerage/orders/historical/order-1" in str(raised.value)
    assert "HTTP 503" in str(raised.value) and "down" in str(raised.value)
    assert len(fake.calls("get_order")) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_a_timed_out_create_is_found_by_client_order_id_and_not_placed_twice(
    fake: FakeCoinbase, credentials: CoinbaseCredentials, clock: FakeClock
) -> None:
    fake.inject("create", fake.processed_then_stalled)
    with make_client(fake, credentials, clock, timeout=0.2) as client:
        fills = make_broker(client, clock).submit(market_order(), BAR)
    fake.release.set()
    assert fake.routes()[:4] == ["list_orders", "product", "create", "list_orders"]
    assert len(fake.calls("create")) == 1  # the server saw exactly one create
    assert len(fake.orders) == 1
    assert len(fills) == 2


def test_malformed_json_is_a_clear_error_naming_the_endpoint(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient
) -> None:
    fake.inject("get_order", respond_raw("<html>502 Bad Gateway"))
    with pytest.raises(CoinbaseResponseError) as raised:
        client.get_order("order-1")
    message = str(raised.value)
    assert "GET /api/v3/brokerage/orders/historical/order-1" in message
    assert "malformed JSON" in message
    assert len(fake.calls("get_order")) == 1  # not retried


def test_a_wrong_shape_is_a_clear_error_naming_the_field(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient
) -> None:
    fake.inject("fills", respond({"fills": [{"order_id": "o-1", "price": "abc"}], "cursor": ""}))
    with pytest.raises(CoinbaseResponseError) as raised:
        client.list_fills(["o-1"])
    message = str(raised.value)
    assert "GET /api/v3/brokerage/orders/historical/fills" in message
    assert "fills.0.price" in message and "fills.0.trade_time" in message


def test_error_response_raises_with_coinbases_message(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    rejection = {
        "success": False,
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "order_id": "",
        "error_response": {
            "error": "INSUFFICIENT_FUND",
            "message": "Insufficient balance in source account",
            "error_details": "",
            "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND",
        },
    }
    fake.inject("create", respond(rejection))
    with pytest.raises(CoinbaseOrderRejected) as raised:
        broker.submit(market_order(), BAR)
    message = str(raised.value)
    assert "POST /api/v3/brokerage/orders" in message and "cs-abc" in message
    assert "Insufficient balance in source account" in message
    assert "INSUFFICIENT_FUND" in message
    assert len(fake.calls("create")) == 1


def test_a_4xx_is_not_retried_and_carries_coinbases_message(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient, clock: FakeClock
) -> None:
    fake.inject("product", respond({"error": "INVALID_ARGUMENT", "message": "bad product"}, 400))
    with pytest.raises(CoinbaseHTTPError, match="HTTP 400: INVALID_ARGUMENT - bad product"):
        client.get_product(PRODUCT)
    assert clock.sleeps == []


# --- idempotency ----------------------------------------------------------------------------


def test_a_new_broker_resubmitting_the_same_order_resumes_it_without_posting(
    fake: FakeCoinbase, credentials: CoinbaseCredentials, clock: FakeClock
) -> None:
    fake.page_size = 2
    for n in range(3):  # other orders, so the lookup has to page
        fake.place(
            {
                "client_order_id": f"other-{n}",
                "product_id": PRODUCT,
                "side": "SELL",
                "order_configuration": {"market_market_ioc": {"base_size": "0.1"}},
            }
        )
    with make_client(fake, credentials, clock) as first:
        before = make_broker(first, clock).submit(market_order(), BAR)
    assert len(fake.creates) == 1
    with make_client(fake, credentials, clock) as second:  # a restart: nothing in memory
        after = make_broker(second, clock).submit(market_order(), BAR)
    assert after == before
    assert len(fake.creates) == 1 and len(fake.orders) == 4
    lookups = fake.calls("list_orders")
    assert lookups[-1]["cursor"] == ["2"]
    assert lookups[-1]["product_ids"] == [PRODUCT]
    assert lookups[-1]["start_date"] == ["2025-02-28T12:00:00Z"]


def test_a_client_order_id_used_by_another_kind_of_order_is_refused(
    fake: FakeCoinbase, broker: CoinbaseLiveBroker
) -> None:
    fake.place(
        {
            "client_order_id": "cs-abc",
            "product_id": PRODUCT,
            "side": "SELL",
            "order_configuration": {"market_market_ioc": {"base_size": "0.1"}},
        }
    )
    with pytest.raises(CoinbaseResponseError, match="belongs to a SELL BTC-USD order"):
        broker.submit(market_order(side=Side.BUY), BAR)
    assert fake.creates == []


# --- kill switch and the live gate ----------------------------------------------------------


def test_the_kill_switch_refuses_submit_without_any_request(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient, clock: FakeClock
) -> None:
    broker = make_broker(client, clock, killed=lambda: True)
    with pytest.raises(TradingHalted, match="kill switch engaged: order cs-abc"):
        broker.submit(market_order(), BAR)
    assert fake.requests == []


def test_a_halted_risk_gate_refuses_submit_without_any_request(
    fake: FakeCoinbase, client: CoinbaseAdvancedClient, clock: FakeClock
) -> None:
    gate = RiskGate(RiskLimits())
    broker = make_broker(client, clock, killed=risk_gate_kill_switch(gate))
    gate.kill("operator pressed the button")
    with pytest.raises(TradingHalted):
        broker.submit(market_order(), BAR)
    assert fake.requests == []
    gate.reset_kill_switch()
    assert len(broker.submit(market_order(), BAR)) == 2


def reducing_gate() -> RiskGate:
    gate = RiskGate(RiskLimits())
    gate.reduce_only("live trading starts reducing")
    assert gate.state is RiskState.REDUCING
    return gate


def test_a_reduce_only_gate_allows_only_sells() -> None:
    portfolio, prices = Portfolio("USD", 10_000.0), {SYMBOL: 90_000.0}
    portfolio.apply_fill(
        Fill(
            fill_id="seed",
            client_order_id="seed",
            symbol=SYMBOL,
            ts=T0,
            side=Side.BUY,
            quantity=0.01,
            price=90_000.0,
            fee=0.0,
            liquidity="taker",
        )
    )
    gate = reducing_gate()
    gate.start_day(portfolio.equity(prices), T0.date())
    assert gate.refresh(portfolio, prices) is RiskState.REDUCING

    def intent(side: Side) -> OrderIntent:
        return OrderIntent(
            symbol=SYMBOL, ts=T0, side=side, quantity=0.001, reference_price=9e4, reason="t"
        )

    assert not gate.evaluate(intent(Side.BUY), portfolio, prices, T0).approved
    assert gate.evaluate(intent(Side.SELL), portfolio, prices, T0).approved
    gate.start_day(portfolio.equity(prices), T0.date() + timedelta(days=1))  # a new day
    assert gate.refresh(portfolio, prices) is RiskState.REDUCING  # still, until released
    gate.kill("stop")
    assert gate.state is RiskState.HALTED  # a halt overrides it
    gate.reset_kill_switch()
    gate.release_reduce_only()
    assert gate.refresh(portfolio, prices) is RiskState.ACTIVE
    next_day = T0 + timedelta(days=1)
    buy = intent(Side.BUY).model_copy(update={"ts": next_day})
    assert gate.evaluate(buy, portfolio, prices, next_day).approved


LIVE_ENV = {"COINSWARM_LIVE_TRADING": "1", "COINSWARM_LIVE_CONFIRM": LIVE_CONFIRM_PHRASE}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, ["COINSWARM_LIVE_TRADING is not set", "COINSWARM_LIVE_CONFIRM is not set"]),
        ({"COINSWARM_LIVE_TRADING": "1"}, ["COINSWARM_LIVE_CONFIRM is not set"]),
        ({"COINSWARM_LIVE_CONFIRM": LIVE_CONFIRM_PHRASE}, ["COINSWARM_LIVE_TRADING is not set"]),
        (
            {"COINSWARM_LIVE_TRADING": "1", "COINSWARM_LIVE_CONFIRM": "i understand"},
            ["COINSWARM_LIVE_CONFIRM does not match"],
        ),
        (
            {"COINSWARM_LIVE_TRADING": "true", "COINSWARM_LIVE_CONFIRM": LIVE_CONFIRM_PHRASE},
            ["COINSWARM_LIVE_TRADING is set but not to 1"],
        ),
    ],
)
def test_the_live_gate_refuses_without_both_switches(
    env: dict[str, str], named: list[str], pem: str
) -> None:
    full = {**env, "COINBASE_API_KEY_NAME": KEY_NAME, "COINBASE_API_PRIVATE_KEY": pem}
    with pytest.raises(LiveTradingRefused) as raised:
        build_live_broker(full, risk_gate=reducing_gate())
    message = str(raised.value)
    for part in named:
        assert part in message
    assert "i understand" not in message and "true" not in message
    with pytest.raises(LiveTradingRefused):
        LiveTradingGate().check(env)


def test_the_live_gate_refuses_an_active_risk_gate_and_missing_credentials(pem: str) -> None:
    creds = {"COINBASE_API_KEY_NAME": KEY_NAME, "COINBASE_API_PRIVATE_KEY": pem}
    active = RiskGate(RiskLimits())
    active.start_day(10_000.0, T0.date())
    with pytest.raises(LiveTradingRefused, match="REDUCING"):
        build_live_broker({**LIVE_ENV, **creds}, risk_gate=active)
    with pytest.raises(LiveTradingRefused, match="COINBASE_API_PRIVATE_KEY not set"):
        build_live_broker(
            {**LIVE_ENV, "COINBASE_API_KEY_NAME": KEY_NAME}, risk_gate=reducing_gate()
        )
    bad = {**LIVE_ENV, **creds, "COINBASE_API_PRIVATE_KEY": "-----BEGIN EC PRIVATE KEY-----x"}
    with pytest.raises(LiveTradingRefused) as raised:
        build_live_broker(bad, risk_gate=reducing_gate())
    assert "COINBASE_API_PRIVATE_KEY" in str(raised.value)
    assert "-----BEGIN" not in str(raised.value)


def test_the_live_gate_builds_a_broker_when_everything_is_set(pem: str, fake: FakeCoinbase) -> None:
    env = {**LIVE_ENV, "COINBASE_API_KEY_NAME": KEY_NAME, "COINBASE_API_PRIVATE_KEY": pem}
    gate = reducing_gate()
    broker = build_live_broker(env, risk_gate=gate, base_url=fake.base_url)
    assert isinstance(broker, CoinbaseLiveBroker)
    assert fake.requests == []
    gate.kill()
    with pytest.raises(TradingHalted):
        broker.submit(market_order(), BAR)
    assert fake.requests == []
    broker.client.close()
