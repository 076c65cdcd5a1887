"""Safety fuzz: random votes, prices, fills and config never produce an order that breaks a limit.

Hypothesis draws everything the trading core can be handed within its types: risk limits (any
valid combination), fees and slippage within the risk gate's cost allowance, a starting
portfolio built from a random valid fill history (which may already sit outside the limits),
random bars over several symbols and UTC days, random proposals (direction, confidence, scale,
market or limit orders, slices) or random agents' votes, the kill switch and halt resets. The
real ``ExecutionEngine``, ``RiskGate``, ``PaperBroker`` and ``TradingSession`` then run it.

The invariant, and why it is not simply "``check_limits`` is always empty":

* Limits are judged when an order is decided, at the prices it is decided at (the decision
  bar's closes, ``prices``). A position that was inside its limit can drift outside it when the
  next bar moves, and a random starting portfolio can be outside from the start; neither is an
  order breaking a limit. So each order is checked by what it changes: **no order creates a
  limit breach** that was not there before it, valued at its decision prices.
* A limit order is decided at bar t but fills at bar t+1, at its limit price. Its risk is
  committed at t (the gate reserves its cash, exposure and quantity), so it is judged at t as
  if it had filled there, in full, at its limit price with the maker fee: "the state" below is
  always the portfolio *plus every resting order filled that way*. This makes the reservations
  honest too: two orders cannot spend the same headroom, since the second is judged with the
  first already counted.
* A sell only reduces exposure; its fee and slippage lower equity a little, which can lift
  another position's share of equity. Sells are therefore held to the long-only rules (never
  more than held, never a short, never overdrawn cash) and to not raising gross exposure.

Around that: no order is placed while the gate is HALTED (kill switch included), only sells in
REDUCING, cash is never negative, and every order carried an approving risk decision whose
intent it matches. With no price drift and a starting portfolio inside its limits,
``check_limits`` must stay empty after every step.

Runs are reproducible (``derandomize=True``) and sized to finish in well under a minute.
The bugs this fuzz found (costs of a buy lifting other positions over their limit, resting
buys' costs not counted, resting orders filling after a halt, replay order of maker and taker
fills) are fixed and pinned by the regression tests at the end of the file.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trading.agents.base import Agent
from trading.brokers.paper import PaperBroker
from trading.committee import Committee
from trading.domain import (
    Bar,
    ExecutionAdvice,
    Fill,
    MarketSnapshot,
    Proposal,
    Side,
    Vote,
)
from trading.execution import ExecutionEngine, ExecutionReport, Sizing
from trading.portfolio import AccountingError, Portfolio
from trading.risk import RiskGate, RiskLimits, RiskState, check_limits
from trading.session import TradingSession

SYMBOLS = ("ETH/BTC", "LTC/BTC", "XMR/BTC")
START = datetime(2018, 1, 10, 20, 0, tzinfo=UTC)
TOLERANCE = 1e-9
FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

unit = st.floats(0.0, 1.0, allow_nan=False)


# --------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------


@st.composite
def risk_limits(draw: st.DrawFn) -> RiskLimits:
    """Any valid RiskLimits: position and order fractions never above the gross fraction."""
    gross = draw(st.one_of(st.just(1.0), st.floats(0.02, 1.0)))
    return RiskLimits(
        max_gross_exposure_fraction=gross,
        max_position_fraction=draw(st.one_of(st.just(gross), st.floats(0.01, gross))),
        max_order_fraction=draw(st.one_of(st.just(gross), st.floats(0.005, gross))),
        max_daily_loss_fraction=draw(st.floats(0.002, 0.5)),
        reducing_at_loss_fraction=draw(st.one_of(st.just(1.0), st.floats(0.05, 1.0))),
        execution_cost_allowance_bps=draw(st.one_of(st.just(0.0), st.floats(0.0, 300.0))),
        max_drawdown_fraction=draw(st.one_of(st.none(), st.floats(0.01, 1.0))),
    )


@st.composite
def brokers(draw: st.DrawFn, limits: RiskLimits) -> PaperBroker:
    """A paper broker whose fee + slippage (and maker fee) fit the gate's cost allowance."""
    allowance = limits.execution_cost_allowance_bps
    fee = draw(st.one_of(st.just(allowance), st.floats(0.0, allowance)))
    slippage = draw(st.floats(0.0, max(0.0, allowance - fee)))
    maker = draw(st.one_of(st.none(), st.floats(0.0, allowance)))
    participation = draw(st.one_of(st.none(), st.floats(0.001, 1.0)))
    return PaperBroker(fee, slippage, participation, maker_fee_bps=maker)


