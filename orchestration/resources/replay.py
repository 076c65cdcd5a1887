"""Replay twins of the exchanges' live REST clients: same calls, same raw payloads, no network.

`BinanceReplayClient` answers Binance spot's ``/api/v3/klines`` from recorded real candles (by
default the slice bundled in ``assets/ingest/recorded/binance``), and ``/api/v3/aggTrades`` and
``/api/v3/depth`` from recorded real trades and books where it has them.
`BinanceFuturesReplayClient` answers ``/fapi/v1/fundingRate`` from recorded real funding rates.
`CoinbaseReplayClient` serves Coinbase's candles (synthetic: nothing is recorded), trades and
level-2 books (recorded feed messages). Each keeps the venue's paging rules, row shapes and
error bodies, so the unchanged fetch/parse code runs on it. Where nothing is recorded they
serve deterministic synthetic data in the venue's exact format
(``orchestration.resources.synthetic``) and say so, per answer, through ``is_synthetic_answer``;
the raw assets report it as ``synthetic: true``.

Endpoints whose answer depends on when they are asked (books, the newest trades) are served
through ``get_json_at``: the replay has no clock, the caller says which moment it means.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

from orchestration.deployment import PROJECT_ROOT
from orchestration.resources.http import TimedAnswer, UpstreamError, rejected
from orchestration.resources.recordings import (
    RecordedAggTrade,
    RecordedResponse,
    csv_records,
    files_matching,
    read_agg_trades,
    read_funding_rates,
    read_http_log,
    read_ws_log,
)
from orchestration.resources.synthetic import (
    DAY_S,
    FIRST_HOUR,
    HOUR_S,
    PriceBounds,
    SyntheticMarket,
    SyntheticTrades,
    day_candles,
    decimal_text,
    hour_trades,
    order_book,
    rng_for,
    synthetic_bounds,
    value_noise,
)

__all__ = [
    "BUNDLED_BINANCE_DIR",
    "BinanceFuturesReplayClient",
    "BinanceReplayClient",
    "CoinbaseReplayClient",
]

BUNDLED_BINANCE_DIR = PROJECT_ROOT / "assets" / "ingest" / "recorded" / "binance"
"""The demo slice ships inside the ``assets`` package (and its wheel); found by path so this
module does not import ``assets`` (imports flow assets -> orchestration)."""


RECORDED_DIR = PROJECT_ROOT / "assets" / "ingest" / "recorded"
BUNDLED_BINANCE_TRADES_DIR = BUNDLED_BINANCE_DIR / "trades"
BUNDLED_BINANCE_DEPTH_DIR = BUNDLED_BINANCE_DIR / "depth"


def as_utc_moment(moment: datetime) -> datetime:
    """A replay answers for an unambiguous instant: naive datetimes are refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"at={moment!r} must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def _binance_error(code: int, msg: str) -> str:
    return json.dumps({"code": code, "msg": msg}, separators=(",", ":"))


Rejecter = Callable[[int, str], UpstreamError]


def _binance_rejecter(venue: str, path: str) -> Rejecter:
    """Binance's 400 with its ``{"code": ..., "msg": ...}`` body, as the live client raises it."""

    def reject(code: int, msg: str) -> UpstreamError:
        return rejected(venue, path, 400, _binance_error(code, msg))

    return reject


