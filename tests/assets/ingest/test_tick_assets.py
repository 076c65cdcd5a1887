"""Streamed ticks in Dagster: 1m bars from stored trades (into PostgreSQL) and tick freshness.

The tick store is filled the way production fills it: ``coinswarm stream``'s service replaying
the recorded Binance sessions of 2024-08-08 into the Parquet catalog.
"""

import asyncio
import gzip
import time
from pathlib import Path

import dagster as dg
import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from assets.ingest.streams import binance
from assets.ingest.ticks import (
    TICK_STREAM_KEY,
    bars_from_trades,
    tick_bars_1m,
    tick_freshness_job,
    tick_stream,
    ticks_fresh,
)
from orchestration.io_managers.postgres_window import PostgresWindowIOManager
from orchestration.resources.postgres import PostgresResource
from orchestration.resources.ticks import ParquetTickStore, ParquetTickStoreResource
from orchestration.streaming.service import Recording, StreamService

DAY = "2024-08-08"
BTC = "ticks/binance-spot-btcusdt-20240808.gz"
ETH = "ticks/binance-spot-ethusdt-20240808.gz"


def _trade(ts: int, price: float, size: float, side: str, trade_id: str) -> dict:
    return {"venue": "v", "symbol": "A/B", "kind": "trade", "ts": ts, "price": price,
            "size": size, "side": side, "trade_id": trade_id}  # fmt: skip


def test_bars_by_hand() -> None:
    minute = 60_000_000_000
    trades = pd.DataFrame(
        [
            _trade(minute + 5, 10.0, 1.0, "buy", "10"),
            _trade(minute + 5, 12.0, 2.0, "sell", "9"),  # same instant, earlier id: the open
            _trade(minute + 50, 8.0, 1.0, "sell", "11"),
            _trade(2 * minute - 1, 11.0, 4.0, "buy", "12"),  # last of the minute: the close
            _trade(2 * minute, 20.0, 0.0, "buy", "13"),  # next minute, zero size
            {"venue": "v", "symbol": "A/B", "kind": "book_top", "ts": minute, "bid": 1.0},
        ]
    )
    bars = bars_from_trades(trades)
    first, second = bars.to_dict("records")
    assert first["bar_time"] == pd.Timestamp("1970-01-01T00:01:00Z")
    assert (first["open"], first["high"], first["low"], first["close"]) == (12.0, 12.0, 8.0, 11.0)
    assert (first["volume"], first["buy_volume"], first["trades"]) == (8.0, 5.0, 4)
    assert first["quote_volume"] == 10 + 24 + 8 + 44
    assert first["vwap"] == pytest.approx(86 / 8)
    assert (second["open"], second["trades"], second["volume"]) == (20.0, 1, 0.0)
    assert np.isnan(second["vwap"])
    assert bars_from_trades(trades.iloc[5:]).empty


@pytest.fixture(scope="module")
def replayed_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ticks")
    recordings = [Recording(shared_data / BTC, binance), Recording(shared_data / ETH, binance)]
    asyncio.run(StreamService(ParquetTickStore(root)).run(recordings=recordings))
    return root


def _recorded_trades(shared_data: Path, path: str) -> list[dict]:
    with gzip.open(shared_data / path, "rt") as lines:
        messages = [orjson.loads(line.partition(" ")[2]) for line in lines]
    return [m["data"] for m in messages if m.get("stream", "").endswith("@trade")]


