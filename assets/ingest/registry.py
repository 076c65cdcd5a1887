"""The sources Coinswarm ingests, one entry per raw asset.

Each entry names a pure source module (``fetch(client, ...)`` and ``parse(payload, ...)``), the
resource key of the client that serves it (a live HTTP client in production, a replay client of
recorded payloads locally), the pool that rate-limits calls to its API, and the table it lands in.
Adding a venue with the common candle schema is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from assets.ingest.sources import binance_klines, coinbase_candles, fred_series
from assets.ingest.sources.candles import interval_seconds as seconds_per_interval


@dataclass(frozen=True)
class CandleFeed:
    """An exchange's OHLCV candles for a set of pairs, in the common candle schema."""

    venue: str
    source: ModuleType
    symbols: tuple[str, ...]
    interval: str
    client_key: str
    description: str

    @property
    def interval_seconds(self) -> int:
        return seconds_per_interval(self.interval)

    @property
    def key(self) -> list[str]:
        return ["raw", self.venue, "ohlcv"]

    @property
    def table(self) -> str:
        return f"raw.{self.venue}_ohlcv"

    @property
    def pool(self) -> str:
        return f"{self.venue}_api"


@dataclass(frozen=True)
class MacroFeed:
    """Economic time series (one row per series and observation date)."""

    provider: str
    source: ModuleType
    series: tuple[str, ...]
    client_key: str
    description: str

    @property
    def key(self) -> list[str]:
        return ["raw", self.provider, "observations"]

    @property
    def table(self) -> str:
        return f"raw.{self.provider}_observations"

    @property
    def pool(self) -> str:
        return f"{self.provider}_api"


CANDLE_FEEDS: tuple[CandleFeed, ...] = (
    CandleFeed(
        venue="binance",
        source=binance_klines,
        symbols=tuple(binance_klines.DEFAULT_SYMBOLS),
        interval="5m",
        client_key="binance_client",
        description=(
            "Binance spot 5-minute klines (GET /api/v3/klines) for the traded pairs. The trading "
            "job decides on these candles, so their quality check is blocking."
        ),
    ),
    CandleFeed(
        venue="coinbase",
        source=coinbase_candles,
        symbols=tuple(coinbase_candles.DEFAULT_SYMBOLS),
        interval="5m",
        client_key="coinbase_client",
        description=(
            "Coinbase Exchange 5-minute candles (GET /products/{id}/candles), a second venue's "
            "view of the same pairs for cross-venue comparison."
        ),
    ),
)

MACRO_FEEDS: tuple[MacroFeed, ...] = (
    MacroFeed(
        provider="fred",
        source=fred_series,
        series=tuple(fred_series.DEFAULT_SYMBOLS),
        client_key="fred_client",
        description=(
            "FRED macro series through fredapi: fed funds (DFF), 10-year yield (DGS10), CPI "
            "(CPIAUCSL), broad dollar index (DTWEXBGS) and M2 (M2SL)."
        ),
    ),
)

TRADED_FEED = CANDLE_FEEDS[0]
"""The feed whose candles flow through dbt into features, regimes and the trading job."""