@st.composite
def sizings(draw: st.DrawFn, initial_cash: float) -> Sizing:
    return Sizing(
        min_order_notional=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.05))) * initial_cash,
        headroom_fraction=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5))),
        rebalance_band_fraction=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5))),
    )


prices_strategy = st.floats(-4.0, 4.0).map(lambda exponent: 10.0**exponent)


@st.composite
def fill_histories(draw: st.DrawFn, initial_cash: float) -> tuple[list[Fill], dict[str, float]]:
    """A random valid fill history (buys within cash, sells within holdings) and last prices."""
    cash, held = initial_cash, dict.fromkeys(SYMBOLS, 0.0)
    price = {s: draw(prices_strategy) for s in SYMBOLS}
    fills: list[Fill] = []
    ts = START - timedelta(days=3)
    for i in range(draw(st.integers(0, 8))):
        symbol = draw(st.sampled_from(SYMBOLS))
        price[symbol] *= math.exp(draw(st.floats(-0.5, 0.5)))
        side = draw(st.sampled_from(Side))
        fraction = draw(st.floats(0.01, 1.0))
        fee_rate = draw(st.floats(0.0, 0.01))
        if side is Side.BUY:
            quantity = fraction * cash / (price[symbol] * (1 + fee_rate)) * (1 - 1e-9)
        else:
            quantity = fraction * held[symbol]
        if not quantity > 0:
            continue
        notional = quantity * price[symbol]
        fee = notional * fee_rate
        fills.append(
            Fill(
                fill_id=f"history-{i}",
                client_order_id=f"history-{i}",
                symbol=symbol,
                ts=ts + timedelta(minutes=i),
                side=side,
                quantity=quantity,
                price=price[symbol],
                fee=fee,
                liquidity="taker",
            )
        )
        if side is Side.BUY:
            cash, held[symbol] = cash - notional - fee, held[symbol] + quantity
        else:
            cash, held[symbol] = cash + notional - fee, held[symbol] - quantity
    return fills, price


MARKET = ExecutionAdvice()
AT_THE_CLOSE = ExecutionAdvice(order_type="limit", limit_offset_bps=0.0)
advice_strategy = st.one_of(
    st.just(ExecutionAdvice()),
    st.builds(ExecutionAdvice, slices=st.integers(1, 10)),
    st.builds(
        ExecutionAdvice,
        order_type=st.just("limit"),
        limit_offset_bps=st.floats(0.0, 300.0),
        slices=st.integers(1, 10),
    ),
)


@st.composite
def proposals(draw: st.DrawFn, symbol: str, ts: datetime) -> Proposal:
    if draw(st.integers(0, 3)) == 0:  # the boundary case: all in, in one order
        return Proposal(
            symbol=symbol,
            ts=ts,
            direction=1.0,
            confidence=1.0,
            votes=(),
            quorum_met=True,
            execution=draw(st.sampled_from([MARKET, AT_THE_CLOSE])),
        )
    direction = draw(st.one_of(st.just(0.0), st.just(1.0), st.just(-1.0), st.floats(-1.0, 1.0)))
    quorum = True if direction != 0.0 else draw(st.booleans())
    return Proposal(
        symbol=symbol,
        ts=ts,
        direction=direction,
        confidence=draw(st.one_of(st.just(1.0), unit)) if quorum else 0.0,
        votes=(),
        quorum_met=quorum,
        scale=draw(st.one_of(st.just(1.0), unit)),
        execution=draw(advice_strategy),
    )


@st.composite
def bars(draw: st.DrawFn, symbol: str, ts: datetime, previous: float, drift: bool) -> Bar:
    close = previous * math.exp(draw(st.floats(-0.4, 0.4))) if drift else previous
    open_ = close * math.exp(draw(st.floats(-0.05, 0.05))) if drift else close
    high = max(open_, close) * (1 + draw(st.floats(0.0, 0.05)))
    low = min(open_, close) * (1 - draw(st.floats(0.0, 0.05)))
    volume = draw(st.sampled_from([0.0, 1e-3, 1.0, 1e12]))
    return Bar(symbol=symbol, ts=ts, open=open_, high=high, low=low, close=close, volume=volume)