def _first_minute_by_hand(trades: list[dict]) -> dict:
    """The first full minute of trades, straight from the recording's JSON."""
    first_minute = trades[0]["T"] // 60_000 + 1
    minute = [t for t in trades if t["T"] // 60_000 == first_minute]
    return {
        "bar_time": pd.Timestamp(first_minute * 60_000, unit="ms", tz="UTC"),
        "open": float(minute[0]["p"]),
        "high": max(float(t["p"]) for t in minute),
        "low": min(float(t["p"]) for t in minute),
        "close": float(minute[-1]["p"]),
        "volume": sum(float(t["q"]) for t in minute),
        "trades": len(minute),
        "buy_volume": sum(float(t["q"]) for t in minute if not t["m"]),
    }


@pytest.mark.integration
def test_bars_asset_on_replayed_ticks(
    replayed_store: Path, shared_data: Path, pg_url: str, pg_engine: sa.Engine
) -> None:
    postgres = PostgresResource(url=pg_url)
    resources = {
        "ticks": ParquetTickStoreResource(root=str(replayed_store)),
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
    }
    for _ in range(2):  # a re-run replaces the day's bars
        result = dg.materialize([tick_bars_1m], resources=resources, partition_key=DAY)
        assert result.success
    bars = pd.read_sql("SELECT * FROM raw.tick_bars_1m ORDER BY venue, symbol, bar_time", pg_engine)
    metadata = result.asset_materializations_for_node("raw__ticks__bars_1m")[0].metadata
    # The session ends a second before midnight by the recorder's clock; the venue's clock,
    # which stamps the trades, was ~1.3 s ahead: the last trades belong to the next day.
    midnight_ms = pd.Timestamp("2024-08-09", tz="UTC").value // 1_000_000
    in_day = {
        symbol: [t for t in _recorded_trades(shared_data, path) if t["T"] < midnight_ms]
        for symbol, path in (("BTC/USDT", BTC), ("ETH/USDT", ETH))
    }
    assert 9_700 < len(in_day["BTC/USDT"]) < 9_757 and 6_000 < len(in_day["ETH/USDT"]) < 6_106
    assert metadata["trades_read"].value == sum(map(len, in_day.values()))
    assert metadata["pairs_without_trades"].value == [
        "coinbase:BTC/USD",
        "coinbase:ETH/USD",
    ]
    per_pair = bars.groupby("symbol").size().to_dict()
    # ~345 s of recording: six or seven minutes with trades per pair.
    assert set(per_pair) == {"BTC/USDT", "ETH/USDT"}
    assert all(6 <= n <= 7 for n in per_pair.values())
    trades = bars.groupby("symbol")["trades"].sum().to_dict()
    assert trades == {symbol: len(day) for symbol, day in in_day.items()}

    by_hand = _first_minute_by_hand(in_day["BTC/USDT"])
    row = bars[(bars["symbol"] == "BTC/USDT") & (bars["bar_time"] == by_hand["bar_time"])]
    assert len(row) == 1
    for column, value in by_hand.items():
        if column == "bar_time":
            continue
        assert row.iloc[0][column] == pytest.approx(value, rel=1e-12), column


@pytest.mark.integration
def test_bars_fail_naming_the_pairs_when_nothing_was_streamed(tmp_path: Path, pg_url: str) -> None:
    postgres = PostgresResource(url=pg_url)
    resources = {
        "ticks": ParquetTickStoreResource(root=str(tmp_path / "empty")),
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres),
    }
    result = dg.materialize(
        [tick_bars_1m], resources=resources, partition_key=DAY, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert "no trades stored for binance:BTC/USDT, binance:ETH/USDT" in message
    assert f"in ParquetTickStore(root='{tmp_path / 'empty'}')" in message
    assert "coinswarm stream" in message


def _freshness(root: Path, **config: object) -> dg.AssetCheckEvaluation:
    defs = dg.Definitions(
        assets=[tick_stream],
        asset_checks=[ticks_fresh],
        jobs=[tick_freshness_job],
        resources={"ticks": ParquetTickStoreResource(root=str(root))},
    )
    job = defs.resolve_job_def("tick_freshness_job")
    run_config = {"ops": {"raw__ticks__stream_ticks_fresh": {"config": config}}} if config else {}
    result = job.execute_in_process(run_config=run_config)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_key == TICK_STREAM_KEY
    return evaluation


def test_freshness_passes_while_ticks_flow_and_warns_when_they_stop(
    replayed_store: Path, tmp_path: Path
) -> None:
    # The replayed 2024 session is long stale.
    stale = _freshness(replayed_store)
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert "binance:BTC/USDT no tick in 7 days" in stale.description
    assert stale.metadata["stale_pairs"].value == sorted(
        ["binance:BTC/USDT", "binance:ETH/USDT", "coinbase:BTC/USD", "coinbase:ETH/USD"]
    )

    # A tick 30 s ago (and one of an hour ago for the other pair) as a running stream leaves.
    store = ParquetTickStore(tmp_path / "live")
    now = time.time_ns()
    store.write(pd.DataFrame([
        {**_trade(now - 30 * 10**9, 1.0, 1.0, "buy", "1"), "venue": "binance",
         "symbol": "BTC/USDT"},
        {**_trade(now - 3_600 * 10**9, 1.0, 1.0, "buy", "2"), "venue": "binance",
         "symbol": "ETH/USDT"},
    ]))  # fmt: skip
    pairs = ["binance:BTC/USDT", "binance:ETH/USDT"]
    fresh = _freshness(tmp_path / "live", pairs=pairs[:1])
    assert fresh.passed
    assert 25 <= fresh.metadata["lag_seconds"].value["binance:BTC/USDT"] < 120
    mixed = _freshness(tmp_path / "live", pairs=pairs, max_lag_seconds=600)
    assert not mixed.passed
    assert mixed.metadata["stale_pairs"].value == ["binance:ETH/USDT"]
    assert "binance:ETH/USDT newest tick 3,6" in mixed.description


def test_tick_definitions_load_with_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the composition root gets: external stream, bars, check, jobs, schedules."""
    from orchestration.definitions import build_definitions
    from orchestration.deployment import Deployment

    defs = build_definitions(Deployment.LOCAL)  # the composition root registers them
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    bars = graph.get(dg.AssetKey(["raw", "ticks", "bars_1m"]))
    assert bars.parent_keys == {TICK_STREAM_KEY} and bars.group_name == "ticks"
    assert graph.get(TICK_STREAM_KEY).is_external
    schedule = defs.resolve_schedule_def("tick_freshness_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_schedule_def("tick_bars_schedule").job_name == "tick_bars_job"
