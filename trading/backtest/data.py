"""OHLCV CSV datasets for backtests, in the ../shared/data format.

A file has the columns ``timestamp,open,high,low,close,volume`` (ISO-8601 UTC timestamps, one row
per candle open time, sorted, no duplicates). The pair and venue come from the file name
(``binance-ETHBTC-5m-2018-01.csv`` -> venue ``binance``, symbol ``ETH/BTC``) unless given. Every
row is checked before a backtest starts; a bad file fails with its name, the row and the problem,
never halfway through a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trading.domain import SYMBOL_PATTERN

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
QUOTES = ("USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
"""Quote currencies recognised when splitting a pair like ETHBTC, longest match first."""

_NAME = re.compile(
    r"^(?P<venue>[a-z][a-z0-9]*)(?:-[a-z]+)*?-(?P<pair>[A-Z0-9]{4,24})-"
    r"(?P<interval>\d+[smhdw])(?:-|\.|$)"
)


class DatasetError(ValueError):
    """A dataset that cannot be backtested; the message names the file and the problem."""


@dataclass(frozen=True)
class Dataset:
    """One venue's candles for one pair: ``frame`` has symbol, ts, open, high, low, close,
    volume, sorted by ts."""

    path: Path
    venue: str
    symbol: str
    frame: pd.DataFrame

    @property
    def bar_seconds(self) -> float:
        """The typical bar length: the median gap between consecutive candles."""
        gaps = self.frame["ts"].diff().dropna().dt.total_seconds()
        return float(gaps.median()) if len(gaps) else float("nan")

    @property
    def quote(self) -> str:
        return self.symbol.split("/")[1]


def datasets_by_symbol(frame: pd.DataFrame, venue: str, source: str) -> list[Dataset]:
    """One Dataset per pair of a multi-pair candle frame (symbol, ts, OHLCV), in symbol order;
    ``source`` names where the rows came from (a table), shown as each dataset's path."""
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    return [
        Dataset(
            path=Path(f"{source}[{symbol}]"),
            venue=venue,
            symbol=str(symbol),
            frame=group.reset_index(drop=True),
        )
        for symbol, group in frame.groupby("symbol", sort=True)
    ]


def split_pair(pair: str) -> str:
    """``ETHBTC`` -> ``ETH/BTC``, by the longest known quote currency at the end."""
    for quote in sorted(QUOTES, key=len, reverse=True):
        if pair.endswith(quote) and len(pair) > len(quote):
            return f"{pair[: -len(quote)]}/{quote}"
    raise DatasetError(
        f"cannot tell the quote currency of {pair!r} (known quotes: {', '.join(QUOTES)}); "
        "pass the symbol explicitly, e.g. FILE.csv:ETH/BTC"
    )


def describe_name(path: Path) -> tuple[str, str]:
    """(venue, symbol) from a file name like ``binance-BTCUSDT-1d-2017-2018.csv``."""
    match = _NAME.match(path.name)
    if match is None:
        raise DatasetError(
            f"{path.name}: cannot read venue and pair from the file name (expected "
            "'<venue>-<PAIR>-<interval>-...csv', e.g. binance-ETHBTC-5m-2018-01.csv); "
            "pass the symbol explicitly, e.g. FILE.csv:ETH/BTC"
        )
    try:
        return match["venue"], split_pair(match["pair"])
    except DatasetError as exc:
        raise DatasetError(f"{path.name}: {exc}") from None


def parse_data_argument(argument: str) -> tuple[Path, str | None]:
    """``path`` or ``path:BASE/QUOTE`` (the CLI's ``--data`` value)."""
    path, sep, symbol = argument.rpartition(":")
    if sep and SYMBOL_PATTERN.match(symbol):
        return Path(path), symbol
    return Path(argument), None


def load_dataset(path: str | Path, symbol: str | None = None, venue: str | None = None) -> Dataset:
    """Read and check one OHLCV CSV."""
    path = Path(path)
    if symbol is None or venue is None:
        named_venue, named_symbol = describe_name(path) if symbol is None else ("csv", symbol)
        symbol = symbol or named_symbol
        venue = venue or named_venue
    if not SYMBOL_PATTERN.match(symbol):
        raise DatasetError(f"{path.name}: symbol must look like BASE/QUOTE, got {symbol!r}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name}: not a readable CSV: {exc}") from exc
    if list(raw.columns) != list(COLUMNS):
        raise DatasetError(
            f"{path.name}: columns are {list(raw.columns)}, expected {list(COLUMNS)} "
            "(timestamp,open,high,low,close,volume)"
        )
    if raw.empty:
        raise DatasetError(f"{path.name}: no rows")
    ts = pd.to_datetime(raw["timestamp"], utc=True, errors="coerce", format="ISO8601")
    _fail_at(path, ts.isna(), raw["timestamp"], "timestamp is not an ISO-8601 time")
    frame = pd.DataFrame({"symbol": symbol, "ts": ts})
    for column in COLUMNS[1:]:
        values = pd.to_numeric(raw[column], errors="coerce")
        _fail_at(
            path, values.isna() | ~np.isfinite(values), raw[column], f"{column} is not a number"
        )
        frame[column] = values.astype(float)
    for column in ("open", "high", "low", "close"):
        _fail_at(path, frame[column] <= 0, frame[column], f"{column} must be > 0 (prices)")
    _fail_at(path, frame["volume"] < 0, frame["volume"], "volume must be >= 0")
    low_bad = frame["low"] > frame[["open", "close"]].min(axis=1)
    high_bad = frame["high"] < frame[["open", "close"]].max(axis=1)
    _fail_at(path, low_bad, frame["low"], "low is above open or close")
    _fail_at(path, high_bad, frame["high"], "high is below open or close")
    order = frame["ts"].diff().dt.total_seconds()
    _fail_at(path, order <= 0, raw["timestamp"], "timestamps must strictly increase")
    return Dataset(path=path, venue=venue, symbol=symbol, frame=frame.reset_index(drop=True))


def _fail_at(path: Path, bad: pd.Series, shown: pd.Series, problem: str) -> None:
    if bool(bad.any()):
        row = int(np.flatnonzero(bad.to_numpy())[0])
        count = int(bad.sum())
        raise DatasetError(
            f"{path.name}: row {row + 2} (line {row + 2} of the file): {problem} "
            f"(value {shown.iloc[row]!r}); {count} bad row(s) in all"
        )
