"""Coinbase candles: 300-candle chunks, window filter, parse contract, live/replay parity."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from assets.ingest.sources import coinbase_candles
from assets.ingest.sources.candles import CANDLE_COLUMNS
from orchestration.resources.http import HttpJsonClient, PayloadError, UpstreamError
from orchestration.resources.replay import CoinbaseReplayClient
from tests.assets.ingest.conftest import ServeReplay, utc

PATH = "/products/ETH-BTC/candles"


def test_module_constants() -> None:
    assert coinbase_candles.VENUE == "coinbase"
    assert coinbase_candles.INTERVAL == "5m"
    assert coinbase_candles.DEFAULT_SYMBOLS == ("ETH/BTC", "LTC/BTC")
    assert coinbase_candles.product_id("eth/btc") == "ETH-BTC"
    with pytest.raises(ValueError, match="no '4h' candles"):
        coinbase_candles.granularity("4h")


@pytest.mark.integration
def test_fetch_walks_the_window_in_300_candle_chunks(
    coinbase_replay: CoinbaseReplayClient, serve_replay: ServeReplay
) -> None:
    live, requests = serve_replay(coinbase_replay, r"^/products/[^/]+/candles$")
    start, end = utc(2018, 1, 10), utc(2018, 1, 12)

    rows = coinbase_candles.fetch(live, "ETH/BTC", start, end)

    assert len(rows) == 576
    assert rows[0][0] > rows[-1][0]  # newest first, as Coinbase sends them
    assert requests == [
        {"granularity": "300", "start": "2018-01-10T00:00:00Z", "end": "2018-01-11T00:59:59Z"},
        {"granularity": "300", "start": "2018-01-11T01:00:00Z", "end": "2018-01-11T23:59:59Z"},
    ]


@pytest.mark.integration
def test_live_and_replay_parse_to_identical_frames(
    coinbase_replay: CoinbaseReplayClient, serve_replay: ServeReplay
) -> None:
    live, _ = serve_replay(coinbase_replay, r"^/products/[^/]+/candles$")
    start, end = utc(2018, 1, 20, 6), utc(2018, 1, 22, 18)
    for symbol in coinbase_candles.DEFAULT_SYMBOLS:
        over_http = coinbase_candles.parse(coinbase_candles.fetch(live, symbol, start, end), symbol)
        direct = coinbase_candles.parse(
            coinbase_candles.fetch(coinbase_replay, symbol, start, end), symbol
        )
        pd.testing.assert_frame_equal(over_http, direct, check_exact=True)
        assert len(direct) == 60 * 12
        assert direct["open_time"].min() == pd.Timestamp(start)
        assert direct["open_time"].max() == pd.Timestamp(end - timedelta(minutes=5))


@pytest.mark.integration
def test_fetch_drops_candles_before_start(httpserver: HTTPServer) -> None:
    # Coinbase documents that a response "may contain candles that precede your start".
    start = utc(2018, 1, 11)
    t0 = int(start.timestamp())
    httpserver.expect_request(PATH).respond_with_json(
        [
            [t0 + 300, 0.0901, 0.0905, 0.0902, 0.0903, 3.0],
            [t0, 0.0900, 0.0904, 0.0901, 0.0902, 2.0],
            [t0 - 300, 0.0899, 0.0903, 0.0900, 0.0901, 1.0],
        ]
    )
    client = HttpJsonClient(venue="coinbase", base_url=httpserver.url_for(""))

    rows = coinbase_candles.fetch(client, "ETH/BTC", start, start + timedelta(minutes=10))

    assert [row[0] for row in rows] == [t0 + 300, t0]


@pytest.mark.integration
def test_unknown_product_is_a_not_found_error(
    coinbase_replay: CoinbaseReplayClient, serve_replay: ServeReplay
) -> None:
    live, requests = serve_replay(coinbase_replay, r"^/products/[^/]+/candles$")
    with pytest.raises(UpstreamError, match="NotFound") as raised:
        coinbase_candles.fetch(live, "DOGE/BTC", utc(2018, 1, 11), utc(2018, 1, 12))
    assert raised.value.status == 404
    assert len(requests) == 1


def test_parse_maps_coinbase_column_order() -> None:
    # Coinbase rows are [time, low, high, open, close, volume].
    frame = coinbase_candles.parse(
        [[1515628800, 0.0899, 0.0911, 0.0901, 0.0907, 123.5]], "ETH/BTC", "5m"
    )
    assert frame.to_dict("records") == [
        {
            "symbol": "ETH/BTC",
            "interval": "5m",
            "open_time": pd.Timestamp("2018-01-11T00:00:00Z"),
            "open": 0.0901,
            "high": 0.0911,
            "low": 0.0899,
            "close": 0.0907,
            "volume": 123.5,
        }
    ]


def test_parse_sorts_newest_first_rows_ascending(coinbase_replay: CoinbaseReplayClient) -> None:
    rows = coinbase_candles.fetch(coinbase_replay, "LTC/BTC", utc(2018, 1, 15), utc(2018, 1, 16))
    frame = coinbase_candles.parse(rows, "LTC/BTC")
    assert list(frame.columns) == list(CANDLE_COLUMNS)
    assert frame["open_time"].is_monotonic_increasing
    assert len(frame) == 288


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1515628800, 0.09, 0.091, 0.0901, 0.0907]], r"row 0 has 5 fields.*missing: volume"),
        ([[1515628800, 0.09, "abc", 0.0901, 0.0907, 1.0]], r"row 0: field 'high' is not a"),
        ([[1515628800, 0.09, "0.091", 0.0901, 0.0907, 1.0]], r"row 0: field 'high'"),
        ([[1515628800.5, 0.09, 0.091, 0.0901, 0.0907, 1.0]], r"row 0: field 'time'"),
        (["1515628800,0.09"], r"row 0 is not a candle array"),
    ],
    ids=["missing-field", "non-numeric", "string-number", "float-time", "string-row"],
)
def test_parse_names_the_row_and_field_of_malformed_data(rows: list, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as raised:
        coinbase_candles.parse(rows, "ETH/BTC")
    assert str(raised.value).startswith("coinbase GET /products/ETH-BTC/candles:")


def test_parse_rejects_an_error_object() -> None:
    with pytest.raises(PayloadError, match="expected a list of candle rows, got dict"):
        coinbase_candles.parse({"message": "NotFound"}, "ETH/BTC")  # type: ignore[arg-type]