gaps = st.sampled_from(
    [timedelta(minutes=5), timedelta(hours=1), timedelta(hours=7), timedelta(days=1)]
)
events = st.sampled_from(["none"] * 12 + ["kill", "reset_kill", "reset_drawdown"])


# --------------------------------------------------------------------------------------------
# the per-order invariant
# --------------------------------------------------------------------------------------------


def breach_keys(portfolio: Portfolio, prices: Mapping[str, float], limits: RiskLimits) -> set[str]:
    """Which limits ``check_limits`` finds broken: 'ETH/BTC position', 'gross', 'cash', ..."""
    keys = set()
    for message in check_limits(portfolio, prices, limits, tolerance=TOLERANCE):
        words = message.split()
        keys.add(f"{words[0]} {words[1]}" if "/" in words[0] else words[0])
    return keys


def fill_costs(fills: tuple[Fill, ...], bar: Bar) -> float:
    """What fills cost beyond the bar's close: fees plus the price difference, either way."""
    return sum((f.fee + f.quantity * abs(f.price - bar.close) for f in fills), 0.0)


def committed(engine: ExecutionEngine, portfolio: Portfolio) -> Portfolio:
    """A copy of ``portfolio`` with every resting order filled in full at its limit price
    (maker fee): what the account has committed to, as the risk gate must see it."""
    state = copy.deepcopy(portfolio)
    maker_bps = getattr(engine.broker, "maker_fee_bps", 0.0)
    for symbol, resting in sorted(engine.resting.items()):
        order = resting.order
        assert order.limit_price is not None
        quantity = order.quantity
        if order.side is Side.SELL:
            quantity = min(quantity, state.quantity(symbol))
        if quantity <= 0:
            continue
        committed_fill = Fill(
            fill_id=f"committed-{order.client_order_id}",
            client_order_id=order.client_order_id,
            symbol=symbol,
            ts=order.ts,
            side=order.side,
            quantity=quantity,
            price=order.limit_price,
            fee=quantity * order.limit_price * maker_bps / 1e4,
            liquidity="maker",
        )
        try:
            state.apply_fill(committed_fill)
        except AccountingError as exc:
            pytest.fail(f"resting orders commit more than the account holds: {exc}")
    return state


@dataclass
class Ledger:
    """What the checks saw: every order's side and the risk state it was decided in."""

    orders: list[tuple[str, datetime, Side, RiskState]] = field(default_factory=list)
    decisions: int = 0
    created: dict[datetime, set[str]] = field(default_factory=dict)
    """Breaches an order was allowed to create, by decision time (see ``checked_execute``)."""
    costs: float = 0.0
    """Fees plus slippage against the decision bar's close, summed over every fill."""
    sell_costs: float = 0.0
    """The same, over sells only: a sale's fee lowers equity and lifts every other position's
    share, and a sale is never refused for that (it reduces risk)."""


