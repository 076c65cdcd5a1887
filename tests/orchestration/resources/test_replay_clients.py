"""Replay clients: Binance's klines contract on recorded data, Coinbase's on synthetic data."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from orchestration.resources.fred import FredLiveClient, FredReplayClient
from orchestration.resources.http import JsonClient, MissingApiKeyError, UpstreamError
from orchestration.resources.replay import (
    BUNDLED_BINANCE_DIR,
    BinanceReplayClient,
    CoinbaseReplayClient,
)

KLINES = "/api/v3/klines"
FIRST_OPEN_MS = 1515560100000  # 2018-01-10T04:55:00Z, first candle of the bundled slice
LAST_OPEN_MS = 1517287800000  # 2018-01-30T04:50:00Z


def ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def seconds(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def binance() -> BinanceReplayClient:
    return BinanceReplayClient()


def klines(client: BinanceReplayClient, **params: str | int) -> list[list[object]]:
    return client.get_json(KLINES, {"symbol": "ETHBTC", "interval": "5m", **params})


def test_replay_clients_implement_the_json_client_protocol(binance: BinanceReplayClient) -> None:
    coinbase = CoinbaseReplayClient()
    assert isinstance(binance, JsonClient) and isinstance(coinbase, JsonClient)
    assert (binance.venue, binance.synthetic) == ("binance", False)
    assert (coinbase.venue, coinbase.synthetic) == ("coinbase", True)


def test_binance_paging_semantics(binance: BinanceReplayClient) -> None:
    # startTime and endTime are inclusive.
    rows = klines(binance, startTime=ms(2018, 1, 11), endTime=ms(2018, 1, 11, 1))
    assert [r[0] for r in rows] == [ms(2018, 1, 11) + i * 300_000 for i in range(13)]
    # limit caps from the start; the default limit is 500.
    assert len(klines(binance, startTime=ms(2018, 1, 11), limit=1000)) == 1000
    assert len(klines(binance, startTime=ms(2018, 1, 11))) == 500
    # Only endTime: the last `limit` candles up to it. Neither: the most recent ones.
    assert [r[0] for r in klines(binance, endTime=ms(2018, 1, 11), limit=2)] == [
        ms(2018, 1, 10, 23, 55),
        ms(2018, 1, 11),
    ]
    assert klines(binance, limit=1)[0][0] == LAST_OPEN_MS
    # Before and after the recording there is nothing, as on Binance for an unlisted period.
    assert klines(binance, startTime=0, endTime=FIRST_OPEN_MS - 1) == []
    assert klines(binance, startTime=LAST_OPEN_MS + 1) == []


@pytest.mark.parametrize(
    ("params", "code", "status"),
    [
        ({"symbol": "DOGEBTC", "interval": "5m"}, -1121, 400),
        ({"symbol": "ETHBTC", "interval": "7m"}, -1120, 400),
        ({"symbol": "ETHBTC", "interval": "1h"}, -1121, 400),
        ({"interval": "5m"}, -1102, 400),
        ({"symbol": "ETHBTC", "interval": "5m", "limit": 1001}, -1130, 400),
        ({"symbol": "ETHBTC", "interval": "5m", "startTime": "yesterday"}, -1100, 400),
        ({"symbol": "ETHBTC", "interval": "5m", "startTime": 2, "endTime": 1}, -1023, 400),
    ],
    ids=[
        "invalid-symbol",
        "invalid-interval",
        "interval-not-recorded",
        "missing-symbol",
        "limit-too-big",
        "bad-start",
        "start-after-end",
    ],
)
def test_binance_errors_look_like_binance(
    binance: BinanceReplayClient, params: dict[str, object], code: int, status: int
) -> None:
    with pytest.raises(UpstreamError) as raised:
        binance.get_json(KLINES, params)  # type: ignore[arg-type]
    assert raised.value.status == status
    assert f'"code":{code}' in str(raised.value)
    assert str(raised.value).startswith("binance GET /api/v3/klines: request rejected:")


def test_binance_unknown_path_is_a_404(binance: BinanceReplayClient) -> None:
    with pytest.raises(UpstreamError, match="serves only /api/v3/klines") as raised:
        binance.get_json("/api/v3/ticker/price", {"symbol": "ETHBTC"})
    assert raised.value.status == 404


def test_binance_replays_any_folder_of_recordings(shared_data: Path, tmp_path: Path) -> None:
    client = BinanceReplayClient(data_dir=str(shared_data / "ohlcv"))
    rows = client.get_json(KLINES, {"symbol": "BTCUSDT", "interval": "1d", "limit": 2})
    assert [r[0] for r in rows] == [ms(2018, 4, 27), ms(2018, 4, 28)]
    assert rows[0][6] == ms(2018, 4, 28) - 1

    shutil.copy(shared_data / "ohlcv" / "binance-ETHBTC-5m-2018-01.csv", tmp_path)
    plain = BinanceReplayClient(data_dir=str(tmp_path))
    bundled = BinanceReplayClient()
    params = {"symbol": "ETHBTC", "interval": "5m", "startTime": ms(2018, 1, 20), "limit": 1000}
    assert plain.get_json(KLINES, params) == bundled.get_json(KLINES, params)


def test_binance_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    client = BinanceReplayClient(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="replay data folder"):
        client.get_json(KLINES, {"symbol": "ETHBTC", "interval": "5m"})


def test_bundled_recordings_are_the_shared_data_unchanged(shared_data: Path) -> None:
    bundled = sorted(BUNDLED_BINANCE_DIR.glob("*.csv.gz"))
    assert [p.name for p in bundled] == [
        f"binance-{s}BTC-5m-2018-01.csv.gz" for s in ("ADA", "ETH", "LTC", "XMR")
    ]
    for path in bundled:
        original = shared_data / "ohlcv" / path.name.removesuffix(".gz")
        assert gzip.decompress(path.read_bytes()) == original.read_bytes(), path.name
    provenance = (BUNDLED_BINANCE_DIR.parent / "PROVENANCE.md").read_text()
    assert "freqtrade" in provenance and "unchanged" in provenance.lower()


# -- Coinbase ---------------------------------------------------------------------------------


def candles(client: CoinbaseReplayClient, product: str = "ETH-BTC", **params: object):
    return client.get_json(f"/products/{product}/candles", params)  # type: ignore[arg-type]


def test_coinbase_candles_are_in_coinbase_format() -> None:
    rows = candles(
        CoinbaseReplayClient(),
        granularity=300,
        start="2018-01-11T00:00:00Z",
        end="2018-01-11T01:00:00Z",
    )
    assert len(rows) == 13  # start and end both inclusive
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    assert rows[-1][0] == seconds(2018, 1, 11)
    for time_s, low, high, open_, close, volume in rows:
        assert isinstance(time_s, int)
        assert all(isinstance(v, float) for v in (low, high, open_, close, volume))


def test_coinbase_candles_are_deterministic_and_window_independent() -> None:
    params = {"granularity": 300, "start": "2018-01-15T00:00:00Z", "end": "2018-01-16T00:55:00Z"}
    whole = candles(CoinbaseReplayClient(), **params)
    assert whole == candles(CoinbaseReplayClient(), **params)
    other = CoinbaseReplayClient()
    first = candles(
        other, granularity=300, start="2018-01-15T00:00:00Z", end="2018-01-15T12:00:00Z"
    )
    rest = candles(other, granularity=300, start="2018-01-15T12:05:00Z", end="2018-01-16T00:55:00Z")
    assert whole == rest + first


def test_coinbase_candles_are_a_valid_random_walk() -> None:
    client = CoinbaseReplayClient()
    rows = []
    for day in range(10, 20):
        rows += candles(
            client,
            granularity=3600,
            start=f"2018-01-{day}T00:00:00Z",
            end=f"2018-01-{day}T23:00:00Z",
        )
    rows.sort()
    for _, low, high, open_, close, volume in rows:
        assert 0 < low <= min(open_, close) <= max(open_, close) <= high
        assert volume > 0
    assert all(a[4] == b[3] for a, b in zip(rows, rows[1:], strict=False))  # close -> next open
    closes = [r[4] for r in rows]
    assert min(closes) > 0.05 and max(closes) < 0.2  # plausible ETH/BTC levels
    assert len(set(closes)) > len(closes) // 2  # it moves


DAY = {"granularity": 300, "start": "2018-01-11T00:00:00Z", "end": "2018-01-11T23:55:00Z"}


@pytest.mark.parametrize(
    ("product", "params", "status", "message"),
    [
        ("DOGE-BTC", DAY, 404, "NotFound"),
        ("ETH-BTC", {**DAY, "granularity": 120}, 400, "Unsupported granularity"),
        ("ETH-BTC", {**DAY, "end": "2018-01-13T00:00:00Z"}, 400, "exceeds 300"),
        ("ETH-BTC", {"granularity": 300}, 400, "start and end are required"),
        ("ETH-BTC", {**DAY, "start": "soon"}, 400, "Invalid start"),
        ("ETH-BTC", {**DAY, "start": "2018-01-12T00:00:00Z"}, 400, "start must be before end"),
    ],
    ids=["unknown-product", "bad-granularity", "too-many", "no-window", "bad-start", "reversed"],
)
def test_coinbase_errors_look_like_coinbase(
    product: str, params: dict[str, object], status: int, message: str
) -> None:
    with pytest.raises(UpstreamError, match=message) as raised:
        candles(CoinbaseReplayClient(), product, **params)
    assert raised.value.status == status


def test_clients_work_as_dagster_resources() -> None:
    @dg.asset
    def probe(
        binance_client: dg.ResourceParam[BinanceReplayClient],
        coinbase_client: dg.ResourceParam[CoinbaseReplayClient],
        fred_client: dg.ResourceParam[FredReplayClient],
    ) -> dict[str, int]:
        return {
            "binance": len(klines(binance_client, limit=3)),
            "coinbase": len(candles(coinbase_client, **DAY)),
            "fred": len(
                fred_client.get_series("DFF", datetime(2018, 1, 10), datetime(2018, 1, 12))
            ),
        }

    result = dg.materialize(
        [probe],
        resources={
            "binance_client": BinanceReplayClient(),
            "coinbase_client": CoinbaseReplayClient(),
            "fred_client": FredReplayClient(),
        },
    )
    assert result.output_for_node("probe") == {"binance": 3, "coinbase": 288, "fred": 3}

    @dg.asset
    def needs_key(fred_client: FredLiveClient) -> None:
        fred_client.get_series("DFF", datetime(2018, 1, 10), datetime(2018, 1, 10))

    with pytest.MonkeyPatch.context() as env:
        env.setenv("FRED_API_KEY", "")
        with pytest.raises(MissingApiKeyError, match="FRED_API_KEY is not set"):
            dg.materialize(
                [needs_key],
                resources={"fred_client": FredLiveClient(api_key=dg.EnvVar("FRED_API_KEY"))},
            )
