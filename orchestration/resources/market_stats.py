"""Replay twins of the market-wide statistics APIs: CoinGecko, the Fear & Greed index and
blockchain.com's charts.

None of these is recorded in the project, so each serves deterministic synthetic data in the
venue's documented format and says so (``synthetic = True``). Values are smooth noise around
levels of early 2018 and depend only on the series and the moment, so overlapping windows
agree. The live clients are plain :class:`~orchestration.resources.http.HttpJsonClient`s.

CoinGecko's ``/global`` and ``/coins/markets`` describe the present and the Fear & Greed
history ends today, so those answers depend on when they are asked: they are served through
``get_json_at`` (the replay has no clock of its own).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from orchestration.resources.http import TimedAnswer, UpstreamError, rejected
from orchestration.resources.replay import as_utc_moment
from orchestration.resources.synthetic import DAY_S, rng_for, value_noise


def _not_found(venue: str, path: str, message: str) -> UpstreamError:
    return UpstreamError(message, venue=venue, path=path, status=404, attempts=1)


# -- CoinGecko ------------------------------------------------------------------------------------

COINGECKO_GLOBAL_PATH = "/api/v3/global"
COINGECKO_MARKETS_PATH = "/api/v3/coins/markets"


@dataclass(frozen=True)
class SyntheticCoin:
    coin_id: str
    symbol: str
    name: str
    price_usd: float
    circulating_supply: float
    volume_share: float


SYNTHETIC_COINS: tuple[SyntheticCoin, ...] = (
    SyntheticCoin("bitcoin", "btc", "Bitcoin", 14000.0, 16.8e6, 0.06),
    SyntheticCoin("ethereum", "eth", "Ethereum", 1150.0, 97.0e6, 0.05),
    SyntheticCoin("ripple", "xrp", "XRP", 1.6, 38.7e9, 0.04),
    SyntheticCoin("litecoin", "ltc", "Litecoin", 230.0, 54.6e6, 0.07),
    SyntheticCoin("cardano", "ada", "Cardano", 0.7, 25.9e9, 0.03),
    SyntheticCoin("monero", "xmr", "Monero", 370.0, 15.5e6, 0.04),
)
OTHER_MARKET_CAP_SHARE = 0.35
"""The part of the total market cap held by coins the replay does not list."""


class CoinGeckoReplayClient(dg.ConfigurableResource):
    """Synthetic CoinGecko ``/api/v3/global`` and ``/api/v3/coins/markets`` snapshots
    (``synthetic = True``), as of the moment asked."""

    @property
    def venue(self) -> str:
        return "coingecko"

    @property
    def synthetic(self) -> bool:
        return True

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        raise rejected(
            self.venue,
            path,
            400,
            '{"error":"the replay has no clock: ask for a snapshot with get_json_at"}',
        )

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        at = as_utc_moment(at)
        params = dict(params or {})
        coins = [self._coin_at(coin, at) for coin in SYNTHETIC_COINS]
        _rank_by_cap(coins)
        listed_cap = sum(c["market_cap"] for c in coins)
        total_cap = listed_cap / (1 - OTHER_MARKET_CAP_SHARE)
        route = path.rstrip("/")
        if route == COINGECKO_GLOBAL_PATH:
            body: Any = {
                "data": {
                    "active_cryptocurrencies": 1400,
                    "upcoming_icos": 0,
                    "ongoing_icos": 0,
                    "ended_icos": 0,
                    "markets": 9000,
                    "total_market_cap": {"usd": round(total_cap, 2)},
                    "total_volume": {"usd": round(sum(c["total_volume"] for c in coins) * 1.6, 2)},
                    "market_cap_percentage": {
                        c["symbol"]: c["market_cap"] / total_cap * 100 for c in coins
                    },
                    "market_cap_change_percentage_24h_usd": round(
                        100 * value_noise("coingecko:total", at.timestamp() / DAY_S, ((1, 0.03),)),
                        6,
                    ),
                    "updated_at": int(at.timestamp()),
                }
            }
        elif route == COINGECKO_MARKETS_PATH:
            if str(params.get("vs_currency", "")).lower() != "usd":
                raise rejected(
                    self.venue, path, 400, '{"error":"the replay quotes vs_currency=usd only"}'
                )
            wanted = {i for i in str(params.get("ids", "")).split(",") if i}
            body = [c for c in coins if not wanted or c["id"] in wanted]
            body.sort(key=lambda c: c["market_cap_rank"])
        else:
            raise _not_found(
                self.venue,
                path,
                "unknown path: the CoinGecko replay serves "
                f"{COINGECKO_GLOBAL_PATH} and {COINGECKO_MARKETS_PATH}",
            )
        return TimedAnswer(body=body, taken_at=at)

    def _coin_at(self, coin: SyntheticCoin, at: datetime) -> dict[str, Any]:
        days = at.timestamp() / DAY_S
        octaves = ((1, 0.04), (7, 0.08), (30, 0.15))
        price = coin.price_usd * math.exp(value_noise(f"coingecko:{coin.coin_id}", days, octaves))
        yesterday = coin.price_usd * math.exp(
            value_noise(f"coingecko:{coin.coin_id}", days - 1, octaves)
        )
        cap = price * coin.circulating_supply
        return {
            "id": coin.coin_id,
            "symbol": coin.symbol,
            "name": coin.name,
            "current_price": round(price, 6),
            "market_cap": round(cap),
            "market_cap_rank": None,
            "total_volume": round(cap * coin.volume_share),
            "price_change_percentage_24h": round((price / yesterday - 1) * 100, 5),
            "circulating_supply": coin.circulating_supply,
            "last_updated": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }


def _rank_by_cap(coins: list[dict[str, Any]]) -> None:
    for rank, coin in enumerate(sorted(coins, key=lambda c: -c["market_cap"]), start=1):
        coin["market_cap_rank"] = rank


# -- Fear & Greed ---------------------------------------------------------------------------------

FEAR_GREED_PATH = "/fng/"
FEAR_GREED_FIRST_DAY = datetime(2017, 1, 1, tzinfo=UTC)
"""First day of the synthetic history (the real index starts on 2018-02-01)."""
FEAR_GREED_CLASSES: tuple[tuple[int, str], ...] = (
    (25, "Extreme Fear"),
    (46, "Fear"),
    (54, "Neutral"),
    (75, "Greed"),
    (100, "Extreme Greed"),
)


def fear_greed_class(value: int) -> str:
    """alternative.me's label for an index value."""
    for upper, label in FEAR_GREED_CLASSES:
        if value <= upper:
            return label
    raise ValueError(f"Fear & Greed value {value} is outside 0..100")


