"""Kraken's public REST API: a live client that reads Kraken's in-body errors, and a replay.

Kraken answers most errors, rate limits included, with HTTP 200 and an ``error`` array
(``{"error": ["EAPI:Rate limit exceeded"], "result": {}}``), so the live client looks inside
every body: rate limits and "service busy/unavailable" are retried with backoff like a 429 or a
5xx, any other error fails at once with Kraken's own words.

No Kraken OHLC or trades are recorded in the project (the recorded Kraken session holds only
book updates), so `KrakenReplayClient` serves deterministic synthetic candles and trades in
Kraken's exact format and says so (``synthetic = True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

from orchestration.resources.http import (
    HttpJsonClient,
    PayloadError,
    SourceError,
    TimedAnswer,
    TransientFailure,
    UpstreamError,
)
from orchestration.resources.synthetic import (
    DAY_S,
    FIRST_HOUR,
    HOUR_S,
    SyntheticMarket,
    SyntheticTrades,
    day_candles,
    decimal_text,
    hour_trades,
    synthetic_bounds,
)

VENUE = "kraken"
OHLC_PATH = "/0/public/OHLC"
TRADES_PATH = "/0/public/Trades"
OHLC_INTERVALS_MIN = frozenset({1, 5, 15, 30, 60, 240, 1440, 10080, 21600})
MAX_OHLC_ROWS = 720
MAX_TRADES = 1000
TRANSIENT_ERRORS = ("EAPI:Rate limit exceeded", "EGeneral:Too many requests")
BUSY_ERRORS = ("EService:Unavailable", "EService:Busy", "EGeneral:Temporary lockout")


def kraken_error(body: Any, path: str) -> Exception | None:
    """The failure a Kraken body stands for (TransientFailure to retry, SourceError to give
    up), or None for a good body."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), list):
        return PayloadError(
            f"expected Kraken's {{'error': [...], 'result': {{...}}}} envelope, got {body!r:.120}",
            venue=VENUE,
            path=path,
        )
    errors = [str(e) for e in body["error"]]
    if not errors:
        return None
    text = "; ".join(errors)
    if any(e.startswith(TRANSIENT_ERRORS) for e in errors):
        return TransientFailure(f"rate limited: {text}", rate_limited=True)
    if any(e.startswith(BUSY_ERRORS) for e in errors):
        return TransientFailure(f"service busy: {text}")
    return UpstreamError(f"Kraken error: {text}", venue=VENUE, path=path, status=200, attempts=1)


class KrakenHttpClient(HttpJsonClient):
    """The live client for ``https://api.kraken.com``: HttpJsonClient plus Kraken's in-body
    errors."""

    venue: str = VENUE
    base_url: str = "https://api.kraken.com"

    def check_payload(self, body: Any, path: str) -> None:
        failure = kraken_error(body, path)
        if failure is not None:
            raise failure


SYNTHETIC_PAIRS: dict[str, tuple[str, SyntheticMarket]] = {
    "ETHXBT": ("XETHXXBT", SyntheticMarket(0.09, 0.00001, 30.0, trades_per_hour=40)),
    "LTCXBT": ("XLTCXXBT", SyntheticMarket(0.017, 0.000001, 50.0, trades_per_hour=20)),
    "XBTUSD": ("XXBTZUSD", SyntheticMarket(14000.0, 0.1, 20.0, trades_per_hour=300)),
    "ETHUSD": ("XETHZUSD", SyntheticMarket(1200.0, 0.01, 150.0, trades_per_hour=150)),
}
"""Request pair -> (the key Kraken answers under, the synthetic market)."""
IDS_PER_HOUR = 10_000


