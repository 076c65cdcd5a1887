"""The sources Coinswarm ingests, one entry per raw asset.

Each entry names a pure source module (``fetch(client, subject, start, end)`` and
``parse(payload, subject)``), the resource key of the client that serves it (a live client in
production, a replay of recorded or synthetic payloads locally), the pool that rate-limits
calls to its API, where it lands, and the Great Expectations suite that guards it. The factory
builds every asset and check from these entries, so adding a source is one module plus one
entry here:

- :class:`CandleFeed`: OHLCV candles in the common candle schema -> ``raw.<venue>_ohlcv``,
  guarded by the candle gate (per-day verdicts that dbt's staging reads).
- :class:`MacroFeed`: economic series -> ``raw.<provider>_observations``.
- :class:`TableFeed`: any other tabular source -> ``raw.<source>_<what>``; the module declares
  ``COLUMNS``, ``TIME_COLUMN`` (the partition column) and ``KEY_COLUMNS``.
- :class:`DocumentFeed`: text items -> MongoDB ``raw_documents`` (``_id = "<source>:<id>"``).

A check is blocking when the trading job depends on what it guards: the traded candles, and the
text sources the sentiment signal is built from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType

from assets.ingest import suites
from assets.ingest.sources import (
    binance_agg_trades,
    binance_depth,
    binance_funding,
    binance_klines,
    blockchain_charts,
    coinbase_book,
    coinbase_candles,
    coinbase_trades,
    coingecko_markets,
    fear_greed,
    fred_series,
    kraken_ohlc,
    kraken_trades,
    newsapi_articles,
    reddit_posts,
    twitter_posts,
)
from assets.ingest.sources.candles import interval_seconds as seconds_per_interval
from orchestration.quality import FrameSuite

RAW_DOCUMENTS_COLLECTION = "raw_documents"


class Feed(ABC):
    """What every raw asset's entry says: its key, where it lands, its client, pool and check."""

    client_key: str
    description: str
    blocking: bool

    @property
    @abstractmethod
    def key(self) -> list[str]: ...

    @property
    @abstractmethod
    def pool(self) -> str: ...

    @property
    @abstractmethod
    def check_name(self) -> str: ...

    @property
    @abstractmethod
    def destination(self) -> str:
        """The table or collection the asset writes."""

    @property
    def asset_path(self) -> str:
        return "/".join(self.key)


@dataclass(frozen=True)
class CandleFeed(Feed):
    """An exchange's OHLCV candles for a set of pairs, in the common candle schema."""

    venue: str
    source: ModuleType
    symbols: tuple[str, ...]
    interval: str
    client_key: str
    description: str
    blocking: bool = True

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
    def destination(self) -> str:
        return self.table

    @property
    def pool(self) -> str:
        return f"{self.venue}_api"

    @property
    def check_name(self) -> str:
        return "candles_valid"


@dataclass(frozen=True)
class MacroFeed(Feed):
    """Economic time series (one row per series and observation date)."""

    provider: str
    source: ModuleType
    series: tuple[str, ...]
    client_key: str
    description: str
    blocking: bool = False
    suite: FrameSuite = suites.OBSERVATIONS

    @property
    def key(self) -> list[str]:
        return ["raw", self.provider, "observations"]

    @property
    def table(self) -> str:
        return f"raw.{self.provider}_observations"

    @property
    def destination(self) -> str:
        return self.table

    @property
    def pool(self) -> str:
        return f"{self.provider}_api"

    @property
    def check_name(self) -> str:
        return "observations_valid"


@dataclass(frozen=True)
class _SubjectFeed(Feed):
    """A source asked once per subject (a symbol, a chart, a query, a subreddit)."""

    provider: str
    what: str
    module: ModuleType
    subjects: tuple[str, ...]
    client_key: str
    description: str
    suite: FrameSuite
    api: str = ""
    """Pool name stem when the API is not named after the provider (e.g. alternative_me)."""
    blocking: bool = False
    check: str = ""
    """Check name when ``<what>_valid`` would not say what is checked."""

    @property
    def key(self) -> list[str]:
        return ["raw", self.provider, self.what]

    @property
    def pool(self) -> str:
        return f"{self.api or self.provider}_api"

    @property
    def check_name(self) -> str:
        return self.check or f"{self.what}_valid"


@dataclass(frozen=True)
class TableFeed(_SubjectFeed):
    """Rows in ``raw.<provider>_<what>``, written through the Postgres window IO manager."""

    @property
    def table(self) -> str:
        return f"raw.{self.provider}_{self.what}"

    @property
    def destination(self) -> str:
        return self.table

    @property
    def time_column(self) -> str:
        return self.module.TIME_COLUMN


