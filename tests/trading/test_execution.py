from __future__ import annotations

from datetime import timedelta

import pytest

from tests.trading.conftest import T0, make_bar
from trading.brokers.paper import PaperBroker
from trading.domain import Bar, Fill, Order, Proposal, Side
from trading.execution import ExecutionEngine, Sizing, client_order_id
from trading.portfolio import Portfolio
from trading.risk import RiskGate, RiskLimits

LIMITS = RiskLimits(max_position_fraction=0.25, max_order_fraction=0.5)


class RecordingBroker:
    """Stands in for a broker only to prove what reached it (the paper broker does the filling)."""

    def __init__(self) -> None:
        self.inner = PaperBroker(fee_bps=10, slippage_bps=5)
        self.orders: list[Order] = []

    def submit(self, order: Order, bar: Bar) -> list[Fill]:
        self.orders.append(order)
        return self.inner.submit(order, bar)


def proposal(direction: float, confidence: float = 1.0, ts=T0) -> Proposal:
    return Proposal(
        symbol="ETH/BTC",
        ts=ts,
        direction=direction,
        confidence=confidence,
        votes=(),
        quorum_met=direction != 0,
    )


def engine(sizing: Sizing | None = None, limits: RiskLimits = LIMITS):
    gate = RiskGate(limits)
    gate.start_day(1.0, T0.date())
    broker = RecordingBroker()
    return ExecutionEngine(gate, broker, sizing or Sizing(headroom_fraction=0.0)), broker


def test_buys_to_the_target_notional_and_books_the_fill() -> None:
    execution, broker = engine()
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    report = execution.execute(proposal(0.8, 0.5), portfolio, make_bar(), prices)
    assert report.outcome == "order" and report.order is not None
    assert report.intent is not None and report.intent.notional == pytest.approx(0.8 * 0.5 * 0.25)
    assert report.order_status == "filled" and len(report.fills) == 1
    assert portfolio.quantity("ETH/BTC") == pytest.approx(1.0)
    assert broker.orders == [report.order]


def test_bearish_or_quorumless_proposals_target_flat_long_only() -> None:
    execution, _ = engine()
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    assert execution.execute(proposal(-1.0), portfolio, make_bar(), prices).outcome == "hold"
    execution.execute(proposal(1.0), portfolio, make_bar(), prices)
    held = portfolio.quantity("ETH/BTC")
    later = T0 + timedelta(minutes=5)
    report = execution.execute(proposal(0.0, 0.0, later), portfolio, make_bar(ts=later), prices)
    assert report.outcome == "order" and report.order is not None
    assert report.order.side is Side.SELL and report.order.quantity == held
    assert portfolio.quantity("ETH/BTC") == 0.0


def test_small_rebalances_are_skipped_unless_over_the_limit() -> None:
    execution, broker = engine(Sizing(min_order_notional=0.05, headroom_fraction=0.0))
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    report = execution.execute(proposal(0.1, 1.0), portfolio, make_bar(), prices)  # 0.025
    assert report.outcome == "hold" and "min_order_notional" in report.reason
    assert broker.orders == []

    portfolio.apply_fill(
        Fill(
            fill_id="seed",
            client_order_id="seed",
            symbol="ETH/BTC",
            ts=T0,
            side=Side.BUY,
            quantity=2.5,
            price=0.1,
            fee=0,
            liquidity="taker",
        )
    )
    drifted = {"ETH/BTC": 0.106}  # 0.265 of equity 1.015: over 25% by less than 0.05
    report = execution.execute(proposal(1.0), portfolio, make_bar(close=0.106), drifted)
    assert report.outcome == "order" and report.order is not None
    assert report.order.side is Side.SELL and "over limit" in report.reason


def test_a_rejected_intent_never_reaches_the_broker() -> None:
    execution, broker = engine()
    execution.risk_gate.kill()
    report = execution.execute(proposal(1.0), Portfolio("BTC", 1.0), make_bar(), {"ETH/BTC": 0.1})
    assert report.outcome == "rejected" and report.order is None and report.fills == ()
    assert "kill switch" in report.reason and broker.orders == []


def test_client_order_ids_are_deterministic() -> None:
    a = client_order_id("ETH/BTC", T0, Side.BUY, 1.5)
    assert a == client_order_id("ETH/BTC", T0, "buy", 1.5) and a.startswith("cs-")
    assert a != client_order_id("ETH/BTC", T0, Side.SELL, 1.5)
    assert a != client_order_id("ETH/BTC", T0, Side.BUY, 1.5000001)
    assert a != client_order_id("ETH/BTC", T0 + timedelta(minutes=5), Side.BUY, 1.5)

    first, _ = engine()
    second, _ = engine()
    reports = [
        e.execute(proposal(0.7, 0.9), Portfolio("BTC", 1.0), make_bar(), {"ETH/BTC": 0.1})
        for e in (first, second)
    ]
    assert reports[0] == reports[1]


def test_execute_refuses_a_mismatched_bar() -> None:
    execution, _ = engine()
    with pytest.raises(ValueError, match="does not match"):
        execution.execute(
            proposal(1.0), Portfolio("BTC", 1.0), make_bar(symbol="LTC/BTC"), {"ETH/BTC": 0.1}
        )