def checked_execute(
    engine: ExecutionEngine,
    proposal: Proposal,
    portfolio: Portfolio,
    bar: Bar,
    prices: Mapping[str, float],
    *,
    killed: bool,
    ledger: Ledger,
    execute: Callable[..., ExecutionReport] | None = None,
) -> ExecutionReport:
    """Run one ``execute`` and assert that its order broke nothing (see the module docstring)."""
    limits = engine.risk_gate.limits
    symbol = proposal.symbol
    held = portfolio.quantity(symbol)
    equity = portfolio.equity(prices)
    before_state = committed(engine, portfolio)
    before = breach_keys(before_state, prices, limits)
    before_gross = before_state.gross_exposure(prices)

    report = (execute or engine.execute)(proposal, portfolio, bar, prices)
    ledger.decisions += 1
    ledger.costs += fill_costs(report.fills, bar)
    ledger.sell_costs += fill_costs(tuple(f for f in report.fills if f.side is Side.SELL), bar)

    after_state = committed(engine, portfolio)
    after = breach_keys(after_state, prices, limits)
    assert portfolio.cash >= 0.0, f"cash went negative: {portfolio.cash}"
    assert all(p.quantity >= 0 for p in portfolio.positions.values()), "a short was booked"
    assert not {k for k in after if k == "cash" or k.endswith(" quantity")} - before, (
        f"committed state overdraws or shorts: {after - before}"
    )
    if report.outcome != "order":
        assert report.order is None and report.fills == ()
        if report.outcome == "rejected":
            assert report.decision is not None and not report.decision.approved
        return report

    decision, order = report.decision, report.order
    assert decision is not None and decision.approved and decision.intent is not None, (
        "an order reached the broker without an approving risk decision"
    )
    assert order is not None
    assert (order.symbol, order.ts, order.side) == (
        decision.intent.symbol,
        decision.intent.ts,
        decision.intent.side,
    )
    assert order.quantity == decision.intent.quantity, "the order is not the approved intent"
    assert not killed, "an order was placed with the kill switch engaged"
    assert decision.state is not RiskState.HALTED, f"an order was placed while halted: {order}"
    if decision.state is RiskState.REDUCING:
        assert order.side is Side.SELL, f"a buy was placed while REDUCING: {order}"
    assert all(f.ts == bar.ts and f.client_order_id == order.client_order_id for f in report.fills)
    ledger.orders.append((symbol, proposal.ts, order.side, decision.state))

    if order.side is Side.SELL:
        assert order.quantity <= held * (1 + 1e-12), f"sold {order.quantity} of {held} held"
        assert after_state.gross_exposure(prices) <= before_gross * (1 + 1e-12) + 1e-300
        # its fee and slippage may lift another position's share: recorded, not a breach by it
        ledger.created.setdefault(proposal.ts, set()).update(after - before)
        return report

    notional = order.quantity * bar.close
    assert notional <= limits.max_order_fraction * equity * (1 + TOLERANCE), (
        f"buy of {notional} exceeds max_order_fraction {limits.max_order_fraction} of {equity}"
    )
    created = after - before
    assert not created, (
        f"{order.order_type} buy {order.quantity} {symbol} @ {bar.close} created breaches "
        f"{sorted(created)}: {check_limits(after_state, prices, limits, tolerance=TOLERANCE)}"
    )
    return report


# --------------------------------------------------------------------------------------------
# the execution engine, driven bar by bar like TradingSession.run
# --------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    limits: RiskLimits
    broker: PaperBroker
    sizing: Sizing
    portfolio: Portfolio
    prices: dict[str, float]
    drift: bool


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    limits = draw(risk_limits())
    initial_cash = draw(st.sampled_from([1.0, 10_000.0, 0.37]))
    history, prices = draw(fill_histories(initial_cash))
    return Scenario(
        limits=limits,
        broker=draw(brokers(limits)),
        sizing=draw(sizings(initial_cash)),
        portfolio=Portfolio.from_fills(initial_cash, history, quote="BTC"),
        prices=prices,
        drift=draw(st.booleans()),
    )


@FUZZ
@given(scenario=scenarios(), data=st.data())
def test_no_order_ever_breaks_a_limit(scenario: Scenario, data: st.DataObject) -> None:
    limits, portfolio, prices = scenario.limits, scenario.portfolio, dict(scenario.prices)
    gate = RiskGate(limits)
    engine = ExecutionEngine(gate, scenario.broker, scenario.sizing)
    started_inside = not check_limits(portfolio, prices, limits, tolerance=TOLERANCE)
    ledger, killed, day = Ledger(), False, None
    ts = START
    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        ts += data.draw(gaps, label="gap")
        if ts.date() != day:
            if day is not None:
                engine.cancel_resting(f"day {day} ended")
            day = ts.date()
            gate.start_day(portfolio.equity(prices), day)
        action = data.draw(events, label="event")
        if action == "kill":
            gate.kill("fuzz")
            killed = True
        elif action == "reset_kill":
            gate.reset_kill_switch()
            killed = False
        elif action == "reset_drawdown":
            gate.reset_drawdown_halt(portfolio.equity(prices))
        group = data.draw(
            st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True).map(sorted),
            label="symbols",
        )
        step_bars = [
            data.draw(bars(s, ts, prices[s], scenario.drift), label=f"bar {s}") for s in group
        ]
        for bar in step_bars:
            prices[bar.symbol] = bar.close
        for bar in step_bars:
            settled = engine.settle(bar, portfolio)
            fills = settled.fills if settled else ()
            ledger.costs += fill_costs(fills, bar)
            ledger.sell_costs += fill_costs(tuple(f for f in fills if f.side is Side.SELL), bar)
        portfolio.mark(prices)
        gate.refresh(portfolio, prices)
        for bar in step_bars:
            proposal = data.draw(proposals(bar.symbol, ts), label=f"proposal {bar.symbol}")
            checked_execute(engine, proposal, portfolio, bar, prices, killed=killed, ledger=ledger)
        assert portfolio.cash >= 0.0
        if started_inside and not scenario.drift:
            # nothing drifted, so nothing may be outside its limit beyond what sales' fees
            # explain (buys are held to the strict rule order by order in checked_execute)
            slack = ledger.sell_costs / portfolio.initial_cash
            assert check_limits(portfolio, prices, limits, tolerance=TOLERANCE + slack) == []
    assert ledger.decisions > 0
    event(f"orders placed: {min(len(ledger.orders), 5)}+")
    event(f"states ordered in: {sorted({state.value for *_, state in ledger.orders})}")


