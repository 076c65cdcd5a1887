"""Readers of the recorded real venue data the replay clients serve.

Each reader returns what the venue sent, keyed the way a replay looks it up, and refuses a file
it cannot read with the file and line named. Files may be gzip-compressed (``.gz``), as the
slices bundled under ``assets/ingest/recorded`` are.

Formats (see ``../shared/data/README.md`` and ``assets/ingest/recorded/PROVENANCE.md``):

- trades CSV (freqtrade/ccxt, Binance aggregate trades): ``timestamp,id,type,side,price,amount,
  cost``; ``id`` is Binance's aggregate trade id, ``side`` the taker's side.
- funding CSV (freqtrade, Binance USD-M futures): ``date,open,high,low,close,volume`` with the
  funding rate in ``open`` and the funding time (ms precision) in ``date``.
- cryptofeed HTTP log: ``<url> -> <epoch s>: <json body>`` per line.
- cryptofeed websocket log: ``<epoch s>: <json message>`` per received message.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def files_matching(directory: Path, pattern: re.Pattern[str]) -> dict[str, list[Path]]:
    """Files of ``directory`` whose name matches ``pattern``, grouped by its first group."""
    if not directory.is_dir():
        raise FileNotFoundError(f"replay data folder {directory} does not exist")
    found: dict[str, list[Path]] = {}
    for file in sorted(directory.iterdir()):
        match = pattern.match(file.name)
        if match and file.is_file():
            found.setdefault(match.group(1), []).append(file)
    return found


def csv_records(
    files: Iterable[Path], header: list[str], what: str
) -> Iterator[tuple[str, list[str]]]:
    """(where, record) of every data line of the CSV files, each file checked to have exactly
    ``header`` and each record its width; ``where`` names the file and line for errors."""
    for file in files:
        reader = csv.reader(io.StringIO(read_text(file)))
        found = next(reader, None)
        if found != header:
            raise ValueError(f"recorded {what} {file} have header {found}, expected {header}")
        for line_no, record in enumerate(reader, start=2):
            where = f"recorded {what} {file} line {line_no}"
            if len(record) != len(header):
                raise ValueError(f"{where}: {record!r}")
            yield where, record


def _utc_ms(text: str, where: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


# -- Binance aggregate trades --------------------------------------------------------------------

TRADES_HEADER = ["timestamp", "id", "type", "side", "price", "amount", "cost"]


@dataclass(frozen=True)
class RecordedAggTrade:
    agg_id: int
    time_ms: int
    price: str
    quantity: str
    buyer_is_maker: bool


def read_agg_trades(files: Iterable[Path]) -> list[RecordedAggTrade]:
    """Every recorded aggregate trade of the files, by id (duplicates across files merged)."""
    by_id: dict[int, RecordedAggTrade] = {}
    for where, record in csv_records(files, TRADES_HEADER, "trades"):
        timestamp, agg_id, _, side, price, amount, _ = record
        if side not in ("buy", "sell"):
            raise ValueError(f"{where}: side {side!r} is neither buy nor sell")
        by_id[int(agg_id)] = RecordedAggTrade(
            agg_id=int(agg_id),
            time_ms=_utc_ms(timestamp, where),
            price=price,
            quantity=amount,
            # ccxt's side is the taker's: a taker selling hits a resting (maker) bid.
            buyer_is_maker=side == "sell",
        )
    return [by_id[i] for i in sorted(by_id)]


# -- Binance futures funding rates ---------------------------------------------------------------

FUNDING_HEADER = ["date", "open", "high", "low", "close", "volume"]


def read_funding_rates(files: Iterable[Path]) -> list[tuple[int, str]]:
    """(funding time ms, funding rate as recorded) pairs, oldest first."""
    by_time: dict[int, str] = {}
    for where, record in csv_records(files, FUNDING_HEADER, "funding rates"):
        by_time[_utc_ms(record[0], where)] = record[1]
    return sorted(by_time.items())


# -- cryptofeed logs -------------------------------------------------------------------------------

_HTTP_LINE = re.compile(r"^(?P<url>\S+) -> (?P<epoch>\d+(?:\.\d+)?): (?P<body>.*)$")
_WS_LINE = re.compile(r"^(?P<epoch>\d+(?:\.\d+)?): (?P<body>.*)$")


@dataclass(frozen=True)
class RecordedResponse:
    url: str
    received_at: datetime
    body: Any

    def query(self, name: str) -> str | None:
        values = parse_qs(urlsplit(self.url).query).get(name)
        return values[0] if values else None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


def read_http_log(files: Iterable[Path]) -> list[RecordedResponse]:
    """The REST responses of cryptofeed HTTP logs, in file order."""
    responses: list[RecordedResponse] = []
    for file in files:
        for line_no, line in enumerate(read_text(file).splitlines(), start=1):
            if not line.strip():
                continue
            match = _HTTP_LINE.match(line)
            if not match:
                raise ValueError(
                    f"recorded HTTP log {file} line {line_no} is not '<url> -> <t>: <json>'"
                )
            responses.append(
                RecordedResponse(
                    url=match["url"],
                    received_at=datetime.fromtimestamp(float(match["epoch"]), UTC),
                    body=json.loads(match["body"]),
                )
            )
    return responses


def read_ws_log(files: Iterable[Path]) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """(receive time, message) of every received JSON object message of cryptofeed websocket
    logs; connection and subscription lines are skipped."""
    for file in files:
        for line_no, line in enumerate(read_text(file).splitlines(), start=1):
            match = _WS_LINE.match(line)
            if not match:
                continue
            try:
                message = json.loads(match["body"])
            except json.JSONDecodeError:
                raise ValueError(
                    f"recorded websocket log {file} line {line_no} is not JSON"
                ) from None
            if isinstance(message, dict):
                yield datetime.fromtimestamp(float(match["epoch"]), UTC), message
