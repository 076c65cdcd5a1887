"""The risk gate: every order intent passes here before it can reach a broker.

Deterministic pre-trade checks against per-position, gross-exposure, per-order and daily-loss
limits, for a long-only spot account without margin. An intent that breaks a limit is scaled
down to the largest size that fits (the reason says which limit bound it) or rejected with a
clear reason. Limits are checked against equity *after* the order's worst-case execution cost
(``execution_cost_allowance_bps``), so fees and slippage cannot push a just-filled order over
a limit.

States: ACTIVE (all orders), REDUCING (daily loss past ``reducing_at_loss_fraction`` of the
limit: only exposure-reducing orders), HALTED (daily loss limit hit, sticky until the next
``start_day``; the drawdown from peak equity past ``max_drawdown_fraction``, sticky until
``reset_drawdown_halt``; or the kill switch, until ``reset_kill_switch``). HALTED stops every
order, reducing ones included: a halt means a human looks first.

Resting orders (limit orders waiting for the next bar) are passed in as ``Reservations``: their
cash, exposure and quantity count as already committed, so two orders cannot both spend the
same headroom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trading.domain import OrderIntent, Side, split_symbol
from trading.portfolio import Portfolio

logger = logging.getLogger(__name__)

_SCALE_MARGIN = 1.0 - 1e-9  # keep scaled orders a hair inside the limit despite rounding


class RiskLimits(BaseModel):
    """Fractions of current equity. Spot without margin, so exposure can never exceed 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_fraction: float = Field(0.25, gt=0, le=1)
    max_gross_exposure_fraction: float = Field(1.0, gt=0, le=1)
    max_order_fraction: float = Field(0.10, gt=0, le=1)
    max_daily_loss_fraction: float = Field(0.05, gt=0, le=0.5)
    reducing_at_loss_fraction: float = Field(
        0.5, gt=0, le=1, description="share of the daily loss limit at which REDUCING starts"
    )
    execution_cost_allowance_bps: float = Field(
        50.0, ge=0, le=1000, description="worst-case fee + slippage assumed when sizing"
    )
    max_drawdown_fraction: float | None = Field(
        0.25, gt=0, le=1, description="halt when equity falls this far below its peak (None: off)"
    )

    @model_validator(mode="after")
    def _check_consistent(self) -> RiskLimits:
        if self.max_position_fraction > self.max_gross_exposure_fraction:
            raise ValueError(
                f"max_position_fraction {self.max_position_fraction} exceeds "
                f"max_gross_exposure_fraction {self.max_gross_exposure_fraction}"
            )
        if self.max_order_fraction > self.max_gross_exposure_fraction:
            raise ValueError(
                f"max_order_fraction {self.max_order_fraction} exceeds "
                f"max_gross_exposure_fraction {self.max_gross_exposure_fraction}"
            )
        return self

    @property
    def cost_allowance(self) -> float:
        """Cost per unit of notional, compounded: the fee is charged on the slipped price, so
        slippage s plus fee f cost s + f + s*f <= a * (1 + a) when s + f <= a."""
        allowance = self.execution_cost_allowance_bps / 1e4
        return allowance * (1.0 + allowance)