# --------------------------------------------------------------------------------------------
# whole sessions: random agents' votes through TradingSession
# --------------------------------------------------------------------------------------------


class ScriptedAgent(Agent):
    """Stands in for arbitrary agent behaviour: replays hypothesis-drawn votes (or failures)."""

    def __init__(self, name: str, script: Mapping[tuple[str, datetime], dict | None]) -> None:
        super().__init__(name)
        self.script = script

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        spec = self.script.get((snapshot.symbol, snapshot.ts))
        if spec is None:
            raise RuntimeError("scripted failure")  # safe_vote turns it into a neutral vote
        return Vote(agent=self.name, symbol=snapshot.symbol, ts=snapshot.ts, **spec)


vote_specs = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "direction": st.one_of(st.just(1.0), st.just(-1.0), st.floats(-1.0, 1.0)),
            "confidence": st.one_of(st.just(1.0), unit),
            "rationale": st.just("fuzz"),
            "scale": st.one_of(st.none(), unit),
            "execution": st.one_of(st.none(), advice_strategy),
        }
    ),
)


class CheckedEngine(ExecutionEngine):
    """The real engine, with every ``execute`` held to the per-order invariant."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = Ledger()
        self.killed = False
        self.before_step: dict[datetime, set[str]] = {}

    def execute(self, proposal, portfolio, bar, prices):  # type: ignore[override]
        if proposal.ts not in self.before_step:  # first decision of the step: after settles
            state = committed(self, portfolio)
            self.before_step[proposal.ts] = breach_keys(state, prices, self.risk_gate.limits)
        return checked_execute(
            self,
            proposal,
            portfolio,
            bar,
            prices,
            killed=self.killed,
            ledger=self.ledger,
            execute=super().execute,
        )


@FUZZ
@given(data=st.data())
def test_whole_sessions_of_random_votes_never_break_a_limit(data: st.DataObject) -> None:
    limits = data.draw(risk_limits(), label="limits")
    initial_cash = 1.0
    engine = CheckedEngine(
        RiskGate(limits), data.draw(brokers(limits), label="broker"), data.draw(sizings(1.0))
    )
    n_agents = data.draw(st.integers(1, 3), label="agents")
    names = [f"agent{i}" for i in range(n_agents)]
    weights = {n: data.draw(st.floats(0.0, 1.0), label=f"weight {n}") for n in names}

    snapshots: list[MarketSnapshot] = []
    scripts: dict[str, dict[tuple[str, datetime], dict | None]] = {n: {} for n in names}
    price = {s: data.draw(prices_strategy, label=f"price {s}") for s in SYMBOLS}
    ts = START
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        ts += data.draw(gaps, label="gap")
        group = data.draw(
            st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True),
            label="symbols",
        )
        for symbol in group:
            bar = data.draw(bars(symbol, ts, price[symbol], drift=True), label=f"bar {symbol}")
            price[symbol] = bar.close
            snapshots.append(MarketSnapshot(symbol=symbol, ts=ts, bar=bar, features={}))
            for name in names:
                scripts[name][(symbol, ts)] = data.draw(vote_specs, label=f"vote {name}")
    committee = Committee(
        [ScriptedAgent(n, scripts[n]) for n in names],
        weights,
        quorum=data.draw(st.integers(1, n_agents), label="quorum"),
        min_confidence=data.draw(st.one_of(st.just(0.0), unit), label="min_confidence"),
    )
    session = TradingSession(committee, engine, Portfolio("BTC", initial_cash))
    kills = data.draw(st.lists(events, min_size=40, max_size=40), label="events")
    step_ends: list[datetime] = []

    def on_step(ts: datetime, portfolio: Portfolio, prices: Mapping[str, float]) -> None:
        assert portfolio.cash >= 0.0
        after = breach_keys(committed(engine, portfolio), prices, limits)
        created = after - engine.before_step[ts]
        # Only an order can create a breach, and each order was judged when it was made: a
        # sell's cost lifting another position, or a tolerated known cost gap, nothing else.
        allowed = engine.ledger.created.get(ts, set())
        assert created <= allowed, f"step {ts} created breaches {created - allowed}"
        action = kills[len(step_ends) % len(kills)]
        if action == "kill":
            session.risk_gate.kill("fuzz")
            engine.killed = True
        elif action == "reset_kill":
            session.risk_gate.reset_kill_switch()
            engine.killed = False
        elif action == "reset_drawdown":
            session.risk_gate.reset_drawdown_halt(portfolio.equity(prices))
        step_ends.append(ts)

    result = session.run(snapshots, on_step=on_step)

    assert len(result.decisions) == len(snapshots) == engine.ledger.decisions
    assert len(result.orders) == len(engine.ledger.orders), "an order bypassed execute"
    order_ids = [record.order.client_order_id for record in result.orders]
    assert len(order_ids) == len(set(order_ids)), "an order was booked twice"
    assert {f.client_order_id for f in result.fills} <= set(order_ids)
    decided = {(d.symbol, d.ts): d for d in result.decisions}
    for record in result.orders:
        decision = decided[(record.order.symbol, record.order.ts)]
        assert decision.outcome == "order", f"order without an 'order' decision: {record}"
        assert decision.risk_state is not RiskState.HALTED
        if decision.risk_state is RiskState.REDUCING:
            assert record.order.side is Side.SELL
    for fill in result.fills:
        assert fill.quantity > 0 and fill.fee >= 0
    event(f"session orders: {min(len(result.orders), 5)}+")
    event(f"session fill kinds: {sorted({f.liquidity for f in result.fills})}")
    replay = Portfolio("BTC", initial_cash)
    for fill in result.fills:  # in booking order: the session's own ledger
        replay.apply_fill(fill)
    final = dict(session.prices)
    assert replay.snapshot(final) == session.portfolio.snapshot(final)


# --------------------------------------------------------------------------------------------
# bugs the fuzz found, pinned as small reproductions
# --------------------------------------------------------------------------------------------


def _bar(symbol: str, ts: datetime, close: float, *, low: float | None = None) -> Bar:
    return Bar(
        symbol=symbol,
        ts=ts,
        open=close,
        high=close * 1.01,
        low=close * 0.99 if low is None else low,
        close=close,
        volume=1e9,
    )


def _proposal(symbol: str, ts: datetime, direction: float, **kwargs) -> Proposal:
    return Proposal(
        symbol=symbol,
        ts=ts,
        direction=direction,
        confidence=1.0 if direction else 0.0,
        votes=(),
        quorum_met=direction != 0.0,
        **kwargs,
    )


def _fresh(
    limits: RiskLimits, sizing: Sizing, *, fee_bps: float = 10.0
) -> tuple[ExecutionEngine, Portfolio, date]:
    """An engine whose broker charges ``fee_bps`` plus 10 bps slippage, on a fresh account."""
    gate = RiskGate(limits)
    gate.start_day(1.0, START.date())
    broker = PaperBroker(fee_bps, 10.0)
    return ExecutionEngine(gate, broker, sizing), Portfolio("BTC", 1.0), START.date()


def test_a_buy_does_not_push_another_position_over_its_limit() -> None:
    """ETH bought up to its limit (headroom 0, costs at the allowance), then an LTC buy: its
    cost lowers equity, ETH's share rises above max_position_fraction at unchanged prices."""
    limits = RiskLimits(max_position_fraction=0.25, max_order_fraction=0.5)
    engine, portfolio, _ = _fresh(limits, Sizing(headroom_fraction=0.0), fee_bps=40.0)
    prices = {"ETH/BTC": 0.1, "LTC/BTC": 0.01}
    for symbol in ("ETH/BTC", "LTC/BTC"):
        bar = _bar(symbol, START, prices[symbol])
        report = engine.execute(_proposal(symbol, START, 1.0), portfolio, bar, prices)
        assert report.outcome == "order" and report.fills
        if symbol == "ETH/BTC":
            share = portfolio.position_value(symbol, prices) / portfolio.equity(prices)
            assert share == pytest.approx(0.25, rel=1e-4)
    assert check_limits(portfolio, prices, limits, tolerance=TOLERANCE) == []


