"""The operator's switches in a real PostgreSQL: every change is audited, the kill switch halts a
risk gate and withdraws the live release, and bad requests change nothing."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from orchestration.trading_control import TradingControl
from trading.portfolio import Portfolio
from trading.risk import RiskGate, RiskLimits, RiskState

pytestmark = pytest.mark.integration


def _gate() -> RiskGate:
    gate = RiskGate(RiskLimits())
    gate.start_day(1.0, date(2024, 3, 1))
    return gate


def test_a_fresh_database_trades_and_is_not_released_for_live(pg_engine: sa.Engine) -> None:
    status = TradingControl(pg_engine).status()
    assert status.trading_allowed
    assert not status.paused and not status.kill_switch and not status.live_released


def test_pause_and_resume_are_audited(pg_engine: sa.Engine) -> None:
    control = TradingControl(pg_engine)
    paused = control.pause("exchange maintenance", actor="alice")
    assert paused.paused and paused.pause_reason == "exchange maintenance"
    assert paused.updated_by == "alice" and not paused.trading_allowed
    resumed = control.resume("maintenance over", actor="bob")
    assert not resumed.paused and resumed.pause_reason is None and resumed.trading_allowed
    events = control.events()
    assert [(e.actor, e.action, e.reason) for e in events] == [
        ("bob", "resume", "maintenance over"),
        ("alice", "pause", "exchange maintenance"),
    ]


def test_the_kill_switch_halts_a_gate_and_withdraws_the_live_release(
    pg_engine: sa.Engine,
) -> None:
    control = TradingControl(pg_engine)
    assert control.release_live("checked the keys", actor="alice").live_released
    killed = control.engage_kill_switch("runaway orders", actor="bob")
    assert killed.kill_switch and not killed.live_released and control.kill_switch_engaged()

    gate = _gate()
    control.apply_to(gate, killed)
    assert gate.state is RiskState.HALTED
    assert "runaway orders" in (gate.halt_reason or "") and "bob" in (gate.halt_reason or "")

    with pytest.raises(PermissionError, match="kill switch is engaged"):
        control.release_live("try again", actor="mallory")
    assert not control.status().live_released

    reset = control.reset_kill_switch("cause found", actor="bob")
    assert not reset.kill_switch and not control.kill_switch_engaged()
    assert not reset.live_released, "resetting the kill switch must not release live trading"


def test_switches_touch_a_gate_only_through_the_kill_switch(pg_engine: sa.Engine) -> None:
    """Pause and release leave a gate as it is: the live session's REDUCING start and its
    release are open_live_session's (tests/orchestration/test_live_session.py)."""
    control = TradingControl(pg_engine)
    paper = _gate()
    control.apply_to(paper, control.pause("looking", actor="alice"))
    assert paper.state is RiskState.ACTIVE
    assert paper.refresh(Portfolio("BTC", 1.0), {}) is RiskState.ACTIVE

    reducing = _gate()
    reducing.reduce_only("live start")
    control.apply_to(reducing, control.release_live("keys checked", actor="alice"))
    assert reducing.state is RiskState.REDUCING


@pytest.mark.parametrize(
    ("actor", "reason"), [("", "why"), ("alice", ""), ("x" * 101, "why"), ("alice", "y" * 501)]
)
def test_a_bad_request_changes_nothing(pg_engine: sa.Engine, actor: str, reason: str) -> None:
    control = TradingControl(pg_engine)
    before = control.status()
    with pytest.raises(ValidationError):
        control.pause(reason, actor=actor)
    assert control.status() == before
    assert control.events() == []


def test_an_unmigrated_database_is_named(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM trading.control"))
    with pytest.raises(RuntimeError, match="not migrated to 0009"):
        TradingControl(pg_engine).status()


def test_a_run_under_way_halts_at_the_next_bar_once_the_switch_is_engaged(
    pg_engine: sa.Engine, pg_url: str
) -> None:
    control = TradingControl(pg_engine)
    gate = _gate()
    portfolio = Portfolio("BTC", 1.0)
    with pg_engine.begin() as run_conn:  # the trading run's own transaction
        after_bar = control.watch(gate, run_conn)
        after_bar(None, portfolio, {})
        assert gate.state is RiskState.ACTIVE

        operator = sa.create_engine(pg_url)
        try:
            TradingControl(operator).engage_kill_switch("stop now", actor="carol")
        finally:
            operator.dispose()

        after_bar(None, portfolio, {})
        assert gate.state is RiskState.HALTED
        assert "carol" in (gate.halt_reason or "") and "stop now" in (gate.halt_reason or "")
