"""Deterministic synthetic market data for replay clients of venues without a recording.

Everything here is a pure function of a key and a time: the same trade, candle or order book
comes back whichever window asks for it, in whatever process, so a synthetic partition replays
identically. Callers mark what they serve from here as synthetic.

Prices follow a day-by-day Brownian bridge between smooth daily anchor levels; trades and books
are drawn inside a 5-minute candle's range (recorded real candles where the caller has them,
synthetic ones otherwise), so a venue's trades, book and candles tell one consistent story.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DAY_S = 86_400
HOUR_S = 3_600
CANDLE_S = 300
"""Granularity of the price bounds trades and books are drawn within."""
FIRST_DAY = 16_436
"""2015-01-01 in days since the epoch: synthetic trade and post histories start there."""
FIRST_HOUR = FIRST_DAY * 24
_ANCHOR_OCTAVES: tuple[tuple[int, float], ...] = ((1, 0.03), (7, 0.06), (30, 0.12), (120, 0.2))


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process and Python version (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_seed(*parts))


def value_noise(key: str, x: float, octaves: tuple[tuple[int, float], ...]) -> float:
    """Smooth deterministic noise at ``x``: gaussian lattice values, linearly interpolated.

    Each octave is (lattice spacing, amplitude). The value at ``x`` depends only on ``key`` and
    ``x``, so any window of a synthetic series agrees with any other window of it.
    """
    total = 0.0
    for spacing, amplitude in octaves:
        cell = math.floor(x / spacing)
        frac = x / spacing - cell
        left = rng_for(key, spacing, cell).standard_normal()
        right = rng_for(key, spacing, cell + 1).standard_normal()
        total += amplitude * ((1 - frac) * left + frac * right)
    return total


@dataclass(frozen=True)
class SyntheticMarket:
    """Where a synthetic product trades: start level, tick size, typical volume per 5 minutes,
    daily volatility, how many trades an hour and the smallest quantity step."""

    level: float
    quote_increment: float
    volume_5m: float
    daily_vol: float = 0.04
    trades_per_hour: float = 60.0
    base_increment: float = 1e-8

    @property
    def price_digits(self) -> int:
        return max(0, -math.floor(math.log10(self.quote_increment)))

    @property
    def size_digits(self) -> int:
        return max(0, -math.floor(math.log10(self.base_increment)))


def day_candles(
    seed_name: str, series: str, market: SyntheticMarket, granularity: int, day: int
) -> np.ndarray:
    """Rows [time s, low, high, open, close, volume] of one UTC day (day number since the
    epoch), oldest first: a random walk bridged between the day's anchor levels.

    OHLC is always valid (low <= open, close <= high, all positive) and prices sit on the tick.
    ``seed_name`` and ``series`` name the walk; the daily anchors depend on ``series`` only.
    Different granularities are independent draws, not aggregations of each other.
    """
    steps = DAY_S // granularity
    rng = rng_for(seed_name, series, granularity, day)
    anchor_key = f"anchor:{series}"
    sigma = market.daily_vol / math.sqrt(steps)
    walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(steps) * sigma)])
    start = math.log(market.level) + value_noise(anchor_key, day, _ANCHOR_OCTAVES)
    finish = math.log(market.level) + value_noise(anchor_key, day + 1, _ANCHOR_OCTAVES)
    bridge = np.linspace(0.0, 1.0, steps + 1) * (walk[-1] - (finish - start))
    path = np.exp(start + walk - bridge)
    tick = market.quote_increment
    prices = np.maximum(np.round(path / tick) * tick, tick)
    opens, closes = prices[:-1], prices[1:]
    wick_up = np.abs(rng.standard_normal(steps)) * sigma * 0.6
    wick_down = np.abs(rng.standard_normal(steps)) * sigma * 0.6
    highs = np.ceil(np.maximum(opens, closes) * np.exp(wick_up) / tick) * tick
    lows = np.maximum(np.floor(np.minimum(opens, closes) * np.exp(-wick_down) / tick) * tick, tick)
    volumes = np.round(market.volume_5m * (granularity / 300) * rng.lognormal(0.0, 0.6, steps), 8)
    times = day * DAY_S + granularity * np.arange(steps)
    digits = market.price_digits
    return np.column_stack(
        [
            times,
            np.round(lows, digits),
            np.round(highs, digits),
            np.round(opens, digits),
            np.round(closes, digits),
            volumes,
        ]
    )


PriceBounds = Callable[[int], tuple[float, float, float]]
"""Given a 5-minute candle's open time (s), that candle's (low, high, close)."""


def synthetic_bounds(seed_name: str, series: str, market: SyntheticMarket) -> PriceBounds:
    """Price bounds from :func:`day_candles` at 5 minutes (cached per day)."""
    days: dict[int, np.ndarray] = {}

    def bounds(candle_s: int) -> tuple[float, float, float]:
        day = candle_s // DAY_S
        rows = days.get(day)
        if rows is None:
            rows = days[day] = day_candles(seed_name, series, market, CANDLE_S, day)
        row = rows[(candle_s - day * DAY_S) // CANDLE_S]
        return float(row[1]), float(row[2]), float(row[4])

    return bounds


@dataclass(frozen=True)
class SyntheticTrades:
    """One hour of synthetic trades, oldest first (parallel arrays)."""

    time_ms: np.ndarray
    price: np.ndarray
    size: np.ndarray
    buyer_is_taker: np.ndarray


def hour_trades(
    key: str, market: SyntheticMarket, hour: int, bounds: PriceBounds
) -> SyntheticTrades:
    """The trades of one hour (hour number since the epoch): a Poisson count, uniform times with
    millisecond stamps, prices inside the containing 5-minute candle's range on the tick, and
    lognormal sizes on the lot step, so that an hour's volume is about 12 candles' worth."""
    rng = rng_for("trades", key, hour)
    count = int(rng.poisson(market.trades_per_hour))
    start_ms = hour * HOUR_S * 1000
    times = np.sort(rng.integers(0, HOUR_S * 1000, size=count)) + start_ms
    uniform = rng.random(count)
    mean_size = market.volume_5m * 12 / max(market.trades_per_hour, 1.0)
    sizes = rng.lognormal(math.log(mean_size) - 0.5, 1.0, count)
    step = market.base_increment
    sizes = np.maximum(np.round(sizes / step) * step, step)
    buyer_is_taker = rng.random(count) < 0.5
    tick = market.quote_increment
    prices = np.empty(count)
    for index, (time_ms, u) in enumerate(zip(times, uniform, strict=True)):
        candle_s = int(time_ms // 1000 // CANDLE_S * CANDLE_S)
        low, high, _ = bounds(candle_s)
        prices[index] = round(low + u * (high - low), 12)
    prices = np.maximum(np.round(prices / tick) * tick, tick)
    return SyntheticTrades(
        time_ms=times.astype("int64"),
        price=np.round(prices, market.price_digits),
        size=np.round(sizes, market.size_digits),
        buyer_is_taker=buyer_is_taker,
    )


@dataclass(frozen=True)
class SyntheticBook:
    """An order book at one moment: bids best (highest) first, asks best (lowest) first."""

    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    update_id: int


def order_book(
    key: str, market: SyntheticMarket, at_s: int, bounds: PriceBounds, depth: int
) -> SyntheticBook:
    """``depth`` levels a side around the close of the 5-minute candle containing ``at_s``:
    a spread of one to three ticks, levels one or two ticks apart, lognormal sizes."""
    rng = rng_for("book", key, at_s)
    _, _, close = bounds(at_s // CANDLE_S * CANDLE_S)
    tick = market.quote_increment
    mid_ticks = max(round(close / tick), 4)
    spread = int(rng.integers(1, 4))
    best_bid = mid_ticks - spread // 2
    best_ask = best_bid + spread
    mean_size = market.volume_5m / 20
    step = market.base_increment

    def side(best: int, direction: int) -> list[tuple[float, float]]:
        gaps = rng.integers(1, 3, size=depth)
        gaps[0] = 0
        ticks = best + direction * np.cumsum(gaps)
        sizes = np.maximum(
            np.round(rng.lognormal(math.log(mean_size), 1.0, depth) / step) * step, step
        )
        return [
            (round(float(t) * tick, market.price_digits), round(float(s), market.size_digits))
            for t, s in zip(ticks, sizes, strict=True)
            if t > 0
        ]

    return SyntheticBook(bids=side(best_bid, -1), asks=side(best_ask, +1), update_id=at_s * 10 + 7)


def decimal_text(value: float, digits: int) -> str:
    """A venue's fixed-point price or size string, e.g. '0.09840000'."""
    return f"{value:.{digits}f}"
