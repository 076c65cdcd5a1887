"""Tick storage: trades and top-of-book quotes, one interface, two backends.

Local runs keep ticks in a Parquet catalog under ``.coinswarm/ticks``; prod writes them to
InfluxDB. Both promise the same thing: a tick is identified by
``(venue, symbol, kind, ts, trade_id)`` and writing it again changes nothing, so a replayed or
re-run feed never duplicates. ``trade_id`` is part of the identity because venues print several
trades in the same nanosecond.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import fasteners
import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, SecretStr

from orchestration.deployment import coinswarm_home

KINDS = ("trade", "book_top")
SIDES = ("buy", "sell")
STRING_COLUMNS = ("venue", "symbol", "kind", "side", "trade_id")
FLOAT_COLUMNS = ("price", "size", "bid", "ask", "bid_size", "ask_size")
TICK_COLUMNS = (
    "venue",
    "symbol",
    "kind",
    "ts",
    "price",
    "size",
    "side",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "trade_id",
)
IDENTITY = ["venue", "symbol", "kind", "ts", "trade_id"]
_REQUIRED = ("venue", "symbol", "kind", "ts")

TimeLike = int | str | datetime | date | pd.Timestamp | np.datetime64
_STR_DTYPE = pd.Series(["x"], dtype="str").dtype


class TickValidationError(ValueError):
    """Ticks that cannot be stored as given (missing columns, bad kind/side, no values)."""


def empty_ticks() -> pd.DataFrame:
    return normalize_ticks(pd.DataFrame({c: [] for c in TICK_COLUMNS}))


def to_ns(value: TimeLike) -> int:
    """Nanoseconds since the epoch, UTC (naive datetimes and strings are read as UTC)."""
    if isinstance(value, int | np.integer):
        return int(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def _ts_to_ns(col: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        if getattr(col.dt, "tz", None) is None:
            col = col.dt.tz_localize("UTC")
        return col.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64")
    if col.isna().any():
        raise TickValidationError("column 'ts' has missing values")
    return col.astype("int64")


def normalize_ticks(ticks: pd.DataFrame) -> pd.DataFrame:
    """Validate, coerce to the canonical dtypes, drop duplicate identities (last wins), sort.

    Both stores read back exactly this shape, so callers can compare frames directly.
    """
    missing = [c for c in _REQUIRED if c not in ticks.columns]
    if missing:
        raise TickValidationError(f"ticks are missing required columns: {missing}")
    unknown = sorted(set(ticks.columns) - set(TICK_COLUMNS))
    if unknown:
        raise TickValidationError(f"ticks have unknown columns: {unknown}")
    df = pd.DataFrame(index=pd.RangeIndex(len(ticks)))
    for col in TICK_COLUMNS:
        values = ticks[col].reset_index(drop=True) if col in ticks.columns else None
        if col == "ts":
            df[col] = _ts_to_ns(values)
        elif col in FLOAT_COLUMNS:
            df[col] = (
                np.nan if values is None else pd.to_numeric(values, errors="raise").astype(float)
            )
        else:
            if values is None:
                df[col] = pd.Series([None] * len(df), dtype="str")
            elif values.dtype == _STR_DTYPE:
                df[col] = values  # already strings with NaN for null: nothing to convert
            else:
                as_obj = values.astype(object).where(values.notna(), None)
                df[col] = pd.Series([None if v is None else str(v) for v in as_obj], dtype="str")
    for col in ("venue", "symbol", "kind"):
        if df[col].isna().any() or (df[col] == "").any():
            raise TickValidationError(f"column {col!r} has missing values")
    bad_kind = sorted(set(df["kind"]) - set(KINDS))
    if bad_kind:
        raise TickValidationError(f"unknown kind(s) {bad_kind}; expected one of {list(KINDS)}")
    bad_side = sorted(set(df["side"].dropna()) - set(SIDES))
    if bad_side:
        raise TickValidationError(f"unknown side(s) {bad_side}; expected buy, sell or null")
    values = df[list(FLOAT_COLUMNS)].to_numpy()
    if np.isinf(values).any():
        raise TickValidationError("tick values must be finite")
    trades = df["kind"] == "trade"
    if (trades & (df["price"].isna() | df["size"].isna())).any():
        raise TickValidationError("every trade needs a price and a size")
    quotes = df["kind"] == "book_top"
    if (quotes & df["bid"].isna() & df["ask"].isna()).any():
        raise TickValidationError("every book_top needs a bid or an ask")
    df = df.drop_duplicates(subset=IDENTITY, keep="last")
    return _sorted(df)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(
        ["venue", "symbol", "ts", "kind", "trade_id"], na_position="first", kind="stable"
    ).reset_index(drop=True)


def _utc_date(ns: int) -> date:
    return (datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)).date()


class TickStore(abc.ABC):
    """Where ticks live. Writes are idempotent by (venue, symbol, kind, ts, trade_id)."""

    @abc.abstractmethod
    def write(self, ticks: pd.DataFrame) -> int:
        """Store ``ticks``; return how many distinct ticks were written.

        Ticks already stored are overwritten with identical values, never duplicated.
        """

    def write_records(self, records: Sequence[Sequence[object]]) -> int:
        """Store ticks given as rows in :data:`TICK_COLUMNS` order (``None`` for null).

        The streaming service's batches arrive this way; the result is :meth:`write`'s, and a
        store may take a faster path for rows that are already plain and valid.
        """
        return self.write(pd.DataFrame.from_records(list(records), columns=list(TICK_COLUMNS)))

    def close(self) -> None:  # noqa: B027 - optional hook with a do-nothing default
        """Release connections held across writes (none by default)."""

    @abc.abstractmethod
    def read(
        self,
        venue: str,
        symbol: str,
        start: TimeLike,
        end: TimeLike,
        kind: str | None = None,
    ) -> pd.DataFrame:
        """Ticks with ``start <= ts < end``, sorted by time, in the canonical columns."""


def _check_kind(kind: str | None) -> tuple[str, ...]:
    if kind is None:
        return KINDS
    if kind not in KINDS:
        raise ValueError(f"unknown tick kind {kind!r}; expected one of {list(KINDS)}")
    return (kind,)


# --------------------------------------------------------------------------------------------
# Parquet catalog
# --------------------------------------------------------------------------------------------

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()

_ARROW_SCHEMA = pa.schema(
    [
        (c, pa.int64() if c == "ts" else pa.float64() if c in FLOAT_COLUMNS else pa.string())
        for c in TICK_COLUMNS
    ]
)


class ParquetTickStore(TickStore):
    """A hive-style Parquet catalog: ``venue=<v>/symbol=<s>/date=<YYYY-MM-DD>/ticks.parquet``.

    One file per venue, symbol and UTC day keeps a write's read-merge-replace small; the file
    is replaced atomically (write aside, then rename) under a per-day lock, so a reader never
    sees half a file and concurrent writers never lose each other's ticks.
    """

    FILE_NAME = "ticks.parquet"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ParquetTickStore(root={str(self.root)!r})"

    def _day_dir(self, venue: str, symbol: str, day: date) -> Path:
        # Symbols contain "/" ("ETH/BTC"): percent-encode values as hive partitioning does.
        return (
            self.root
            / f"venue={quote(venue, safe='')}"
            / f"symbol={quote(symbol, safe='')}"
            / f"date={day.isoformat()}"
        )

    @contextlib.contextmanager
    def _locked(self, day_dir: Path) -> Iterator[None]:
        day_dir.mkdir(parents=True, exist_ok=True)
        lock_path = str(day_dir / ".lock")
        # fcntl locks exclude processes, not threads of one process: hold a thread lock too.
        with _thread_locks_guard:
            thread_lock = _thread_locks.setdefault(lock_path, threading.Lock())
        with thread_lock, fasteners.InterProcessLock(lock_path):
            yield

    @staticmethod
    def _read_file(path: Path) -> pd.DataFrame:
        if not path.exists():
            return empty_ticks()
        table = pq.read_table(path, schema=_ARROW_SCHEMA)
        return _from_arrow(table)

    def write(self, ticks: pd.DataFrame) -> int:
        df = normalize_ticks(ticks)
        if df.empty:
            return 0
        days = [_utc_date(int(ns)) for ns in df["ts"].to_numpy()]
        df = df.assign(_day=days)
        for (venue, symbol, day), group in df.groupby(["venue", "symbol", "_day"], sort=True):
            day_dir = self._day_dir(venue, symbol, day)
            with self._locked(day_dir):
                path = day_dir / self.FILE_NAME
                merged = pd.concat(
                    [self._read_file(path), group.drop(columns="_day")], ignore_index=True
                )
                merged = _sorted(merged.drop_duplicates(subset=IDENTITY, keep="last"))
                table = pa.Table.from_pandas(merged, schema=_ARROW_SCHEMA, preserve_index=False)
                fd, tmp_name = tempfile.mkstemp(dir=day_dir, prefix=".ticks-", suffix=".tmp")
                os.close(fd)
                try:
                    pq.write_table(table, tmp_name, compression="zstd")
                    os.replace(tmp_name, path)
                except BaseException:
                    Path(tmp_name).unlink(missing_ok=True)
                    raise
        return len(df)

    def read(
        self,
        venue: str,
        symbol: str,
        start: TimeLike,
        end: TimeLike,
        kind: str | None = None,
    ) -> pd.DataFrame:
        kinds = _check_kind(kind)
        start_ns, end_ns = to_ns(start), to_ns(end)
        if end_ns <= start_ns:
            return empty_ticks()
        frames = []
        day, last = _utc_date(start_ns), _utc_date(end_ns - 1)
        while day <= last:
            path = self._day_dir(venue, symbol, day) / self.FILE_NAME
            if path.exists():
                table = pq.read_table(
                    path,
                    schema=_ARROW_SCHEMA,
                    filters=[
                        ("ts", ">=", start_ns),
                        ("ts", "<", end_ns),
                        ("kind", "in", list(kinds)),
                    ],
                )
                frames.append(_from_arrow(table))
            day += timedelta(days=1)
        if not frames:
            return empty_ticks()
        return _sorted(pd.concat(frames, ignore_index=True))


def _from_arrow(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    return _canonical(df)


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    for col in TICK_COLUMNS:
        values = df[col].reset_index(drop=True) if col in df.columns else None
        if col == "ts":
            out[col] = values.astype("int64")
        elif col in FLOAT_COLUMNS:
            out[col] = np.nan if values is None else values.astype(float)
        elif values is None:
            out[col] = pd.Series([None] * len(out), dtype="str")
        else:
            out[col] = values.astype("str").where(values.notna(), None).astype("str")
    return out


# --------------------------------------------------------------------------------------------
# InfluxDB
# --------------------------------------------------------------------------------------------


_TAG_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})


def _escape_tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def _influxql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _NotPlain(Exception):
    """A record the fast path leaves to :func:`normalize_ticks` (which names any problem)."""


def record_lines(records: Iterable[Sequence[object]]) -> list[str]:
    """One line per distinct tick: measurement = kind; tags venue, symbol, side, trade_id; the
    non-null float fields; the time in ns. The last of a repeated identity wins, as in
    :func:`normalize_ticks`.

    ``trade_id`` is a tag, so equal-timestamp trades are distinct series points instead of
    overwriting each other, and re-writing a tick overwrites the same point identically.
    Built straight from the rows, with no DataFrame: the streaming service sends every tick
    through here. The rows must be plain and valid, exactly what the stream parsers emit:
    ``str`` names, an ``int`` time, finite ``float`` values or ``None``; anything else raises
    :class:`_NotPlain`.
    """
    by_identity: dict[tuple, str] = {}
    tags_of: dict[tuple[str, str], str] = {}
    for record in records:
        venue, symbol, kind, ts, price, size, side, bid, ask, bid_size, ask_size, trade_id = record
        incomplete = (
            (price is None or size is None) if kind == "trade" else (bid is None and ask is None)
        )
        if (
            incomplete
            or kind not in KINDS
            or type(ts) is not int
            or type(venue) is not str
            or type(symbol) is not str
            or not venue
            or not symbol
            or (side is not None and side not in SIDES)
            or (trade_id is not None and type(trade_id) is not str)
        ):
            raise _NotPlain
        fields = []
        values = (price, size, bid, ask, bid_size, ask_size)
        for name, value in zip(FLOAT_COLUMNS, values, strict=True):
            if value is not None:
                if type(value) is not float or not math.isfinite(value):
                    raise _NotPlain
                fields.append(f"{name}={value!r}")
        tags = tags_of.get((venue, symbol))
        if tags is None:
            tags = f"venue={_escape_tag(venue)},symbol={_escape_tag(symbol)}"
            tags_of[(venue, symbol)] = tags
        line = f"{kind},{tags}"
        if side is not None:
            line += f",side={side}"
        if trade_id:
            line += f",trade_id={_escape_tag(trade_id)}"
        by_identity[(venue, symbol, kind, ts, trade_id)] = f"{line} {','.join(fields)} {ts}"
    return list(by_identity.values())


def to_line_protocol(df: pd.DataFrame) -> list[str]:
    """:func:`record_lines` of a frame :func:`normalize_ticks` returned (NaN read as null)."""
    columns = [
        df[col].tolist() if col == "ts" else [None if v != v else v for v in df[col].tolist()]
        for col in TICK_COLUMNS
    ]
    return record_lines(zip(*columns, strict=True))


class InfluxTickStore(TickStore):
    """InfluxDB: writes through influxdb-client's v2 write API, reads with InfluxQL.

    Reads go to the v1-compatible ``/query`` endpoint, which InfluxDB 1.x, 2.x (with a DBRP
    mapping for the bucket) and 3.x all serve, chunked so large windows stream.
    """

    def __init__(
        self,
        url: str,
        token: SecretStr | str,
        org: str,
        bucket: str,
        batch_size: int = 5_000,
        timeout_s: float = 30.0,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.url = url.rstrip("/")
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self.org = org
        self.bucket = bucket
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self._client_lock = threading.Lock()
        self._client = None
        self._api = None

    def __repr__(self) -> str:
        return f"InfluxTickStore(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"

    def _auth_headers(self) -> dict[str, str]:
        token = self._token.get_secret_value()
        return {"Authorization": f"Token {token}"} if token else {}

    def _write_api(self):  # noqa: ANN202 - influxdb-client's WriteApi, imported lazily
        """One client per store, kept across writes (and shared by concurrent writers)."""
        with self._client_lock:
            if self._api is None:
                from influxdb_client import InfluxDBClient
                from influxdb_client.client.write_api import SYNCHRONOUS

                self._client = InfluxDBClient(
                    url=self.url,
                    token=self._token.get_secret_value(),
                    org=self.org,
                    timeout=int(self.timeout_s * 1000),
                )
                self._api = self._client.write_api(write_options=SYNCHRONOUS)
            return self._api

    def _post(self, lines: list[str]) -> None:
        from influxdb_client import WritePrecision

        write_api = self._write_api()
        for offset in range(0, len(lines), self.batch_size):
            write_api.write(
                bucket=self.bucket,
                org=self.org,
                record=lines[offset : offset + self.batch_size],
                write_precision=WritePrecision.NS,
            )
        dg.get_dagster_logger().debug("wrote %d ticks to influx bucket %s", len(lines), self.bucket)

    def write(self, ticks: pd.DataFrame) -> int:
        df = normalize_ticks(ticks)
        if df.empty:
            return 0
        lines = to_line_protocol(df)
        self._post(lines)
        return len(lines)

    def write_records(self, records: Sequence[Sequence[object]]) -> int:
        try:
            lines = record_lines(records)
        except _NotPlain:
            return super().write_records(records)
        if lines:
            self._post(lines)
        return len(lines)

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
            self._client = self._api = None

    def query(self, influxql: str) -> Iterator[dict]:
        """Run InfluxQL on /query (epoch ns, chunked); yield each series of each chunk."""
        params = {
            "db": self.bucket,
            "q": influxql,
            "epoch": "ns",
            "chunked": "true",
            "chunk_size": str(self.batch_size),
        }
        with (
            httpx.Client(timeout=self.timeout_s) as http,
            http.stream(
                "GET", f"{self.url}/query", params=params, headers=self._auth_headers()
            ) as response,
        ):
            if response.status_code != 200:
                body = response.read().decode(errors="replace")[:500]
                raise RuntimeError(
                    f"InfluxDB query failed with HTTP {response.status_code}: {body}"
                )
            for line in response.iter_lines():
                if not line.strip():
                    continue
                payload = json.loads(line)
                if "error" in payload:
                    raise RuntimeError(f"InfluxDB query failed: {payload['error']}")
                for result in payload.get("results", []):
                    if "error" in result:
                        raise RuntimeError(f"InfluxDB query failed: {result['error']}")
                    yield from result.get("series", [])

    def read(
        self,
        venue: str,
        symbol: str,
        start: TimeLike,
        end: TimeLike,
        kind: str | None = None,
    ) -> pd.DataFrame:
        kinds = _check_kind(kind)
        start_ns, end_ns = to_ns(start), to_ns(end)
        if end_ns <= start_ns:
            return empty_ticks()
        measurements = ", ".join(f'"{k}"' for k in kinds)
        influxql = (
            f"SELECT * FROM {measurements}"
            f" WHERE venue = {_influxql_string(venue)} AND symbol = {_influxql_string(symbol)}"
            f" AND time >= {start_ns} AND time < {end_ns}"
        )
        frames = []
        for series in self.query(influxql):
            frame = pd.DataFrame(series.get("values", []), columns=series["columns"], dtype=object)
            frame = frame.rename(columns={"time": "ts"})
            frame["kind"] = series["name"]
            frames.append(frame)
        if not frames:
            return empty_ticks()
        df = pd.concat(frames, ignore_index=True)
        df = df[[c for c in df.columns if c in TICK_COLUMNS]]
        return _sorted(_canonical(df))


# --------------------------------------------------------------------------------------------
# Dagster resources
# --------------------------------------------------------------------------------------------


class TickStoreResource(dg.ConfigurableResource):
    """The tick-store interface assets depend on, whatever the deployment."""

    def get_store(self) -> TickStore:
        raise NotImplementedError(f"{type(self).__name__} does not build a tick store")

    def write(self, ticks: pd.DataFrame) -> int:
        return self.get_store().write(ticks)

    def read(
        self,
        venue: str,
        symbol: str,
        start: TimeLike,
        end: TimeLike,
        kind: str | None = None,
    ) -> pd.DataFrame:
        return self.get_store().read(venue, symbol, start, end, kind=kind)


class ParquetTickStoreResource(TickStoreResource):
    """The local deployment's Parquet tick catalog."""

    root: str = Field(default="", description="Catalog root; empty means <COINSWARM_HOME>/ticks.")

    def get_store(self) -> ParquetTickStore:
        return ParquetTickStore(Path(self.root) if self.root else coinswarm_home() / "ticks")


class InfluxTickStoreResource(TickStoreResource):
    """InfluxDB ticks (prod): url, token, org and bucket come from ``dg.EnvVar``."""

    url: str = Field(description="InfluxDB base URL, e.g. http://influx:8086")
    token: str = Field(default="", description="API token (use dg.EnvVar)", repr=False)
    org: str = Field(default="coinswarm")
    bucket: str = Field(default="ticks")
    batch_size: int = Field(default=5_000, gt=0, description="Points per write request.")

    def get_store(self) -> InfluxTickStore:
        return InfluxTickStore(
            url=self.url,
            token=SecretStr(self.token),
            org=self.org,
            bucket=self.bucket,
            batch_size=self.batch_size,
        )

    def __repr__(self) -> str:
        return (
            f"InfluxTickStoreResource(url={self.url!r}, org={self.org!r}, bucket={self.bucket!r})"
        )

    __str__ = __repr__
