from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.trading.conftest import T0
from trading.domain import Fill, OrderIntent, Side
from trading.portfolio import Portfolio
from trading.risk import RiskGate, RiskLimits, RiskState, check_limits

DAY = T0.date()
LIMITS = RiskLimits(
    max_position_fraction=0.25,
    max_gross_exposure_fraction=1.0,
    max_order_fraction=0.10,
    max_daily_loss_fraction=0.05,
)


def buy_fill(portfolio: Portfolio, symbol: str, quantity: float, price: float) -> None:
    portfolio.apply_fill(
        Fill(
            fill_id=f"seed-{symbol}-{len(portfolio.positions)}",
            client_order_id="seed",
            symbol=symbol,
            ts=T0,
            side=Side.BUY,
            quantity=quantity,
            price=price,
            fee=0.0,
            liquidity="taker",
        )
    )


def intent(side: Side, quantity: float, price: float = 0.1, symbol: str = "ETH/BTC") -> OrderIntent:
    return OrderIntent(
        symbol=symbol, ts=T0, side=side, quantity=quantity, reference_price=price, reason="test"
    )


def gate_for(portfolio: Portfolio, prices: dict[str, float], limits: RiskLimits = LIMITS):
    gate = RiskGate(limits)
    gate.start_day(portfolio.equity(prices), DAY)
    return gate


def test_an_order_within_limits_is_approved_unchanged() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    order = intent(Side.BUY, 0.5)
    decision = gate_for(portfolio, prices).evaluate(order, portfolio, prices, T0)
    assert decision.approved and decision.intent == order and decision.state is RiskState.ACTIVE


def test_per_order_limit_scales_down_and_says_so() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    decision = gate_for(portfolio, prices).evaluate(intent(Side.BUY, 2.0), portfolio, prices, T0)
    assert decision.approved and decision.intent is not None
    assert decision.intent.notional <= 0.10 * 1.0
    allowance = 0.005 * 1.005  # 50 bps, compounded (fee on the slipped price)
    assert decision.intent.notional == pytest.approx(0.1 / (1 + 0.1 * allowance), rel=1e-9)
    assert "max_order_fraction" in decision.reason and "scaled down" in decision.reason


def test_position_limit_scales_then_rejects_at_the_limit() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    buy_fill(portfolio, "ETH/BTC", 2.4, 0.1)
    gate = gate_for(portfolio, prices)
    decision = gate.evaluate(intent(Side.BUY, 1.0), portfolio, prices, T0)
    assert decision.approved and "max_position_fraction" in decision.reason
    assert decision.intent is not None and decision.intent.quantity < 0.1

    buy_fill(portfolio, "ETH/BTC", 0.1, 0.1)  # exactly at 25%
    rejected = gate.evaluate(intent(Side.BUY, 0.1), portfolio, prices, T0)
    assert not rejected.approved and rejected.intent is None
    assert "max_position_fraction leaves no room" in rejected.reason


def test_gross_exposure_limit() -> None:
    limits = LIMITS.model_copy(update={"max_gross_exposure_fraction": 0.3})
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1, "LTC/BTC": 0.02}
    buy_fill(portfolio, "ETH/BTC", 2.0, 0.1)  # 20% of equity, inside its 25% limit
    decision = gate_for(portfolio, prices, limits).evaluate(
        intent(Side.BUY, 7.5, 0.02, "LTC/BTC"), portfolio, prices, T0
    )
    assert decision.approved and "max_gross_exposure_fraction" in decision.reason
    assert decision.intent is not None and 0.09 < decision.intent.notional < 0.1


def test_a_buy_whose_costs_would_lift_another_position_over_its_limit_is_refused() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1, "LTC/BTC": 0.02}
    buy_fill(portfolio, "ETH/BTC", 2.5, 0.1)  # exactly at 25%: any cost pushes it over
    decision = gate_for(portfolio, prices).evaluate(
        intent(Side.BUY, 5.0, 0.02, "LTC/BTC"), portfolio, prices, T0
    )
    assert not decision.approved
    assert "max_position_fraction (other positions) leaves no room" in decision.reason


