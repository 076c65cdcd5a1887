"""The operator's switches for trading: pause, kill switch and the live release, in PostgreSQL.

The trading job, the fresh-signals sensor, the live broker and the MCP server are different
processes, so a switch held in one of them would not stop the others. They all read the single
row of ``trading.control``; every change is appended to ``trading.control_events`` with who made
it and why.

- **pause**: the fresh-signals sensor requests no new trading runs, and a trading run started by
  hand refuses to trade. Days that arrive while paused are traded, in order, after ``resume``.
- **kill switch**: every risk gate that reads the row is halted: no new order of any side, at
  once (the live broker reads it again before each order). It stays engaged until a human resets
  it, and resetting it does not resume a pause.
- **live release**: a live run starts with its gate in REDUCING (exits only) until an operator
  releases it; the release is withdrawn whenever the kill switch is engaged.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from trading.risk import RiskGate

_READ = sa.text(
    "SELECT paused, pause_reason, kill_switch, kill_reason, live_released, updated_at, "
    "updated_by FROM trading.control WHERE id"
)
_LOCK = sa.text("SELECT 1 FROM trading.control WHERE id FOR UPDATE")
_EVENT = sa.text(
    "INSERT INTO trading.control_events (actor, action, reason) VALUES (:actor, :action, :reason)"
)
_EVENTS = sa.text(
    "SELECT ts, actor, action, reason FROM trading.control_events ORDER BY id DESC LIMIT :limit"
)
MAX_TEXT = 500


class ControlStatus(BaseModel):
    """The switches as they are now."""

    model_config = ConfigDict(frozen=True)

    paused: bool
    pause_reason: str | None
    kill_switch: bool
    kill_reason: str | None
    live_released: bool
    updated_at: datetime
    updated_by: str

    @property
    def trading_allowed(self) -> bool:
        return not (self.paused or self.kill_switch)

    @property
    def stopped_reason(self) -> str | None:
        """Why no day may be traded now, naming who stopped it and how to undo it."""
        if self.kill_switch:
            return (
                f"kill switch engaged by {self.updated_by}: {self.kill_reason} "
                "(a human resets it: coinswarm control reset-kill-switch --reason ...)"
            )
        if self.paused:
            return (
                f"trading paused by {self.updated_by}: {self.pause_reason} "
                "(coinswarm control resume --reason ..., or the MCP tool resume_trading)"
            )
        return None


class ControlEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    ts: datetime
    actor: str
    action: str
    reason: str


class _Change(BaseModel):
    """An operator's request, checked before it touches the row."""

    actor: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class TradingControl:
    """Reads and flips the switches. Each change is one transaction: the row and its event."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def status(self) -> ControlStatus:
        with self.engine.connect() as conn:
            return self._read(conn)

    def status_in(self, conn: sa.Connection) -> ControlStatus:
        """The switches as seen by ``conn``'s transaction (the trading job reads them in its
        own transaction, so a switch flipped mid-run is seen by the next run, never half)."""
        return self._read(conn)

    def events(self, limit: int = 50) -> list[ControlEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(_EVENTS, {"limit": int(limit)}).mappings().all()
        return [ControlEvent(**row) for row in rows]

    def pause(self, reason: str, actor: str) -> ControlStatus:
        return self._change("pause", reason, actor, paused=True, pause_reason=reason)

    def resume(self, reason: str, actor: str) -> ControlStatus:
        return self._change("resume", reason, actor, paused=False, pause_reason=None)

    def engage_kill_switch(self, reason: str, actor: str) -> ControlStatus:
        return self._change(
            "kill", reason, actor, kill_switch=True, kill_reason=reason, live_released=False
        )

    def reset_kill_switch(self, reason: str, actor: str) -> ControlStatus:
        return self._change("reset_kill", reason, actor, kill_switch=False, kill_reason=None)

    def release_live(self, reason: str, actor: str) -> ControlStatus:
        """Let a live run leave REDUCING. Refused while the kill switch is engaged."""
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            if self._read(conn).kill_switch:
                raise PermissionError(
                    "the kill switch is engaged: reset it before releasing live trading"
                )
        return self._change("release_live", reason, actor, live_released=True)

    def withdraw_live_release(self, reason: str, actor: str) -> ControlStatus:
        return self._change("withdraw_live", reason, actor, live_released=False)

    def apply_to(self, gate: RiskGate, status: ControlStatus) -> None:
        """Halt ``gate`` while the kill switch is engaged. (A live session's REDUCING start and
        its release are ``open_live_session``'s, in orchestration/live.py.)"""
        if status.kill_switch:
            gate.kill(f"kill switch engaged by {status.updated_by}: {status.kill_reason}")

    def kill_switch_engaged(self) -> bool:
        """Read the kill switch now, from the database: the live broker asks this before each
        order (``risk_gate_kill_switch(gate, also=control.kill_switch_engaged)``)."""
        return self.status().kill_switch

    def watch(self, gate: RiskGate, conn: sa.Connection | None = None):  # noqa: ANN201
        """A ``TradingSession.run`` step hook that halts ``gate`` as soon as the kill switch is
        engaged, so a run already under way places no order after the bar it is seen at. It
        reads the switch through ``conn`` (the run's own connection, where each statement sees
        what others committed) or a pooled one, once per bar."""

        halted = False

        def after_bar(*_: object) -> None:
            nonlocal halted
            if halted:
                return
            status = self._read(conn) if conn is not None else self.status()
            if status.kill_switch:
                self.apply_to(gate, status)
                halted = True

        return after_bar

    def _change(self, action: str, reason: str, actor: str, **values: object) -> ControlStatus:
        change = _Change(actor=actor, reason=reason)
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        update = sa.text(
            f"UPDATE trading.control SET {assignments}, updated_at = now(), "
            "updated_by = :actor WHERE id"
        )
        with self.engine.begin() as conn:
            conn.execute(_LOCK)
            conn.execute(update, {**values, "actor": change.actor})
            conn.execute(_EVENT, {**change.model_dump(), "action": action})
            return self._read(conn)

    @staticmethod
    def _read(conn: sa.Connection) -> ControlStatus:
        row = conn.execute(_READ).mappings().one_or_none()
        if row is None:
            raise RuntimeError(
                "trading.control has no row: the database is not migrated to 0009 or later"
            )
        return ControlStatus(**row)