class FearGreedReplayClient(dg.ConfigurableResource):
    """Synthetic alternative.me Fear & Greed history (``synthetic = True``): one value per UTC
    day, newest first, up to the moment asked. Unlike the real index (from 2018-02-01) it
    starts on 2017-01-01, so the offline demo window has values."""

    @property
    def venue(self) -> str:
        return "alternative_me"

    @property
    def synthetic(self) -> bool:
        return True

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        raise rejected(
            self.venue,
            path,
            400,
            '{"metadata":{"error":"the replay has no clock: ask with get_json_at"}}',
        )

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        at = as_utc_moment(at)
        if path.rstrip("/") != FEAR_GREED_PATH.rstrip("/"):
            raise _not_found(self.venue, path, f"unknown path: the replay serves {FEAR_GREED_PATH}")
        params = dict(params or {})
        try:
            limit = int(str(params.get("limit", 1)))
        except ValueError:
            limit = -1
        if limit < 0:
            raise rejected(self.venue, path, 400, '{"metadata":{"error":"Invalid limit"}}')
        newest = (int(at.timestamp()) // DAY_S) * DAY_S
        first = int(FEAR_GREED_FIRST_DAY.timestamp())
        days = (newest - first) // DAY_S + 1 if newest >= first else 0
        count = days if limit == 0 else min(limit, days)
        data = []
        for offset in range(count):
            stamp = newest - offset * DAY_S
            value = self.value_on(stamp // DAY_S)
            entry = {
                "value": str(value),
                "value_classification": fear_greed_class(value),
                "timestamp": str(stamp),
            }
            if offset == 0:
                entry["time_until_update"] = str(stamp + DAY_S - int(at.timestamp()))
            data.append(entry)
        body = {"name": "Fear and Greed Index", "data": data, "metadata": {"error": None}}
        return TimedAnswer(body=body, taken_at=at)

    @staticmethod
    def value_on(day: int) -> int:
        noise = value_noise("fear-greed", day, ((3, 0.5), (14, 0.9), (45, 0.6)))
        jitter = rng_for("fear-greed-day", day).normal(0, 3)
        return int(min(95, max(5, round(50 + 22 * noise + jitter))))


# -- blockchain.com charts ----------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticChart:
    name: str
    unit: str
    description: str
    level: float
    decimals: int


SYNTHETIC_CHARTS: dict[str, SyntheticChart] = {
    "hash-rate": SyntheticChart(
        "Total Hash Rate (TH/s)",
        "Hash Rate TH/s",
        "The estimated number of terahashes per second the bitcoin network is performing in the "
        "last 24 hours.",
        16.5e6,
        6,
    ),
    "difficulty": SyntheticChart(
        "Network Difficulty",
        "Difficulty",
        "A relative measure of how difficult it is to mine a new block for the blockchain.",
        1.93e12,
        1,
    ),
    "n-transactions": SyntheticChart(
        "Confirmed Transactions Per Day",
        "Transactions",
        "The total number of confirmed transactions per day.",
        250_000.0,
        0,
    ),
    "n-unique-addresses": SyntheticChart(
        "Unique Addresses Used",
        "Addresses",
        "The total number of unique addresses used on the blockchain.",
        650_000.0,
        0,
    ),
    "miners-revenue": SyntheticChart(
        "Miners Revenue (USD)",
        "USD",
        "Total value of coinbase block rewards and transaction fees paid to miners.",
        3.0e7,
        2,
    ),
}
BLOCKCHAIN_CHART_PATH_PREFIX = "/charts/"


def _timespan_days(text: str) -> int | None:
    for unit, days in (("days", 1), ("day", 1), ("weeks", 7), ("week", 7), ("years", 365)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * days
    return None


class BlockchainChartsReplayClient(dg.ConfigurableResource):
    """Synthetic blockchain.com ``GET /charts/{chart}`` series (``synthetic = True``): one
    value per UTC day for the charts of ``SYNTHETIC_CHARTS``."""

    @property
    def venue(self) -> str:
        return "blockchain"

    @property
    def synthetic(self) -> bool:
        return True

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        return TimedAnswer(body=self.get_json(path, params), taken_at=as_utc_moment(at))

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        chart_name = path.removeprefix(BLOCKCHAIN_CHART_PATH_PREFIX).strip("/")
        chart = SYNTHETIC_CHARTS.get(chart_name)
        if not path.startswith(BLOCKCHAIN_CHART_PATH_PREFIX) or chart is None:
            raise _not_found(self.venue, path, f"Chart {chart_name!r} not found")
        params = dict(params or {})
        start_text = str(params.get("start", ""))
        days = _timespan_days(str(params.get("timespan", "1year")))
        try:
            start = datetime.fromisoformat(start_text).replace(tzinfo=UTC)
        except ValueError:
            start = None
        if start is None or days is None:
            raise rejected(
                self.venue,
                path,
                400,
                "Invalid start or timespan (the replay needs start=YYYY-MM-DD, timespan=<n>days)",
            )
        first_day = int(start.timestamp()) // DAY_S
        values = []
        for day in range(first_day, first_day + days):
            noise = value_noise(f"blockchain:{chart_name}", day, ((1, 0.05), (14, 0.1)))
            growth = math.exp((day - 17532) * 0.0015)  # 2018-01-01 = day 17532
            values.append(
                {
                    "x": day * DAY_S,
                    "y": round(chart.level * growth * math.exp(noise), chart.decimals),
                }
            )
        return {
            "status": "ok",
            "name": chart.name,
            "unit": chart.unit,
            "period": "day",
            "description": chart.description,
            "values": values,
        }


__all__ = [
    "BlockchainChartsReplayClient",
    "CoinGeckoReplayClient",
    "FearGreedReplayClient",
    "fear_greed_class",
]
