"""Risk: shrink or veto new exposure when volatility, drawdown or exposure run high.

The agent does not pick a direction. It watches four factors, each with a soft and a hard
threshold: the volatility ratio ``vol_short / vol_long`` (a regime turning wild), the per-bar
volatility ``vol_long`` itself, the account's drawdown from peak and its gross exposure. Each
factor's scale is 1 at or below its soft threshold, falls linearly to 0 at its hard threshold and
stays 0 beyond it; the vote's ``scale`` is the smallest of them, and the committee takes the
smallest scale of all agents, so this agent can only shrink what the others propose.

At or beyond the hard drawdown the agent also votes to reduce (direction -1 with
``reduce_confidence``): a deep drawdown is a reason to cut what is held, not only to stop adding.

Without an account view (unit tests, no portfolio known) drawdown and exposure are skipped and
the rationale says so; with no factor measurable at all the vote carries no scale.
Per-bar volatility defaults suit 5-minute bars (typical ``vol_long`` 0.3% on alt/BTC pairs); a
daily-bar config should raise ``bar_vol_soft``/``bar_vol_hard`` or set both to None.
"""

from __future__ import annotations

from typing import NamedTuple

from trading.agents.base import Agent, finite_number
from trading.domain import MarketSnapshot, Vote


def _band(
    soft_name: str,
    soft: object,
    hard_name: str,
    hard: object,
    *,
    upper: float | None = None,
) -> tuple[float, float]:
    soft_value = finite_number(soft_name, soft)
    hard_value = finite_number(hard_name, hard)
    if not 0.0 <= soft_value < hard_value:
        raise ValueError(
            f"need 0 <= {soft_name} < {hard_name}, got {soft_name}={soft_value}, "
            f"{hard_name}={hard_value}"
        )
    if upper is not None and hard_value > upper:
        raise ValueError(f"{hard_name} must be <= {upper}, got {hard_value}")
    return soft_value, hard_value


def linear_scale(value: float, soft: float, hard: float) -> float:
    """1 at or below ``soft``, 0 at or beyond ``hard``, linear in between."""
    if value <= soft:
        return 1.0
    if value >= hard:
        return 0.0
    return (hard - value) / (hard - soft)


class RiskFactor(NamedTuple):
    name: str
    value: float
    soft: float
    hard: float
    scale: float

    def describe(self) -> str:
        return (
            f"{self.name} {self.value:.4g} (soft {self.soft:g}, hard {self.hard:g}) "
            f"-> scale {self.scale:.2f}"
        )


class RiskAgent(Agent):
    def __init__(
        self,
        name: str = "risk",
        *,
        vol_ratio_soft: float = 1.5,
        vol_ratio_hard: float = 3.0,
        bar_vol_soft: float | None = 0.01,
        bar_vol_hard: float | None = 0.03,
        drawdown_soft: float = 0.05,
        drawdown_hard: float = 0.15,
        exposure_soft: float = 0.8,
        exposure_hard: float = 1.0,
        reduce_confidence: float = 1.0,
    ) -> None:
        super().__init__(name)
        self.vol_ratio_soft, self.vol_ratio_hard = _band(
            "vol_ratio_soft", vol_ratio_soft, "vol_ratio_hard", vol_ratio_hard
        )
        if (bar_vol_soft is None) != (bar_vol_hard is None):
            raise ValueError("bar_vol_soft and bar_vol_hard must both be set or both be None")
        self.bar_vol_soft: float | None = None
        self.bar_vol_hard: float | None = None
        if bar_vol_soft is not None:
            self.bar_vol_soft, self.bar_vol_hard = _band(
                "bar_vol_soft", bar_vol_soft, "bar_vol_hard", bar_vol_hard
            )
        self.drawdown_soft, self.drawdown_hard = _band(
            "drawdown_soft", drawdown_soft, "drawdown_hard", drawdown_hard, upper=1.0
        )
        self.exposure_soft, self.exposure_hard = _band(
            "exposure_soft", exposure_soft, "exposure_hard", exposure_hard
        )
        self.reduce_confidence = finite_number("reduce_confidence", reduce_confidence)
        if not 0.0 <= self.reduce_confidence <= 1.0:
            raise ValueError(f"reduce_confidence must be in [0, 1], got {reduce_confidence}")

    def factors(self, snapshot: MarketSnapshot) -> tuple[list[RiskFactor], list[str]]:
        """The measurable risk factors, and notes on those that could not be measured."""
        factors: list[RiskFactor] = []
        unmeasured: list[str] = []
        vol_short = snapshot.feature("vol_short")
        vol_long = snapshot.feature("vol_long")
        if vol_long is None:
            unmeasured.append("volatility (vol_long unknown)")
        else:
            if vol_short is None:
                unmeasured.append("vol ratio (vol_short unknown)")
            elif vol_long <= 0.0:
                unmeasured.append("vol ratio (vol_long is 0)")
            else:
                ratio = vol_short / vol_long
                factors.append(
                    RiskFactor(
                        "vol ratio",
                        ratio,
                        self.vol_ratio_soft,
                        self.vol_ratio_hard,
                        linear_scale(ratio, self.vol_ratio_soft, self.vol_ratio_hard),
                    )
                )
            if self.bar_vol_soft is not None and self.bar_vol_hard is not None:
                factors.append(
                    RiskFactor(
                        "bar vol",
                        vol_long,
                        self.bar_vol_soft,
                        self.bar_vol_hard,
                        linear_scale(vol_long, self.bar_vol_soft, self.bar_vol_hard),
                    )
                )
        account = snapshot.account
        if account is None:
            unmeasured.append("drawdown and exposure (no account view)")
        else:
            factors.append(
                RiskFactor(
                    "drawdown",
                    account.drawdown,
                    self.drawdown_soft,
                    self.drawdown_hard,
                    linear_scale(account.drawdown, self.drawdown_soft, self.drawdown_hard),
                )
            )
            factors.append(
                RiskFactor(
                    "exposure",
                    account.gross_exposure,
                    self.exposure_soft,
                    self.exposure_hard,
                    linear_scale(account.gross_exposure, self.exposure_soft, self.exposure_hard),
                )
            )
        return factors, unmeasured

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        factors, unmeasured = self.factors(snapshot)
        unchecked = f"; unchecked: {', '.join(unmeasured)}" if unmeasured else ""
        if not factors:
            return self.neutral(snapshot, f"no risk factor measurable{unchecked}")

        binding = min(factors, key=lambda factor: factor.scale)  # first of equals: stable
        if binding.scale >= 1.0:
            readings = "; ".join(f.describe() for f in factors)
            summary = f"calm: all factors within soft limits; {readings}"
        else:
            action = "veto new exposure" if binding.scale <= 0.0 else "scale down"
            others = "".join(f"; also {f.describe()}" for f in factors if f is not binding)
            summary = f"{action}: bound by {binding.describe()}{others}"

        direction, confidence = 0.0, 0.0
        account = snapshot.account
        deep = account is not None and account.drawdown >= self.drawdown_hard
        if deep and self.reduce_confidence > 0.0:
            direction, confidence = -1.0, self.reduce_confidence
            summary = f"reduce: drawdown at or beyond hard {self.drawdown_hard:g}; {summary}"
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=direction,
            confidence=confidence,
            rationale=f"{summary}{unchecked}",
            scale=binding.scale,
        )
