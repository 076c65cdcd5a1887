"""Domain values shared by every stage of the trading path.

They are frozen and strict (unknown keys rejected, cross-field rules checked at construction)
so a malformed bar, vote or fill fails where it is made, not three stages later inside the
accounting. The same objects flow through live runs, the Dagster job and backtests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")

REGIMES: frozenset[str] = frozenset({"trending_up", "trending_down", "ranging", "volatile"})
"""Market regimes the signals layer may attach to a snapshot (signals.regimes.regime)."""


def _check_symbol(value: str) -> str:
    if not SYMBOL_PATTERN.match(value):
        raise ValueError(
            f"symbol must be 'BASE/QUOTE' in upper case (e.g. 'ETH/BTC'), got {value!r}"
        )
    return value


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware (UTC), got naive {value.isoformat()}")
    value = value.astimezone(UTC)
    if type(value) is not datetime:  # e.g. pandas.Timestamp: keep the domain free of pandas types
        value = datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=UTC,
        )
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Symbol = Annotated[str, AfterValidator(_check_symbol)]
UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Direction = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Identifier = Annotated[str, AfterValidator(_non_blank)]


def split_symbol(symbol: str) -> tuple[str, str]:
    """Return (base, quote) of a 'BASE/QUOTE' symbol."""
    base, quote = _check_symbol(symbol).split("/")
    return base, quote


class DomainModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class Bar(DomainModel):
    """One OHLCV candle; ``ts`` is its open time, the close is known at the end of the bar."""

    symbol: Symbol
    ts: UtcDatetime
    open: PositiveFloat
    high: PositiveFloat
    low: PositiveFloat
    close: PositiveFloat
    volume: NonNegativeFloat

    @model_validator(mode="after")
    def _check_range(self) -> Bar:
        if not self.low <= min(self.open, self.close):
            raise ValueError(
                f"bar low {self.low} must be <= open {self.open} and close {self.close}"
            )
        if not max(self.open, self.close) <= self.high:
            raise ValueError(
                f"bar high {self.high} must be >= open {self.open} and close {self.close}"
            )
        return self


class AccountView(DomainModel):
    """The account as an agent may see it at a decision: fractions of current equity.

    Filled in by the session just before the committee votes, from the portfolio marked at the
    same bar's close, so the Risk and Execution agents can size and veto without a broker.
    """

    equity: PositiveFloat
    peak_equity: PositiveFloat
    drawdown: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    daily_loss: FiniteFloat = Field(description="loss since the risk day began (<0 is a gain)")
    gross_exposure: NonNegativeFloat
    position: NonNegativeFloat = Field(description="this symbol's position value / equity")
    max_position: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="the risk limit max_position_fraction"
    )
    risk_state: Literal["active", "reducing", "halted"]


class MarketSnapshot(DomainModel):
    """What an agent may know about one symbol at ``ts``: the bar and point-in-time features.

    ``features`` may carry ``peer_close``: the same asset's close on another venue at ``ts``
    (what the Arbitrage agent compares). ``account`` is set by the session at decision time.
    """

    symbol: Symbol
    ts: UtcDatetime
    bar: Bar
    features: Mapping[str, float | None]
    regime: str | None = None
    account: AccountView | None = None

    @field_validator("features", mode="after")
    @classmethod
    def _nan_is_missing(cls, value: Mapping[str, float | None]) -> dict[str, float | None]:
        # Warm-up NaNs and SQL NULLs mean the same thing to an agent: not known yet.
        return {
            k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in value.items()
        }

    @model_validator(mode="after")
    def _check_consistency(self) -> MarketSnapshot:
        if self.bar.symbol != self.symbol:
            raise ValueError(f"bar symbol {self.bar.symbol} does not match snapshot {self.symbol}")
        if self.bar.ts != self.ts:
            raise ValueError(
                f"bar ts {self.bar.ts.isoformat()} does not match snapshot ts {self.ts.isoformat()}"
            )
        if self.regime is not None and self.regime not in REGIMES:
            raise ValueError(
                f"regime must be one of {sorted(REGIMES)} or None, got {self.regime!r}"
            )
        return self

    def feature(self, name: str) -> float | None:
        """A feature value, or None when it is absent or still warming up."""
        return self.features.get(name)


class ExecutionAdvice(DomainModel):
    """How to trade a decision, as the Execution agent advises.

    ``limit`` orders rest for one bar at ``limit_offset_bps`` inside the decision bar's close
    (below it to buy, above it to sell) and are cancelled if that bar does not trade through
    them. ``slices`` spreads a large rebalance over that many bars: each bar trades at most
    1/slices of the distance to the target.
    """

    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: NonNegativeFloat = 0.0
    slices: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _check_offset(self) -> ExecutionAdvice:
        if self.order_type == "market" and self.limit_offset_bps != 0.0:
            raise ValueError("a market order takes no limit_offset_bps")
        if self.limit_offset_bps >= 1e4:
            raise ValueError("limit_offset_bps must be below 10000 (100%)")
        return self


class Vote(DomainModel):
    """An agent's opinion: direction in [-1, 1] (sell..buy), how sure it is, and why.

    Besides direction, an agent may ask the committee to scale positions (``scale`` in [0, 1];
    0 vetoes new exposure, as the Risk agent does when drawdown or volatility runs too high) and
    may advise how to execute (``execution``). Scales combine by minimum, so any agent can shrink
    but none can enlarge what the risk limits allow.
    """

    agent: Identifier
    symbol: Symbol
    ts: UtcDatetime
    direction: Direction
    confidence: Confidence
    rationale: str
    scale: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    execution: ExecutionAdvice | None = None

    @property
    def is_neutral(self) -> bool:
        return self.direction == 0.0 or self.confidence == 0.0


class Proposal(DomainModel):
    """The committee's combined view for one symbol at one time.

    ``scale`` (the smallest scale any agent asked for, 1 when none did) multiplies the target
    position; ``execution`` is the advice execution follows (market order, one slice when no
    agent advised). ``weights`` are the weights the votes were combined with.
    """

    symbol: Symbol
    ts: UtcDatetime
    direction: Direction
    confidence: Confidence
    votes: tuple[Vote, ...]
    quorum_met: bool
    scale: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 1.0
    execution: ExecutionAdvice = ExecutionAdvice()
    weights: Mapping[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_votes(self) -> Proposal:
        for vote in self.votes:
            if vote.symbol != self.symbol or vote.ts != self.ts:
                raise ValueError(
                    f"vote of {vote.agent} is for {vote.symbol}@{vote.ts.isoformat()}, "
                    f"not {self.symbol}@{self.ts.isoformat()}"
                )
        if not self.quorum_met and self.direction != 0.0:
            raise ValueError("a proposal without quorum must have direction 0")
        return self


class OrderIntent(DomainModel):
    """What execution would like to trade, before the risk gate has had its say."""

    symbol: Symbol
    ts: UtcDatetime
    side: Side
    quantity: PositiveFloat
    reference_price: PositiveFloat
    reason: str

    @property
    def notional(self) -> float:
        return self.quantity * self.reference_price


class Order(DomainModel):
    client_order_id: Identifier
    symbol: Symbol
    ts: UtcDatetime
    side: Side
    quantity: PositiveFloat
    order_type: Literal["market", "limit"]
    limit_price: PositiveFloat | None = None

    @model_validator(mode="after")
    def _check_price(self) -> Order:
        if self.order_type == "limit" and self.limit_price is None:
            raise ValueError("a limit order needs limit_price")
        if self.order_type == "market" and self.limit_price is not None:
            raise ValueError("a market order must not carry limit_price")
        return self


class Fill(DomainModel):
    fill_id: Identifier
    client_order_id: Identifier
    symbol: Symbol
    ts: UtcDatetime
    side: Side
    quantity: PositiveFloat
    price: PositiveFloat
    fee: NonNegativeFloat
    liquidity: Literal["taker", "maker"]

    @property
    def notional(self) -> float:
        return self.quantity * self.price


class Position(DomainModel):
    """A holding in one symbol; realized PnL is before fees (fees are tracked on the portfolio)."""

    symbol: Symbol
    quantity: FiniteFloat
    avg_price: NonNegativeFloat
    realized_pnl: FiniteFloat = 0.0

    @model_validator(mode="after")
    def _check_avg(self) -> Position:
        if self.quantity != 0.0 and self.avg_price <= 0.0:
            raise ValueError("an open position needs avg_price > 0")
        return self