class Reservations(BaseModel):
    """What resting orders have already committed: quote cash for buys (worst-case cost
    included), position value per symbol for buys, base quantity per symbol for sells."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cash: float = Field(0.0, ge=0, allow_inf_nan=False)
    buy_value: dict[str, float] = Field(default_factory=dict)
    sell_quantity: dict[str, float] = Field(default_factory=dict)

    @property
    def gross_buy_value(self) -> float:
        return sum(self.buy_value.values(), 0.0)


NO_RESERVATIONS = Reservations()


class RiskState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class RiskDecision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    approved: bool
    intent: OrderIntent | None
    reason: str
    state: RiskState

    @model_validator(mode="after")
    def _check_intent(self) -> RiskDecision:
        if self.approved != (self.intent is not None):
            raise ValueError("an approved decision carries an intent; a rejected one does not")
        return self


def check_limits(
    portfolio: Portfolio,
    prices: Mapping[str, float],
    limits: RiskLimits,
    *,
    tolerance: float = 1e-9,
) -> list[str]:
    """Every limit the portfolio state breaches at ``prices`` (empty list: none).

    ``tolerance`` is relative to equity and only absorbs floating-point rounding.
    """
    breaches: list[str] = []
    equity = portfolio.equity(prices)
    slack = tolerance * max(abs(equity), portfolio.initial_cash)
    if portfolio.cash < -slack:
        breaches.append(f"cash {portfolio.cash} is negative (no margin)")
    positions = portfolio.positions
    for symbol, position in positions.items():
        if position.quantity < 0:
            breaches.append(f"{symbol} quantity {position.quantity} is short (long-only spot)")
    open_symbols = [s for s, p in positions.items() if p.quantity != 0.0]
    if not open_symbols:
        return breaches
    if equity <= 0:
        breaches.append(f"equity {equity} <= 0 with open positions {open_symbols}")
        return breaches
    for symbol in open_symbols:
        value = abs(portfolio.position_value(symbol, prices))
        if value > limits.max_position_fraction * equity + slack:
            breaches.append(
                f"{symbol} position is {value / equity:.6f} of equity, above "
                f"max_position_fraction {limits.max_position_fraction}"
            )
    gross = portfolio.gross_exposure(prices)
    if gross > limits.max_gross_exposure_fraction * equity + slack:
        breaches.append(
            f"gross exposure is {gross / equity:.6f} of equity, above "
            f"max_gross_exposure_fraction {limits.max_gross_exposure_fraction}"
        )
    return breaches


class RiskGate:
    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._day: date | None = None
        self._day_start_equity: float | None = None
        self._halted_today: str | None = None
        self._drawdown_halt: str | None = None
        self._killed: str | None = None
        self._reduce_only: str | None = None
        self._peak_equity: float | None = None
        self._state = RiskState.ACTIVE

    @property
    def state(self) -> RiskState:
        halted = self._killed or self._halted_today or self._drawdown_halt
        if halted:
            return RiskState.HALTED
        return RiskState.REDUCING if self._reduce_only else self._state

    @property
    def halt_reason(self) -> str | None:
        """Why the gate is halted (kill switch first), or None when it is not."""
        return self._killed or self._drawdown_halt or self._halted_today

    @property
    def peak_equity(self) -> float | None:
        """The highest equity seen since the gate was created (or seeded by ``start_day``)."""
        return self._peak_equity

    @property
    def day(self) -> date | None:
        return self._day

    @property
    def day_start_equity(self) -> float | None:
        return self._day_start_equity

    def start_day(self, equity: float, day: date, *, peak_equity: float | None = None) -> None:
        """Open a trading day: the daily-loss baseline resets, a daily halt lifts.

        ``peak_equity`` seeds the drawdown baseline when a run resumes from stored history (the
        trading job passes the highest end-of-day equity so far). Calling it again for the
        current day is a no-op, so a resumed run keeps its baseline.
        """
        if isinstance(day, datetime):
            day = day.astimezone(UTC).date()
        if self._day is not None:
            if day == self._day:
                return
            if day < self._day:
                raise ValueError(f"start_day({day}) is before the current day {self._day}")
        if not equity > 0:
            raise ValueError(f"start-of-day equity must be > 0, got {equity}")
        self._day = day
        self._day_start_equity = float(equity)
        self._halted_today = None
        self._state = RiskState.ACTIVE
        self._peak_equity = max(float(equity), self._peak_equity or 0.0, float(peak_equity or 0.0))
        logger.info("risk day %s starts at equity %.10g", day, equity)

    def kill(self, reason: str = "kill switch engaged") -> None:
        """Stop all trading until ``reset_kill_switch``, whatever the day."""
        self._killed = reason
        logger.warning("risk gate killed: %s", reason)

    def reset_kill_switch(self) -> None:
        self._killed = None
        logger.warning("risk gate kill switch reset")

    def reduce_only(self, reason: str) -> None:
        """Allow only exposure-reducing orders until ``release_reduce_only``, whatever the day
        and the loss (a live run starts this way). A halt still overrides it."""
        self._reduce_only = reason
        logger.warning("risk gate reduce-only: %s", reason)

    def release_reduce_only(self) -> None:
        self._reduce_only = None
        logger.warning("risk gate reduce-only released")

    def reset_drawdown_halt(self, equity: float) -> None:
        """A human has looked: lift the drawdown halt and measure drawdowns from ``equity``."""
        self._drawdown_halt = None
        self._peak_equity = float(equity)
        logger.warning("risk gate drawdown halt reset; new peak %.10g", equity)

    def refresh(self, portfolio: Portfolio, prices: Mapping[str, float]) -> RiskState:
        """Re-derive the state from the current daily loss."""
        if self._day_start_equity is None:
            raise RuntimeError("RiskGate.start_day(equity, day) must be called before trading")
        equity = portfolio.equity(prices)
        self._peak_equity = max(self._peak_equity or equity, equity)
        max_drawdown = self.limits.max_drawdown_fraction
        if self._drawdown_halt is None and max_drawdown is not None:
            drawdown = 1.0 - equity / self._peak_equity
            if drawdown >= max_drawdown:
                self._drawdown_halt = (
                    f"drawdown {drawdown:.4%} from peak equity {self._peak_equity:.10g} reached "
                    f"max_drawdown_fraction {max_drawdown:.2%}: halted until reset"
                )
                logger.warning("risk gate halted: %s", self._drawdown_halt)
        if self._halted_today is None:
            limits = self.limits
            reducing_at = limits.reducing_at_loss_fraction * limits.max_daily_loss_fraction
            loss = (self._day_start_equity - equity) / self._day_start_equity
            if loss >= self.limits.max_daily_loss_fraction:
                self._halted_today = (
                    f"daily loss {loss:.4%} reached max_daily_loss_fraction "
                    f"{self.limits.max_daily_loss_fraction:.2%}: halted until the next day"
                )
                logger.warning("risk gate halted on %s: %s", self._day, self._halted_today)
            elif loss >= reducing_at:
                self._state = RiskState.REDUCING
            else:
                self._state = RiskState.ACTIVE
        return self.state

    def evaluate(
        self,
        intent: OrderIntent,
        portfolio: Portfolio,
        prices: Mapping[str, float],
        now: datetime,
        reserved: Reservations = NO_RESERVATIONS,
    ) -> RiskDecision:
        if self._day is None:
            raise RuntimeError("RiskGate.start_day(equity, day) must be called before evaluate")
        today = now.astimezone(UTC).date()
        if today != self._day:
            raise RuntimeError(
                f"evaluate at {now.isoformat()} but the risk day is {self._day}; "
                "call start_day for the new day first"
            )
        state = self.refresh(portfolio, prices)
        if state is RiskState.HALTED:
            return self._reject(f"halted: {self.halt_reason}")
        equity = portfolio.equity(prices)
        if not equity > 0:
            return self._reject(f"equity {equity} <= 0")
        if intent.side is Side.SELL:
            return self._evaluate_sell(intent, portfolio, equity, reserved)
        if state is RiskState.REDUCING:
            return self._reject(
                "reducing: daily loss past "
                f"{self.limits.reducing_at_loss_fraction:.0%} of the limit, only sells allowed"
            )
        return self._evaluate_buy(intent, portfolio, prices, equity, reserved)

    def _order_cap(self, intent: OrderIntent, equity: float) -> float:
        o, a = self.limits.max_order_fraction, self.limits.cost_allowance
        return o * equity / (intent.reference_price * (1.0 + o * a))

    def _evaluate_sell(
        self, intent: OrderIntent, portfolio: Portfolio, equity: float, reserved: Reservations
    ) -> RiskDecision:
        base, _ = split_symbol(intent.symbol)
        held = portfolio.quantity(intent.symbol) - reserved.sell_quantity.get(intent.symbol, 0.0)
        if held <= 0:
            return self._reject(f"long-only spot: no {base} held to sell")
        caps = {
            "held quantity (long-only spot)": held,
            # A sell's fee comes out of its proceeds and adds no exposure, so unlike a buy its
            # cap carries no cost allowance (an all-in position closes in one order).
            "max_order_fraction": self.limits.max_order_fraction * equity / intent.reference_price,
        }
        return self._fit(intent, caps)

    def _evaluate_buy(
        self,
        intent: OrderIntent,
        portfolio: Portfolio,
        prices: Mapping[str, float],
        equity: float,
        reserved: Reservations,
    ) -> RiskDecision:
        limits, a = self.limits, self.limits.cost_allowance
        ref = intent.reference_price
        mark = float(prices.get(intent.symbol, ref))
        f, g = limits.max_position_fraction, limits.max_gross_exposure_fraction
        # Resting orders will pay their costs too: size against the equity left after them
        # (a resting sell's fee lowers equity and so lifts this position's share).
        equity -= max(0.0, reserved.cash - reserved.gross_buy_value)
        equity -= a * sum(
            quantity * float(prices.get(symbol, 0.0))
            for symbol, quantity in reserved.sell_quantity.items()
        )
        position_value = portfolio.quantity(intent.symbol) * mark
        position_value += reserved.buy_value.get(intent.symbol, 0.0)
        gross = portfolio.gross_exposure(prices) + reserved.gross_buy_value
        caps = {
            "max_order_fraction": self._order_cap(intent, equity),
            "max_position_fraction": (f * equity - position_value) / (mark + f * a * ref),
            "max_gross_exposure_fraction": (g * equity - gross) / (mark + g * a * ref),
            "available cash": (portfolio.cash - reserved.cash) / (ref * (1.0 + a)),
        }
        others = [
            portfolio.position_value(symbol, prices) + reserved.buy_value.get(symbol, 0.0)
            for symbol in {*portfolio.positions, *reserved.buy_value} - {intent.symbol}
        ]
        largest_other = max(others, default=0.0)
        if a > 0.0 and largest_other > 0.0:
            # The buy's costs lower equity, which raises every other position's share of it.
            caps["max_position_fraction (other positions)"] = (equity - largest_other / f) / (
                ref * a
            )
        return self._fit(intent, caps)

    def _fit(self, intent: OrderIntent, caps: Mapping[str, float]) -> RiskDecision:
        binding = min(caps, key=lambda name: caps[name])
        allowed = caps[binding]
        if allowed * intent.reference_price <= 1e-12:
            return self._reject(f"{intent.side} {intent.symbol} rejected: {binding} leaves no room")
        if intent.quantity <= allowed:
            return RiskDecision(
                approved=True, intent=intent, reason="within limits", state=self.state
            )
        quantity = allowed if binding.startswith("held") else allowed * _SCALE_MARGIN
        scaled = intent.model_copy(
            update={
                "quantity": quantity,
                "reason": f"{intent.reason}; scaled from {intent.quantity:.10g} by {binding}",
            }
        )
        return RiskDecision(
            approved=True,
            intent=OrderIntent.model_validate(scaled.model_dump()),
            reason=f"scaled down from {intent.quantity:.10g} to {quantity:.10g} to fit {binding}",
            state=self.state,
        )

    def _reject(self, reason: str) -> RiskDecision:
        logger.info("risk gate rejected an intent: %s", reason)
        return RiskDecision(approved=False, intent=None, reason=reason, state=self.state)
