"""Committee weights learned from each agent's realised, out-of-sample performance.

Walk-forward: decisions are grouped into windows of ``window_bars`` distinct timestamps. At the
first snapshot of a window the weights are recomputed, then frozen for the whole window. The
recomputation uses only votes scored before that snapshot was observed, i.e. outcomes realised
at earlier timestamps, so every window's weights are out of sample for that window, and they do
not depend on the order of symbols within a timestamp.

The weight of an agent is the planner's prior for the snapshot's regime (the configured base
weight when there is no planner or no regime yet) times a performance multiplier from the agent's
recent record (``performance_multiplier``): 1 without enough evidence, above 1 for an agent that
has been right, down to ``floor`` for one that has been wrong. A floor above 0 keeps a losing
agent's votes counted; its votes are scored either way, so it can earn its weight back.

With ``scheme: static`` the multipliers stay at 1 (planner priors still apply per regime, and
learn when the planner does); the tracker still records performance for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trading.domain import REGIMES, MarketSnapshot, Proposal, UtcDatetime
from trading.performance import PerformanceTracker, Score, performance_multiplier
from trading.planner import Planner, check_base_weights


class WeightingConfig(BaseModel):
    """How the committee's weights move with performance (``weighting:`` in the committee YAML).

    ``window_bars`` counts decision timestamps between recomputations; ``horizon_bars`` how many
    bars of a symbol after a vote its outcome is measured; ``lookback`` how many of an agent's
    latest scored votes make its record; ``min_samples`` how many it needs before its weight
    moves (and how strongly a short record is shrunk towards no change).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: Literal["static", "performance"] = "static"
    window_bars: int = Field(288, ge=1)
    horizon_bars: int = Field(1, ge=1, le=10_000)
    lookback: int = Field(500, ge=1, le=1_000_000)
    min_samples: int = Field(30, ge=0)
    score: Score = "hit_rate"
    sensitivity: float = Field(2.0, gt=0.0, le=100.0, allow_inf_nan=False)
    floor: float = Field(0.1, ge=0.0, le=1.0, allow_inf_nan=False)
    cap: float = Field(3.0, ge=1.0, le=100.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check_samples(self) -> WeightingConfig:
        if self.min_samples > self.lookback:
            raise ValueError(
                f"min_samples ({self.min_samples}) must be <= lookback ({self.lookback}): "
                "a record can never hold more votes than the lookback"
            )
        return self


class WeightWindow(BaseModel):
    """The weights frozen for one walk-forward window, and the evidence they came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    start: UtcDatetime
    multipliers: dict[str, float]
    weights: dict[str, float] = Field(description="base weight x multiplier (no regime)")
    by_regime: dict[str, dict[str, float]] = Field(description="planner prior x multiplier")
    edge: dict[str, float | None]
    n_scored: dict[str, int]


class PerformanceWeights:
    """A ``WeightProvider`` and ``DecisionObserver``: walk-forward performance weights.

    Register it as the committee's weights; the committee then also feeds it every decision.
    ``history`` holds one ``WeightWindow`` per window for the report's weights over time.
    """

    def __init__(
        self,
        base_weights: Mapping[str, float],
        config: WeightingConfig | None = None,
        planner: Planner | None = None,
    ) -> None:
        self.config = config if config is not None else WeightingConfig(scheme="performance")
        self.base_weights = check_base_weights(base_weights)
        if planner is not None and planner.base_weights != self.base_weights:
            raise ValueError(
                f"planner base weights {planner.base_weights} differ from the committee's "
                f"{self.base_weights}"
            )
        self.planner = planner
        self.tracker = PerformanceTracker(
            horizon_bars=self.config.horizon_bars, lookback=self.config.lookback
        )
        self.history: list[WeightWindow] = []
        self._timestamps = 0
        self._last_ts: datetime | None = None
        self._current: dict[str | None, dict[str, float]] = {}

    def weights_for(self, snapshot: MarketSnapshot) -> Mapping[str, float]:
        ts = snapshot.ts
        if ts != self._last_ts:
            if self._last_ts is not None and ts < self._last_ts:
                raise ValueError(
                    f"snapshots must arrive in ts order: {ts.isoformat()} after "
                    f"{self._last_ts.isoformat()}"
                )
            if self._timestamps % self.config.window_bars == 0:
                self._start_window(ts)
            self._last_ts = ts
            self._timestamps += 1
        weights = self._current.get(snapshot.regime)
        if weights is None:
            raise ValueError(f"unknown regime {snapshot.regime!r}")
        return dict(weights)

    def observe(self, snapshot: MarketSnapshot, proposal: Proposal) -> None:
        self.tracker.observe(snapshot, proposal)

    def _multiplier(self, name: str) -> tuple[float, float | None, int]:
        edge, n = self.tracker.edge(name, score=self.config.score)
        if self.config.scheme == "static":
            return 1.0, edge, n
        multiplier = performance_multiplier(
            edge,
            n,
            min_samples=self.config.min_samples,
            sensitivity=self.config.sensitivity,
            floor=self.config.floor,
            cap=self.config.cap,
        )
        return multiplier, edge, n

    def _start_window(self, start: datetime) -> None:
        if self.planner is not None:
            self.planner.refresh(self.tracker)
        evidence = {name: self._multiplier(name) for name in self.base_weights}
        multipliers = {name: m for name, (m, _, _) in evidence.items()}

        def scaled(prior: Mapping[str, float]) -> dict[str, float]:
            return {name: prior[name] * multipliers[name] for name in self.base_weights}

        current: dict[str | None, dict[str, float]] = {None: scaled(self.base_weights)}
        for regime in sorted(REGIMES):
            prior = self.planner.prior_for(regime) if self.planner else self.base_weights
            current[regime] = scaled(prior)
        self._current = current
        self.history.append(
            WeightWindow(
                index=len(self.history),
                start=start,
                multipliers=multipliers,
                weights=dict(current[None]),
                by_regime={r: dict(w) for r, w in current.items() if r is not None},
                edge={name: e for name, (_, e, _) in evidence.items()},
                n_scored={name: n for name, (_, _, n) in evidence.items()},
            )
        )

    def history_rows(self) -> list[dict[str, Any]]:
        """One JSON-safe row per window and agent: the report's agent weights over time."""
        return [
            {
                "window": window.index,
                "window_start": window.start.isoformat(),
                "agent": name,
                "weight": window.weights[name],
                "multiplier": window.multipliers[name],
                "edge": window.edge[name],
                "n_scored": window.n_scored[name],
                **{f"weight_{r}": window.by_regime[r][name] for r in sorted(window.by_regime)},
            }
            for window in self.history
            for name in self.base_weights
        ]

    def summary(self) -> dict[str, Any]:
        """JSON-safe: config, the weights now in force, their history and the agents' record."""
        return {
            "config": self.config.model_dump(mode="json"),
            "windows": len(self.history),
            "current": self.history[-1].model_dump(mode="json") if self.history else None,
            "history": self.history_rows(),
            "performance": self.tracker.summary(),
            "planner": self.planner.summary() if self.planner is not None else None,
        }