class KrakenReplayClient(dg.ConfigurableResource):
    """Synthetic Kraken OHLC and trades in Kraken's format (``synthetic = True``).

    Candles are day-by-day random walks (like the synthetic Coinbase ones) and trades fall
    inside the synthetic 5-minute candles, so the two endpoints agree. Unlike the live API,
    which serves only its latest 720 candles, the replay has no present: it serves the 720
    candles after ``since``.
    """

    _days: dict[tuple[str, int, int], np.ndarray] = PrivateAttr(default_factory=dict)
    _hours: dict[tuple[str, int], SyntheticTrades] = PrivateAttr(default_factory=dict)

    @property
    def venue(self) -> str:
        return VENUE

    @property
    def synthetic(self) -> bool:
        return True

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        return TimedAnswer(body=self.get_json(path, params), taken_at=at)

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        params = dict(params or {})
        route = path.rstrip("/")
        if route not in (OHLC_PATH, TRADES_PATH):
            raise UpstreamError(
                "unknown path: the Kraken replay serves /0/public/OHLC and /0/public/Trades",
                venue=VENUE,
                path=path,
                status=404,
                attempts=1,
            )
        pair = str(params.get("pair", "")).strip().upper()
        if pair not in SYNTHETIC_PAIRS:
            raise _error(path, "EQuery:Unknown asset pair")
        if route == OHLC_PATH:
            return self._ohlc(path, pair, params)
        return self._trades(path, pair, params)

    def _ohlc(self, path: str, pair: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            interval = int(str(params.get("interval", 1)))
            since = int(float(str(params["since"]))) if params.get("since") is not None else None
        except ValueError:
            raise _error(path, "EGeneral:Invalid arguments") from None
        if interval not in OHLC_INTERVALS_MIN:
            raise _error(path, "EGeneral:Invalid arguments:interval")
        if since is None:
            raise _error(path, "EGeneral:Invalid arguments:since (the replay has no clock)")
        result_key, market = SYNTHETIC_PAIRS[pair]
        granularity = interval * 60
        first = (since // granularity + 1) * granularity
        rows: list[list[Any]] = []
        day = first // DAY_S
        while len(rows) < MAX_OHLC_ROWS:
            candles = self._day(pair, granularity, day, market)
            for time_s, low, high, open_, close, volume in candles:
                if time_s < first:
                    continue
                digits = market.price_digits
                vwap = (low + high + close) / 3
                rows.append(
                    [
                        int(time_s),
                        decimal_text(open_, digits),
                        decimal_text(high, digits),
                        decimal_text(low, digits),
                        decimal_text(close, digits),
                        decimal_text(vwap, digits + 1),
                        decimal_text(volume, 8),
                        int(max(1, round(volume / max(market.volume_5m, 1e-9) * 12))),
                    ]
                )
                if len(rows) == MAX_OHLC_ROWS:
                    break
            day += 1
        return {"error": [], "result": {result_key: rows, "last": rows[-1][0]}}

    def _day(self, pair: str, granularity: int, day: int, market: SyntheticMarket) -> np.ndarray:
        key = (pair, granularity, day)
        if key not in self._days:
            self._days[key] = day_candles(
                "kraken-candles", f"kraken:{pair}", market, granularity, day
            )
        return self._days[key]

    def _trades(self, path: str, pair: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            since_raw = params.get("since")
            since_ns = _since_ns(str(since_raw)) if since_raw is not None else None
            count = int(str(params.get("count", MAX_TRADES)))
        except ValueError:
            raise _error(path, "EGeneral:Invalid arguments") from None
        if since_ns is None:
            raise _error(path, "EGeneral:Invalid arguments:since (the replay has no clock)")
        if not 1 <= count <= MAX_TRADES:
            raise _error(path, "EGeneral:Invalid arguments:count")
        result_key, market = SYNTHETIC_PAIRS[pair]
        bounds = synthetic_bounds("kraken-candles", f"kraken:{pair}", market)
        first_hour = max(since_ns // (HOUR_S * 10**9), FIRST_HOUR)
        rows: list[list[Any]] = []
        last_ns = since_ns
        # A page spans at most a day of trades, and a week without one ends the history.
        for hour in range(first_hour, first_hour + 24 * 7):
            key = (pair, hour)
            if key not in self._hours:
                self._hours[key] = hour_trades(f"kraken:{pair}", market, hour, bounds)
            trades = self._hours[key]
            for index, time_ms in enumerate(trades.time_ms):
                stamp_ns = int(time_ms) * 1_000_000 + index
                if stamp_ns <= since_ns:
                    continue
                rows.append(
                    [
                        decimal_text(float(trades.price[index]), market.price_digits),
                        decimal_text(float(trades.size[index]), 8),
                        round(stamp_ns / 1e9, 4),
                        "b" if trades.buyer_is_taker[index] else "s",
                        "m" if index % 3 else "l",
                        "",
                        hour * IDS_PER_HOUR + index,
                    ]
                )
                last_ns = stamp_ns
                if len(rows) == count:
                    break
            if len(rows) == count or (rows and hour >= first_hour + 24):
                break
        return {"error": [], "result": {result_key: rows, "last": str(last_ns)}}


def _since_ns(text: str) -> int:
    """Kraken's ``since`` for trades: nanoseconds, or (short numbers) seconds."""
    value = int(float(text)) if "." in text else int(text)
    return value * 10**9 if value < 10**12 else value


def _error(path: str, message: str) -> SourceError:
    failure = kraken_error({"error": [message], "result": {}}, path)
    assert isinstance(failure, SourceError)
    return failure
