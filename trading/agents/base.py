"""The agent plugin contract.

An agent has one required method, ``vote(snapshot) -> Vote``, and never touches a broker. It is
always called through ``safe_vote``, so one misbehaving agent (an exception, a malformed vote, a
vote for the wrong symbol) becomes a neutral, logged vote instead of crashing a run.
Agents are built from config by dotted path (``build_agent``), like freqtrade strategies or
nautilus actors.
"""

from __future__ import annotations

import importlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trading.domain import MarketSnapshot, Vote

logger = logging.getLogger(__name__)


class Agent(ABC):
    """Base class for voting agents; subclasses implement ``vote``."""

    def __init__(self, name: str) -> None:
        if not name or not name.strip():
            raise ValueError("an agent needs a non-blank name")
        self.name = name

    @abstractmethod
    def vote(self, snapshot: MarketSnapshot) -> Vote:
        """Return this agent's opinion on ``snapshot``; never an order."""

    def neutral(self, snapshot: MarketSnapshot, rationale: str) -> Vote:
        """A no-opinion vote (direction 0, confidence 0)."""
        return neutral_vote(self.name, snapshot, rationale)

    @staticmethod
    def missing_features(snapshot: MarketSnapshot, names: tuple[str, ...]) -> list[str]:
        """The features among ``names`` that are absent or still warming up."""
        missing = []
        for name in names:
            value = snapshot.feature(name)
            if value is None or not math.isfinite(value):
                missing.append(name)
        return missing

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def finite_number(name: str, value: object) -> float:
    """``value`` as a float, for checking an agent's parameters: a bool, a string, NaN or an
    infinity is a ValueError naming the parameter (YAML hands over whatever it parsed)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive_number(name: str, value: object) -> float:
    number = finite_number(name, value)
    if number <= 0.0:
        raise ValueError(f"{name} must be > 0, got {number}")
    return number


def non_negative_number(name: str, value: object) -> float:
    number = finite_number(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def neutral_vote(agent: str, snapshot: MarketSnapshot, rationale: str) -> Vote:
    return Vote(
        agent=agent,
        symbol=snapshot.symbol,
        ts=snapshot.ts,
        direction=0.0,
        confidence=0.0,
        rationale=rationale,
    )


def safe_vote(agent: Agent, snapshot: MarketSnapshot) -> Vote:
    """Call ``agent.vote``; any exception or invalid result becomes a neutral vote."""
    name = getattr(agent, "name", None) or type(agent).__name__
    try:
        vote = agent.vote(snapshot)
    except Exception as exc:  # an agent must never crash the committee
        logger.exception("agent %s failed on %s@%s", name, snapshot.symbol, snapshot.ts)
        return neutral_vote(name, snapshot, f"agent error: {type(exc).__name__}: {exc}")
    problem: str | None = None
    if not isinstance(vote, Vote):
        problem = f"returned {type(vote).__name__}, not a Vote"
    elif vote.symbol != snapshot.symbol or vote.ts != snapshot.ts:
        problem = (
            f"voted on {vote.symbol}@{vote.ts.isoformat()} "
            f"instead of {snapshot.symbol}@{snapshot.ts.isoformat()}"
        )
    elif vote.agent != name:
        problem = f"signed its vote as {vote.agent!r}"
    if problem is not None:
        logger.error("agent %s produced an invalid vote: %s", name, problem)
        return neutral_vote(name, snapshot, f"invalid vote: {problem}")
    return vote


class AgentSpec(BaseModel):
    """How to build one agent: a name, a class by dotted path, and keyword parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    class_path: str = Field(
        alias="class",
        min_length=1,
        description="'package.module:ClassName' or 'package.module.ClassName'",
    )
    params: dict[str, Any] = Field(default_factory=dict)


def _import_class(path: str) -> type:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"agent class {path!r} is not a dotted path like 'pkg.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"agent class {path!r}: cannot import module {module_name!r}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"agent class {path!r}: {module_name} has no {attr!r}") from None


def build_agent(spec: AgentSpec | Mapping[str, Any]) -> Agent:
    """Instantiate ``spec``'s class with ``name=spec.name`` and ``**spec.params``."""
    if not isinstance(spec, AgentSpec):
        try:
            spec = AgentSpec.model_validate(spec)
        except ValidationError as exc:
            raise ValueError(f"invalid agent spec: {exc}") from exc
    cls = _import_class(spec.class_path)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ValueError(f"agent class {spec.class_path!r} is not a trading.agents.base.Agent")
    try:
        return cls(name=spec.name, **spec.params)
    except TypeError as exc:
        raise ValueError(f"agent {spec.name!r} ({spec.class_path}): bad params: {exc}") from exc
