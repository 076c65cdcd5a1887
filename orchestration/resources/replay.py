"""Replay twins of the live REST clients: same calls, same raw payloads, no network.

`BinanceReplayClient` answers ``GET /api/v3/klines`` from recorded real Binance candles (by
default the slice bundled in ``assets/ingest/recorded/binance``), with Binance's own paging
rules, row shape and error bodies, so the unchanged fetch/parse code runs on it.
`CoinbaseReplayClient` has no recording to replay and says so (``synthetic = True``): it serves
deterministic synthetic candles in Coinbase's exact format.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

from orchestration.deployment import PROJECT_ROOT
from orchestration.resources.http import UpstreamError, rejected

BUNDLED_BINANCE_DIR = PROJECT_ROOT / "assets" / "ingest" / "recorded" / "binance"
"""The demo slice ships inside the ``assets`` package (and its wheel); found by path so this
module does not import ``assets`` (imports flow assets -> orchestration)."""


def stable_seed(*parts: object) -> int:
    """A seed that is the same in every process and Python version (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _binance_error(code: int, msg: str) -> str:
    return json.dumps({"code": code, "msg": msg}, separators=(",", ":"))


# -- Binance: recorded real candles --------------------------------------------------------------

BINANCE_KLINES_PATH = "/api/v3/klines"
BINANCE_INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
BINANCE_DEFAULT_LIMIT = 500
BINANCE_MAX_LIMIT = 1000
_RECORDING_NAME = re.compile(r"^binance-([A-Z0-9]+)-(\d+[smhdw])-.+\.csv(\.gz)?$")
_CSV_HEADER = ["timestamp", "open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class _Recording:
    open_ms: list[int]
    rows: list[list[Any]]


def _binance_number(text: str) -> str:
    """Positional decimal text, like Binance's, that parses back to the recorded float exactly.

    Binance pads to 8 decimals; the recordings hold floats such as ``5.330000000000001e-05``
    whose 8-decimal rounding would change the value, so the shortest exact form is served.
    """
    return np.format_float_positional(float(text), unique=True, trim="-")


def _read_recording(files: list[Path], interval_ms: int) -> _Recording:
    by_open: dict[int, list[Any]] = {}
    for file in files:
        raw = file.read_bytes()
        if file.suffix == ".gz":
            raw = gzip.decompress(raw)
        reader = csv.reader(io.StringIO(raw.decode("utf-8")))
        header = next(reader, None)
        if header != _CSV_HEADER:
            raise ValueError(
                f"recorded candles {file} have header {header}, expected {_CSV_HEADER}"
            )
        for line_no, record in enumerate(reader, start=2):
            if len(record) != len(_CSV_HEADER):
                raise ValueError(f"recorded candles {file} line {line_no}: {record!r}")
            opened = datetime.fromisoformat(record[0])
            if opened.tzinfo is None:
                opened = opened.replace(tzinfo=UTC)
            open_ms = int(opened.timestamp()) * 1000
            # Fields the recording does not hold (quote volume, trades, taker volumes) are zero.
            by_open[open_ms] = [
                open_ms,
                *(_binance_number(v) for v in record[1:6]),
                open_ms + interval_ms - 1,
                "0",
                0,
                "0",
                "0",
                "0",
            ]
    ordered = sorted(by_open)
    return _Recording(open_ms=ordered, rows=[by_open[t] for t in ordered])


class BinanceReplayClient(dg.ConfigurableResource):
    """Serves recorded real Binance candles through Binance's ``/api/v3/klines`` contract.

    Rows are Binance's 12-field arrays with prices as strings; the fields the recordings do not
    hold (quote-asset volume, trade count, taker volumes) are ``"0"`` / ``0``.
    Point ``data_dir`` at any folder of ``binance-<SYMBOL>-<interval>-*.csv[.gz]`` files (for
    instance the shared data folder) to replay more than the bundled slice.
    """

    data_dir: str | None = Field(
        default=None, description="Folder of recorded candles; default: the bundled demo slice."
    )

    _cache: dict[tuple[str, str], _Recording] = PrivateAttr(default_factory=dict)

    @property
    def venue(self) -> str:
        return "binance"

    @property
    def synthetic(self) -> bool:
        return False

    @property
    def directory(self) -> Path:
        return Path(self.data_dir) if self.data_dir else BUNDLED_BINANCE_DIR

    def recorded_files(self) -> dict[tuple[str, str], list[Path]]:
        """(SYMBOL, interval) -> the files that hold it."""
        if not self.directory.is_dir():
            raise FileNotFoundError(f"Binance replay data folder {self.directory} does not exist")
        found: dict[tuple[str, str], list[Path]] = {}
        for file in sorted(self.directory.iterdir()):
            match = _RECORDING_NAME.match(file.name)
            if match:
                found.setdefault((match.group(1), match.group(2)), []).append(file)
        return found

    def _recording(self, symbol: str, interval: str) -> _Recording | None:
        key = (symbol, interval)
        if key not in self._cache:
            files = self.recorded_files().get(key)
            if not files:
                return None
            self._cache[key] = _read_recording(files, BINANCE_INTERVAL_MS[interval])
        return self._cache[key]

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        if path.rstrip("/") != BINANCE_KLINES_PATH:
            raise UpstreamError(
                "unknown path: the Binance replay serves only /api/v3/klines",
                venue=self.venue,
                path=path,
                status=404,
                attempts=1,
            )
        params = dict(params or {})

        def reject(code: int, msg: str) -> UpstreamError:
            return rejected(self.venue, path, 400, _binance_error(code, msg))

        symbol = str(params.get("symbol", "")).strip()
        if not symbol:
            raise reject(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        interval = str(params.get("interval", "")).strip()
        if not interval:
            raise reject(
                -1102,
                "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
            )
        if interval not in BINANCE_INTERVAL_MS:
            raise reject(-1120, "Invalid interval.")
        numbers: dict[str, int | None] = {}
        for name in ("startTime", "endTime", "limit"):
            value = params.get(name)
            if value is None:
                numbers[name] = None
                continue
            text = str(value).strip()
            if not re.fullmatch(r"[0-9]{1,20}", text):
                raise reject(
                    -1100,
                    f"Illegal characters found in parameter '{name}'; "
                    "legal range is '^[0-9]{1,20}$'.",
                )
            numbers[name] = int(text)
        limit = numbers["limit"] if numbers["limit"] is not None else BINANCE_DEFAULT_LIMIT
        if not 1 <= limit <= BINANCE_MAX_LIMIT:
            raise reject(-1130, "Data sent for parameter 'limit' is not valid.")
        start_ms, end_ms = numbers["startTime"], numbers["endTime"]
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise reject(-1023, "Start time is greater than end time.")

        symbols = {s for s, _ in self.recorded_files()}
        if symbol not in symbols:
            raise reject(-1121, "Invalid symbol.")
        recording = self._recording(symbol, interval)
        if recording is None:
            raise reject(-1121, f"Invalid symbol. (no {interval} recording of {symbol} to replay)")

        times = recording.open_ms
        if start_ms is not None:
            lo = bisect.bisect_left(times, start_ms)
            hi = bisect.bisect_right(times, end_ms) if end_ms is not None else len(times)
            selected = range(lo, min(hi, lo + limit))
        else:
            hi = bisect.bisect_right(times, end_ms) if end_ms is not None else len(times)
            selected = range(max(0, hi - limit), hi)
        return [list(recording.rows[i]) for i in selected]


# -- Coinbase: synthetic candles -------------------------------------------------------------------

COINBASE_GRANULARITIES = frozenset({60, 300, 900, 3600, 21600, 86400})
COINBASE_MAX_CANDLES = 300
_COINBASE_PATH = re.compile(r"^/products/([A-Za-z0-9]+-[A-Za-z0-9]+)/candles/?$")


@dataclass(frozen=True)
class SyntheticMarket:
    """Where a synthetic product trades: start level, tick size, typical volume per 5 minutes."""

    level: float
    quote_increment: float
    volume_5m: float
    daily_vol: float = 0.04


SYNTHETIC_PRODUCTS: dict[str, SyntheticMarket] = {
    "ETH-BTC": SyntheticMarket(level=0.09, quote_increment=0.00001, volume_5m=40.0),
    "LTC-BTC": SyntheticMarket(level=0.017, quote_increment=0.00001, volume_5m=60.0),
    "BTC-USD": SyntheticMarket(level=14000.0, quote_increment=0.01, volume_5m=25.0),
    "ETH-USD": SyntheticMarket(level=1200.0, quote_increment=0.01, volume_5m=200.0),
    "LTC-USD": SyntheticMarket(level=230.0, quote_increment=0.01, volume_5m=300.0),
}

_DAY_S = 86_400
_ANCHOR_OCTAVES: tuple[tuple[int, float], ...] = ((1, 0.03), (7, 0.06), (30, 0.12), (120, 0.2))


def value_noise(key: str, x: float, octaves: tuple[tuple[int, float], ...]) -> float:
    """Smooth deterministic noise at ``x``: gaussian lattice values, linearly interpolated.

    Each octave is (lattice spacing, amplitude). The value at ``x`` depends only on ``key`` and
    ``x``, so any window of a synthetic series agrees with any other window of it.
    """
    total = 0.0
    for spacing, amplitude in octaves:
        cell = math.floor(x / spacing)
        frac = x / spacing - cell
        left = np.random.default_rng(stable_seed(key, spacing, cell)).standard_normal()
        right = np.random.default_rng(stable_seed(key, spacing, cell + 1)).standard_normal()
        total += amplitude * ((1 - frac) * left + frac * right)
    return total


class CoinbaseReplayClient(dg.ConfigurableResource):
    """Synthetic Coinbase Exchange candles in Coinbase's real format (``synthetic = True``).

    No recorded Coinbase candles exist. Each UTC day is a random walk (a Brownian bridge between
    daily anchor levels drawn from smooth noise), seeded by product, granularity and day, so a
    candle is the same whichever window asks for it. OHLC is always valid (low <= open, close <=
    high, all positive), prices sit on the product's tick, the newest candle comes first.
    Different granularities are independent draws, not aggregations of each other.
    """

    _days: dict[tuple[str, int, int], np.ndarray] = PrivateAttr(default_factory=dict)

    @property
    def venue(self) -> str:
        return "coinbase"

    @property
    def synthetic(self) -> bool:
        return True

    def _anchor(self, product: str, day: int) -> float:
        market = SYNTHETIC_PRODUCTS[product]
        return math.log(market.level) + value_noise(f"anchor:{product}", day, _ANCHOR_OCTAVES)

    def _day_candles(self, product: str, granularity: int, day: int) -> np.ndarray:
        """Rows [time, low, high, open, close, volume] of one UTC day, oldest first."""
        key = (product, granularity, day)
        cached = self._days.get(key)
        if cached is not None:
            return cached
        market = SYNTHETIC_PRODUCTS[product]
        steps = _DAY_S // granularity
        rng = np.random.default_rng(stable_seed("coinbase-candles", product, granularity, day))
        sigma = market.daily_vol / math.sqrt(steps)
        walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(steps) * sigma)])
        start, finish = self._anchor(product, day), self._anchor(product, day + 1)
        bridge = np.linspace(0.0, 1.0, steps + 1) * (walk[-1] - (finish - start))
        path = np.exp(start + walk - bridge)
        tick = market.quote_increment
        prices = np.maximum(np.round(path / tick) * tick, tick)
        opens, closes = prices[:-1], prices[1:]
        wick_up = np.abs(rng.standard_normal(steps)) * sigma * 0.6
        wick_down = np.abs(rng.standard_normal(steps)) * sigma * 0.6
        highs = np.ceil(np.maximum(opens, closes) * np.exp(wick_up) / tick) * tick
        lows = np.maximum(
            np.floor(np.minimum(opens, closes) * np.exp(-wick_down) / tick) * tick, tick
        )
        volumes = np.round(
            market.volume_5m * (granularity / 300) * rng.lognormal(0.0, 0.6, steps), 8
        )
        times = day * _DAY_S + granularity * np.arange(steps)
        digits = max(0, -math.floor(math.log10(tick)))
        rows = np.column_stack(
            [
                times,
                np.round(lows, digits),
                np.round(highs, digits),
                np.round(opens, digits),
                np.round(closes, digits),
                volumes,
            ]
        )
        self._days[key] = rows
        return rows

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        match = _COINBASE_PATH.match(path)
        if not match:
            raise rejected(self.venue, path, 404, json.dumps({"message": "NotFound"}))
        product = match.group(1).upper()
        if product not in SYNTHETIC_PRODUCTS:
            raise rejected(self.venue, path, 404, json.dumps({"message": "NotFound"}))
        params = dict(params or {})

        def reject(message: str) -> UpstreamError:
            return rejected(self.venue, path, 400, json.dumps({"message": message}))

        try:
            seconds = int(str(params.get("granularity", "")).strip())
        except ValueError:
            seconds = 0
        if seconds not in COINBASE_GRANULARITIES:
            raise reject("Unsupported granularity")
        if params.get("start") is None or params.get("end") is None:
            # The live API then picks a window ending now; a replay has no "now" to stay
            # deterministic with, so it insists on both.
            raise reject("start and end are required by the replay (it has no clock)")
        start_s = _parse_time(str(params["start"]))
        end_s = _parse_time(str(params["end"]))
        if start_s is None:
            raise reject("Invalid start")
        if end_s is None:
            raise reject("Invalid end")
        if start_s > end_s:
            raise reject("start must be before end")
        first = -(-start_s // seconds) * seconds
        last = (end_s // seconds) * seconds
        count = (last - first) // seconds + 1 if last >= first else 0
        if count > COINBASE_MAX_CANDLES:
            raise reject(
                "granularity too small for the requested time range. "
                "Count of aggregations requested exceeds 300"
            )
        rows: list[list[Any]] = []
        for day in range(first // _DAY_S, last // _DAY_S + 1):
            for row in self._day_candles(product, seconds, day):
                if first <= row[0] <= last:
                    rows.append([int(row[0]), *(float(v) for v in row[1:])])
        rows.reverse()
        return rows


def _parse_time(text: str) -> int | None:
    """Coinbase accepts ISO 8601 or epoch seconds; naive ISO times are UTC."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
