"""Fixtures for the trading library: bars, snapshots and the recorded January 2018 alt/BTC data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from trading.domain import Bar, MarketSnapshot

T0 = datetime(2018, 1, 10, 12, 0, tzinfo=UTC)


def make_bar(
    symbol: str = "ETH/BTC",
    ts: datetime = T0,
    close: float = 0.1,
    *,
    volume: float = 1_000.0,
    spread: float = 0.01,
) -> Bar:
    return Bar(
        symbol=symbol,
        ts=ts,
        open=close,
        high=close * (1 + spread),
        low=close * (1 - spread),
        close=close,
        volume=volume,
    )


def make_snapshot(
    features: Mapping[str, float | None] | None = None,
    *,
    symbol: str = "ETH/BTC",
    ts: datetime = T0,
    close: float = 0.1,
    regime: str | None = None,
) -> MarketSnapshot:
    return MarketSnapshot(
        symbol=symbol,
        ts=ts,
        bar=make_bar(symbol, ts, close),
        features=dict(features or {}),
        regime=regime,
    )


@pytest.fixture
def snapshot_factory() -> Callable[..., MarketSnapshot]:
    return make_snapshot


def load_candles(shared_data: Path, pair: str) -> pd.DataFrame:
    """A recorded Binance 5m file as the common candle schema (symbol, open_time, OHLCV)."""
    path = shared_data / "ohlcv" / f"binance-{pair}BTC-5m-2018-01.csv"
    frame = pd.read_csv(path).rename(columns={"timestamp": "open_time"})
    frame.insert(0, "symbol", f"{pair}/BTC")
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    return frame


@pytest.fixture(scope="session")
def january_candles(shared_data: Path) -> pd.DataFrame:
    """ETH/BTC and LTC/BTC 5m candles, 2018-01-10..30 (real, recorded by freqtrade)."""
    return pd.concat(
        [load_candles(shared_data, "ETH"), load_candles(shared_data, "LTC")], ignore_index=True
    )


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