def _binance_symbol(params: Mapping[str, Any], reject: Rejecter) -> str:
    symbol = str(params.get("symbol", "")).strip()
    if not symbol:
        raise reject(
            -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    return symbol


def _binance_numbers(
    params: Mapping[str, Any], names: tuple[str, ...], reject: Rejecter
) -> dict[str, int | None]:
    numbers: dict[str, int | None] = {}
    for name in names:
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
    return numbers


def _binance_limit(value: int | None, default: int, maximum: int, reject: Rejecter) -> int:
    limit = value if value is not None else default
    if not 1 <= limit <= maximum:
        raise reject(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit


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
BINANCE_AGG_TRADES_PATH = "/api/v3/aggTrades"
BINANCE_DEPTH_PATH = "/api/v3/depth"
BINANCE_SPOT_PATHS = (BINANCE_KLINES_PATH, BINANCE_AGG_TRADES_PATH, BINANCE_DEPTH_PATH)
BINANCE_DEPTH_LIMITS = frozenset({5, 10, 20, 50, 100, 500, 1000, 5000})
SYNTHETIC_IDS_PER_HOUR = 100_000
"""Synthetic aggregate trade ids are ``hour * SYNTHETIC_IDS_PER_HOUR + index``: increasing in
time, the same whichever request asks."""
_TRADES_NAME = re.compile(r"^binance-([A-Z0-9]+)-trades-.+\.csv(?:\.gz)?$")
_BINANCE_HTTP_LOG = re.compile(r"^cryptofeed-(BINANCE)\.http\..+$")

BINANCE_SYNTHETIC_MARKETS: dict[str, SyntheticMarket] = {
    "ETHBTC": SyntheticMarket(0.09, 0.000001, 1500.0, trades_per_hour=120, base_increment=0.001),
    "LTCBTC": SyntheticMarket(0.017, 0.000001, 3000.0, trades_per_hour=90, base_increment=0.01),
    "ADABTC": SyntheticMarket(0.00004, 1e-8, 2e6, trades_per_hour=90, base_increment=1.0),
    "XMRBTC": SyntheticMarket(0.025, 0.000001, 300.0, trades_per_hour=60, base_increment=0.001),
    "BTCUSDT": SyntheticMarket(14000.0, 0.01, 300.0, trades_per_hour=600, base_increment=1e-6),
    "ETHUSDT": SyntheticMarket(1200.0, 0.01, 2000.0, trades_per_hour=300, base_increment=1e-5),
}
"""Symbols the replay can synthesise trades and books for (levels of early 2018)."""


def _binance_market(symbol: str) -> SyntheticMarket:
    return BINANCE_SYNTHETIC_MARKETS[symbol]


def _recorded_agg_trades(
    recorded: list[RecordedAggTrade],
    from_id: int | None,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Binance's selection rules over a recording: from an id, or within [start, end]."""
    if from_id is not None:
        lo = bisect.bisect_left([t.agg_id for t in recorded], from_id)
        chosen = recorded[lo : lo + limit]
    else:
        times = [t.time_ms for t in recorded]
        lo = bisect.bisect_left(times, start_ms) if start_ms is not None else 0
        hi = bisect.bisect_right(times, end_ms) if end_ms is not None else len(times)
        if start_ms is None:
            lo = max(lo, hi - limit)
        chosen = recorded[lo:hi][:limit]
    return [
        {
            "a": t.agg_id,
            "p": _binance_number(t.price),
            "q": _binance_number(t.quantity),
            # first/last trade ids are not in the recording (see PROVENANCE.md)
            "f": 0,
            "l": 0,
            "T": t.time_ms,
            "m": t.buyer_is_maker,
            "M": True,
        }
        for t in chosen
    ]


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
    for _, record in csv_records(files, _CSV_HEADER, "candles"):
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
    """Binance spot's REST contract over recorded real data, synthetic where nothing is recorded.

    - ``/api/v3/klines``: recorded real candles. Rows are Binance's 12-field arrays with prices
      as strings; the fields the recordings do not hold (quote-asset volume, trade count, taker
      volumes) are ``"0"`` / ``0``. Point ``data_dir`` at any folder of
      ``binance-<SYMBOL>-<interval>-*.csv[.gz]`` files to replay more than the bundled slice.
    - ``/api/v3/aggTrades``: recorded real aggregate trades (``trades_dir``, files
      ``binance-<SYMBOL>-trades-*.csv[.gz]``) for the symbols recorded there; deterministic
      synthetic trades inside the symbol's 5-minute candles (the recorded ones when ``data_dir``
      has them) for the symbols of ``BINANCE_SYNTHETIC_MARKETS``.
    - ``/api/v3/depth``: recorded real book snapshots (``depth_dir``, cryptofeed HTTP logs) for
      the symbols recorded there, served for a moment up to a day before the recording;
      synthetic books for the other known symbols. Depth depends on when it is asked, so it is
      served through ``get_json_at``.

    A symbol with a recording of an endpoint is served only from it, so real and synthetic data
    never mix within a symbol; :meth:`is_synthetic_answer` tells which one an answer was.
    """

    data_dir: str | None = Field(
        default=None, description="Folder of recorded candles; default: the bundled demo slice."
    )
    trades_dir: str | None = Field(
        default=None, description="Folder of recorded aggregate trades; default: the bundled one."
    )
    depth_dir: str | None = Field(
        default=None, description="Folder of recorded depth snapshots; default: the bundled one."
    )

    _cache: dict[tuple[str, str], _Recording] = PrivateAttr(default_factory=dict)
    _trades: dict[str, list[RecordedAggTrade]] | None = PrivateAttr(default=None)
    _books: dict[str, list[RecordedResponse]] | None = PrivateAttr(default=None)
    _synthetic_hours: dict[tuple[str, int], SyntheticTrades] = PrivateAttr(default_factory=dict)

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

    def recorded_trades(self) -> dict[str, list[RecordedAggTrade]]:
        """SYMBOL -> its recorded aggregate trades, by id."""
        if self._trades is None:
            directory = Path(self.trades_dir) if self.trades_dir else BUNDLED_BINANCE_TRADES_DIR
            self._trades = {
                symbol: read_agg_trades(files)
                for symbol, files in files_matching(directory, _TRADES_NAME).items()
            }
        return self._trades

    def recorded_books(self) -> dict[str, list[RecordedResponse]]:
        """SYMBOL -> its recorded depth snapshots, oldest first."""
        if self._books is None:
            directory = Path(self.depth_dir) if self.depth_dir else BUNDLED_BINANCE_DEPTH_DIR
            files = [
                f for group in files_matching(directory, _BINANCE_HTTP_LOG).values() for f in group
            ]
            books: dict[str, list[RecordedResponse]] = {}
            for response in read_http_log(files):
                symbol = response.query("symbol")
                if response.path == BINANCE_DEPTH_PATH and symbol:
                    books.setdefault(symbol, []).append(response)
            self._books = {s: sorted(r, key=lambda x: x.received_at) for s, r in books.items()}
        return self._books

    def is_synthetic_answer(self, path: str, params: Mapping[str, Any]) -> bool:
        symbol = str(params.get("symbol", "")).strip()
        route = path.rstrip("/")
        if route == BINANCE_AGG_TRADES_PATH:
            return symbol not in self.recorded_trades()
        if route == BINANCE_DEPTH_PATH:
            return symbol not in self.recorded_books()
        return False

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        route = path.rstrip("/")
        params = dict(params or {})
        if route == BINANCE_KLINES_PATH:
            return self._klines(path, params)
        if route == BINANCE_AGG_TRADES_PATH:
            return self._agg_trades(path, params)
        if route == BINANCE_DEPTH_PATH:
            raise _binance_rejecter(self.venue, path)(
                -1104,
                "The replay serves a book as of a moment: call get_json_at (it has no clock).",
            )
        raise UpstreamError(
            f"unknown path: the Binance replay serves only {', '.join(BINANCE_SPOT_PATHS)}",
            venue=self.venue,
            path=path,
            status=404,
            attempts=1,
        )

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        if path.rstrip("/") == BINANCE_DEPTH_PATH:
            return self._depth(path, dict(params or {}), as_utc_moment(at))
        return TimedAnswer(body=self.get_json(path, params), taken_at=as_utc_moment(at))

    def _bounds(self, symbol: str) -> PriceBounds:
        """The symbol's 5-minute price bounds: recorded candles where present, else synthetic."""
        synthetic = synthetic_bounds(
            "binance-candles", f"binance:{symbol}", _binance_market(symbol)
        )
        recording = (
            self._recording(symbol, "5m") if (symbol, "5m") in self.recorded_files() else None
        )
        if recording is None:
            return synthetic

        def bounds(candle_s: int) -> tuple[float, float, float]:
            index = bisect.bisect_left(recording.open_ms, candle_s * 1000)
            if index < len(recording.open_ms) and recording.open_ms[index] == candle_s * 1000:
                row = recording.rows[index]
                return float(row[3]), float(row[2]), float(row[4])
            return synthetic(candle_s)

        return bounds

    def _synthetic_hour(self, symbol: str, hour: int) -> SyntheticTrades:
        key = (symbol, hour)
        if key not in self._synthetic_hours:
            self._synthetic_hours[key] = hour_trades(
                f"binance:{symbol}", _binance_market(symbol), hour, self._bounds(symbol)
            )
        return self._synthetic_hours[key]

    def _agg_trades(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        reject = _binance_rejecter(self.venue, path)
        symbol = _binance_symbol(params, reject)
        numbers = _binance_numbers(params, ("fromId", "startTime", "endTime", "limit"), reject)
        limit = _binance_limit(numbers["limit"], BINANCE_DEFAULT_LIMIT, BINANCE_MAX_LIMIT, reject)
        from_id, start_ms, end_ms = numbers["fromId"], numbers["startTime"], numbers["endTime"]
        if from_id is not None and (start_ms is not None or end_ms is not None):
            raise reject(-1128, "Combination of optional parameters invalid.")
        if start_ms is not None and end_ms is not None:
            if start_ms > end_ms:
                raise reject(-1023, "Start time is greater than end time.")
            if end_ms - start_ms > HOUR_S * 1000:
                raise reject(-1127, "More than 1 hours between startTime and endTime.")
        if from_id is None and start_ms is None and end_ms is None:
            raise reject(
                -1128,
                "The replay has no clock to serve the most recent trades: "
                "send fromId or startTime.",
            )
        recorded = self.recorded_trades().get(symbol)
        if recorded is not None:
            return _recorded_agg_trades(recorded, from_id, start_ms, end_ms, limit)
        if symbol not in BINANCE_SYNTHETIC_MARKETS:
            raise reject(-1121, "Invalid symbol.")
        if start_ms is None and end_ms is not None:
            start_ms = end_ms - HOUR_S * 1000
        rows: list[dict[str, Any]] = []
        if from_id is not None:
            hour, first_index = divmod(from_id, SYNTHETIC_IDS_PER_HOUR)
            last_hour = hour + 24 * 7
        else:
            hour, first_index = start_ms // (HOUR_S * 1000), 0
            last_hour = (end_ms if end_ms is not None else start_ms + 24 * HOUR_S * 1000) // (
                HOUR_S * 1000
            )
        while hour <= last_hour and len(rows) < limit:
            trades = self._synthetic_hour(symbol, hour)
            for index in range(first_index, len(trades.time_ms)):
                time_ms = int(trades.time_ms[index])
                if start_ms is not None and time_ms < start_ms:
                    continue
                if end_ms is not None and time_ms > end_ms:
                    break
                agg_id = hour * SYNTHETIC_IDS_PER_HOUR + index
                rows.append(
                    {
                        "a": agg_id,
                        "p": decimal_text(float(trades.price[index]), 8),
                        "q": decimal_text(float(trades.size[index]), 8),
                        "f": agg_id,
                        "l": agg_id,
                        "T": time_ms,
                        "m": not bool(trades.buyer_is_taker[index]),
                        "M": True,
                    }
                )
                if len(rows) == limit:
                    break
            hour, first_index = hour + 1, 0
        return rows

    def _depth(self, path: str, params: dict[str, Any], at: datetime) -> TimedAnswer:
        reject = _binance_rejecter(self.venue, path)
        symbol = _binance_symbol(params, reject)
        numbers = _binance_numbers(params, ("limit",), reject)
        limit = numbers["limit"] if numbers["limit"] is not None else 100
        if limit not in BINANCE_DEPTH_LIMITS:
            legal = ", ".join(map(str, sorted(BINANCE_DEPTH_LIMITS)))
            raise reject(-1100, f"Illegal value for parameter 'limit'; legal values are {legal}.")
        recorded = self.recorded_books().get(symbol)
        if recorded is not None:
            for response in recorded:
                if at <= response.received_at < at + timedelta(days=1):
                    body = response.body
                    return TimedAnswer(
                        body={
                            "lastUpdateId": body["lastUpdateId"],
                            "bids": body["bids"][:limit],
                            "asks": body["asks"][:limit],
                        },
                        taken_at=response.received_at,
                    )
            raise reject(
                -1121,
                f"Invalid symbol. (the replay holds {symbol} books recorded at "
                f"{', '.join(r.received_at.isoformat() for r in recorded)}, none within a day "
                f"after {at.isoformat()})",
            )
        if symbol not in BINANCE_SYNTHETIC_MARKETS:
            raise reject(-1121, "Invalid symbol.")
        book = order_book(
            f"binance:{symbol}",
            _binance_market(symbol),
            int(at.timestamp()),
            self._bounds(symbol),
            limit,
        )
        return TimedAnswer(
            body={
                "lastUpdateId": book.update_id,
                "bids": [[decimal_text(p, 8), decimal_text(q, 8)] for p, q in book.bids],
                "asks": [[decimal_text(p, 8), decimal_text(q, 8)] for p, q in book.asks],
            },
            taken_at=at,
        )

    def _klines(self, path: str, params: dict[str, Any]) -> list[list[Any]]:
        reject = _binance_rejecter(self.venue, path)
        symbol = _binance_symbol(params, reject)
        interval = str(params.get("interval", "")).strip()
        if not interval:
            raise reject(
                -1102,
                "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
            )
        if interval not in BINANCE_INTERVAL_MS:
            raise reject(-1120, "Invalid interval.")
        numbers = _binance_numbers(params, ("startTime", "endTime", "limit"), reject)
        limit = _binance_limit(numbers["limit"], BINANCE_DEFAULT_LIMIT, BINANCE_MAX_LIMIT, reject)
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


# -- Binance USD-M futures: funding rates ----------------------------------------------------------

BINANCE_FUNDING_PATH = "/fapi/v1/fundingRate"
BINANCE_FUNDING_DEFAULT_LIMIT = 100
BUNDLED_BINANCE_FUTURES_DIR = RECORDED_DIR / "binance_futures"
FUNDING_INTERVAL_MS = 8 * HOUR_S * 1000
_FUNDING_NAME = re.compile(r"^binance-futures-([A-Z0-9]+)-8h-funding-rate-.+\.csv(?:\.gz)?$")
BINANCE_FUTURES_SYNTHETIC_MARKETS: dict[str, SyntheticMarket] = {
    "BTCUSDT": SyntheticMarket(14000.0, 0.1, 3000.0),
    "ETHUSDT": SyntheticMarket(1200.0, 0.01, 20000.0),
    "LTCUSDT": SyntheticMarket(230.0, 0.01, 50000.0),
}
"""Perpetuals the replay can synthesise funding for (levels of early 2018, though Binance's
USD-M futures only opened in September 2019)."""


class BinanceFuturesReplayClient(dg.ConfigurableResource):
    """Binance USD-M futures' ``GET /fapi/v1/fundingRate`` over recorded real funding rates.

    Symbols with a recording in ``data_dir`` (files
    ``binance-futures-<SYMBOL>-8h-funding-rate-*.csv[.gz]``) are served from it and only from it;
    the perpetuals of ``BINANCE_FUTURES_SYNTHETIC_MARKETS`` get deterministic synthetic funding
    every 8 hours (00:00, 08:00, 16:00 UTC plus Binance's few milliseconds of settlement lag).
    The recordings do not hold the mark price, which is served as ``""``.
    """

    data_dir: str | None = Field(
        default=None, description="Folder of recorded funding rates; default: the bundled one."
    )

    _recorded: dict[str, list[tuple[int, str]]] | None = PrivateAttr(default=None)

    @property
    def venue(self) -> str:
        return "binance_futures"

    @property
    def synthetic(self) -> bool:
        return False

    def recorded(self) -> dict[str, list[tuple[int, str]]]:
        if self._recorded is None:
            directory = Path(self.data_dir) if self.data_dir else BUNDLED_BINANCE_FUTURES_DIR
            self._recorded = {
                symbol: read_funding_rates(files)
                for symbol, files in files_matching(directory, _FUNDING_NAME).items()
            }
        return self._recorded

    def is_synthetic_answer(self, path: str, params: Mapping[str, Any]) -> bool:
        return str(params.get("symbol", "")).strip() not in self.recorded()

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        return TimedAnswer(body=self.get_json(path, params), taken_at=as_utc_moment(at))

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        if path.rstrip("/") != BINANCE_FUNDING_PATH:
            raise UpstreamError(
                f"unknown path: the Binance futures replay serves only {BINANCE_FUNDING_PATH}",
                venue=self.venue,
                path=path,
                status=404,
                attempts=1,
            )
        params = dict(params or {})
        reject = _binance_rejecter(self.venue, path)
        symbol = _binance_symbol(params, reject)
        numbers = _binance_numbers(params, ("startTime", "endTime", "limit"), reject)
        limit = _binance_limit(
            numbers["limit"], BINANCE_FUNDING_DEFAULT_LIMIT, BINANCE_MAX_LIMIT, reject
        )
        start_ms, end_ms = numbers["startTime"], numbers["endTime"]
        if start_ms is None and end_ms is None:
            raise reject(
                -1128, "The replay has no clock to serve the latest rates: send startTime."
            )
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise reject(-1023, "Start time is greater than end time.")
        recorded = self.recorded().get(symbol)
        if recorded is not None:
            rows = [(t, rate) for t, rate in recorded]
        elif symbol in BINANCE_FUTURES_SYNTHETIC_MARKETS:
            first = start_ms if start_ms is not None else end_ms - limit * FUNDING_INTERVAL_MS
            last = end_ms if end_ms is not None else first + limit * FUNDING_INTERVAL_MS
            rows = self._synthetic(symbol, first - FUNDING_INTERVAL_MS, last)
        else:
            raise reject(-1121, "Invalid symbol.")
        times = [t for t, _ in rows]
        lo = bisect.bisect_left(times, start_ms) if start_ms is not None else 0
        hi = bisect.bisect_right(times, end_ms) if end_ms is not None else len(times)
        chosen = rows[lo:hi][:limit] if start_ms is not None else rows[lo:hi][-limit:]
        mark = self._mark_prices(symbol) if recorded is None else None
        return [
            {
                "symbol": symbol,
                "fundingTime": t,
                "fundingRate": decimal_text(float(rate), 8),
                "markPrice": mark(t) if mark is not None else "",
            }
            for t, rate in chosen
        ]

    def _synthetic(self, symbol: str, first_ms: int, last_ms: int) -> list[tuple[int, str]]:
        rows = []
        slot = -(-first_ms // FUNDING_INTERVAL_MS)
        while slot * FUNDING_INTERVAL_MS <= last_ms:
            rng = rng_for("funding", symbol, slot)
            drift = value_noise(f"funding:{symbol}", slot / 3, ((1, 0.00015), (9, 0.0003)))
            rate = round(0.0001 + drift + rng.normal(0, 0.00003), 8)
            rows.append((slot * FUNDING_INTERVAL_MS + int(rng.integers(0, 20)), f"{rate:.8f}"))
            slot += 1
        return rows

    def _mark_prices(self, symbol: str) -> Callable[[int], str]:
        market = BINANCE_FUTURES_SYNTHETIC_MARKETS[symbol]
        bounds = synthetic_bounds("binance-futures-candles", f"binance_futures:{symbol}", market)

        def mark(time_ms: int) -> str:
            _, _, close = bounds(time_ms // 1000 // 300 * 300)
            return decimal_text(close, 8)

        return mark


# -- Coinbase: synthetic candles -------------------------------------------------------------------

COINBASE_GRANULARITIES = frozenset({60, 300, 900, 3600, 21600, 86400})
COINBASE_MAX_CANDLES = 300
_COINBASE_PATH = re.compile(r"^/products/([A-Za-z0-9]+-[A-Za-z0-9]+)/candles/?$")


SYNTHETIC_PRODUCTS: dict[str, SyntheticMarket] = {
    "ETH-BTC": SyntheticMarket(0.09, 0.00001, 40.0, trades_per_hour=40, base_increment=1e-8),
    "LTC-BTC": SyntheticMarket(0.017, 0.00001, 60.0, trades_per_hour=30, base_increment=1e-8),
    "BTC-USD": SyntheticMarket(14000.0, 0.01, 25.0, trades_per_hour=900, base_increment=1e-8),
    "ETH-USD": SyntheticMarket(1200.0, 0.01, 200.0, trades_per_hour=600, base_increment=1e-8),
    "LTC-USD": SyntheticMarket(230.0, 0.01, 300.0, trades_per_hour=300, base_increment=1e-8),
}
COINBASE_TRADES_PATH = re.compile(r"^/products/([A-Za-z0-9]+-[A-Za-z0-9]+)/trades/?$")
COINBASE_BOOK_PATH = re.compile(r"^/products/([A-Za-z0-9]+-[A-Za-z0-9]+)/book/?$")
COINBASE_MAX_TRADES = 1000
COINBASE_BOOK_LEVEL2_DEPTH = 50
COINBASE_IDS_PER_HOUR = 10_000
"""Synthetic trade ids are ``hour * COINBASE_IDS_PER_HOUR + index``: increasing in time."""
BUNDLED_COINBASE_DIR = RECORDED_DIR / "coinbase"
_COINBASE_WS_LOG = re.compile(r"^cryptofeed-(COINBASE)\.ws\..+$")


@dataclass(frozen=True)
class _RecordedCoinbase:
    trades: dict[str, list[dict[str, Any]]]
    """product -> REST-shaped trades, by trade id."""
    trade_times: dict[str, list[datetime]]
    books: dict[str, list[tuple[datetime, dict[str, Any]]]]
    """product -> (receive time, level-2 snapshot message), oldest first."""


def _read_coinbase(directory: Path) -> _RecordedCoinbase:
    files = [f for group in files_matching(directory, _COINBASE_WS_LOG).values() for f in group]
    trades: dict[str, dict[int, dict[str, Any]]] = {}
    books: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for received_at, message in read_ws_log(files):
        kind, product = message.get("type"), message.get("product_id")
        if not isinstance(product, str):
            continue
        if kind in ("match", "last_match"):
            # The feed's match carries the REST trade's fields (side: the maker order's side).
            trades.setdefault(product, {})[int(message["trade_id"])] = {
                "time": message["time"],
                "trade_id": int(message["trade_id"]),
                "price": message["price"],
                "size": message["size"],
                "side": message["side"],
            }
        elif kind == "snapshot":
            books.setdefault(product, []).append((received_at, message))
    ordered = {p: [by_id[i] for i in sorted(by_id)] for p, by_id in trades.items()}
    return _RecordedCoinbase(
        trades=ordered,
        trade_times={p: [_iso_time(t["time"]) for t in rows] for p, rows in ordered.items()},
        books={p: sorted(b, key=lambda x: x[0]) for p, b in books.items()},
    )


def _iso_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def coinbase_time(time_ms: int) -> str:
    """Coinbase's trade time format, microseconds and a Z: '2021-04-17T16:43:37.089000Z'."""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CoinbaseReplayClient(dg.ConfigurableResource):
    """Coinbase Exchange's REST contract: synthetic candles, recorded or synthetic trades and
    books.

    - ``/products/{id}/candles``: no recorded Coinbase candles exist, so these are synthetic.
      Each UTC day is a random walk (a Brownian bridge between daily anchor levels drawn from
      smooth noise), seeded by product, granularity and day, so a candle is the same whichever
      window asks for it. OHLC is always valid, prices sit on the product's tick, the newest
      candle comes first. Different granularities are independent draws.
    - ``/products/{id}/trades``: the real trades (feed ``match`` messages) recorded in
      ``data_dir``'s cryptofeed logs for the products recorded there; synthetic trades inside
      the synthetic 5-minute candles for the products of ``SYNTHETIC_PRODUCTS``. Newest first,
      paged with ``after`` (older than a trade id); the first page depends on when it is asked,
      so it is served through ``get_json_at``.
    - ``/products/{id}/book?level=2``: the recorded level-2 snapshot (top 50 levels) for a
      moment up to a day before it was recorded; synthetic books otherwise.

    ``synthetic`` is True because most of what it serves is; :meth:`is_synthetic_answer` says
    which answers were recorded.
    """

    data_dir: str | None = Field(
        default=None, description="Folder of recorded Coinbase feed logs; default: the bundled one."
    )

    _days: dict[tuple[str, int, int], np.ndarray] = PrivateAttr(default_factory=dict)
    _recorded: _RecordedCoinbase | None = PrivateAttr(default=None)
    _hours: dict[tuple[str, int], SyntheticTrades] = PrivateAttr(default_factory=dict)

    @property
    def venue(self) -> str:
        return "coinbase"

    @property
    def synthetic(self) -> bool:
        return True

    def recorded(self) -> _RecordedCoinbase:
        if self._recorded is None:
            directory = Path(self.data_dir) if self.data_dir else BUNDLED_COINBASE_DIR
            self._recorded = _read_coinbase(directory)
        return self._recorded

    def is_synthetic_answer(self, path: str, params: Mapping[str, Any]) -> bool:
        for pattern, recorded in (
            (COINBASE_TRADES_PATH, self.recorded().trades),
            (COINBASE_BOOK_PATH, self.recorded().books),
        ):
            match = pattern.match(path)
            if match:
                return match.group(1).upper() not in recorded
        return True

    def _day_candles(self, product: str, granularity: int, day: int) -> np.ndarray:
        """Rows [time, low, high, open, close, volume] of one UTC day, oldest first."""
        key = (product, granularity, day)
        cached = self._days.get(key)
        if cached is None:
            cached = self._days[key] = day_candles(
                "coinbase-candles", product, SYNTHETIC_PRODUCTS[product], granularity, day
            )
        return cached

    def _bounds(self, product: str) -> PriceBounds:
        def bounds(candle_s: int) -> tuple[float, float, float]:
            day = candle_s // DAY_S
            row = self._day_candles(product, 300, day)[(candle_s - day * DAY_S) // 300]
            return float(row[1]), float(row[2]), float(row[4])

        return bounds

    def _reject(self, path: str, status: int, message: str) -> UpstreamError:
        return rejected(self.venue, path, status, json.dumps({"message": message}))

    def _product(self, path: str, pattern: re.Pattern[str], recorded: Mapping[str, Any]) -> str:
        match = pattern.match(path)
        assert match is not None
        product = match.group(1).upper()
        if product not in recorded and product not in SYNTHETIC_PRODUCTS:
            raise self._reject(path, 404, "NotFound")
        return product

    def get_json_at(
        self, path: str, params: Mapping[str, str | int] | None = None, *, at: datetime
    ) -> TimedAnswer:
        at = as_utc_moment(at)
        params = dict(params or {})
        if COINBASE_BOOK_PATH.match(path):
            return self._book(path, params, at)
        if COINBASE_TRADES_PATH.match(path):
            return TimedAnswer(body=self._trades(path, params, at), taken_at=at)
        return TimedAnswer(body=self.get_json(path, params), taken_at=at)

    def _trades(
        self, path: str, params: dict[str, Any], at: datetime | None
    ) -> list[dict[str, Any]]:
        recorded = self.recorded()
        product = self._product(path, COINBASE_TRADES_PATH, recorded.trades)
        try:
            limit = int(str(params.get("limit", COINBASE_MAX_TRADES)))
            after = int(str(params["after"])) if params.get("after") is not None else None
        except ValueError:
            raise self._reject(path, 400, "Invalid limit or after") from None
        if not 1 <= limit <= COINBASE_MAX_TRADES:
            raise self._reject(path, 400, "Invalid limit")
        if params.get("before") is not None:
            raise self._reject(path, 400, "the replay pages with after only")
        if after is None and at is None:
            raise self._reject(
                path, 400, "the replay has no clock: ask for the newest trades with get_json_at"
            )
        if product in recorded.trades:
            rows = recorded.trades[product]
            if after is not None:
                end = bisect.bisect_left([r["trade_id"] for r in rows], after)
            else:
                end = bisect.bisect_left(recorded.trade_times[product], at)
            return [dict(r) for r in reversed(rows[max(0, end - limit) : end])]
        market = SYNTHETIC_PRODUCTS[product]
        if after is not None:
            hour, before_index = divmod(after - 1, COINBASE_IDS_PER_HOUR)
            before_index += 1
            before_ms = None
        else:
            assert at is not None
            before_ms = round(at.timestamp() * 1000)
            hour, before_index = (before_ms - 1) // (HOUR_S * 1000), COINBASE_IDS_PER_HOUR
        rows = []
        while len(rows) < limit and hour >= FIRST_HOUR:
            key = (product, hour)
            if key not in self._hours:
                self._hours[key] = hour_trades(
                    f"coinbase:{product}", market, hour, self._bounds(product)
                )
            trades = self._hours[key]
            for index in range(min(before_index, len(trades.time_ms)) - 1, -1, -1):
                time_ms = int(trades.time_ms[index])
                if before_ms is not None and time_ms >= before_ms:
                    continue
                rows.append(
                    {
                        "time": coinbase_time(time_ms),
                        "trade_id": hour * COINBASE_IDS_PER_HOUR + index,
                        "price": decimal_text(float(trades.price[index]), market.price_digits),
                        "size": decimal_text(float(trades.size[index]), 8),
                        # Coinbase reports the maker's side: a taking buyer lifts a resting sell.
                        "side": "sell" if trades.buyer_is_taker[index] else "buy",
                    }
                )
                if len(rows) == limit:
                    break
            hour, before_index = hour - 1, COINBASE_IDS_PER_HOUR
        return rows

    def _book(self, path: str, params: dict[str, Any], at: datetime) -> TimedAnswer:
        recorded = self.recorded()
        product = self._product(path, COINBASE_BOOK_PATH, recorded.books)
        level = str(params.get("level", "1"))
        if level not in ("1", "2"):
            raise self._reject(path, 400, "the replay serves level 1 and 2 books only")
        depth = 1 if level == "1" else COINBASE_BOOK_LEVEL2_DEPTH
        if product in recorded.books:
            for received_at, snapshot in recorded.books[product]:
                if at <= received_at < at + timedelta(days=1):
                    # The feed's snapshot has no order counts or sequence (see PROVENANCE.md).
                    return TimedAnswer(
                        body={
                            "bids": [[p, q, 1] for p, q in snapshot["bids"][:depth]],
                            "asks": [[p, q, 1] for p, q in snapshot["asks"][:depth]],
                            "sequence": 0,
                            "auction_mode": False,
                            "auction": None,
                            "time": received_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        },
                        taken_at=received_at,
                    )
            raise self._reject(
                path, 404, f"no recorded {product} book within a day after {at.isoformat()}"
            )
        market = SYNTHETIC_PRODUCTS[product]
        at_s = int(at.timestamp())
        book = order_book(f"coinbase:{product}", market, at_s, self._bounds(product), depth)
        counts = rng_for("coinbase-orders", product, at_s).integers(1, 12, size=2 * depth)
        digits = market.price_digits
        return TimedAnswer(
            body={
                "bids": [
                    [decimal_text(p, digits), decimal_text(q, 8), int(n)]
                    for (p, q), n in zip(book.bids, counts[:depth], strict=False)
                ],
                "asks": [
                    [decimal_text(p, digits), decimal_text(q, 8), int(n)]
                    for (p, q), n in zip(book.asks, counts[depth:], strict=False)
                ],
                "sequence": book.update_id,
                "auction_mode": False,
                "auction": None,
                "time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            taken_at=at,
        )

    def get_json(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        if COINBASE_TRADES_PATH.match(path):
            return self._trades(path, dict(params or {}), None)
        if COINBASE_BOOK_PATH.match(path):
            raise self._reject(
                path, 400, "the replay has no clock: ask for a book with get_json_at"
            )
        match = _COINBASE_PATH.match(path)
        if not match or match.group(1).upper() not in SYNTHETIC_PRODUCTS:
            raise self._reject(path, 404, "NotFound")
        product = match.group(1).upper()
        params = dict(params or {})

        def reject(message: str) -> UpstreamError:
            return self._reject(path, 400, message)

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
        for day in range(first // DAY_S, last // DAY_S + 1):
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
