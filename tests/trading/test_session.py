"""The full trading path over real recorded data: features -> regimes -> snapshots -> session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import pytest

from tests.trading.conftest import make_snapshot
from trading.config import build_session, load_committee_config
from trading.domain import MarketSnapshot
from trading.features import compute_features
from trading.memory import InMemoryStore
from trading.portfolio import Portfolio
from trading.regime import classify_regimes
from trading.risk import RiskState, check_limits
from trading.session import PastDecision, SessionResult
from trading.snapshots import build_snapshots


@pytest.fixture(scope="module")
def snapshots(january_candles: pd.DataFrame) -> list[MarketSnapshot]:
    features = compute_features(january_candles)
    return build_snapshots(january_candles, features, classify_regimes(features))


def run(snapshots: list[MarketSnapshot]) -> tuple[SessionResult, list[str], Portfolio]:
    config = load_committee_config()
    session = build_session(config)
    violations: list[str] = []

    def check(ts: datetime, portfolio: Portfolio, prices: Mapping[str, float]) -> None:
        violations.extend(f"{ts}: {b}" for b in check_limits(portfolio, prices, config.risk))

    return session.run(snapshots, on_step=check), violations, session.portfolio


def test_snapshots_join_candles_features_and_regimes(snapshots: list[MarketSnapshot]) -> None:
    assert len(snapshots) == 2 * 5760
    assert [s.ts for s in snapshots] == sorted(s.ts for s in snapshots)
    first, late = snapshots[0], snapshots[-1]
    assert first.regime is None and first.feature("sma_slow") is None  # warm-up
    assert late.regime is not None and late.feature("vol_long") is not None
    assert late.bar.close == late.features.get("close", late.bar.close)


def test_session_over_real_data_trades_within_limits_and_is_deterministic(
    snapshots: list[MarketSnapshot],
) -> None:
    result, violations, portfolio = run(snapshots)
    assert violations == []
    assert len(result.decisions) == len(snapshots)
    outcomes = Counter(d.outcome for d in result.decisions)
    assert outcomes["order"] > 0 and outcomes["hold"] > 0
    sides = Counter((o.order.symbol, o.order.side.value) for o in result.orders)
    assert all(sides[(s, side)] > 0 for s in ("ETH/BTC", "LTC/BTC") for side in ("buy", "sell"))
    assert len(result.fills) > 0 and {f.client_order_id for f in result.fills} <= {
        o.order.client_order_id for o in result.orders
    }
    assert len({o.order.client_order_id for o in result.orders}) == len(result.orders)

    days = sorted({s.ts.date() for s in snapshots})
    assert [row["partition_date"] for row in result.daily_pnl] == days
    assert {row["risk_state"] for row in result.daily_pnl} <= {s.value for s in RiskState}
    pnl = result.pnl
    assert pnl is not None and pnl["equity"] == pytest.approx(
        1.0 + pnl["realized_pnl"] + pnl["unrealized_pnl"] - pnl["fees"]
    )
    assert {row["symbol"] for row in result.positions} == {"ETH/BTC", "LTC/BTC"}
    decision_row = result.decision_rows()[-1]
    assert set(decision_row) == {
        "symbol", "ts", "partition_date", "direction", "confidence", "regime", "votes",
        "outcome", "reason", "decided_under", "memory_scale",
    }  # fmt: skip
    assert {v["agent"] for v in decision_row["votes"]} == {
        a.name for a in load_committee_config().agents
    }

    # The trading job resumes a day from stored fills: the rebuilt state is the live state.
    prices = {s.symbol: s.bar.close for s in snapshots[-2:]}
    rebuilt = Portfolio.from_fills(1.0, reversed(result.fills), quote="BTC")
    assert rebuilt.snapshot(prices) == portfolio.snapshot(prices)

    again, _, _ = run(snapshots)
    assert again.decision_rows() == result.decision_rows()
    assert again.order_rows() == result.order_rows()
    assert again.fill_rows() == result.fill_rows()
    assert again.daily_pnl == result.daily_pnl and again.daily_positions == result.daily_positions


def test_a_day_split_in_two_runs_equals_one_run(snapshots: list[MarketSnapshot]) -> None:
    """Trading day by day, as the trading job does, gives the same trades as one run: each day
    rebuilds its portfolio from stored fills, its learners from stored decisions (replay), its
    drawdown baseline from the stored peak equity, and recalls from the one durable memory
    store every day commits to (the job's is PostgreSQL)."""
    days = sorted({s.ts.date() for s in snapshots})[:4]
    window = [s for s in snapshots if s.ts.date() in days]
    whole_session = build_session(load_committee_config())
    whole = whole_session.run(window)

    config = load_committee_config()
    fills: list = []
    decisions: list = []
    peak = None
    by_key = {(s.symbol, s.ts): s for s in window}
    store = InMemoryStore()
    for day in days:
        portfolio = Portfolio.from_fills(config.initial_cash, fills, quote=config.quote)
        session = build_session(config, portfolio, memory_store=store)
        if fills:
            session.prices.update({s.symbol: s.bar.close for s in window if s.ts.date() < day})
        replayed = session.replay(
            PastDecision(
                by_key[(d.symbol, d.ts)], d.votes, d.direction, d.confidence, d.decided_under
            )
            for d in decisions
        )
        assert replayed == len(decisions)
        result = session.run([s for s in window if s.ts.date() == day], peak_equity=peak)
        fills.extend(result.fills)
        decisions.extend(result.decisions)
        peak = result.daily_pnl[-1]["peak_equity"]
    assert [f.fill_id for f in fills] == [f.fill_id for f in whole.fills]
    assert [d.as_row() for d in decisions] == whole.decision_rows()
    assert len(fills) > 0
    assert whole_session.memory is not None
    assert [m.key for m in whole_session.memory.store.committed("default")] == [
        m.key for m in store.committed("default")
    ]
    assert len(store.committed("default")) > 0


def test_kill_switch_stops_all_orders(snapshots: list[MarketSnapshot]) -> None:
    session = build_session(load_committee_config())
    session.risk_gate.kill("test")
    result = session.run(snapshots[:2000])
    assert result.orders == [] and result.fills == []
    assert {d.outcome for d in result.decisions} <= {"hold", "rejected"}


def test_duplicate_snapshots_are_refused() -> None:
    session = build_session(load_committee_config())
    with pytest.raises(ValueError, match="two snapshots for ETH/BTC"):
        session.run([make_snapshot(), make_snapshot()])
    assert session.run([]).pnl is None
