"""A trading session: the one path from snapshots to decisions, orders, fills and PnL.

The Dagster trading job runs one day of snapshots through it; a backtest runs months. Steps go
in timestamp order, all symbols of a timestamp together (symbol order within it), so the
outcome depends only on the inputs. At each UTC day boundary the risk gate opens a new day at
the equity carried over from the previous bar.

Timing convention: a snapshot at ``ts`` carries the bar that opened at ``ts`` and features that
include its close; a market order fills against that same bar's close (the decision is taken the
moment the bar closes). A limit order rests and is worked against the symbol's next bar, before
the committee decides on that bar; resting orders are cancelled at the end of each UTC day.
Nothing from a later bar is ever visible to a step.

Before the committee votes, the snapshot gets an ``AccountView`` of the portfolio marked at the
same close (equity, drawdown from peak, exposure, this symbol's position, risk state), which is
what the Risk and Execution agents size and veto with.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from trading.committee import Committee
from trading.domain import AccountView, Fill, MarketSnapshot, Order, Vote
from trading.execution import ExecutionEngine, OrderStatus, Outcome, SettledOrder
from trading.memory.book import MemoryBook
from trading.portfolio import Portfolio
from trading.risk import RiskGate, RiskState

logger = logging.getLogger(__name__)

StepHook = Callable[[datetime, Portfolio, Mapping[str, float]], None]
"""Called after every timestamp (all its symbols) with the portfolio and current prices."""


class DecisionRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    ts: datetime
    direction: float
    confidence: float
    regime: str | None
    votes: tuple[Vote, ...]
    outcome: Outcome
    reason: str
    risk_state: RiskState
    decided_under: RiskState = RiskState.ACTIVE
    memory_scale: float | None = None

    def as_row(self) -> dict[str, Any]:
        """Shaped like trading.decisions (votes as JSON-ready dicts)."""
        return {
            "symbol": self.symbol,
            "ts": self.ts,
            "partition_date": self.ts.date(),
            "direction": self.direction,
            "confidence": self.confidence,
            "regime": self.regime,
            "votes": [vote.model_dump(mode="json") for vote in self.votes],
            "outcome": self.outcome,
            "reason": self.reason,
            "decided_under": self.decided_under.value,
            "memory_scale": self.memory_scale,
        }


class OrderRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order: Order
    status: OrderStatus
    reason: str

    def as_row(self) -> dict[str, Any]:
        """Shaped like trading.orders."""
        order = self.order
        return {
            "client_order_id": order.client_order_id,
            "partition_date": order.ts.date(),
            "ts": order.ts,
            "symbol": order.symbol,
            "side": order.side.value,
            "quantity": order.quantity,
            "order_type": order.order_type,
            "limit_price": order.limit_price,
            "status": self.status,
            "reason": self.reason,
        }


def fill_row(fill: Fill) -> dict[str, Any]:
    """Shaped like trading.fills."""
    return {
        "fill_id": fill.fill_id,
        "client_order_id": fill.client_order_id,
        "partition_date": fill.ts.date(),
        "ts": fill.ts,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "liquidity": fill.liquidity,
    }


@dataclass(frozen=True)
class PastDecision:
    """A stored decision to replay into the committee's learners (see ``TradingSession.replay``);
    ``snapshot`` needs the bar and regime it was made on; the memory also needs its features
    (the state it remembers) and the risk state it was decided under."""

    snapshot: MarketSnapshot
    votes: tuple[Vote, ...]
    direction: float
    confidence: float
    decided_under: str = "active"


@dataclass(frozen=True)
class SessionResult:
    """Everything a run produced; ``positions``/``pnl`` are the final day's end state."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    daily_positions: list[dict[str, Any]] = field(default_factory=list)
    daily_pnl: list[dict[str, Any]] = field(default_factory=list)

    @property
    def positions(self) -> list[dict[str, Any]]:
        """trading.positions rows of the last day."""
        if not self.daily_pnl:
            return []
        last = self.daily_pnl[-1]["partition_date"]
        return [row for row in self.daily_positions if row["partition_date"] == last]

    @property
    def pnl(self) -> dict[str, Any] | None:
        """The trading.pnl row of the last day."""
        return self.daily_pnl[-1] if self.daily_pnl else None

    def decision_rows(self) -> list[dict[str, Any]]:
        return [d.as_row() for d in self.decisions]

    def order_rows(self) -> list[dict[str, Any]]:
        return [o.as_row() for o in self.orders]

    def fill_rows(self) -> list[dict[str, Any]]:
        return [fill_row(f) for f in self.fills]