def test_a_resting_buys_cost_is_counted_against_later_orders() -> None:
    """An ETH limit buy rests, an LTC market buy takes the rest of the gross limit, then ETH
    fills at its limit price with the maker fee: at unchanged prices gross is over the limit."""
    limits = RiskLimits(
        max_position_fraction=0.3, max_gross_exposure_fraction=0.45, max_order_fraction=0.25
    )
    gate = RiskGate(limits)
    gate.start_day(1.0, START.date())
    broker = PaperBroker(40.0, 10.0, maker_fee_bps=50.0)
    engine, portfolio = (
        ExecutionEngine(gate, broker, Sizing(headroom_fraction=0.0)),
        Portfolio("BTC", 1.0),
    )
    prices = {"ETH/BTC": 0.1, "LTC/BTC": 0.01}
    limit = ExecutionAdvice(order_type="limit", limit_offset_bps=0.0)
    eth = engine.execute(
        _proposal("ETH/BTC", START, 1.0, execution=limit), portfolio,
        _bar("ETH/BTC", START, 0.1), prices,
    )  # fmt: skip
    assert eth.order_status == "resting"
    ltc = engine.execute(
        _proposal("LTC/BTC", START, 1.0), portfolio, _bar("LTC/BTC", START, 0.01), prices
    )
    assert ltc.fills
    settled = engine.settle(_bar("ETH/BTC", START + timedelta(minutes=5), 0.1), portfolio)
    assert settled is not None and settled.fills
    assert check_limits(portfolio, prices, limits, tolerance=TOLERANCE) == []