def test_long_only_sells_are_capped_at_the_held_quantity() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    gate = gate_for(portfolio, prices)
    nothing = gate.evaluate(intent(Side.SELL, 1.0), portfolio, prices, T0)
    assert not nothing.approved and "no ETH held" in nothing.reason
    buy_fill(portfolio, "ETH/BTC", 0.3, 0.1)
    capped = gate.evaluate(intent(Side.SELL, 1.0), portfolio, prices, T0)
    assert capped.approved and capped.intent is not None and capped.intent.quantity == 0.3
    assert "held quantity" in capped.reason


def test_daily_loss_reducing_then_halted_for_the_rest_of_the_day() -> None:
    portfolio = Portfolio("BTC", 1.0)
    buy_fill(portfolio, "ETH/BTC", 2.5, 0.1)
    gate = gate_for(portfolio, {"ETH/BTC": 0.1})

    reducing = {"ETH/BTC": 0.09}  # equity 0.975: 2.5% loss = half the limit
    buy = gate.evaluate(intent(Side.BUY, 0.1, 0.09), portfolio, reducing, T0)
    assert not buy.approved and buy.state is RiskState.REDUCING and "only sells" in buy.reason
    sell = gate.evaluate(intent(Side.SELL, 0.1, 0.09), portfolio, reducing, T0)
    assert sell.approved and gate.state is RiskState.REDUCING

    crashed = {"ETH/BTC": 0.076}  # equity 0.94: 6% loss
    halted = gate.evaluate(intent(Side.SELL, 0.1, 0.076), portfolio, crashed, T0)
    assert not halted.approved and halted.state is RiskState.HALTED
    assert "max_daily_loss_fraction" in halted.reason

    recovered = {"ETH/BTC": 0.1}
    later = T0 + timedelta(hours=1)
    still = gate.evaluate(intent(Side.BUY, 0.1), portfolio, recovered, later)
    assert not still.approved and gate.state is RiskState.HALTED

    gate.start_day(portfolio.equity(recovered), DAY + timedelta(days=1))
    next_day = T0 + timedelta(days=1)
    assert gate.evaluate(intent(Side.SELL, 0.1), portfolio, recovered, next_day).approved
    assert gate.state is RiskState.ACTIVE


def test_kill_switch_halts_across_days_until_reset() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    gate = gate_for(portfolio, prices)
    gate.kill("operator pressed the button")
    decision = gate.evaluate(intent(Side.BUY, 0.1), portfolio, prices, T0)
    assert not decision.approved and "operator pressed the button" in decision.reason
    gate.start_day(1.0, DAY + timedelta(days=1))
    assert gate.state is RiskState.HALTED
    gate.reset_kill_switch()
    next_day = T0 + timedelta(days=1)
    assert gate.evaluate(intent(Side.BUY, 0.1), portfolio, prices, next_day).approved


def test_gate_refuses_to_trade_outside_its_day() -> None:
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    with pytest.raises(RuntimeError, match="start_day"):
        RiskGate(LIMITS).evaluate(intent(Side.BUY, 0.1), portfolio, prices, T0)
    gate = gate_for(portfolio, prices)
    with pytest.raises(RuntimeError, match="risk day is 2018-01-10"):
        gate.evaluate(intent(Side.BUY, 0.1), portfolio, prices, T0 + timedelta(days=1))
    with pytest.raises(ValueError, match="before the current day"):
        gate.start_day(1.0, date(2018, 1, 9))


