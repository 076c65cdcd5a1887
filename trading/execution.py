"""Execution: turn a committee proposal into at most one order, through the risk gate.

Sizing is target-position based: the target notional is
``max(direction, 0) * confidence * max_position_fraction * (1 - headroom) * equity``
(long-only spot: a bearish or quorum-less proposal targets flat), and the order is the
difference from the current position. Differences below ``min_order_notional`` are not traded,
except when the position has drifted above its limit, which is always reduced. ``headroom``
keeps targets a little inside the hard limit so ordinary price drift between bars does not
immediately breach it.

Every intent goes through ``RiskGate.evaluate``; a rejected intent never reaches the broker.
Client order ids are a hash of (symbol, ts, side, quantity), so re-running the same step yields
the same id and a store keyed on it never books the order twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trading.brokers.base import Broker
from trading.domain import Bar, Fill, Order, OrderIntent, Proposal, Side
from trading.portfolio import Portfolio
from trading.risk import RiskDecision, RiskGate

logger = logging.getLogger(__name__)

Outcome = Literal["order", "hold", "rejected"]
OrderStatus = Literal["filled", "partially_filled", "unfilled"]


class Sizing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_order_notional: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="smallest order worth trading, in quote"
    )
    headroom_fraction: float = Field(
        0.02, ge=0, lt=1, description="targets stay this share below max_position_fraction"
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
        filled = self.filled_quantity
        if filled <= 0:
            return "unfilled"
        return "filled" if filled >= self.order.quantity * (1 - 1e-12) else "partially_filled"


class ExecutionEngine:
    def __init__(self, risk_gate: RiskGate, broker: Broker, sizing: Sizing | None = None) -> None:
        self.risk_gate = risk_gate
        self.broker = broker
        self.sizing = sizing or Sizing()

    def target_notional(self, proposal: Proposal, equity: float) -> float:
        if equity <= 0 or proposal.direction <= 0:
            return 0.0
        fraction = self.risk_gate.limits.max_position_fraction * (1 - self.sizing.headroom_fraction)
        return proposal.direction * proposal.confidence * fraction * equity

    def execute(
        self,
        proposal: Proposal,
        portfolio: Portfolio,
        bar: Bar,
        prices: Mapping[str, float],
    ) -> ExecutionReport:
        """Size, risk-check, submit and book (fills are applied to ``portfolio``)."""
        if proposal.symbol != bar.symbol or proposal.ts != bar.ts:
            raise ValueError(
                f"proposal {proposal.symbol}@{proposal.ts.isoformat()} does not match "
                f"bar {bar.symbol}@{bar.ts.isoformat()}"
            )
        symbol = proposal.symbol
        reference_price = bar.close
        mark = float(prices.get(symbol, reference_price))
        equity = portfolio.equity(prices)
        held = portfolio.quantity(symbol)
        current = held * mark
        target = self.target_notional(proposal, equity)
        over_limit = current > self.risk_gate.limits.max_position_fraction * equity
        difference = target - current

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

        side = Side.BUY if difference > 0 else Side.SELL
        quantity = abs(difference) / reference_price
        if side is Side.SELL and (target == 0.0 or quantity > held):
            quantity = held
        intent = OrderIntent(
            symbol=symbol,
            ts=proposal.ts,
            side=side,
            quantity=quantity,
            reference_price=reference_price,
            reason=(
                f"target {target:.6g} from {current:.6g} {portfolio.quote} "
                f"(direction {proposal.direction:+.3f}, confidence {proposal.confidence:.3f}"
                f"{', over limit' if over_limit else ''})"
            ),
        )
        decision = self.risk_gate.evaluate(intent, portfolio, prices, proposal.ts)
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
            order_type="market",
        )
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
            reason=f"{approved.reason}; risk: {decision.reason}",
        )
