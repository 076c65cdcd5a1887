"""Execution advice: how big, with which order type, in how many slices.

An advisor, not a forecaster: its votes are neutral (direction 0, confidence 0), so they never
sway the committee's direction, but the committee still takes their ``scale`` and their
``execution`` advice.

- Size by volatility target: ``scale = min(1, target_vol / vol_long)``. ``target_vol`` is a
  per-bar standard deviation of returns, in the same unit as the ``vol_long`` feature, so it
  needs no assumption about the bar length; the default 0.005 leaves a typical 5-minute alt/BTC
  bar (``vol_long`` about 0.003) at full size and halves positions when volatility is 0.01.
  A daily-bar config sets its own (e.g. 0.03).
- Order type: a market order when the move is urgent (``|zscore| >= urgent_zscore`` or
  ``|momentum| >= urgent_momentum``) or the risk gate is reducing or halted (cutting risk should
  not wait on a fill); otherwise a limit order ``offset_vol_multiple * vol_long`` inside the
  close, clamped to ``[min_offset_bps, max_offset_bps]``, so a calm market earns the spread and a
  busy one is still likely to fill. ``prefer_limit=False`` forces market orders.
- Slicing: a full position (``max_position * equity``) larger than ``max_participation`` of the
  bar's traded notional (``volume * close``) is spread over ``ceil(full / (max_participation *
  bar notional))`` bars, at most ``max_slices``.

Missing inputs degrade to the cautious choice and the rationale says so: no ``vol_long`` means
no volatility scale and the smallest limit offset; no account view means one slice.
"""

from __future__ import annotations

import math
from typing import Literal

from trading.agents.base import Agent, finite_number, non_negative_number, positive_number
from trading.domain import ExecutionAdvice, MarketSnapshot, Vote

MAX_SLICES_ALLOWED = 1000
"""ExecutionAdvice.slices' upper bound."""


class ExecutionAgent(Agent):
    def __init__(
        self,
        name: str = "execution",
        *,
        target_vol: float = 0.005,
        prefer_limit: bool = True,
        urgent_zscore: float = 3.0,
        urgent_momentum: float = 0.03,
        offset_vol_multiple: float = 0.5,
        min_offset_bps: float = 2.0,
        max_offset_bps: float = 50.0,
        max_participation: float = 0.1,
        max_slices: int = 10,
    ) -> None:
        super().__init__(name)
        self.target_vol = positive_number("target_vol", target_vol)
        if not isinstance(prefer_limit, bool):
            raise ValueError(f"prefer_limit must be true or false, got {prefer_limit!r}")
        self.prefer_limit = prefer_limit
        self.urgent_zscore = positive_number("urgent_zscore", urgent_zscore)
        self.urgent_momentum = positive_number("urgent_momentum", urgent_momentum)
        self.offset_vol_multiple = non_negative_number("offset_vol_multiple", offset_vol_multiple)
        self.min_offset_bps = finite_number("min_offset_bps", min_offset_bps)
        self.max_offset_bps = finite_number("max_offset_bps", max_offset_bps)
        if not 0.0 <= self.min_offset_bps <= self.max_offset_bps < 1e4:
            raise ValueError(
                "need 0 <= min_offset_bps <= max_offset_bps < 10000, got "
                f"min_offset_bps={min_offset_bps}, max_offset_bps={max_offset_bps}"
            )
        self.max_participation = positive_number("max_participation", max_participation)
        if self.max_participation > 1.0:
            raise ValueError(f"max_participation must be in (0, 1], got {max_participation}")
        if (
            isinstance(max_slices, bool)
            or not isinstance(max_slices, int)
            or not 1 <= max_slices <= MAX_SLICES_ALLOWED
        ):
            raise ValueError(
                f"max_slices must be an integer in [1, {MAX_SLICES_ALLOWED}], got {max_slices!r}"
            )
        self.max_slices = max_slices

    def urgency(self, snapshot: MarketSnapshot) -> str | None:
        """Why this bar calls for a market order, or None when a limit order can wait."""
        account = snapshot.account
        if account is not None and account.risk_state in ("reducing", "halted"):
            return f"risk state {account.risk_state}"
        zscore = snapshot.feature("zscore")
        if zscore is not None and abs(zscore) >= self.urgent_zscore:
            return f"|zscore| {abs(zscore):.2f} >= {self.urgent_zscore:g}"
        momentum = snapshot.feature("momentum")
        if momentum is not None and abs(momentum) >= self.urgent_momentum:
            return f"|momentum| {abs(momentum):.4g} >= {self.urgent_momentum:g}"
        return None

    def limit_offset_bps(self, vol_long: float | None) -> float:
        """Offset inside the close for a limit order: proportional to volatility, clamped."""
        if vol_long is None:
            return self.min_offset_bps
        offset = self.offset_vol_multiple * vol_long * 1e4
        return min(self.max_offset_bps, max(self.min_offset_bps, offset))

    def slices(self, snapshot: MarketSnapshot) -> tuple[int, str]:
        """Bars to spread a full position over so no bar trades beyond max_participation."""
        account = snapshot.account
        if account is None:
            return 1, "1 slice (no account view: position size unknown)"
        full_position = account.max_position * account.equity
        bar_notional = snapshot.bar.volume * snapshot.bar.close
        allowed = self.max_participation * bar_notional
        if allowed <= 0.0:
            return self.max_slices, f"{self.max_slices} slices (bar traded nothing)"
        ratio = full_position / allowed
        slices = min(self.max_slices, max(1, math.ceil(ratio - 1e-9)))
        return slices, (
            f"{slices} slice{'s' if slices > 1 else ''} (full position {full_position:.6g} "
            f"= {ratio:.2f}x {self.max_participation:g} of bar notional {bar_notional:.6g})"
        )

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        vol_long = snapshot.feature("vol_long")
        notes: list[str] = []
        scale: float | None
        if vol_long is None:
            scale = None
            notes.append("no vol target (vol_long unknown)")
        else:
            scale = 1.0 if vol_long <= self.target_vol else self.target_vol / vol_long
            notes.append(f"vol target {self.target_vol:g} / vol_long {vol_long:.4g} -> {scale:.2f}")

        urgent = self.urgency(snapshot)
        order_type: Literal["market", "limit"] = "market"
        offset = 0.0
        if not self.prefer_limit:
            notes.append("market (limit orders disabled)")
        elif urgent is not None:
            notes.append(f"market: urgent, {urgent}")
        else:
            order_type, offset = "limit", self.limit_offset_bps(vol_long)
            basis = "vol_long unknown: smallest offset" if vol_long is None else "vol-scaled"
            notes.append(f"limit {offset:.2f} bps inside close ({basis})")

        slices, slice_note = self.slices(snapshot)
        notes.append(slice_note)
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=0.0,
            confidence=0.0,
            rationale="advice: " + "; ".join(notes),
            scale=scale,
            execution=ExecutionAdvice(
                order_type=order_type, limit_offset_bps=offset, slices=slices
            ),
        )