class TradingSession:
    """``memory`` (optional) proposes every decision to the quorum-governed memory once its
    outcome is known, and lowers a proposal's scale when remembered similar states argue
    against it (see ``trading.memory.book``)."""

    def __init__(
        self,
        committee: Committee,
        execution: ExecutionEngine,
        portfolio: Portfolio,
        memory: MemoryBook | None = None,
    ) -> None:
        self.committee = committee
        self.execution = execution
        self.portfolio = portfolio
        self.memory = memory
        self.prices: dict[str, float] = {}

    @property
    def risk_gate(self) -> RiskGate:
        return self.execution.risk_gate

    def replay(self, history: Iterable[PastDecision]) -> int:
        """Rebuild the committee's learned state from earlier decisions, in (ts, symbol) order.

        Call it before ``run`` when resuming an account; returns how many were replayed.
        """
        count = 0
        memory = self.memory
        for past in sorted(history, key=lambda p: (p.snapshot.ts, p.snapshot.symbol)):
            self.committee.replay(past.snapshot, past.votes, past.direction, past.confidence)
            if memory is not None:
                memory.seed(
                    past.snapshot, past.direction, past.confidence, past.votes, past.decided_under
                )
            count += 1
        return count

    def run(
        self,
        snapshots: Iterable[MarketSnapshot],
        *,
        on_step: StepHook | None = None,
        peak_equity: float | None = None,
    ) -> SessionResult:
        """Step through ``snapshots``; ``peak_equity`` seeds the drawdown baseline when the run
        resumes an account (the trading job passes the best end-of-day equity so far)."""
        ordered = sorted(snapshots, key=lambda s: (s.ts, s.symbol))
        for previous, current in itertools.pairwise(ordered):
            if (previous.ts, previous.symbol) == (current.ts, current.symbol):
                raise ValueError(
                    f"two snapshots for {current.symbol}@{current.ts.isoformat()}; expected one"
                )
        result = SessionResult()
        gate = self.execution.risk_gate
        day: date | None = None
        last_ts: datetime | None = None
        for ts, group_iter in itertools.groupby(ordered, key=lambda s: s.ts):
            group = list(group_iter)
            if ts.date() != day:
                if day is not None and last_ts is not None:
                    self._close_day(result, day, last_ts)
                day = ts.date()
                gate.start_day(self.portfolio.equity(self.prices), day, peak_equity=peak_equity)
            for snapshot in group:
                self.prices[snapshot.symbol] = snapshot.bar.close
            for snapshot in group:
                settled = self.execution.settle(snapshot.bar, self.portfolio)
                if settled is not None:
                    self._record_settled(settled, result)
            self.portfolio.mark(self.prices)
            gate.refresh(self.portfolio, self.prices)
            if self.memory is not None:
                # Every symbol's outcomes of this bar are committed before any of them decides.
                self.memory.mature(group)
            for snapshot in group:
                self._step(snapshot, result)
            if on_step is not None:
                on_step(ts, self.portfolio, dict(self.prices))
            last_ts = ts
        if day is not None and last_ts is not None:
            self._close_day(result, day, last_ts)
        logger.info(
            "session: %d decisions, %d orders, %d fills",
            len(result.decisions),
            len(result.orders),
            len(result.fills),
        )
        return result

    def account_view(self, symbol: str) -> AccountView | None:
        """The portfolio as agents see it now (None while equity is not positive)."""
        gate = self.execution.risk_gate
        equity = self.portfolio.equity(self.prices)
        if not equity > 0:
            return None
        peak = max(gate.peak_equity or equity, equity)
        start = gate.day_start_equity or equity
        return AccountView(
            equity=equity,
            peak_equity=peak,
            drawdown=min(1.0, max(0.0, 1.0 - equity / peak)),
            daily_loss=(start - equity) / start,
            gross_exposure=self.portfolio.gross_exposure(self.prices) / equity,
            position=max(0.0, self.portfolio.position_value(symbol, self.prices) / equity),
            max_position=gate.limits.max_position_fraction,
            risk_state=gate.state.value,
        )

    def _record_settled(self, settled: SettledOrder, result: SessionResult) -> None:
        result.orders.append(
            OrderRecord(order=settled.order, status=settled.status, reason=settled.reason)
        )
        result.fills.extend(settled.fills)

    def _step(self, snapshot: MarketSnapshot, result: SessionResult) -> None:
        snapshot = snapshot.model_copy(update={"account": self.account_view(snapshot.symbol)})
        proposal = self.committee.decide(snapshot)
        decided_under = self.execution.risk_gate.state
        memory_scale = None
        if self.memory is not None:
            proposal, evidence = self.memory.advise(snapshot, proposal)
            memory_scale = evidence.scale
            self.memory.remember(snapshot, proposal, decided_under.value)
        report = self.execution.execute(proposal, self.portfolio, snapshot.bar, self.prices)
        result.decisions.append(
            DecisionRecord(
                symbol=snapshot.symbol,
                ts=snapshot.ts,
                direction=proposal.direction,
                confidence=proposal.confidence,
                regime=snapshot.regime,
                votes=proposal.votes,
                outcome=report.outcome,
                reason=report.reason,
                risk_state=self.execution.risk_gate.state,
                decided_under=decided_under,
                memory_scale=memory_scale,
            )
        )
        if report.order_status not in (None, "resting"):
            assert report.order is not None and report.order_status is not None
            result.orders.append(
                OrderRecord(order=report.order, status=report.order_status, reason=report.reason)
            )
        result.fills.extend(report.fills)

    def _close_day(self, result: SessionResult, day: date, last_ts: datetime) -> None:
        for settled in self.execution.cancel_resting(
            f"day {day} ended (limit orders are day orders)"
        ):
            self._record_settled(settled, result)
        if self.memory is not None:
            self.memory.close_day(last_ts)
        snapshot = self.portfolio.snapshot(self.prices)
        for row in snapshot["positions"]:
            result.daily_positions.append({"partition_date": day, **row})
        result.daily_pnl.append(
            {
                "partition_date": day,
                "cash": snapshot["cash"],
                "equity": snapshot["equity"],
                "realized_pnl": snapshot["realized_pnl"],
                "unrealized_pnl": snapshot["unrealized_pnl"],
                "fees": snapshot["fees"],
                "gross_exposure": snapshot["gross_exposure"],
                "net_exposure": snapshot["net_exposure"],
                "risk_state": self.execution.risk_gate.state.value,
                "peak_equity": self.execution.risk_gate.peak_equity,
            }
        )
