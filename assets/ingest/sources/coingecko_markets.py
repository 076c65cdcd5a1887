"""CoinGecko market caps and dominance (``GET /api/v3/coins/markets`` and ``GET /api/v3/global``)
-> ``raw.coingecko_market_caps``.

Both endpoints describe the present (there is no history in the free API), so each partition day
gets the snapshot at its close, as with order books (see ``fields.snapshot_for_day``): a replay
answers for that moment, the live API for now, accepted only during the day or the day after.
One row per coin: its price, market cap, volume and rank from ``/coins/markets``, its dominance
(share of the total market cap, percent) and the total from ``/global``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from assets.ingest.sources.fields import (
    DaySnapshot,
    Where,
    as_utc,
    days_of,
    decimal,
    field,
    require_dict,
    require_list,
    snapshot_for_day,
    text,
    utc_column,
    whole,
)
from orchestration.resources.http import TimedJsonClient

VENUE = "coingecko"
GLOBAL_PATH = "/api/v3/global"
MARKETS_PATH = "/api/v3/coins/markets"
DEFAULT_COINS = "bitcoin,ethereum,ripple,litecoin,cardano,monero"
DEFAULT_SUBJECTS: tuple[str, ...] = (DEFAULT_COINS,)
"""One subject: the CoinGecko coin ids asked for in one request."""
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("snapshot_date", "date", "the partition day the snapshot fills"),
    ("taken_at", "timestamptz", "when CoinGecko answered, UTC"),
    ("coin_id", "text", "CoinGecko id, e.g. bitcoin"),
    ("symbol", "text", "ticker, upper case, e.g. BTC"),
    ("name", "text", ""),
    ("price_usd", "double precision", ""),
    ("market_cap_usd", "double precision", ""),
    ("total_volume_usd", "double precision", "24h volume"),
    ("market_cap_rank", "integer", ""),
    ("dominance_pct", "double precision", "share of the total market cap, percent"),
    ("total_market_cap_usd", "double precision", "all coins, from /global"),
)
TIME_COLUMN = "snapshot_date"
KEY_COLUMNS = ("snapshot_date", "coin_id")
GLOBAL = Where(VENUE, GLOBAL_PATH)
MARKETS = Where(VENUE, MARKETS_PATH)


@dataclass(frozen=True)
class MarketSnapshot:
    """The two answers that make one day's rows."""

    markets: DaySnapshot
    global_: DaySnapshot


def fetch(
    client: TimedJsonClient, coins: str, start: datetime, end: datetime
) -> list[MarketSnapshot]:
    start, end = as_utc(start, "start"), as_utc(end, "end")
    params = {
        "vs_currency": "usd",
        "ids": coins,
        "order": "market_cap_desc",
        "per_page": 250,
        "page": 1,
        "sparkline": "false",
    }
    return [
        MarketSnapshot(
            markets=snapshot_for_day(client, MARKETS_PATH, params, day),
            global_=snapshot_for_day(client, GLOBAL_PATH, {}, day),
        )
        for day in days_of(start, end)
    ]


def parse(payload: Sequence[MarketSnapshot], coins: str) -> pd.DataFrame:
    rows: dict[str, list] = {name: [] for name, _, _ in COLUMNS}
    for snapshot in payload:
        data = require_dict(
            field(require_dict(snapshot.global_.body, GLOBAL, "global"), "data", GLOBAL, "global"),
            GLOBAL,
            "global data",
        )
        total = decimal(
            field(
                require_dict(
                    field(data, "total_market_cap", GLOBAL, "data"), GLOBAL, "total_market_cap"
                ),
                "usd",
                GLOBAL,
                "total_market_cap",
            ),
            GLOBAL,
            "data",
            "total_market_cap.usd",
        )
        shares = require_dict(
            field(data, "market_cap_percentage", GLOBAL, "data"), GLOBAL, "market_cap_percentage"
        )
        for i, coin in enumerate(require_list(snapshot.markets.body, MARKETS, "coins")):
            symbol = text(field(coin, "symbol", MARKETS, i), MARKETS, i, "symbol")
            cap = decimal(field(coin, "market_cap", MARKETS, i), MARKETS, i, "market_cap")
            share = shares.get(symbol.lower())
            rows["snapshot_date"].append(snapshot.markets.snapshot_date)
            rows["taken_at"].append(snapshot.markets.taken_at)
            rows["coin_id"].append(text(field(coin, "id", MARKETS, i), MARKETS, i, "id"))
            rows["symbol"].append(symbol.upper())
            rows["name"].append(text(field(coin, "name", MARKETS, i), MARKETS, i, "name"))
            rows["price_usd"].append(
                decimal(field(coin, "current_price", MARKETS, i), MARKETS, i, "current_price")
            )
            rows["market_cap_usd"].append(cap)
            rows["total_volume_usd"].append(
                decimal(field(coin, "total_volume", MARKETS, i), MARKETS, i, "total_volume")
            )
            rank = field(coin, "market_cap_rank", MARKETS, i)
            rows["market_cap_rank"].append(
                None if rank is None else whole(rank, MARKETS, i, "market_cap_rank")
            )
            rows["dominance_pct"].append(
                decimal(share, GLOBAL, symbol, "market_cap_percentage")
                if share is not None
                else math.nan
            )
            rows["total_market_cap_usd"].append(total)
    return pd.DataFrame(
        {
            "snapshot_date": pd.Series(rows["snapshot_date"], dtype=object),
            "taken_at": utc_column(rows["taken_at"]),
            "coin_id": pd.Series(rows["coin_id"], dtype=object),
            "symbol": pd.Series(rows["symbol"], dtype=object),
            "name": pd.Series(rows["name"], dtype=object),
            **{
                name: np.asarray(rows[name], dtype="float64")
                for name in ("price_usd", "market_cap_usd", "total_volume_usd")
            },
            # object, not Int64: an unranked coin is None (SQL NULL), never pandas' NA
            "market_cap_rank": pd.Series(rows["market_cap_rank"], dtype=object),
            "dominance_pct": np.asarray(rows["dominance_pct"], dtype="float64"),
            "total_market_cap_usd": np.asarray(rows["total_market_cap_usd"], dtype="float64"),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
