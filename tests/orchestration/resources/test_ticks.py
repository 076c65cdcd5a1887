"""One behavioural suite for every TickStore: Parquet catalog and InfluxDB (behind the shim).

Ticks come from the recorded real feeds in ../shared/data: Binance XRP/ETH trades (with
several trades printed in the same millisecond) and Binance BTC/USDT book tickers.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from orchestration.resources.ticks import (
    TICK_COLUMNS,
    InfluxTickStore,
    InfluxTickStoreResource,
    ParquetTickStore,
    ParquetTickStoreResource,
    TickStore,
    TickStoreResource,
    TickValidationError,
    normalize_ticks,
    to_line_protocol,
    to_ns,
)

VENUE = "binance"
TRADE_SYMBOL = "XRP/ETH"
QUOTE_SYMBOL = "BTC/USDT"


# --------------------------------------------------------------------------------------------
# recorded real ticks
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_trades(shared_data: Path) -> pd.DataFrame:
    path = shared_data / "trades" / "binance-XRPETH-trades-2019-10.csv"
    if not path.exists():
        pytest.skip(f"recorded trades not found at {path}")
    raw = pd.read_csv(path, nrows=3000)
    return normalize_ticks(
        pd.DataFrame(
            {
                "venue": VENUE,
                "symbol": TRADE_SYMBOL,
                "kind": "trade",
                "ts": pd.to_datetime(raw["timestamp"], utc=True),
                "price": raw["price"],
                "size": raw["amount"],
                "side": raw["side"],
                "trade_id": raw["id"].astype(str),
            }
        )
    )


@pytest.fixture(scope="module")
def real_book_tops(shared_data: Path) -> pd.DataFrame:
    path = shared_data / "ticks" / "binance-spot-btcusdt-20240808.gz"
    if not path.exists():
        pytest.skip(f"recorded ticks not found at {path}")
    rows = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            received, _, payload = line.partition(" ")
            if "@bookTicker" not in payload[:60]:
                continue
            data = json.loads(payload)["data"]
            rows.append(
                {
                    "venue": VENUE,
                    "symbol": QUOTE_SYMBOL,
                    "kind": "book_top",
                    "ts": int(received),
                    "bid": float(data["b"]),
                    "ask": float(data["a"]),
                    "bid_size": float(data["B"]),
                    "ask_size": float(data["A"]),
                    "trade_id": str(data["u"]),
                }
            )
            if len(rows) == 1500:
                break
    return normalize_ticks(pd.DataFrame(rows))


# --------------------------------------------------------------------------------------------
# the stores under test
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=["parquet", pytest.param("influx", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TickStore]:
    if request.param == "parquet":
        yield ParquetTickStore(tmp_path / "ticks")
    else:
        url = request.getfixturevalue("influx_url")
        bucket = request.getfixturevalue("influx_bucket")
        yield InfluxTickStore(
            url, token="test-token", org="coinswarm", bucket=bucket, batch_size=1000
        )


def _window(df: pd.DataFrame) -> tuple[int, int]:
    return int(df["ts"].min()), int(df["ts"].max()) + 1


def _assert_same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(TICK_COLUMNS)
    pd.testing.assert_frame_equal(
        actual.reset_index(drop=True), expected.reset_index(drop=True), check_exact=True
    )


def test_write_and_read_back_real_trades(store: TickStore, real_trades: pd.DataFrame) -> None:
    assert store.write(real_trades) == len(real_trades)
    got = store.read(VENUE, TRADE_SYMBOL, *_window(real_trades))
    _assert_same(got, real_trades)


def test_rewrite_is_idempotent(store: TickStore, real_trades: pd.DataFrame) -> None:
    store.write(real_trades)
    store.write(real_trades)
    # Overlapping re-write in a different order and with duplicate rows in the input.
    overlap = pd.concat([real_trades.iloc[1000:2000], real_trades.iloc[1500:1600]]).sample(
        frac=1.0, random_state=7
    )
    store.write(overlap)
    got = store.read(VENUE, TRADE_SYMBOL, *_window(real_trades))
    _assert_same(got, real_trades)


def test_equal_timestamp_trades_are_all_kept(store: TickStore, real_trades: pd.DataFrame) -> None:
    same_ts = real_trades[real_trades.duplicated("ts", keep=False)]
    assert len(same_ts) > 10, "the recording has same-millisecond trades"
    store.write(same_ts)
    got = store.read(VENUE, TRADE_SYMBOL, *_window(same_ts))
    assert len(got) == len(same_ts)
    assert got["trade_id"].is_unique


def test_time_window_is_half_open(store: TickStore, real_trades: pd.DataFrame) -> None:
    store.write(real_trades)
    times = np.sort(real_trades["ts"].unique())
    start, end = int(times[100]), int(times[200])
    got = store.read(VENUE, TRADE_SYMBOL, start, end)
    expected = real_trades[(real_trades["ts"] >= start) & (real_trades["ts"] < end)]
    _assert_same(got, expected)
    assert got["ts"].min() == start and got["ts"].max() < end
    # Timestamps, datetimes and ISO strings name the same instants.
    as_text = store.read(
        VENUE, TRADE_SYMBOL, pd.Timestamp(start, tz="UTC").isoformat(), pd.Timestamp(end, tz="UTC")
    )
    _assert_same(as_text, expected)
    assert store.read(VENUE, TRADE_SYMBOL, end, start).empty
    assert store.read(VENUE, "NOPE/ETH", start, end).empty


def test_kinds_and_symbols_are_kept_apart(
    store: TickStore, real_trades: pd.DataFrame, real_book_tops: pd.DataFrame
) -> None:
    # Put the trades on the book tops' clock so one window holds both kinds.
    shift = int(real_book_tops["ts"].min()) - int(real_trades["ts"].min())
    trades = real_trades.assign(ts=real_trades["ts"] + shift, symbol=QUOTE_SYMBOL)
    trades = normalize_ticks(trades)
    store.write(pd.concat([trades, real_book_tops]))
    start, end = _window(pd.concat([trades, real_book_tops]))

    tops = store.read(VENUE, QUOTE_SYMBOL, start, end, kind="book_top")
    _assert_same(tops, real_book_tops)
    assert tops["side"].isna().all() and tops["price"].isna().all()
    _assert_same(store.read(VENUE, QUOTE_SYMBOL, start, end, kind="trade"), trades)
    both = store.read(VENUE, QUOTE_SYMBOL, start, end)
    _assert_same(both, normalize_ticks(pd.concat([trades, real_book_tops])))
    with pytest.raises(ValueError, match="unknown tick kind"):
        store.read(VENUE, QUOTE_SYMBOL, start, end, kind="funding")


def test_ticks_across_midnight_and_missing_trade_ids(store: TickStore) -> None:
    midnight = to_ns("2018-01-11T00:00:00Z")
    ticks = pd.DataFrame(
        {
            "venue": ["coinbase"] * 4,
            "symbol": ["ETH/BTC"] * 4,
            "kind": ["trade", "trade", "book_top", "book_top"],
            "ts": [midnight - 1, midnight, midnight - 1, midnight - 1],
            "price": [0.1, 0.2, None, None],
            "size": [1.0, 2.0, None, None],
            "side": ["buy", None, None, None],
            "bid": [None, None, 0.09, 0.095],
            "ask": [None, None, 0.11, 0.105],
            "trade_id": [None, None, None, None],
        }
    )
    # Two book tops with one identity: the last one wins, in the input and in the store.
    assert store.write(ticks) == 3
    store.write(ticks)
    got = store.read("coinbase", "ETH/BTC", midnight - 10, midnight + 10)
    assert len(got) == 3
    top = got[got["kind"] == "book_top"].iloc[0]
    assert (top["bid"], top["ask"]) == (0.095, 0.105)
    assert list(got["ts"]) == [midnight - 1, midnight - 1, midnight]
    assert store.read("coinbase", "ETH/BTC", midnight, midnight + 10)["price"].tolist() == [0.2]


def test_empty_write_is_a_no_op(store: TickStore) -> None:
    assert store.write(pd.DataFrame({c: [] for c in ("venue", "symbol", "kind", "ts")})) == 0


# --------------------------------------------------------------------------------------------
# validation (no server)
# --------------------------------------------------------------------------------------------


def _one_trade(**overrides: object) -> pd.DataFrame:
    row = {"venue": "binance", "symbol": "ETH/BTC", "kind": "trade", "ts": 1, "price": 0.1,
           "size": 1.0, "side": "buy", "trade_id": "7"}  # fmt: skip
    row.update(overrides)
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("ticks", "message"),
    [
        (_one_trade().drop(columns="ts"), "missing required columns"),
        (_one_trade(colour="red"), "unknown columns"),
        (_one_trade(kind="funding"), "unknown kind"),
        (_one_trade(side="long"), "unknown side"),
        (_one_trade(price=None), "needs a price and a size"),
        (_one_trade(kind="book_top", bid=None, ask=None), "needs a bid or an ask"),
        (_one_trade(price=float("inf")), "finite"),
        (_one_trade(symbol=None), "'symbol' has missing values"),
    ],
)
def test_invalid_ticks_are_rejected_by_name(
    ticks: pd.DataFrame, message: str, tmp_path: Path
) -> None:
    with pytest.raises(TickValidationError, match=message):
        ParquetTickStore(tmp_path).write(ticks)
    assert not any(tmp_path.rglob("*.parquet")), "a failed write writes nothing"


def test_parquet_catalog_layout_is_hive_style(tmp_path: Path) -> None:
    store = ParquetTickStore(tmp_path)
    store.write(_one_trade(ts=to_ns("2018-01-10T12:00:00Z")))
    files = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")]
    assert files == ["venue=binance/symbol=ETH%2FBTC/date=2018-01-10/ticks.parquet"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_line_protocol_tags_and_fields() -> None:
    ticks = normalize_ticks(
        pd.concat(
            [
                _one_trade(symbol="A B,C=D", trade_id="x 1"),
                _one_trade(kind="book_top", side=None, trade_id=None, price=None, size=None,
                           bid=1.5, ask=2.0),
            ]
        )
    )  # fmt: skip
    assert to_line_protocol(ticks) == [
        r"trade,venue=binance,symbol=A\ B\,C\=D,side=buy,trade_id=x\ 1 price=0.1,size=1.0 1",
        "book_top,venue=binance,symbol=ETH/BTC bid=1.5,ask=2.0 1",
    ]


# --------------------------------------------------------------------------------------------
# shim and resources
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_shim_maps_v2_write_precision(influx_url: str, influx_bucket: str) -> None:
    body = b"trade,venue=v,symbol=S price=1.0,size=2.0 1515542400000"
    request = urllib.request.Request(
        f"{influx_url}/api/v2/write?org=o&bucket={influx_bucket}&precision=ms",
        data=body,
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 204
    store = InfluxTickStore(influx_url, token="", org="o", bucket=influx_bucket)
    got = store.read("v", "S", "2018-01-10", "2018-01-11")
    assert got["ts"].tolist() == [to_ns("2018-01-10T00:00:00Z")]


def test_influx_resource_hides_the_token() -> None:
    resource = InfluxTickStoreResource(url="http://influx:8086", token="s3cr3t-token")
    assert "s3cr3t-token" not in repr(resource)
    assert "s3cr3t-token" not in repr(resource.get_store())


@dg.asset
def stored_trades(ticks: TickStoreResource) -> dg.MaterializeResult:
    written = ticks.write(_one_trade(ts=to_ns("2018-01-10T00:00:00Z")))
    back = ticks.read("binance", "ETH/BTC", "2018-01-10", "2018-01-11", kind="trade")
    return dg.MaterializeResult(metadata={"written": written, "read": len(back)})


def test_parquet_resource_in_an_asset(tmp_path: Path) -> None:
    resource = ParquetTickStoreResource(root=str(tmp_path / "ticks"))
    result = dg.materialize([stored_trades], resources={"ticks": resource})
    metadata = result.asset_materializations_for_node("stored_trades")[0].metadata
    assert (metadata["written"].value, metadata["read"].value) == (1, 1)


@pytest.mark.integration
def test_influx_resource_in_an_asset(influx_url: str, influx_bucket: str) -> None:
    resource = InfluxTickStoreResource(url=influx_url, token="t", bucket=influx_bucket)
    result = dg.materialize([stored_trades], resources={"ticks": resource})
    metadata = result.asset_materializations_for_node("stored_trades")[0].metadata
    assert (metadata["written"].value, metadata["read"].value) == (1, 1)


def test_parquet_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Two processes and two threads write interleaved ticks of the same day at once."""
    import subprocess
    import sys
    import threading

    day = to_ns("2018-01-10T00:00:00Z")
    script = (
        "import sys, pandas as pd\n"
        "from orchestration.resources.ticks import ParquetTickStore\n"
        "root, first, day = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
        "store = ParquetTickStore(root)\n"
        "for i in range(first, 200, 4):\n"
        "    store.write(pd.DataFrame([{'venue': 'v', 'symbol': 'S', 'kind': 'trade',\n"
        "        'ts': day + i, 'price': 1.0, 'size': 1.0, 'trade_id': str(i)}]))\n"
    )
    repo = Path(__file__).resolve().parents[3]
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(k), str(day)], cwd=repo)
        for k in (0, 1)
    ]
    store = ParquetTickStore(tmp_path)

    def write_from(first: int) -> None:
        for i in range(first, 200, 4):
            store.write(_one_trade(venue="v", symbol="S", ts=day + i, trade_id=str(i), side=None))

    threads = [threading.Thread(target=write_from, args=(k,)) for k in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(120) for p in procs] == [0, 0]
    got = store.read("v", "S", day, day + 200)
    assert got["trade_id"].astype(int).tolist() == list(range(200))