def proposal_with(direction: float, ts=T0, **fields) -> Proposal:
    return proposal(direction, ts=ts).model_copy(update=fields)


def test_rebalances_inside_the_band_are_held_but_exits_always_trade() -> None:
    execution, broker = engine(Sizing(headroom_fraction=0.0, rebalance_band_fraction=0.2))
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    execution.execute(proposal(1.0, 0.5), portfolio, make_bar(), prices)  # 0.125 BTC of ETH
    t1, t2 = T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    # From 0.125 to 0.8 * 0.25 = 0.2 is 0.075 BTC, above the band of 0.2 * 0.25 = 0.05 ...
    nudged = execution.execute(proposal(1.0, 0.6, t1), portfolio, make_bar(ts=t1), prices)
    assert nudged.outcome == "hold" and "rebalance band" in nudged.reason  # 0.025 < 0.05
    assert len(broker.orders) == 1
    exit_ = execution.execute(proposal(0.0, 0.0, t2), portfolio, make_bar(ts=t2), prices)
    assert exit_.outcome == "order" and portfolio.quantity("ETH/BTC") == 0.0


def test_scale_limits_new_exposure_but_never_forces_a_sale() -> None:
    execution, broker = engine()
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    vetoed = execution.execute(proposal_with(1.0, scale=0.0), portfolio, make_bar(), prices)
    assert vetoed.outcome == "hold" and broker.orders == []
    execution.execute(proposal_with(1.0, scale=0.5), portfolio, make_bar(), prices)
    assert portfolio.position_value("ETH/BTC", prices) == pytest.approx(0.125, rel=1e-3)
    t1 = T0 + timedelta(minutes=5)
    held = execution.execute(
        proposal_with(1.0, ts=t1, scale=0.0), portfolio, make_bar(ts=t1), prices
    )
    assert held.outcome == "hold" and portfolio.quantity("ETH/BTC") > 0  # veto: no new exposure


def test_sliced_rebalances_trade_one_slice_per_bar() -> None:
    from trading.domain import ExecutionAdvice

    execution, broker = engine(Sizing(headroom_fraction=0.0, min_order_notional=0.01))
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    advice = ExecutionAdvice(slices=4)
    for i in range(5):
        ts = T0 + timedelta(minutes=5 * i)
        execution.execute(
            proposal_with(1.0, ts=ts, execution=advice), portfolio, make_bar(ts=ts), prices
        )
    # Each slice is a quarter of a full position at that bar's equity (fees shave it a little).
    assert [o.quantity * 0.1 for o in broker.orders] == pytest.approx([0.0625] * 4, rel=3e-3)
    assert portfolio.position_value("ETH/BTC", prices) == pytest.approx(0.25, rel=3e-3)


def test_limit_orders_rest_one_bar_reserve_cash_and_fill_only_if_touched() -> None:
    from trading.domain import ExecutionAdvice

    execution, broker = engine()
    portfolio, prices = Portfolio("BTC", 1.0), {"ETH/BTC": 0.1}
    advice = ExecutionAdvice(order_type="limit", limit_offset_bps=50)
    report = execution.execute(proposal_with(1.0, execution=advice), portfolio, make_bar(), prices)
    assert report.order is not None and report.order.order_type == "limit"
    assert report.order_status == "resting" and report.fills == ()
    assert report.order.limit_price == pytest.approx(0.1 * (1 - 0.005))
    assert execution.reservations().cash > 0.0 and portfolio.cash == 1.0
    t1 = T0 + timedelta(minutes=5)
    with pytest.raises(RuntimeError, match="resting order"):
        execution.execute(proposal(1.0, ts=t1), portfolio, make_bar(ts=t1), prices)
    untouched = make_bar(ts=t1, close=0.1, spread=0.001)  # low 0.0999 > limit 0.0995
    settled = execution.settle(untouched, portfolio)
    assert settled is not None and settled.status == "unfilled" and "cancelled" in settled.reason
    assert execution.reservations().cash == 0.0
    t2 = T0 + timedelta(minutes=10)
    execution.execute(
        proposal_with(1.0, ts=t2, execution=advice), portfolio, make_bar(ts=t2), prices
    )
    t3 = T0 + timedelta(minutes=15)
    touched = make_bar(ts=t3, close=0.099, spread=0.01)  # low 0.098 < limit
    settled = execution.settle(touched, portfolio)
    assert settled is not None and settled.status == "filled"
    assert settled.fills[0].liquidity == "maker"
    assert settled.fills[0].price == pytest.approx(0.1 * (1 - 0.005))


def test_a_vanishing_scale_holds_instead_of_ordering_nothing() -> None:
    """Found by the session fuzz: scale 5e-324 made a quantity that underflows to 0."""
    execution, broker = engine()
    portfolio, prices = Portfolio("BTC", 4.0), {"ETH/BTC": 10.0}  # target 5e-324 BTC
    report = execution.execute(
        proposal_with(1.0, scale=5e-324), portfolio, make_bar(close=10.0), prices
    )
    assert report.outcome == "hold" and "too small" in report.reason
    assert broker.orders == []
