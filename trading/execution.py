"""Execution: turn a committee proposal into at most one order, through the risk gate.

Sizing is target-position based: the target notional is
``max(direction, 0) * confidence * scale * max_position_fraction * (1 - headroom) * equity``
(long-only spot: a bearish or quorum-less proposal targets flat; ``scale`` is the smallest
scale an agent asked for, e.g. the Risk agent's veto or the Execution agent's volatility
target, and it only ever limits new exposure: see ``target_notional``), and the order is the
difference from the current position. Differences below
``min_order_notional`` are not traded, except when the position has drifted above its limit,
which is always reduced in full. ``headroom`` keeps targets a little inside the hard limit so
ordinary price drift between bars does not immediately breach it.

The proposal's execution advice picks the order: ``slices`` > 1 caps each bar's order at
``max_position_fraction * equity / slices`` so a large rebalance is spread over bars; a
``limit`` order rests at the advised offset from the decision bar's close and is worked against
the symbol's *next* bar (``settle``): it fills as maker if that bar trades through the limit,
otherwise it is cancelled. Limit orders are day orders: ``cancel_resting`` at the UTC day's end,
so a daily trading run and a backtest treat them alike. While an order rests its cash, exposure
and quantity are reserved in the risk gate.

Every intent goes through ``RiskGate.evaluate``; a rejected intent never reaches the broker.
Client order ids are a hash of (symbol, ts, side, quantity), so re-running the same step yields
the same id and a store keyed on it never books the order twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trading.brokers.base import Broker
from trading.domain import Bar, Fill, Order, OrderIntent, Proposal, Side
from trading.portfolio import Portfolio
from trading.risk import Reservations, RiskDecision, RiskGate, RiskState

logger = logging.getLogger(__name__)

Outcome = Literal["order", "hold", "rejected"]
OrderStatus = Literal["filled", "partially_filled", "unfilled", "resting"]


class Sizing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_order_notional: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="smallest order worth trading, in quote"
    )
    headroom_fraction: float = Field(
        0.02, ge=0, lt=1, description="targets stay this share below max_position_fraction"
    )
    rebalance_band_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "rebalances smaller than this share of a full position (max_position_fraction * "
            "equity) are not traded, except exits to flat: confidence wobbling from bar to bar "
            "would otherwise pay fees on every bar"
        ),
    )


def client_order_id(symbol: str, ts: datetime, side: Side | str, quantity: float) -> str:
    """Deterministic id of an order: same (symbol, ts, side, quantity) -> same id."""
    key = f"{symbol}|{ts.isoformat()}|{Side(side).value}|{float(quantity)!r}"
    return "cs-" + hashlib.sha256(key.encode()).hexdigest()[:32]


class ExecutionReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    proposal: Proposal
    intent: OrderIntent | None
    decision: RiskDecision | None
    order: Order | None
    fills: tuple[Fill, ...]
    outcome: Outcome
    reason: str

    @property
    def filled_quantity(self) -> float:
        return sum(f.quantity for f in self.fills)

    @property
    def order_status(self) -> OrderStatus | None:
        if self.order is None:
            return None
        if self.order.order_type == "limit" and not self.fills:
            return "resting"
        return order_status(self.order, self.fills)


def order_status(order: Order, fills: tuple[Fill, ...] | list[Fill]) -> OrderStatus:
    """Final status of an order once its fills are known (the remainder is cancelled)."""
    filled = sum(f.quantity for f in fills)
    if filled <= 0:
        return "unfilled"
    return "filled" if filled >= order.quantity * (1 - 1e-12) else "partially_filled"


@dataclass(frozen=True)
class RestingOrder:
    """A limit order waiting for its symbol's next bar, with what it reserved."""

    order: Order
    reason: str
    reserved_cash: float
    reserved_value: float


@dataclass(frozen=True)
class SettledOrder:
    """A resting order's end: its fills against the next bar, or none when cancelled."""

    order: Order
    fills: tuple[Fill, ...]
    reason: str

    @property
    def status(self) -> OrderStatus:
        return order_status(self.order, self.fills)


