"""The planner: how much each agent should count in each market regime.

Trend following earns in trends and bleeds in ranges; mean reversion the other way round. The
planner encodes that as weight priors per regime (``PlannerConfig.priors``); an agent a regime
does not mention keeps its base weight, and so does every agent in an unlisted regime or when the
regime is unknown (warm-up). With ``learn`` on, each regime's prior is tilted by the agents'
realised, out-of-sample record *in that regime* (from a ``PerformanceTracker``); the tilt is
recomputed only when ``refresh`` is called, which ``PerformanceWeights`` does at its walk-forward
window boundaries, so a prior in force at ``t`` never depends on a bar after ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trading.domain import REGIMES
from trading.performance import PerformanceTracker, Score, performance_multiplier

PriorWeight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class PlannerConfig(BaseModel):
    """Weight priors per regime, and whether to learn a per-regime tilt from performance.

    ``strength`` is how far evidence may move a prior: a perfect record in a regime multiplies
    the prior by up to ``1 + strength``, a hopeless one by as little as 0. ``min_samples`` is the
    number of scored votes in the regime below which the prior stands untouched.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    priors: dict[str, dict[str, PriorWeight]] = Field(default_factory=dict)
    learn: bool = False
    strength: float = Field(1.0, gt=0.0, le=10.0, allow_inf_nan=False)
    min_samples: int = Field(50, ge=1)
    score: Score = "hit_rate"

    @field_validator("priors")
    @classmethod
    def _known_regimes(cls, priors: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        unknown = sorted(set(priors) - REGIMES)
        if unknown:
            raise ValueError(f"unknown regimes {unknown}; expected some of {sorted(REGIMES)}")
        return priors

    def check_agents(self, agent_names: Iterable[str]) -> None:
        """Reject priors naming agents the committee lacks (a typo would silently do nothing)."""
        names = set(agent_names)
        problems = []
        for regime in sorted(self.priors):
            unknown = sorted(set(self.priors[regime]) - names)
            if unknown:
                problems.append(f"planner.priors.{regime}: unknown agents {unknown}")
        if problems:
            raise ValueError("; ".join(problems) + f" (the committee's agents are {sorted(names)})")


def check_base_weights(base_weights: Mapping[str, float]) -> dict[str, float]:
    """The committee's configured weights as floats, rejecting negative or non-finite ones."""
    if not base_weights:
        raise ValueError("base_weights must name at least one agent")
    bad = sorted(n for n, w in base_weights.items() if not (math.isfinite(w) and w >= 0.0))
    if bad:
        raise ValueError(f"base_weights must be finite and >= 0, not for {bad}")
    return {name: float(weight) for name, weight in base_weights.items()}


class Planner:
    """Weight priors per regime over a committee's base weights (optionally learned)."""

    def __init__(self, config: PlannerConfig, base_weights: Mapping[str, float]) -> None:
        self.base_weights = check_base_weights(base_weights)
        config.check_agents(self.base_weights)
        self.config = config
        self._configured: dict[str, dict[str, float]] = {
            regime: {
                name: float(config.priors.get(regime, {}).get(name, weight))
                for name, weight in self.base_weights.items()
            }
            for regime in sorted(REGIMES)
        }
        self._tilt: dict[str, dict[str, float]] = {
            regime: dict.fromkeys(self.base_weights, 1.0) for regime in sorted(REGIMES)
        }
        self._priors = {regime: dict(weights) for regime, weights in self._configured.items()}

    def prior_for(self, regime: str | None) -> dict[str, float]:
        """The weight per agent to start from in ``regime`` (base weights when None)."""
        if regime is None:
            return dict(self.base_weights)
        prior = self._priors.get(regime)
        if prior is None:
            raise ValueError(f"regime must be one of {sorted(REGIMES)} or None, got {regime!r}")
        return dict(prior)

    def refresh(self, tracker: PerformanceTracker) -> None:
        """Re-tilt each regime's prior by the agents' out-of-sample record in that regime.

        A no-op unless ``learn``; uses whatever ``tracker`` has scored so far, so call it only
        at a point in time whose later bars must not matter (a walk-forward boundary).
        """
        if not self.config.learn:
            return
        strength = self.config.strength
        for regime in sorted(REGIMES):
            for name in self.base_weights:
                edge, n = tracker.edge(name, regime, score=self.config.score)
                tilt = performance_multiplier(
                    edge,
                    n,
                    min_samples=self.config.min_samples,
                    sensitivity=strength,
                    floor=0.0,
                    cap=1.0 + strength,
                )
                self._tilt[regime][name] = tilt
                self._priors[regime][name] = self._configured[regime][name] * tilt

    @property
    def tilts(self) -> dict[str, dict[str, float]]:
        """The learned multiplier per regime and agent (all 1 until learning has evidence)."""
        return {regime: dict(tilt) for regime, tilt in self._tilt.items()}

    def summary(self) -> dict[str, Any]:
        """JSON-safe: configured priors, learned tilts and the priors now in force."""
        return {
            "learn": self.config.learn,
            "base_weights": dict(self.base_weights),
            "configured": {r: dict(w) for r, w in self._configured.items()},
            "tilts": self.tilts,
            "priors": {r: dict(w) for r, w in self._priors.items()},
        }
