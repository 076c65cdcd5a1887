from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from pydantic import ValidationError

from tests.trading.conftest import T0, make_bar, make_snapshot
from trading.domain import (
    Bar,
    Fill,
    MarketSnapshot,
    Order,
    OrderIntent,
    Position,
    Proposal,
    Side,
    Vote,
)


def bar_kwargs(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "symbol": "ETH/BTC",
        "ts": T0,
        "open": 0.1,
        "high": 0.11,
        "low": 0.09,
        "close": 0.105,
        "volume": 10.0,
    }
    base.update(overrides)
    return base


def test_bar_accepts_a_valid_candle_and_is_frozen() -> None:
    bar = Bar(**bar_kwargs())
    with pytest.raises(ValidationError):
        bar.close = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"low": 0.101}, "low"),
        ({"high": 0.104}, "high"),
        ({"volume": -1.0}, "greater than or equal to 0"),
        ({"close": math.nan}, "finite"),
        ({"high": math.inf}, "finite"),
        ({"symbol": "ETHBTC"}, "BASE/QUOTE"),
        ({"symbol": "eth/btc"}, "BASE/QUOTE"),
        ({"ts": datetime(2018, 1, 10)}, "timezone-aware"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bar_rejects_bad_values_with_a_clear_message(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Bar(**bar_kwargs(**overrides))


def test_timestamps_are_normalised_to_plain_utc_datetimes() -> None:
    cet = timezone(timedelta(hours=1))
    bar = Bar(**bar_kwargs(ts=datetime(2018, 1, 10, 13, 0, tzinfo=cet)))
    assert bar.ts == T0 and bar.ts.tzinfo is not None and bar.ts.utcoffset() == timedelta(0)
    from_pandas = Bar(**bar_kwargs(ts=pd.Timestamp("2018-01-10T12:00Z")))
    assert type(from_pandas.ts) is datetime and from_pandas.ts == T0


def test_snapshot_turns_nan_features_into_missing_and_checks_consistency() -> None:
    snapshot = make_snapshot({"zscore": math.nan, "rsi": 40.0})
    assert snapshot.feature("zscore") is None
    assert snapshot.feature("rsi") == 40.0
    assert snapshot.feature("absent") is None
    with pytest.raises(ValidationError, match="does not match"):
        MarketSnapshot.model_validate(
            {"symbol": "LTC/BTC", "ts": T0, "bar": make_bar(), "features": {}}
        )
    with pytest.raises(ValidationError, match="regime must be one of"):
        make_snapshot(regime="sideways")


def test_vote_bounds() -> None:
    ok = Vote(agent="a", symbol="ETH/BTC", ts=T0, direction=-1.0, confidence=1.0, rationale="")
    assert not ok.is_neutral
    for field, value in (("direction", 1.5), ("confidence", -0.1), ("direction", math.nan)):
        kwargs = ok.model_dump() | {field: value}
        with pytest.raises(ValidationError, match=field):
            Vote(**kwargs)
    with pytest.raises(ValidationError, match="agent"):
        Vote(**(ok.model_dump() | {"agent": " "}))


def test_proposal_without_quorum_must_be_flat_and_votes_must_match() -> None:
    vote = Vote(agent="a", symbol="ETH/BTC", ts=T0, direction=1, confidence=1, rationale="")
    with pytest.raises(ValidationError, match="without quorum"):
        Proposal(
            symbol="ETH/BTC", ts=T0, direction=0.5, confidence=1, votes=(vote,), quorum_met=False
        )
    with pytest.raises(ValidationError, match="vote of a"):
        Proposal(
            symbol="LTC/BTC", ts=T0, direction=0.5, confidence=1, votes=(vote,), quorum_met=True
        )


def test_orders_intents_fills_positions() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        OrderIntent(
            symbol="ETH/BTC", ts=T0, side=Side.BUY, quantity=0, reference_price=1, reason=""
        )
    with pytest.raises(ValidationError, match="needs limit_price"):
        Order(
            client_order_id="x", symbol="ETH/BTC", ts=T0, side="buy", quantity=1, order_type="limit"
        )
    with pytest.raises(ValidationError, match="must not carry"):
        Order(
            client_order_id="x",
            symbol="ETH/BTC",
            ts=T0,
            side="buy",
            quantity=1,
            order_type="market",
            limit_price=1.0,
        )
    with pytest.raises(ValidationError, match="side"):
        Order(
            client_order_id="x",
            symbol="ETH/BTC",
            ts=T0,
            side="short",
            quantity=1,
            order_type="market",
        )
    fill = Fill(
        fill_id="f",
        client_order_id="x",
        symbol="ETH/BTC",
        ts=T0,
        side=Side.SELL,
        quantity=2,
        price=0.1,
        fee=0.0,
        liquidity="taker",
    )
    assert fill.notional == pytest.approx(0.2)
    with pytest.raises(ValidationError, match="liquidity"):
        Fill(**(fill.model_dump() | {"liquidity": "hidden"}))
    with pytest.raises(ValidationError, match="avg_price > 0"):
        Position(symbol="ETH/BTC", quantity=1.0, avg_price=0.0)