class ExecutionEngine:
    def __init__(self, risk_gate: RiskGate, broker: Broker, sizing: Sizing | None = None) -> None:
        self.risk_gate = risk_gate
        self.broker = broker
        self.sizing = sizing or Sizing()
        self._resting: dict[str, RestingOrder] = {}

    @property
    def resting(self) -> Mapping[str, RestingOrder]:
        """Limit orders waiting for their symbol's next bar, by symbol."""
        return dict(self._resting)

    def reservations(self) -> Reservations:
        buys = [r for r in self._resting.values() if r.order.side is Side.BUY]
        return Reservations(
            cash=sum((r.reserved_cash for r in buys), 0.0),
            buy_value={r.order.symbol: r.reserved_value for r in buys},
            sell_quantity={
                r.order.symbol: r.order.quantity
                for r in self._resting.values()
                if r.order.side is Side.SELL
            },
        )

    def target_notional(self, proposal: Proposal, equity: float, current: float = 0.0) -> float:
        """The position the proposal asks for, in quote.

        ``scale`` limits new exposure but never forces a sale by itself: a scaled-down target
        below the current position holds the position (unless the unscaled target is lower
        still, i.e. the committee itself wants less). Otherwise a Risk agent scaling on gross
        exposure would sell, see the exposure fall, and buy back on the next bar.
        """
        if equity <= 0 or proposal.direction <= 0:
            return 0.0
        fraction = self.risk_gate.limits.max_position_fraction * (1 - self.sizing.headroom_fraction)
        wanted = proposal.direction * proposal.confidence * fraction * equity
        return max(wanted * proposal.scale, min(wanted, current))

    def settle(self, bar: Bar, portfolio: Portfolio) -> SettledOrder | None:
        """Work the symbol's resting limit order against ``bar`` (its next bar), then end it."""
        resting = self._resting.pop(bar.symbol, None)
        if resting is None:
            return None
        if self.risk_gate.state is RiskState.HALTED:
            return SettledOrder(
                order=resting.order,
                fills=(),
                reason=f"{resting.reason}; cancelled: {self.risk_gate.halt_reason}",
            )
        if bar.ts <= resting.order.ts:
            raise ValueError(
                f"resting order {resting.order.client_order_id} from {resting.order.ts} "
                f"cannot be worked against the bar at {bar.ts}"
            )
        fills = tuple(self.broker.submit(resting.order, bar))
        for fill in fills:
            portfolio.apply_fill(fill)
        reason = resting.reason if fills else f"{resting.reason}; limit not reached, cancelled"
        return SettledOrder(order=resting.order, fills=fills, reason=reason)

    def cancel_resting(self, reason: str) -> list[SettledOrder]:
        """Cancel every resting order (end of the UTC day or of the run)."""
        cancelled = [
            SettledOrder(order=r.order, fills=(), reason=f"{r.reason}; cancelled: {reason}")
            for _, r in sorted(self._resting.items())
        ]
        self._resting.clear()
        return cancelled

    def execute(
        self,
        proposal: Proposal,
        portfolio: Portfolio,
        bar: Bar,
        prices: Mapping[str, float],
    ) -> ExecutionReport:
        """Size, risk-check, submit and book (fills are applied to ``portfolio``).

        A limit order comes back with no fills and rests until ``settle`` with the next bar.
        """
        if proposal.symbol != bar.symbol or proposal.ts != bar.ts:
            raise ValueError(
                f"proposal {proposal.symbol}@{proposal.ts.isoformat()} does not match "
                f"bar {bar.symbol}@{bar.ts.isoformat()}"
            )
        symbol = proposal.symbol
        if symbol in self._resting:
            raise RuntimeError(
                f"{symbol} still has a resting order; settle it with this bar before deciding"
            )
        reference_price = bar.close
        mark = float(prices.get(symbol, reference_price))
        equity = portfolio.equity(prices)
        held = portfolio.quantity(symbol)
        current = held * mark
        target = self.target_notional(proposal, equity, current)
        max_position = self.risk_gate.limits.max_position_fraction * equity
        over_limit = current > max_position
        difference = target - current
        advice = proposal.execution

        def hold(reason: str) -> ExecutionReport:
            return ExecutionReport(
                proposal=proposal,
                intent=None,
                decision=None,
                order=None,
                fills=(),
                outcome="hold",
                reason=reason,
            )

        if difference == 0.0 or (held == 0.0 and difference <= 0.0):
            why = "no quorum" if not proposal.quorum_met else f"at target {target:.6g}"
            return hold(f"{why}; no position change")
        if abs(difference) < self.sizing.min_order_notional and not over_limit:
            return hold(
                f"rebalance {difference:+.6g} to target {target:.6g} is below "
                f"min_order_notional {self.sizing.min_order_notional}"
            )
        band = self.sizing.rebalance_band_fraction * max_position
        if abs(difference) < band and target > 0.0 and not over_limit:
            return hold(
                f"rebalance {difference:+.6g} to target {target:.6g} is inside the rebalance "
                f"band {band:.6g}"
            )

        side = Side.BUY if difference > 0 else Side.SELL
        step = abs(difference)
        sliced = ""
        if advice.slices > 1 and not over_limit:
            slice_notional = max_position / advice.slices
            if step > slice_notional:
                step = max(slice_notional, self.sizing.min_order_notional)
                sliced = f", slice of {advice.slices}"
        quantity = step / reference_price
        if side is Side.SELL and ((target == 0.0 and not sliced) or quantity > held):
            quantity = held
        if not quantity > 0.0:  # e.g. a vanishing scale: the difference underflows to nothing
            return hold(f"rebalance {difference:+.6g} is too small to express as a quantity")
        limit_price = None
        if advice.order_type == "limit" and not over_limit:
            offset = advice.limit_offset_bps / 1e4
            limit_price = reference_price * (1.0 - offset if side is Side.BUY else 1.0 + offset)
        intent = OrderIntent(
            symbol=symbol,
            ts=proposal.ts,
            side=side,
            quantity=quantity,
            reference_price=reference_price,
            reason=(
                f"target {target:.6g} from {current:.6g} {portfolio.quote} "
                f"(direction {proposal.direction:+.3f}, confidence {proposal.confidence:.3f}"
                f"{f', scale {proposal.scale:.3f}' if proposal.scale < 1.0 else ''}"
                f"{', over limit' if over_limit else ''}{sliced})"
            ),
        )
        decision = self.risk_gate.evaluate(
            intent, portfolio, prices, proposal.ts, self.reservations()
        )
        if not decision.approved or decision.intent is None:
            return ExecutionReport(
                proposal=proposal,
                intent=intent,
                decision=decision,
                order=None,
                fills=(),
                outcome="rejected",
                reason=decision.reason,
            )
        approved = decision.intent
        order = Order(
            client_order_id=client_order_id(
                approved.symbol, approved.ts, approved.side, approved.quantity
            ),
            symbol=approved.symbol,
            ts=approved.ts,
            side=approved.side,
            quantity=approved.quantity,
            order_type="market" if limit_price is None else "limit",
            limit_price=limit_price,
        )
        reason = f"{approved.reason}; risk: {decision.reason}"
        if limit_price is not None:
            cost = self.risk_gate.limits.cost_allowance
            value = approved.quantity * reference_price
            self._resting[symbol] = RestingOrder(
                order=order,
                reason=f"{reason}; limit {limit_price:.10g} rests one bar",
                reserved_cash=value * (1.0 + cost) if side is Side.BUY else 0.0,
                reserved_value=value if side is Side.BUY else 0.0,
            )
            fills: tuple[Fill, ...] = ()
        else:
            fills = tuple(self.broker.submit(order, bar))
            for fill in fills:
                portfolio.apply_fill(fill)
        logger.debug("order %s %s %s: %d fill(s)", order.client_order_id, side, symbol, len(fills))
        return ExecutionReport(
            proposal=proposal,
            intent=intent,
            decision=decision,
            order=order,
            fills=fills,
            outcome="order",
            reason=reason,
        )