@dataclass(frozen=True)
class DocumentFeed(_SubjectFeed):
    """Text items, one document each, in MongoDB's ``raw_documents``."""

    @property
    def source_name(self) -> str:
        """The ``source`` field and ``_id`` prefix of its documents."""
        return self.module.SOURCE

    @property
    def destination(self) -> str:
        return RAW_DOCUMENTS_COLLECTION


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
    CandleFeed(
        venue="kraken",
        source=kraken_ohlc,
        symbols=tuple(kraken_ohlc.DEFAULT_SYMBOLS),
        interval=kraken_ohlc.INTERVAL,
        client_key="kraken_client",
        description=(
            "Kraken hourly OHLC (GET /0/public/OHLC) of the same pairs, a third venue's view. "
            "The live API serves only its latest 720 candles (30 days at one hour)."
        ),
        blocking=False,
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

TABLE_FEEDS: tuple[TableFeed, ...] = (
    TableFeed(
        provider="binance",
        what="agg_trades",
        module=binance_agg_trades,
        subjects=binance_agg_trades.DEFAULT_SYMBOLS,
        client_key="binance_client",
        suite=suites.AGG_TRADES,
        description=(
            "Binance spot aggregate trades (GET /api/v3/aggTrades), fetched hour by hour and "
            "continued by id inside busy hours."
        ),
    ),
    TableFeed(
        provider="binance",
        what="order_book",
        module=binance_depth,
        subjects=binance_depth.DEFAULT_SYMBOLS,
        client_key="binance_client",
        suite=suites.ORDER_BOOK,
        description=(
            "Binance spot order book at each day's close, 100 levels a side (GET /api/v3/depth). "
            "Live, only the present book exists: a day can be filled during it or the day after."
        ),
    ),
    TableFeed(
        provider="binance_futures",
        what="funding_rates",
        module=binance_funding,
        subjects=binance_funding.DEFAULT_SYMBOLS,
        client_key="binance_futures_client",
        suite=suites.FUNDING_RATES,
        description=(
            "Binance USD-M perpetual funding rates, every 8 hours (GET /fapi/v1/fundingRate)."
        ),
    ),
    TableFeed(
        provider="coinbase",
        what="trades",
        module=coinbase_trades,
        subjects=coinbase_trades.DEFAULT_SYMBOLS,
        client_key="coinbase_client",
        suite=suites.COINBASE_TRADES,
        description=(
            "Coinbase Exchange trades (GET /products/{id}/trades), found by binary search on "
            "trade ids and paged back with the 'after' cursor."
        ),
    ),
    TableFeed(
        provider="coinbase",
        what="order_book",
        module=coinbase_book,
        subjects=coinbase_book.DEFAULT_SYMBOLS,
        client_key="coinbase_client",
        suite=suites.ORDER_BOOK,
        description=(
            "Coinbase Exchange level-2 book (top 50 levels a side) at each day's close "
            "(GET /products/{id}/book?level=2); live, only the present book exists."
        ),
    ),
    TableFeed(
        provider="kraken",
        what="trades",
        module=kraken_trades,
        subjects=kraken_trades.DEFAULT_SYMBOLS,
        client_key="kraken_client",
        suite=suites.KRAKEN_TRADES,
        description="Kraken trades (GET /0/public/Trades), paged forward by the 'since' cursor.",
    ),
    TableFeed(
        provider="coingecko",
        what="market_caps",
        module=coingecko_markets,
        subjects=coingecko_markets.DEFAULT_SUBJECTS,
        client_key="coingecko_client",
        suite=suites.MARKET_CAPS,
        description=(
            "CoinGecko market caps, volumes and dominance at each day's close (GET "
            "/api/v3/coins/markets and /api/v3/global); live, only the present snapshot exists."
        ),
    ),
    TableFeed(
        provider="fear_greed",
        what="index",
        module=fear_greed,
        subjects=fear_greed.DEFAULT_SUBJECTS,
        client_key="fear_greed_client",
        suite=suites.FEAR_GREED,
        api="alternative_me",
        check="fear_greed_valid",
        description="The crypto Fear & Greed index, daily (alternative.me GET /fng/).",
    ),
    TableFeed(
        provider="blockchain",
        what="network_stats",
        module=blockchain_charts,
        subjects=blockchain_charts.DEFAULT_SUBJECTS,
        client_key="blockchain_client",
        suite=suites.NETWORK_STATS,
        description=(
            "Bitcoin on-chain statistics, daily, from blockchain.com's Charts API (GET "
            "/charts/{chart}): hash rate, difficulty, transactions, unique addresses, miners' "
            "revenue."
        ),
    ),
)

DOCUMENT_FEEDS: tuple[DocumentFeed, ...] = (
    DocumentFeed(
        provider="newsapi",
        what="articles",
        module=newsapi_articles,
        subjects=newsapi_articles.DEFAULT_SUBJECTS,
        client_key="newsapi_client",
        suite=suites.documents_suite(newsapi_articles.SOURCE),
        blocking=True,
        description=(
            "Crypto news headlines from NewsAPI (GET /v2/everything; needs NEWSAPI_API_KEY), "
            "one raw_documents item each. They feed the sentiment signal the trading job reads."
        ),
    ),
    DocumentFeed(
        provider="twitter",
        what="posts",
        module=twitter_posts,
        subjects=twitter_posts.DEFAULT_SUBJECTS,
        client_key="twitter_client",
        suite=suites.documents_suite(twitter_posts.SOURCE),
        blocking=True,
        description=(
            "Posts on X from recent search through tweepy (Client.search_recent_tweets; needs "
            "X_BEARER_TOKEN; the last seven days only), one raw_documents item each."
        ),
    ),
    DocumentFeed(
        provider="reddit",
        what="posts",
        module=reddit_posts,
        subjects=reddit_posts.DEFAULT_SUBJECTS,
        client_key="reddit_client",
        suite=suites.documents_suite(reddit_posts.SOURCE),
        blocking=True,
        description=(
            "New posts of r/CryptoCurrency, r/Bitcoin and r/ethereum through Reddit's public "
            "JSON listings (no OAuth; about the newest 1000 posts a subreddit reach back)."
        ),
    ),
)

FEEDS: tuple[Feed, ...] = (*CANDLE_FEEDS, *MACRO_FEEDS, *TABLE_FEEDS, *DOCUMENT_FEEDS)
"""Every raw asset, in the order the UI lists them."""

TRADED_FEED = CANDLE_FEEDS[0]
"""The feed whose candles flow through dbt into features, regimes and the trading job."""
