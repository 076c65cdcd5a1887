"""Binance klines: paging, window, parse contract, replay fidelity and live/replay parity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.ingest.sources import binance_klines
from assets.ingest.sources.candles import CANDLE_COLUMNS
from orchestration.resources.http import HttpJsonClient, PayloadError, UpstreamError
from orchestration.resources.replay import BinanceReplayClient
from tests.assets.ingest.conftest import RECORDED_START, ServeReplay, utc

FIVE_MIN_MS = 300_000


def kline(open_ms: int, price: str = "0.09840000", volume: str = "12.5") -> list[object]:
    return [
        open_ms,
        price,
        price,
        price,
        price,
        volume,
        open_ms + FIVE_MIN_MS - 1,
        "1.23",
        42,
        "6.0",
        "0.6",
        "0",
    ]


def recorded_csv(shared_data: Path, symbol: str) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "ohlcv" / f"binance-{symbol}-5m-2018-01.csv")
    frame["open_time"] = pd.to_datetime(frame.pop("timestamp"), utc=True).astype(
        "datetime64[ns, UTC]"
    )
    return frame


def test_module_constants() -> None:
    assert binance_klines.VENUE == "binance"
    assert binance_klines.INTERVAL == "5m"
    assert binance_klines.DEFAULT_SYMBOLS == ("ETH/BTC", "ADA/BTC", "LTC/BTC", "XMR/BTC")
    assert binance_klines.venue_symbol("eth/btc") == "ETHBTC"


@pytest.mark.integration
def test_fetch_pages_through_the_window(httpserver: HTTPServer) -> None:
    start = RECORDED_START
    open_times = [int(start.timestamp() * 1000) + i * FIVE_MIN_MS for i in range(2500)]
    seen: list[dict[str, str]] = []

    def binance(request: Request) -> Response:
        args = dict(request.args.items())
        seen.append(args)
        lo, hi, limit = int(args["startTime"]), int(args["endTime"]), int(args["limit"])
        page = [kline(t) for t in open_times if lo <= t <= hi][:limit]
        return Response(json.dumps(page), mimetype="application/json")

    httpserver.expect_request("/api/v3/klines").respond_with_handler(binance)
    client = HttpJsonClient(venue="binance", base_url=httpserver.url_for(""))
    end = start + timedelta(minutes=5 * 2500)

    rows = binance_klines.fetch(client, "ETH/BTC", start, end)

    assert [row[0] for row in rows] == open_times
    assert [int(a["startTime"]) for a in seen] == [
        open_times[0],
        open_times[999] + 1,
        open_times[1999] + 1,
    ]
    assert {a["symbol"] for a in seen} == {"ETHBTC"}
    assert {a["interval"] for a in seen} == {"5m"}
    assert {a["limit"] for a in seen} == {"1000"}
    assert {int(a["endTime"]) for a in seen} == {int(end.timestamp() * 1000) - 1}


@pytest.mark.integration
def test_fetch_drops_rows_outside_the_window(httpserver: HTTPServer) -> None:
    start = utc(2018, 1, 11)
    first = int(start.timestamp() * 1000)
    # A sloppy server: one row before the window, one at its (exclusive) end, one duplicate.
    rows = [kline(first - FIVE_MIN_MS), kline(first), kline(first), kline(first + FIVE_MIN_MS)]
    rows.append(kline(first + 2 * FIVE_MIN_MS))
    httpserver.expect_request("/api/v3/klines").respond_with_json(rows)
    client = HttpJsonClient(venue="binance", base_url=httpserver.url_for(""))

    fetched = binance_klines.fetch(client, "ETH/BTC", start, start + timedelta(minutes=10))

    assert [row[0] for row in fetched] == [first, first + FIVE_MIN_MS]


def test_fetch_refuses_naive_datetimes(binance_replay: BinanceReplayClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        binance_klines.fetch(binance_replay, "ETH/BTC", datetime(2018, 1, 11), utc(2018, 1, 12))


def test_fetch_rejects_a_non_array_page(binance_replay: BinanceReplayClient) -> None:
    class ErrorObject:
        venue, synthetic = "binance", False

        def get_json(self, path: str, params: object = None) -> object:
            return {"code": -1121, "msg": "Invalid symbol."}

    with pytest.raises(PayloadError, match="expected a JSON array of klines, got dict"):
        binance_klines.fetch(ErrorObject(), "ETH/BTC", utc(2018, 1, 11), utc(2018, 1, 12))


def test_replay_serves_exactly_the_recorded_candles(
    binance_replay: BinanceReplayClient, shared_data: Path
) -> None:
    start, end = utc(2018, 1, 12), utc(2018, 1, 15)
    frame = binance_klines.parse(
        binance_klines.fetch(binance_replay, "LTC/BTC", start, end), "LTC/BTC", "5m"
    )

    csv = recorded_csv(shared_data, "LTCBTC")
    expected = csv[(csv.open_time >= start) & (csv.open_time < end)].reset_index(drop=True)
    assert len(frame) == 3 * 288
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert (frame["symbol"] == "LTC/BTC").all() and (frame["interval"] == "5m").all()
    pd.testing.assert_frame_equal(
        frame[["open_time", "open", "high", "low", "close", "volume"]],
        expected[["open_time", "open", "high", "low", "close", "volume"]],
        check_exact=True,
    )


def test_replay_rows_have_binance_shape(binance_replay: BinanceReplayClient) -> None:
    rows = binance_replay.get_json(
        "/api/v3/klines", {"symbol": "ADABTC", "interval": "5m", "limit": 1}
    )
    (row,) = rows
    assert len(row) == 12
    assert isinstance(row[0], int) and isinstance(row[6], int) and row[6] == row[0] + 299_999
    assert all(isinstance(v, str) and "e" not in v for v in row[1:6])
    assert row[7:] == ["0", 0, "0", "0", "0"]


@pytest.mark.integration
def test_live_and_replay_parse_to_identical_frames(
    binance_replay: BinanceReplayClient, serve_replay: ServeReplay
) -> None:
    live, requests = serve_replay(binance_replay, r"^/api/v3/klines$")
    start, end = utc(2018, 1, 10), utc(2018, 1, 17)  # ~1,940 candles: two pages each

    for symbol in binance_klines.DEFAULT_SYMBOLS:
        over_http = binance_klines.parse(binance_klines.fetch(live, symbol, start, end), symbol)
        direct = binance_klines.parse(
            binance_klines.fetch(binance_replay, symbol, start, end), symbol
        )
        pd.testing.assert_frame_equal(over_http, direct, check_exact=True)
        assert len(direct) > 1000
    assert len(requests) == 2 * len(binance_klines.DEFAULT_SYMBOLS)


@pytest.mark.integration
def test_live_client_surfaces_binance_invalid_symbol(
    binance_replay: BinanceReplayClient, serve_replay: ServeReplay
) -> None:
    live, requests = serve_replay(binance_replay, r"^/api/v3/klines$")
    with pytest.raises(UpstreamError, match="Invalid symbol") as raised:
        binance_klines.fetch(live, "DOGE/BTC", utc(2018, 1, 11), utc(2018, 1, 12))
    assert raised.value.status == 400
    assert len(requests) == 1  # a 4xx is not retried


def test_parse_maps_fields_and_types() -> None:
    row = [
        1515560100000,
        "0.09840000",
        "0.09947660",
        "0.09828605",
        "0.09947660",
        "1820.54447418",
        1515560399999,
        "179.59",
        4213,
        "860.06",
        "84.88",
        "0",
    ]
    frame = binance_klines.parse([row], "ETH/BTC", "5m")

    assert frame.to_dict("records") == [
        {
            "symbol": "ETH/BTC",
            "interval": "5m",
            "open_time": pd.Timestamp("2018-01-10T04:55:00Z"),
            "open": 0.0984,
            "high": 0.0994766,
            "low": 0.09828605,
            "close": 0.0994766,
            "volume": 1820.54447418,
        }
    ]
    assert str(frame["open_time"].dtype) == "datetime64[ns, UTC]"
    assert all(str(frame[c].dtype) == "float64" for c in ("open", "high", "low", "close"))


def test_parse_keeps_a_candle_that_breaks_ohlc_invariants() -> None:
    broken = kline(1515560100000)
    broken[2], broken[3] = "0.09", "0.10"  # high < low: the quality gate's catch, not parse's
    frame = binance_klines.parse([broken], "ETH/BTC")
    assert frame.loc[0, "high"] < frame.loc[0, "low"]


def test_parse_of_nothing_is_an_empty_frame_with_the_schema() -> None:
    frame = binance_klines.parse([], "ETH/BTC")
    assert frame.empty
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert str(frame["open_time"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[1].pop(), r"row 1 has 11 fields, expected 12 \(missing: ignore\)"),
        (lambda rows: rows.__setitem__(1, rows[1][:3]), r"row 1 has 3 fields.*missing: low, "),
        (lambda rows: rows[2].__setitem__(2, "n/a"), r"row 2: field 'high' is not a finite"),
        (lambda rows: rows[0].__setitem__(4, None), r"row 0: field 'close' is not a finite"),
        (lambda rows: rows[1].__setitem__(5, "NaN"), r"row 1: field 'volume' is not a finite"),
        (lambda rows: rows[2].__setitem__(0, "1515560100000"), r"row 2: field 'openTime'"),
        (lambda rows: rows.__setitem__(0, {"open": 1}), r"row 0 is not a kline array"),
        (lambda rows: rows[2].__setitem__(0, rows[0][0]), r"rows 0 and 2 share open time"),
    ],
    ids=[
        "missing-field",
        "short-row",
        "non-numeric-price",
        "null-price",
        "nan-volume",
        "string-open-time",
        "object-row",
        "duplicate-open-time",
    ],
)
def test_parse_names_the_row_and_field_of_malformed_data(mutate, message: str) -> None:
    base = int(datetime(2018, 1, 11, tzinfo=UTC).timestamp() * 1000)
    rows = [kline(base + i * FIVE_MIN_MS) for i in range(3)]
    mutate(rows)
    with pytest.raises(PayloadError, match=message) as raised:
        binance_klines.parse(rows, "ETH/BTC")
    assert str(raised.value).startswith("binance GET /api/v3/klines:")


def test_parse_rejects_a_non_list_payload() -> None:
    with pytest.raises(PayloadError, match="expected a list of kline rows, got dict"):
        binance_klines.parse({"code": -1121}, "ETH/BTC")  # type: ignore[arg-type]


def test_bundled_replay_covers_the_demo_window(binance_replay: BinanceReplayClient) -> None:
    files = binance_replay.recorded_files()
    assert set(files) == {(s, "5m") for s in ("ETHBTC", "ADABTC", "LTCBTC", "XMRBTC")}
    rows = binance_klines.fetch(binance_replay, "XMR/BTC", utc(2018, 1, 10), utc(2018, 1, 31))
    assert rows[0][0] == int(RECORDED_START.timestamp() * 1000)
    assert len(rows) == 5758
