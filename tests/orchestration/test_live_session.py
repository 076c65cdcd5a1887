"""A live session wired to the operator's switches: the real PostgreSQL control row, the
Coinbase broker against the local fake of the Advanced Trade API (tests/trading/brokers).

It proves the issue's promises end to end: off unless both switches are set, REDUCING (exits
only) until an operator releases it, the kill switch engaged from another connection stops the
very next order before any request, and the release never survives a kill.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from orchestration.live import open_live_session
from orchestration.trading_control import TradingControl
from tests.trading.brokers import test_coinbase as coinbase_fake
from tests.trading.brokers.test_coinbase import BAR, KEY_NAME, LIVE_ENV, SYMBOL, T0, FakeCoinbase
from trading.brokers.coinbase import CoinbaseLiveBroker, LiveTradingRefused, TradingHalted
from trading.config import load_committee_config
from trading.domain import Fill, Proposal, Side
from trading.portfolio import Portfolio
from trading.risk import RiskState

pytestmark = pytest.mark.integration

# The fake Coinbase server and the test key, shared with the broker's own tests.
server = coinbase_fake.server
ec_key = coinbase_fake.ec_key
pem = coinbase_fake.pem
fake = coinbase_fake.fake


def _config():
    return load_committee_config().model_copy(update={"quote": "USD", "initial_cash": 100_000.0})


def _portfolio_holding_btc() -> Portfolio:
    portfolio = Portfolio("USD", 100_000.0)
    portfolio.apply_fill(
        Fill(
            fill_id="seed-1",
            client_order_id="seed",
            symbol=SYMBOL,
            ts=T0.replace(hour=0),
            side=Side.BUY,
            quantity=0.2,
            price=90_000.0,
            fee=0.0,
            liquidity="taker",
        )
    )
    return portfolio


def _proposal(direction: float) -> Proposal:
    return Proposal(
        symbol=SYMBOL,
        ts=BAR.ts,
        direction=direction,
        confidence=1.0,
        votes=(),
        quorum_met=True,
    )


def _open(control: TradingControl, env: dict[str, str], fake: FakeCoinbase, portfolio=None):
    session = open_live_session(
        _config(),
        control,
        env,
        portfolio=portfolio or _portfolio_holding_btc(),
        base_url=fake.base_url,
    )
    session.risk_gate.start_day(session.portfolio.equity({SYMBOL: BAR.close}), T0.date())
    return session


def _execute(session, direction: float):
    prices = {SYMBOL: BAR.close}
    return session.execution.execute(_proposal(direction), session.portfolio, BAR, prices)


@pytest.fixture
def live_env(pem: str) -> dict[str, str]:
    return {**LIVE_ENV, "COINBASE_API_KEY_NAME": KEY_NAME, "COINBASE_API_PRIVATE_KEY": pem}


def test_live_is_refused_without_both_switches(
    pg_engine: sa.Engine, fake: FakeCoinbase, pem: str
) -> None:
    control = TradingControl(pg_engine)
    creds = {"COINBASE_API_KEY_NAME": KEY_NAME, "COINBASE_API_PRIVATE_KEY": pem}
    with pytest.raises(LiveTradingRefused, match="COINSWARM_LIVE_TRADING is not set"):
        _open(control, creds, fake)
    with pytest.raises(LiveTradingRefused, match="does not match the phrase"):
        _open(control, {**creds, **LIVE_ENV, "COINSWARM_LIVE_CONFIRM": "yes"}, fake)
    assert fake.requests == []


def test_a_live_session_starts_reducing_exits_only(
    pg_engine: sa.Engine, fake: FakeCoinbase, live_env: dict[str, str]
) -> None:
    session = _open(TradingControl(pg_engine), live_env, fake)
    assert isinstance(session.execution.broker, CoinbaseLiveBroker)
    assert session.risk_gate.state is RiskState.REDUCING

    buy = _execute(session, +1.0)
    assert buy.outcome == "rejected" and "reducing" in buy.reason
    assert fake.creates == []

    sell = _execute(session, -1.0)
    assert sell.outcome == "order" and sell.order is not None
    assert [c["side"] for c in fake.creates] == ["SELL"]
    sold = sum(f.quantity for f in sell.fills)
    assert sold > 0 and session.portfolio.quantity(SYMBOL) == pytest.approx(0.2 - sold)
    # even an exit obeys the per-order limit
    cap = session.risk_gate.limits.max_order_fraction * 100_000.0 / BAR.close
    assert sold <= cap * (1 + 1e-9)


def test_an_operator_release_lets_a_new_session_buy(
    pg_engine: sa.Engine, fake: FakeCoinbase, live_env: dict[str, str]
) -> None:
    control = TradingControl(pg_engine)
    control.release_live("keys and limits checked", actor="alice")
    session = _open(control, live_env, fake, portfolio=Portfolio("USD", 100_000.0))
    assert session.risk_gate.state is RiskState.ACTIVE
    buy = _execute(session, +1.0)
    assert buy.outcome == "order" and [c["side"] for c in fake.creates] == ["BUY"]
    limit = session.risk_gate.limits.max_order_fraction * 100_000.0
    assert buy.order is not None and buy.order.quantity * BAR.close <= limit


def test_the_kill_switch_from_another_process_stops_the_next_order_at_once(
    pg_engine: sa.Engine, pg_url: str, fake: FakeCoinbase, live_env: dict[str, str]
) -> None:
    control = TradingControl(pg_engine)
    control.release_live("keys and limits checked", actor="alice")
    session = _open(control, live_env, fake, portfolio=Portfolio("USD", 100_000.0))
    assert session.risk_gate.state is RiskState.ACTIVE

    # The operator's process: its own engine, its own connection.
    operator = sa.create_engine(pg_url)
    try:
        TradingControl(operator).engage_kill_switch("runaway orders", actor="bob")
    finally:
        operator.dispose()

    with pytest.raises(TradingHalted, match="kill switch engaged"):
        _execute(session, +1.0)
    assert fake.requests == []
    assert not control.status().live_released

    # A session opened while the switch is engaged is halted outright: not even exits.
    halted = _open(control, live_env, fake)
    assert halted.risk_gate.state is RiskState.HALTED
    sell = _execute(halted, -1.0)
    assert sell.outcome == "rejected" and "runaway orders" in sell.reason
    assert fake.requests == []
