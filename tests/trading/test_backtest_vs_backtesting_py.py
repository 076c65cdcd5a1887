"""Our backtester against backtesting.py 0.6.6, trade for trade, on recorded real candles.

Both engines run the textbook moving-average cross (long all-in while the fast SMA is above the
slow one, flat otherwise) with a 10 bps fee: ours as a one-agent committee (``SmaCrossAgent``)
through the full committee -> risk gate -> execution -> paper broker path, backtesting.py as a
state-based ``Strategy``. They must make the same trades at the same prices, and their equity
curves must agree within a bound derived from the two conventions below that cannot be aligned.

Conventions aligned by configuration:

* Timing: a decision at a bar's close fills at that close. Ours does so by design;
  backtesting.py with ``trade_on_close=True`` (the order waits for the next bar's processing
  but fills at the previous close and is booked on the decision bar).
* Fees: ``commission=fee_bps/1e4`` is charged on entry and on exit, like our taker fee; no
  spread, no slippage, no volume cap (``max_participation: null``).
* All-in sizing: backtesting.py's default ``buy()`` size is ``1 - sys.float_info.epsilon`` of
  the available margin (shown as ``.9999``) at ``price * (1 + commission)`` per unit; ours
  targets ``max_position_fraction = 1`` of equity (``headroom_fraction: 0``) and the risk gate
  caps it at ``cash / (price * (1 + a))``. Fractional units: ``FractionalBacktest`` (whole units
  of 1e-8) so sizes are not rounded down to whole coins.
* Warm-up: backtesting.py starts calling ``next()`` one bar after its indicators stop being
  NaN. The peer's only indicator is the boolean state ``fast > slow`` (NaN compares False, so
  it is never NaN), which lets it act on the first bar where both SMAs exist, as our agent does.
* Risk limits that backtesting.py does not have are opened wide: position, gross and order
  fractions 1, daily loss 0.5 (the maximum) with ``reducing_at_loss_fraction: 1`` (the default
  0.5 would block buys after a 25% intraday loss), ``max_drawdown_fraction: null``, and
  ``execution_cost_allowance_bps = fee_bps`` (the least the config accepts).
* ``min_order_notional`` is 1e-5 of the starting cash, not 0: our execution rebalances toward
  its target on every bar, and the cost allowance leaves a cash residue of about fee^2 of equity
  after an all-in buy; with no floor it tops that up with dust orders on the next bars. A peer
  that holds its units never does; 1e-5 is far above the residue and far below any real order.
* Equity is recorded at different moments: backtesting.py stores a bar's equity before the
  orders decided on that bar fill, ours after. A fill at the bar's close moves equity only by
  its fee, so ours plus that bar's fees is compared with theirs. For the same reason an order
  decided on the last bar never fills in backtesting.py (there is no next bar to process it);
  it is checked as a pending order.

Conventions that differ, measured and bounded (``equity_bound``):

1. Cost reserve: the risk gate reserves ``a = f * (1 + f)`` per unit of notional (fee f), not f,
   and keeps a further 1e-9 margin, so our all-in buy leaves ``delta = 1 - (1 - 1e-9)(1 + f) /
   (1 + a)`` (about f^2 = 1e-6) of equity in cash. That cash misses the trade's return.
2. Exit remainder: the risk gate's ``max_order_fraction`` cap applies to sells with the same cost
   allowance, ``equity / (price * (1 + a))``, which is below the value of an all-in position; a
   full exit therefore sells all but at most ``(a + 1e-9) / (1 + a)`` of the position, and the
   remainder on the next bar at that bar's close (backtesting.py sells everything at once).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Strategy
from backtesting.lib import FractionalBacktest

from trading.agents.sma_cross import SmaCrossAgent
from trading.backtest.data import Dataset, load_dataset
from trading.backtest.engine import BacktestResult, run_backtest
from trading.config import CommitteeConfig, parse_committee_config
from trading.domain import Bar, MarketSnapshot

FEE_BPS = 10.0
FEE = FEE_BPS / 1e4
ALLOWANCE = FEE * (1.0 + FEE)  # RiskLimits.cost_allowance with execution_cost_allowance_bps = fee
SCALE_MARGIN = 1.0 - 1e-9  # the risk gate keeps scaled orders this hair inside a cap
FRACTIONAL_UNIT = 1e-8  # FractionalBacktest's default: one satoshi of the base asset
MIN_ORDER_FRACTION = 1e-5  # min_order_notional as a share of the starting cash (see above)

CASH_RESIDUE = 1.0 - SCALE_MARGIN * (1.0 + FEE) / (1.0 + ALLOWANCE)
"""Share of equity our all-in buy leaves in cash (convention 1): about FEE**2."""
MAX_EXIT_REMAINDER = (ALLOWANCE + 1.0 - SCALE_MARGIN) / (1.0 + ALLOWANCE)
"""Largest share of a position the order cap leaves for the next bar (convention 2)."""


@dataclass(frozen=True)
class Case:
    file: str
    quote: str
    initial_cash: float
    sma_fast: int
    sma_slow: int
    min_round_trips: int
    """The cross must trade at least this often, or the comparison would prove little."""


CASES = (
    Case("binance-BTCUSDT-1h-2017-2018.csv", "USDT", 10_000.0, 12, 48, 4),
    Case("binance-ETHBTC-5m-2018-01.csv", "BTC", 1.0, 12, 48, 50),
    Case("binance-ETHUSDT-4h-2017-2018.csv", "USDT", 10_000.0, 10, 30, 10),
)


def committee_config(case: Case) -> CommitteeConfig:
    return parse_committee_config(
        {
            "agents": [{"name": "sma_cross", "class": "trading.agents.sma_cross:SmaCrossAgent"}],
            "weights": {"sma_cross": 1.0},
            "quorum": 1,
            "min_confidence": 0.0,
            "risk": {
                "max_position_fraction": 1.0,
                "max_gross_exposure_fraction": 1.0,
                "max_order_fraction": 1.0,
                "max_daily_loss_fraction": 0.5,
                "reducing_at_loss_fraction": 1.0,
                "max_drawdown_fraction": None,
                "execution_cost_allowance_bps": FEE_BPS,
            },
            "sizing": {
                "min_order_notional": MIN_ORDER_FRACTION * case.initial_cash,
                "headroom_fraction": 0.0,
            },
            "fee_bps": FEE_BPS,
            "slippage_bps": 0.0,
            "max_participation": None,
            "initial_cash": case.initial_cash,
            "quote": case.quote,
            "features": {"sma_fast": case.sma_fast, "sma_slow": case.sma_slow},
        },
        source=f"sma cross on {case.file}",
    )


class SmaCrossState(Strategy):
    """Long all-in while the fast SMA is above the slow one, flat otherwise."""

    sma_fast = 12
    sma_slow = 48

    def init(self) -> None:
        close = pd.Series(self.data.Close)
        fast = close.rolling(self.sma_fast).mean()
        slow = close.rolling(self.sma_slow).mean()
        self.long = self.I(lambda: (fast > slow).to_numpy(dtype=float), name="fast>slow")

    def next(self) -> None:
        if self.long[-1] > 0:
            if not self.position:
                self.buy()
        elif self.position:
            self.position.close()


@dataclass(frozen=True)
class Trip:
    """One backtesting.py trade as bar indices; ``exit`` is None while it is still open."""

    entry: int
    exit: int | None
    entry_price: float
    exit_price: float | None


@dataclass(frozen=True)
class PeerRun:
    trips: list[Trip]
    pending: list[str]
    """Sides of orders decided on the last bar, which backtesting.py can no longer fill."""
    equity: np.ndarray


def run_peer(dataset: Dataset, case: Case) -> PeerRun:
    frame = dataset.frame
    data = pd.DataFrame(
        {
            "Open": frame["open"].to_numpy(),
            "High": frame["high"].to_numpy(),
            "Low": frame["low"].to_numpy(),
            "Close": frame["close"].to_numpy(),
            "Volume": frame["volume"].to_numpy(),
        },
        index=pd.DatetimeIndex(frame["ts"]),
    )
    backtest = FractionalBacktest(
        data,
        SmaCrossState,
        cash=case.initial_cash,
        commission=FEE,
        trade_on_close=True,
        fractional_unit=FRACTIONAL_UNIT,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some trades remain open")
        stats = backtest.run(sma_fast=case.sma_fast, sma_slow=case.sma_slow)
    closed = stats["_trades"]
    trips = [
        Trip(int(t.EntryBar), int(t.ExitBar), float(t.EntryPrice), float(t.ExitPrice))
        for t in closed.itertuples()
    ]
    strategy = stats["_strategy"]
    trips += [
        Trip(t.entry_bar, None, t.entry_price / FRACTIONAL_UNIT, None) for t in strategy.trades
    ]
    pending = ["buy" if order.size > 0 else "sell" for order in strategy.orders]
    return PeerRun(trips, pending, stats["_equity_curve"]["Equity"].to_numpy(dtype=float))


@dataclass(frozen=True)
class Runs:
    case: Case
    closes: np.ndarray
    times: pd.DatetimeIndex
    ours: BacktestResult
    peer: PeerRun


@pytest.fixture(scope="module", params=CASES, ids=[c.file for c in CASES])
def runs(request: pytest.FixtureRequest, shared_data: Path) -> Runs:
    case: Case = request.param
    dataset = load_dataset(shared_data / "ohlcv" / case.file)
    ours = run_backtest([dataset], committee_config(case))
    return Runs(
        case=case,
        closes=dataset.frame["close"].to_numpy(dtype=float),
        times=pd.DatetimeIndex(dataset.frame["ts"]),
        ours=ours,
        peer=run_peer(dataset, case),
    )


def fill_runs(trades: pd.DataFrame) -> pd.DataFrame:
    """Consecutive fills on the same side as one trade: its first fill, and how many."""
    run_id = (trades["side"] != trades["side"].shift()).cumsum()
    return trades.groupby(run_id, sort=True).agg(
        ts=("ts", "first"),
        side=("side", "first"),
        price=("price", "first"),
        fills=("ts", "size"),
        quantity=("quantity", "sum"),
    )


def test_same_trades_at_the_same_prices(runs: Runs) -> None:
    expected: list[tuple[pd.Timestamp, str, float]] = []
    for trip in runs.peer.trips:
        expected.append((runs.times[trip.entry], "buy", trip.entry_price))
        if trip.exit is not None:
            assert trip.exit_price is not None
            expected.append((runs.times[trip.exit], "sell", trip.exit_price))
    last = runs.times[-1]
    expected += [(last, side, runs.closes[-1]) for side in runs.peer.pending]
    ours = fill_runs(runs.ours.trades)

    assert len(runs.peer.trips) >= runs.case.min_round_trips
    ours_trades = list(zip(ours["ts"], ours["side"], strict=True))
    assert [(ts, side) for ts, side, _ in expected] == ours_trades
    np.testing.assert_allclose(ours["price"], [p for _, _, p in expected], rtol=1e-12)


def test_the_only_extra_fills_are_exit_remainders_on_the_next_bar(runs: Runs) -> None:
    """Convention 2, and that the dust floor keeps buys to one fill."""
    trades = runs.ours.trades
    next_bar = dict(zip(runs.times[:-1], runs.times[1:], strict=True))
    remainders = 0
    for _, run in trades.groupby((trades["side"] != trades["side"].shift()).cumsum()):
        if run["side"].iloc[0] == "buy" or len(run) == 1:
            assert len(run) == 1, f"top-up buys after {run['ts'].iloc[0]}"
            continue
        assert len(run) == 2, f"exit at {run['ts'].iloc[0]} took {len(run)} fills"
        assert run["ts"].iloc[1] == next_bar[run["ts"].iloc[0]]
        share = run["quantity"].iloc[1] / run["quantity"].sum()
        assert 0.0 < share <= MAX_EXIT_REMAINDER * (1 + 1e-9)
        remainders += 1
    exits = sum(1 for trip in runs.peer.trips if trip.exit is not None)
    assert remainders <= exits


def equity_bound(runs: Runs) -> np.ndarray:
    """Per bar, the largest relative equity gap conventions 1 and 2 can open (first order).

    Per round trip with price ratio r = exit/entry, backtesting.py's equity grows by
    g = r (1 - f) / (1 + f). Ours leaves a cash residue c (``CASH_RESIDUE``, plus the peer's own
    rounding down to whole fractional units) out of the trade, so grows by c + (1 - c) g: a gap
    of c |1/g - 1|. The exit remainder, at most share rho of the position, is sold one bar later
    at a price ratio r' to the exit price (or held into a re-entry, saving two fees): a gap of at
    most rho (|r' - 1| + 2 f). Gaps compound from trip to trip.
    """
    closes, equity = runs.closes, runs.peer.equity
    bound = np.zeros(len(closes))
    carried = 1.0
    for trip in runs.peer.trips:
        residue = CASH_RESIDUE + FRACTIONAL_UNIT * trip.entry_price / equity[trip.entry]
        end = len(closes) if trip.exit is None else trip.exit + 1
        ratio = closes[trip.entry + 1 : end] / trip.entry_price
        bound[trip.entry + 1 : end] = carried * (1 + residue * np.abs((1 + FEE) / ratio - 1)) - 1
        if trip.exit is None:
            break
        assert trip.exit_price is not None
        growth = trip.exit_price / trip.entry_price * (1 - FEE) / (1 + FEE)
        after = closes[trip.exit + 1] / trip.exit_price if trip.exit + 1 < len(closes) else 1.0
        remainder = (1 + residue) * MAX_EXIT_REMAINDER * (abs(after - 1) + 2 * FEE)
        carried *= 1 + residue * abs(1 / growth - 1) + remainder
        bound[trip.exit + 1 :] = carried - 1
    return bound + 1e-9


def test_equity_curves_agree_within_the_conventions_bound(runs: Runs) -> None:
    ours = runs.ours.equity.set_index("ts")["equity"]
    fees = runs.ours.trades.groupby("ts")["fee"].sum().reindex(ours.index, fill_value=0.0)
    before_fills = (ours + fees).to_numpy()
    gap = np.abs(before_fills / runs.peer.equity - 1)
    bound = equity_bound(runs)

    assert bound[-1] < 1e-3, "the conventions should move equity by well under 0.1%"
    worst = int(np.argmax(gap - bound))
    assert np.all(gap <= bound), (
        f"equity gap {gap[worst]:.3g} above bound {bound[worst]:.3g} at {runs.times[worst]}"
    )
    final_fees = float(fees.iloc[-1])
    assert math.isclose(ours.iloc[-1] + final_fees, runs.peer.equity[-1], rel_tol=float(bound[-1]))


# -- the agent on its own --------------------------------------------------------------------

T0 = datetime(2018, 1, 10, tzinfo=UTC)


def snapshot(features: dict[str, float | None]) -> MarketSnapshot:
    bar = Bar(symbol="ETH/BTC", ts=T0, open=0.1, high=0.1, low=0.1, close=0.1, volume=1.0)
    return MarketSnapshot(symbol="ETH/BTC", ts=T0, bar=bar, features=features)


@pytest.mark.parametrize(
    ("features", "direction", "confidence"),
    [
        ({"sma_fast": 0.11, "sma_slow": 0.10}, 1.0, 1.0),
        ({"sma_fast": 0.09, "sma_slow": 0.10}, -1.0, 1.0),
        ({"sma_fast": 0.10, "sma_slow": 0.10}, 0.0, 0.0),
        ({"sma_fast": 0.11, "sma_slow": None}, 0.0, 0.0),
        ({"sma_fast": float("nan"), "sma_slow": 0.10}, 0.0, 0.0),
        ({"sma_slow": 0.10}, 0.0, 0.0),
    ],
)
def test_sma_cross_agent_votes_the_state_of_the_cross(
    features: dict[str, float | None], direction: float, confidence: float
) -> None:
    vote = SmaCrossAgent().vote(snapshot(features))
    assert (vote.agent, vote.direction, vote.confidence) == ("sma_cross", direction, confidence)


def test_backtesting_py_full_equity_size_is_one_minus_epsilon() -> None:
    """The default ``buy()`` size this comparison relies on (0.6.6 shows it as .9999)."""
    full_equity = Strategy._FULL_EQUITY  # type: ignore[attr-defined]
    assert full_equity == 1 - sys.float_info.epsilon
