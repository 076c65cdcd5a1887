"""The committee configuration: which agents, how they are weighed, the risk limits, the broker.

Loaded from YAML into a frozen, strict model: an unknown key or a bad value fails with the
field's location (``risk.max_position_fraction: ...``), before anything trades. The default
ships as ``trading/committee.yaml`` and is read through importlib.resources, so it works from
an installed wheel too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trading.agents.base import AgentSpec, build_agent
from trading.brokers.base import Broker
from trading.brokers.paper import PaperBroker
from trading.committee import Committee
from trading.execution import ExecutionEngine, Sizing
from trading.features import FeatureWindows
from trading.memory.book import MemoryBook, MemoryConfig
from trading.memory.store import InMemoryStore, MemoryStore
from trading.planner import Planner, PlannerConfig
from trading.portfolio import Portfolio
from trading.reflection import Reflection, ReflectionConfig
from trading.regime import RegimeRule
from trading.risk import RiskGate, RiskLimits
from trading.session import TradingSession
from trading.weights import PerformanceWeights, WeightingConfig

DEFAULT_CONFIG = "committee.yaml"
CONFIGS_DIR = Path(__file__).parent / "configs"
"""Further shipped committee configs (each becomes a backtest report asset)."""


class CommitteeConfigError(ValueError):
    """A committee config that cannot be loaded; the message names the file and fields."""


class CommitteeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: tuple[AgentSpec, ...] = Field(min_length=1)
    weights: dict[str, float]
    quorum: int = Field(ge=1)
    min_confidence: float = Field(ge=0, le=1)
    risk: RiskLimits
    sizing: Sizing = Sizing()
    fee_bps: float = Field(ge=0, le=1000)
    slippage_bps: float = Field(ge=0, le=1000)
    max_participation: float | None = Field(None, gt=0, le=1)
    initial_cash: float = Field(gt=0, allow_inf_nan=False)
    quote: str = Field(pattern=r"^[A-Z0-9]{1,20}$")
    features: FeatureWindows = FeatureWindows()
    regime: RegimeRule = RegimeRule()
    weighting: WeightingConfig = WeightingConfig()
    planner: PlannerConfig = PlannerConfig()
    reflection: ReflectionConfig = ReflectionConfig()
    memory: MemoryConfig = MemoryConfig(enabled=False)
    """Quorum-governed memory; off unless the config has a ``memory:`` section enabling it."""

    @model_validator(mode="after")
    def _check_cross_fields(self) -> CommitteeConfig:
        names = [agent.name for agent in self.agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agents: duplicate names {duplicates}")
        missing = sorted(set(names) - set(self.weights))
        unknown = sorted(set(self.weights) - set(names))
        if missing or unknown:
            raise ValueError(f"weights: missing agents {missing}, unknown agents {unknown}")
        negative = sorted(n for n, w in self.weights.items() if not w >= 0)
        if negative:
            raise ValueError(f"weights: must be >= 0 for {negative}")
        self.planner.check_agents(names)
        for index, spec in enumerate(self.agents):
            try:  # build once now, so a bad parameter fails at load time, naming the agent
                build_agent(spec)
            except ValueError as exc:
                raise ValueError(f"agents.{index} ({spec.name}): {exc}") from None
        if self.quorum > len(self.agents):
            raise ValueError(f"quorum: {self.quorum} exceeds the {len(self.agents)} agents")
        if self.fee_bps + self.slippage_bps > self.risk.execution_cost_allowance_bps:
            raise ValueError(
                f"fee_bps + slippage_bps ({self.fee_bps + self.slippage_bps}) exceeds "
                f"risk.execution_cost_allowance_bps ({self.risk.execution_cost_allowance_bps}); "
                "the risk gate would under-estimate execution costs"
            )
        return self


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {location}: {item['msg']}")
    return "\n".join(lines)


def parse_committee_config(data: Any, *, source: str = "<data>") -> CommitteeConfig:
    if not isinstance(data, dict):
        raise CommitteeConfigError(f"{source}: expected a mapping at the top level")
    try:
        return CommitteeConfig.model_validate(data)
    except ValidationError as exc:
        raise CommitteeConfigError(
            f"invalid committee config {source}:\n{_format_errors(exc)}"
        ) from exc


def load_committee_config(path: str | Path | None = None) -> CommitteeConfig:
    """Load ``path``, or the packaged default ``trading/committee.yaml`` when None."""
    if path is None:
        resource = resources.files("trading").joinpath(DEFAULT_CONFIG)
        text, source = resource.read_text(encoding="utf-8"), f"trading/{DEFAULT_CONFIG}"
    else:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommitteeConfigError(f"cannot read committee config {path}: {exc}") from exc
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommitteeConfigError(f"committee config {source} is not valid YAML: {exc}") from exc
    return parse_committee_config(data, source=source)


def build_session(
    config: CommitteeConfig,
    portfolio: Portfolio | None = None,
    *,
    memory_store: MemoryStore | None = None,
    broker: Broker | None = None,
    risk_gate: RiskGate | None = None,
) -> TradingSession:
    """Wire agents -> committee (weights learned walk-forward under the planner's priors,
    watched by reflection) -> memory evidence -> risk gate -> execution -> paper broker.

    Every call builds fresh learners: their state is one pass over time. The memory is durable
    when ``memory_store`` is (the trading job passes PostgreSQL); otherwise, when the config
    enables memory, a fresh in-process store is used (a backtest starts with no memories).
    ``broker`` replaces the paper broker (a live run passes the Coinbase broker together with
    the ``risk_gate`` it was built against, which must enforce the config's limits).
    """
    if risk_gate is not None and risk_gate.limits != config.risk:
        raise CommitteeConfigError("risk_gate enforces other limits than the config's risk")
    if portfolio is None:
        portfolio = Portfolio(config.quote, config.initial_cash)
    elif portfolio.quote != config.quote:
        raise CommitteeConfigError(
            f"portfolio is quoted in {portfolio.quote}, the config in {config.quote}"
        )
    planner = Planner(config.planner, config.weights)
    provider = PerformanceWeights(config.weights, config.weighting, planner)
    reflection_config = config.reflection
    shares_tracker = (
        reflection_config.horizon_bars == config.weighting.horizon_bars
        and reflection_config.min_samples <= config.weighting.lookback
    )
    observers = []
    if reflection_config.enabled:
        observers.append(
            Reflection(
                reflection_config,
                quorum=config.quorum,
                min_confidence=config.min_confidence,
                tracker=provider.tracker if shares_tracker else None,
            )
        )
    committee = Committee(
        [build_agent(spec) for spec in config.agents],
        provider,
        quorum=config.quorum,
        min_confidence=config.min_confidence,
        observers=observers,
    )
    if broker is None:
        broker = PaperBroker(
            fee_bps=config.fee_bps,
            slippage_bps=config.slippage_bps,
            max_participation=config.max_participation,
        )
    execution = ExecutionEngine(risk_gate or RiskGate(config.risk), broker, config.sizing)
    memory = None
    if config.memory.enabled:
        memory = MemoryBook(
            config.memory,
            memory_store if memory_store is not None else InMemoryStore(),
            round_trip_cost_bps=2.0 * (config.fee_bps + config.slippage_bps),
        )
    return TradingSession(committee, execution, portfolio, memory)
