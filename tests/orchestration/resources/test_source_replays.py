"""The replay clients of the new sources: recorded real payloads served exactly, synthetic ones
deterministic, window-independent and in the venue's shape, errors shaped like the venue's."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestration.resources.http import UpstreamError
from orchestration.resources.kraken import KrakenReplayClient
from orchestration.resources.market_stats import (
    BlockchainChartsReplayClient,
    CoinGeckoReplayClient,
    FearGreedReplayClient,
    fear_greed_class,
)
from orchestration.resources.replay import (
    BUNDLED_BINANCE_DIR,
    RECORDED_DIR,
    BinanceFuturesReplayClient,
    BinanceReplayClient,
    CoinbaseReplayClient,
)

AGG = "/api/v3/aggTrades"
DEPTH = "/api/v3/depth"


def ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture(scope="module")
def binance() -> BinanceReplayClient:
    return BinanceReplayClient()


# -- Binance aggregate trades ----------------------------------------------------------------------


def test_recorded_agg_trades_are_the_recording(
    binance: BinanceReplayClient, shared_data: Path
) -> None:
    rows = binance.get_json(
        AGG,
        {
            "symbol": "XRPETH",
            "startTime": ms(2019, 10, 12),
            "endTime": ms(2019, 10, 12, 1) - 1,
            "limit": 1000,
        },
    )
    with (shared_data / "trades" / "binance-XRPETH-trades-2019-10.csv").open() as handle:
        recorded = [
            r for r in csv.DictReader(handle) if r["timestamp"].startswith("2019-10-12T00:")
        ]
    assert [r["a"] for r in rows] == [int(r["id"]) for r in recorded]
    assert [float(r["p"]) for r in rows] == [float(r["price"]) for r in recorded]
    assert [r["m"] for r in rows] == [r["side"] == "sell" for r in recorded]
    assert not binance.is_synthetic_answer(AGG, {"symbol": "XRPETH"})
    by_id = binance.get_json(AGG, {"symbol": "XRPETH", "fromId": rows[10]["a"], "limit": 3})
    assert by_id == rows[10:13]


def test_synthetic_agg_trades_are_deterministic_window_independent_and_inside_real_candles(
    binance: BinanceReplayClient,
) -> None:
    hour = binance.get_json(
        AGG,
        {
            "symbol": "ETHBTC",
            "startTime": ms(2018, 1, 12, 10),
            "endTime": ms(2018, 1, 12, 11) - 1,
            "limit": 1000,
        },
    )
    fresh = BinanceReplayClient().get_json(
        AGG,
        {
            "symbol": "ETHBTC",
            "startTime": ms(2018, 1, 12, 10, 30),
            "endTime": ms(2018, 1, 12, 11) - 1,
            "limit": 1000,
        },
    )
    assert fresh == [t for t in hour if t["T"] >= ms(2018, 1, 12, 10, 30)]
    assert binance.is_synthetic_answer(AGG, {"symbol": "ETHBTC"})
    ids, times = [t["a"] for t in hour], [t["T"] for t in hour]
    assert ids == sorted(ids) and times == sorted(times) and len(hour) > 60
    candles = {
        r[0]: r
        for r in binance.get_json(
            "/api/v3/klines",
            {
                "symbol": "ETHBTC",
                "interval": "5m",
                "startTime": ms(2018, 1, 12, 10),
                "endTime": ms(2018, 1, 12, 11) - 1,
            },
        )
    }
    for trade in hour:
        candle = candles[trade["T"] // 300_000 * 300_000]
        assert float(candle[3]) - 1e-6 <= float(trade["p"]) <= float(candle[2]) + 1e-6


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"startTime": ms(2018, 1, 12), "endTime": ms(2018, 1, 12, 2)}, "More than 1 hours"),
        ({"fromId": 5, "startTime": ms(2018, 1, 12)}, "Combination of optional parameters"),
        ({}, "no clock"),
        ({"startTime": "abc"}, "Illegal characters"),
    ],
)
def test_agg_trades_errors_look_like_binance(
    binance: BinanceReplayClient, params: dict, message: str
) -> None:
    with pytest.raises(UpstreamError, match=message) as raised:
        binance.get_json(AGG, {"symbol": "ETHBTC", **params})
    assert raised.value.status == 400 and '"code":-11' in raised.value.problem


# -- Binance depth ---------------------------------------------------------------------------------


def test_recorded_depth_snapshot_is_served_for_the_day_before_it(
    binance: BinanceReplayClient, shared_data: Path
) -> None:
    answer = binance.get_json_at(DEPTH, {"symbol": "NKNUSDT", "limit": 100}, at=utc(2021, 10, 12))
    line = (shared_data / "ws" / "cryptofeed-BINANCE.http.0.0").read_text().splitlines()[0]
    recorded = json.loads(line.split(": ", 1)[1])
    assert answer.body == {
        "lastUpdateId": recorded["lastUpdateId"],
        "bids": recorded["bids"][:100],
        "asks": recorded["asks"][:100],
    }
    assert answer.taken_at == datetime.fromtimestamp(1633998512.320639, UTC)
    with pytest.raises(UpstreamError, match="none within a day"):
        binance.get_json_at(DEPTH, {"symbol": "NKNUSDT"}, at=utc(2021, 10, 14))


def test_synthetic_depth_is_a_sane_book_at_the_asked_moment(binance: BinanceReplayClient) -> None:
    answer = binance.get_json_at(DEPTH, {"symbol": "LTCBTC", "limit": 20}, at=utc(2018, 1, 12, 12))
    bids = [float(p) for p, _ in answer.body["bids"]]
    asks = [float(p) for p, _ in answer.body["asks"]]
    assert len(bids) == len(asks) == 20 and answer.taken_at == utc(2018, 1, 12, 12)
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert (
        answer.body
        == binance.get_json_at(
            DEPTH, {"symbol": "LTCBTC", "limit": 20}, at=utc(2018, 1, 12, 12)
        ).body
    )
    with pytest.raises(UpstreamError, match="legal values"):
        binance.get_json_at(DEPTH, {"symbol": "LTCBTC", "limit": 7}, at=utc(2018, 1, 12))
    with pytest.raises(UpstreamError, match="get_json_at"):
        binance.get_json(DEPTH, {"symbol": "LTCBTC"})


# -- Binance futures funding -----------------------------------------------------------------------


def test_recorded_funding_rates_are_the_recording(shared_data: Path) -> None:
    client = BinanceFuturesReplayClient(data_dir=str(shared_data / "ohlcv"))
    rows = client.get_json(
        "/fapi/v1/fundingRate",
        {"symbol": "XRPUSDT", "startTime": ms(2021, 11, 18), "endTime": ms(2021, 11, 19) - 1},
    )
    assert [r["fundingTime"] for r in rows] == [
        ms(2021, 11, 18) + 17,
        ms(2021, 11, 18, 8) + 7,
        ms(2021, 11, 18, 16) + 11,
    ]
    assert [r["fundingRate"] for r in rows] == ["0.00010000"] * 3 and rows[0]["markPrice"] == ""
    assert (
        client.get_json(
            "/fapi/v1/fundingRate",
            {"symbol": "XRPUSDT", "startTime": ms(2018, 1, 1), "endTime": ms(2018, 1, 2)},
        )
        == []
    )


def test_synthetic_funding_settles_every_eight_hours() -> None:
    client = BinanceFuturesReplayClient()
    rows = client.get_json(
        "/fapi/v1/fundingRate",
        {"symbol": "BTCUSDT", "startTime": ms(2018, 1, 12), "endTime": ms(2018, 1, 14) - 1},
    )
    times = [r["fundingTime"] for r in rows]
    assert len(rows) == 6 and all(t % (8 * 3_600_000) < 20 for t in times)
    assert all(abs(float(r["fundingRate"])) < 0.003 and float(r["markPrice"]) > 0 for r in rows)
    assert client.is_synthetic_answer("/fapi/v1/fundingRate", {"symbol": "BTCUSDT"})
    with pytest.raises(UpstreamError, match="Invalid symbol"):
        client.get_json("/fapi/v1/fundingRate", {"symbol": "DOGEUSDT", "startTime": 0})


# -- Coinbase trades and books ---------------------------------------------------------------------


def test_recorded_coinbase_trades_and_book_come_from_the_feed(shared_data: Path) -> None:
    client = CoinbaseReplayClient(data_dir=str(shared_data / "ws"))
    trades = client.get_json_at(
        "/products/SKL-USD/trades", {"limit": 1000}, at=utc(2021, 4, 18)
    ).body
    assert trades[0]["trade_id"] == 1568319 and trades[0]["price"] == "0.7902"
    assert [t["trade_id"] for t in trades] == sorted((t["trade_id"] for t in trades), reverse=True)
    older = client.get_json(
        "/products/SKL-USD/trades", {"after": trades[2]["trade_id"], "limit": 2}
    )
    assert older == trades[3:5]
    book = client.get_json_at("/products/SKL-USD/book", {"level": 2}, at=utc(2021, 4, 17)).body
    assert len(book["bids"]) == 50 and book["bids"][0] == ["0.7901", "450.0", 1]
    assert not client.is_synthetic_answer("/products/SKL-USD/book", {})
    assert client.is_synthetic_answer("/products/ETH-BTC/book", {})


def test_synthetic_coinbase_trades_page_back_without_gaps() -> None:
    client = CoinbaseReplayClient()
    newest = client.get_json_at("/products/ETH-BTC/trades", {"limit": 50}, at=utc(2018, 1, 13)).body
    older = client.get_json(
        "/products/ETH-BTC/trades", {"limit": 50, "after": newest[-1]["trade_id"]}
    )
    both = newest + older
    ids = [t["trade_id"] for t in both]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 100
    assert all(t["time"] < "2018-01-13" for t in both)
    assert (
        client.get_json(
            "/products/ETH-BTC/trades", {"limit": 100, "after": newest[0]["trade_id"] + 1}
        )
        == both
    )


# -- Kraken ----------------------------------------------------------------------------------------


def test_kraken_replay_speaks_krakens_envelope() -> None:
    client = KrakenReplayClient()
    since = int(utc(2018, 1, 12).timestamp())
    ohlc = client.get_json(
        "/0/public/OHLC", {"pair": "ETHXBT", "interval": 60, "since": since - 3600}
    )
    rows = ohlc["result"]["XETHXXBT"]
    assert ohlc["error"] == [] and len(rows) == 720 and rows[0][0] == since
    assert ohlc["result"]["last"] == rows[-1][0] and len(rows[0]) == 8
    trades = client.get_json("/0/public/Trades", {"pair": "ETHXBT", "since": since * 10**9})[
        "result"
    ]
    page = trades["XETHXXBT"]
    following = client.get_json("/0/public/Trades", {"pair": "ETHXBT", "since": trades["last"]})[
        "result"
    ]["XETHXXBT"]
    ids = [r[6] for r in page + following]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and len(page) == 1000
    assert following[0][6] == page[-1][6] + 1, "the cursor continues right after the last trade"
    with pytest.raises(UpstreamError, match="EQuery:Unknown asset pair"):
        client.get_json("/0/public/OHLC", {"pair": "DOGEXBT", "interval": 60, "since": since})


# -- market-wide statistics ------------------------------------------------------------------------


def test_coingecko_snapshot_is_consistent_and_moment_dependent() -> None:
    client = CoinGeckoReplayClient()
    at = utc(2018, 1, 12, 23, 59)
    markets = client.get_json_at("/api/v3/coins/markets", {"vs_currency": "usd"}, at=at).body
    data = client.get_json_at("/api/v3/global", {}, at=at).body["data"]
    assert [c["market_cap_rank"] for c in markets] == list(range(1, len(markets) + 1))
    assert sum(data["market_cap_percentage"].values()) < 100
    assert data["updated_at"] == int(at.timestamp())
    later = client.get_json_at(
        "/api/v3/coins/markets", {"vs_currency": "usd"}, at=at + timedelta(days=3)
    ).body
    assert later != markets
    with pytest.raises(UpstreamError, match="no clock"):
        client.get_json("/api/v3/global")


def test_fear_greed_history_ends_at_the_asked_moment() -> None:
    body = FearGreedReplayClient().get_json_at("/fng/", {"limit": 0}, at=utc(2018, 1, 12, 6)).body
    data = body["data"]
    assert int(data[0]["timestamp"]) == int(utc(2018, 1, 12).timestamp())
    assert data[0]["time_until_update"] == str(18 * 3600) and "time_until_update" not in data[1]
    assert len(data) == (utc(2018, 1, 12) - utc(2017, 1, 1)).days + 1
    assert all(d["value_classification"] == fear_greed_class(int(d["value"])) for d in data)


def test_blockchain_chart_has_one_value_per_day() -> None:
    body = BlockchainChartsReplayClient().get_json(
        "/charts/n-transactions", {"start": "2018-01-12", "timespan": "3days"}
    )
    assert body["status"] == "ok" and body["period"] == "day"
    assert [v["x"] for v in body["values"]] == [
        int(utc(2018, 1, d).timestamp()) for d in (12, 13, 14)
    ]
    with pytest.raises(UpstreamError, match="not found"):
        BlockchainChartsReplayClient().get_json(
            "/charts/nope", {"start": "2018-01-12", "timespan": "1days"}
        )


# -- the bundled slices ----------------------------------------------------------------------------


def test_bundled_slices_are_the_shared_data_unchanged(shared_data: Path) -> None:
    trades = gzip.decompress(
        (BUNDLED_BINANCE_DIR / "trades" / "binance-XRPETH-trades-2019-10-12.csv.gz").read_bytes()
    )
    original = (
        (shared_data / "trades" / "binance-XRPETH-trades-2019-10.csv")
        .read_bytes()
        .splitlines(keepends=True)
    )
    assert trades == b"".join(
        [original[0], *(line for line in original[1:] if line.startswith(b"2019-10-12"))]
    )
    for bundled, source in [
        (
            BUNDLED_BINANCE_DIR / "depth" / "cryptofeed-BINANCE.http.0.0.gz",
            shared_data / "ws" / "cryptofeed-BINANCE.http.0.0",
        ),
        (
            RECORDED_DIR
            / "binance_futures"
            / "binance-futures-XRPUSDT-8h-funding-rate-2021.csv.gz",
            shared_data / "ohlcv" / "binance-futures-XRPUSDT-8h-funding-rate-2021.csv",
        ),
    ]:
        assert gzip.decompress(bundled.read_bytes()) == source.read_bytes(), bundled.name
    coinbase = gzip.decompress(
        (
            RECORDED_DIR / "coinbase" / "cryptofeed-COINBASE.ws.28.0-snapshots-and-matches.gz"
        ).read_bytes()
    ).splitlines()
    full = set((shared_data / "ws" / "cryptofeed-COINBASE.ws.28.0").read_bytes().splitlines())
    assert coinbase and all(line in full for line in coinbase)
    provenance = (RECORDED_DIR / "PROVENANCE.md").read_text()
    for name in (
        "binance-XRPETH-trades-2019-10-12.csv.gz",
        "cryptofeed-BINANCE.http.0.0.gz",
        "binance-futures-XRPUSDT-8h-funding-rate-2021.csv.gz",
        "cryptofeed-COINBASE.ws.28.0-snapshots-and-matches.gz",
    ):
        assert name in provenance, name