def test_check_limits_reports_breaches() -> None:
    portfolio = Portfolio("BTC", 1.0)
    buy_fill(portfolio, "ETH/BTC", 2.5, 0.1)
    assert check_limits(portfolio, {"ETH/BTC": 0.1}, LIMITS) == []
    breaches = check_limits(portfolio, {"ETH/BTC": 0.2}, LIMITS)  # drifted to 0.5/1.25 = 40%
    assert len(breaches) == 1 and "ETH/BTC position is 0.400000" in breaches[0]
    tight = LIMITS.model_copy(update={"max_gross_exposure_fraction": 0.3})
    assert any("gross exposure" in b for b in check_limits(portfolio, {"ETH/BTC": 0.2}, tight))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_position_fraction": 0}, "max_position_fraction"),
        ({"max_position_fraction": 1.5}, "max_position_fraction"),
        ({"max_daily_loss_fraction": 0.9}, "max_daily_loss_fraction"),
        ({"max_gross_exposure_fraction": 0.2}, "exceeds max_gross_exposure_fraction"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_risk_limits_validation(overrides: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RiskLimits(**(LIMITS.model_dump() | overrides))


fractions = st.floats(min_value=0.01, max_value=1.0)


@st.composite
def scenarios(draw: st.DrawFn):
    gross = draw(fractions)
    limits = RiskLimits(
        max_position_fraction=draw(st.floats(min_value=0.01, max_value=gross)),
        max_gross_exposure_fraction=gross,
        max_order_fraction=draw(st.floats(min_value=0.01, max_value=gross)),
        max_daily_loss_fraction=draw(st.floats(min_value=0.01, max_value=0.5)),
        execution_cost_allowance_bps=draw(st.floats(min_value=0, max_value=100)),
    )
    symbols = ("ETH/BTC", "LTC/BTC")
    prices = {s: draw(st.floats(min_value=1e-4, max_value=2.0)) for s in symbols}
    holding = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=50))
    holdings = {s: draw(holding) for s in symbols}
    cash = draw(st.floats(min_value=0, max_value=3.0))
    side = draw(st.sampled_from(Side))
    symbol = draw(st.sampled_from(symbols))
    quantity = draw(st.floats(min_value=1e-6, max_value=100))
    loss = draw(st.floats(min_value=0, max_value=0.2))
    cost_bps = draw(st.floats(min_value=0, max_value=limits.execution_cost_allowance_bps))
    slip_share = draw(st.floats(min_value=0, max_value=1))
    return limits, prices, holdings, cash, side, symbol, quantity, loss, cost_bps, slip_share


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_approved_order_breaks_a_limit_or_sells_more_than_held(scenario) -> None:
    limits, prices, holdings, cash, side, symbol, quantity, loss, cost_bps, slip_share = scenario
    portfolio = Portfolio("BTC", 1_000.0)
    for s, qty in holdings.items():
        if qty > 0:
            buy_fill(portfolio, s, qty, prices[s])
    portfolio.cash = cash
    equity = portfolio.equity(prices)
    if equity <= 0:
        return
    gate = RiskGate(limits)
    gate.start_day(equity * (1 + loss), DAY)
    ref = prices[symbol]
    decision = gate.evaluate(intent(side, quantity, ref, symbol), portfolio, prices, T0)
    if not decision.approved:
        assert decision.intent is None and decision.reason
        return
    approved = decision.intent
    assert approved is not None and approved.side is side and approved.symbol == symbol
    assert 0 < approved.quantity <= quantity
    assert gate.state is not RiskState.HALTED
    if side is Side.SELL:
        assert approved.quantity <= portfolio.quantity(symbol)
    else:
        assert gate.state is RiskState.ACTIVE

    # Execute at worst-case cost within the allowance the gate was told about.
    slip = cost_bps * slip_share / 1e4
    fee_rate = cost_bps * (1 - slip_share) / 1e4
    price = ref * (1 + slip) if side is Side.BUY else ref * (1 - slip)
    after = copy.deepcopy(portfolio)
    after.apply_fill(
        Fill(
            fill_id="f",
            client_order_id="o",
            symbol=symbol,
            ts=T0,
            side=side,
            quantity=approved.quantity,
            price=price,
            fee=approved.quantity * price * fee_rate,
            liquidity="taker",
        )
    )  # raises on an overdraft or a short
    equity_after = after.equity(prices)
    tolerance = 1e-9 * max(equity, 1.0)
    # A buy must fit the order limit even after its costs; a sell's fee comes out of its
    # proceeds and adds no exposure, so a sell is measured against the equity it was decided at.
    order_base = equity_after if side is Side.BUY else equity
    assert approved.notional <= limits.max_order_fraction * order_base + tolerance
    if side is Side.BUY:
        value = after.position_value(symbol, prices)
        assert value <= limits.max_position_fraction * equity_after + tolerance
        gross = after.gross_exposure(prices)
        assert gross <= limits.max_gross_exposure_fraction * equity_after + tolerance
        assert after.cash >= -tolerance