def test_a_resting_limit_order_does_not_fill_after_the_kill_switch() -> None:
    engine, portfolio, _ = _fresh(RiskLimits(), Sizing())
    prices = {"ETH/BTC": 0.1}
    limit = ExecutionAdvice(order_type="limit", limit_offset_bps=10.0)
    report = engine.execute(
        _proposal("ETH/BTC", START, 1.0, execution=limit), portfolio, _bar("ETH/BTC", START, 0.1),
        prices,
    )  # fmt: skip
    assert report.outcome == "order" and report.order_status == "resting"
    engine.risk_gate.kill("operator pressed the kill switch")
    settled = engine.settle(_bar("ETH/BTC", START + timedelta(minutes=5), 0.1), portfolio)
    assert settled is not None and settled.fills == ()
    assert portfolio.quantity("ETH/BTC") == 0.0


def test_replaying_a_limit_fill_then_a_market_sell_at_the_same_bar() -> None:
    failures = []
    for k in range(8):  # fill ids are hashes: some timestamps order them the wrong way round
        engine, portfolio, _ = _fresh(RiskLimits(), Sizing())
        t0 = START + timedelta(minutes=5 * k)
        t1 = t0 + timedelta(minutes=5)
        prices = {"ETH/BTC": 0.1}
        limit = ExecutionAdvice(order_type="limit", limit_offset_bps=10.0)
        engine.execute(
            _proposal("ETH/BTC", t0, 1.0, execution=limit), portfolio, _bar("ETH/BTC", t0, 0.1),
            prices,
        )  # fmt: skip
        bar = _bar("ETH/BTC", t1, 0.1)
        settled = engine.settle(bar, portfolio)
        assert settled is not None and settled.fills
        sold = engine.execute(_proposal("ETH/BTC", t1, -1.0), portfolio, bar, prices)
        assert sold.fills
        live = [*settled.fills, *sold.fills]
        try:
            rebuilt = Portfolio.from_fills(1.0, live, quote="BTC").snapshot(prices)
        except ValueError as exc:
            failures.append(f"t0={t0.isoformat()}: {exc}")
            continue
        if rebuilt != portfolio.snapshot(prices):
            failures.append(f"t0={t0.isoformat()}: replay differs from the live state")
    assert failures == []
