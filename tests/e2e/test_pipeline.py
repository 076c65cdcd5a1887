"""The demo pipeline end to end on real bundled data: gate, idempotency, risk limits, trades."""

import gzip
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from cli.demo import COUNTED_TABLES, run_demo
from orchestration.resources.replay import BinanceReplayClient
from orchestration.trading_control import TradingControl
from trading.config import load_committee_config
from trading.domain import Fill
from trading.portfolio import Portfolio
from trading.risk import check_limits

pytestmark = pytest.mark.e2e

DAYS = ["2018-01-10", "2018-01-11", "2018-01-12"]


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in COUNTED_TABLES
        }


def _corrupt_copy(source: Path, target: Path, day: str) -> str:
    """Copy the bundled Binance candles, making one ETH/BTC candle of ``day`` have high < low."""
    shutil.copytree(source, target)
    path = next(target.rglob("*ETHBTC*"))
    with gzip.open(path, "rt") as handle:
        frame = pd.read_csv(handle)
    row = frame.index[frame["timestamp"].str.startswith(f"{day}T12:00")][0]
    frame.loc[row, "high"] = frame.loc[row, "low"] * 0.99
    with gzip.open(path, "wt") as handle:
        frame.to_csv(handle, index=False)
    return frame.loc[row, "timestamp"]


def test_demo_window_trades_within_risk_limits(make_defs, instance, pg_engine) -> None:
    summary = run_demo(DAYS, defs=make_defs(), instance=instance)

    assert summary.checks_failed == 0 and not summary.failed_runs
    assert summary.traded_partitions == DAYS
    assert summary.trades > 0
    with pg_engine.connect() as conn:
        days = conn.execute(
            sa.text("SELECT DISTINCT partition_date::text FROM trading.decisions ORDER BY 1")
        ).scalars()
        assert list(days) == DAYS
        # the trading job committed the matured decisions through the quorum, votes kept
        proposals, votes, memories = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM memory.proposals), (SELECT count(*) FROM "
                "memory.votes), (SELECT count(*) FROM memory.memories)"
            )
        ).one()
        assert 0 < memories <= proposals and votes == 3 * proposals
        # decisions of a day's last hour mature the next day: none is left unproposed
        unproposed = conn.execute(
            sa.text(
                "SELECT count(*) FROM trading.decisions d WHERE d.ts < "
                "(SELECT max(ts) FROM trading.decisions) - interval '1 hour' "
                "AND d.ts >= (SELECT min(ts) FROM trading.decisions) + interval '1 day' "
                "AND NOT EXISTS (SELECT 1 FROM memory.proposals p "
                "WHERE p.symbol = d.symbol AND p.ts = d.ts)"
            )
        ).scalar_one()
        assert unproposed == 0
    _assert_no_limit_broken(pg_engine)
    assert "Coinswarm demo summary" in summary.render()
    assert summary.data_docs is not None and summary.data_docs.is_file()
    assert "raw_binance_ohlcv" in summary.data_docs.read_text(), "the report lists the runs"


def _assert_no_limit_broken(engine: sa.Engine) -> None:
    """Replays every stored fill against the closes the session saw: no order was larger than
    the per-trade limit and no state after a bar broke any limit (``check_limits``)."""
    config = load_committee_config()
    limits = config.risk
    with engine.connect() as conn:
        fills = pd.read_sql(sa.text("SELECT * FROM trading.fills ORDER BY ts, symbol"), conn)
        closes = pd.read_sql(
            sa.text("SELECT symbol, open_time AS ts, close FROM analytics.stg_binance_ohlcv"), conn
        )
    assert not fills.empty
    marks = closes.pivot(index="ts", columns="symbol", values="close").sort_index().ffill()
    portfolio = Portfolio(config.quote, config.initial_cash)
    allowance = 1 + limits.execution_cost_allowance_bps / 1e4
    for ts, bar_fills in fills.groupby("ts", sort=True):
        prices = {s: float(p) for s, p in marks.loc[ts].dropna().items()}
        for row in bar_fills.to_dict("records"):
            equity = portfolio.equity(prices)
            notional = row["quantity"] * row["price"]
            assert notional <= limits.max_order_fraction * equity * allowance + 1e-12, row
            fill = {k: row[k] for k in Fill.model_fields}
            portfolio.apply_fill(Fill(**fill))
        assert check_limits(portfolio, prices, limits) == [], ts


def test_bad_candle_blocks_only_its_partition(
    make_defs, instance, pg_engine, tmp_path: Path
) -> None:
    bundled = BinanceReplayClient().directory
    corrupted = tmp_path / "binance"
    bad_ts = _corrupt_copy(bundled, corrupted, DAYS[1])
    defs = make_defs(binance_client=BinanceReplayClient(data_dir=str(corrupted)))

    summary = run_demo(DAYS, defs=defs, instance=instance)

    assert list(summary.blocked) == [DAYS[1]]
    assert any("raw/binance/ohlcv" in reason for reason in summary.blocked[DAYS[1]])
    assert summary.traded_partitions == [DAYS[0], DAYS[2]]
    with pg_engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT high < low FROM raw.binance_ohlcv "
                "WHERE open_time = :ts AND symbol = 'ETH/BTC'"
            ),
            {"ts": bad_ts},
        ).scalar_one()
        assert stored, "the bad candle is kept in raw, for the check to report"
        for table, column in [
            ("analytics.fct_pair_returns", "open_time"),
            ("signals.features", "ts"),
            ("signals.regimes", "ts"),
            ("trading.decisions", "ts"),
        ]:
            rows = conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE {column}::date = :day"),
                {"day": DAYS[1]},
            ).scalar_one()
            assert rows == 0, f"{table} has {rows} rows for the blocked day"
    blocked_run = instance.get_runs(
        dg.RunsFilter(job_name="daily_pipeline_job", tags={"dagster/partition": DAYS[1]})
    )[0]
    evaluations = [
        event.asset_check_evaluation
        for event in instance.all_logs(
            blocked_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        if event.asset_check_evaluation.asset_key == dg.AssetKey(["raw", "binance", "ohlcv"])
    ]
    assert [e.passed for e in evaluations] == [False]
    assert "high >= low" in str(evaluations[0].metadata)


def test_days_are_traded_in_order_and_not_while_paused(make_defs, instance, pg_engine) -> None:
    defs = make_defs()
    pipeline = defs.resolve_job_def("daily_pipeline_job")
    for day in DAYS[:2]:
        assert pipeline.execute_in_process(partition_key=day, instance=instance).success
    trading = defs.resolve_job_def("trading_job")

    out_of_order = trading.execute_in_process(
        partition_key=DAYS[1], instance=instance, raise_on_error=False
    )

    assert not out_of_order.success
    failure = out_of_order.get_step_failure_events()[0].step_failure_data.error
    assert f"{DAYS[0]} has signals but has not been traded" in failure.message

    # An operator's pause stops a run started by hand too, and it writes nothing.
    control = TradingControl(pg_engine)
    control.pause("checking a venue outage", actor="ops")
    paused = trading.execute_in_process(
        partition_key=DAYS[0], instance=instance, raise_on_error=False
    )
    assert not paused.success
    failure = paused.get_step_failure_events()[0].step_failure_data.error
    assert "trading paused by ops: checking a venue outage" in failure.message
    assert _counts(pg_engine)["trading.decisions"] == 0
    control.resume("outage over", actor="ops")

    assert trading.execute_in_process(partition_key=DAYS[0], instance=instance).success
    assert trading.execute_in_process(partition_key=DAYS[1], instance=instance).success


def test_materialising_a_partition_twice_changes_no_row_count(
    make_defs, instance, pg_engine
) -> None:
    defs = make_defs()
    run_demo(DAYS[:2], defs=defs, instance=instance)
    first = _counts(pg_engine)

    pipeline = defs.resolve_job_def("daily_pipeline_job")
    trading = defs.resolve_job_def("trading_job")
    for day in DAYS[:2]:
        assert pipeline.execute_in_process(partition_key=day, instance=instance).success
        assert trading.execute_in_process(partition_key=day, instance=instance).success

    assert _counts(pg_engine) == first
    assert first["trading.decisions"] > 0 and first["raw.binance_ohlcv"] > 0


def test_raw_backfill_is_a_single_run_over_the_range(make_defs, instance, pg_engine) -> None:
    defs = make_defs()
    job = defs.resolve_job_def("ingest_job")
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": DAYS[0],
            "dagster/asset_partition_range_end": DAYS[-1],
        },
    )
    assert result.success
    assert len(instance.get_runs()) == 1
    with pg_engine.connect() as conn:
        days = conn.execute(
            sa.text("SELECT count(DISTINCT open_time::date) FROM raw.binance_ohlcv")
        ).scalar_one()
    assert days == len(DAYS)


def test_a_range_backfill_in_one_run_admits_only_the_good_days(
    make_defs, instance, pg_engine, tmp_path: Path
) -> None:
    corrupted = tmp_path / "binance"
    _corrupt_copy(BinanceReplayClient().directory, corrupted, DAYS[1])
    defs = make_defs(binance_client=BinanceReplayClient(data_dir=str(corrupted)))
    pipeline = defs.resolve_job_def("daily_pipeline_job")

    result = pipeline.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": DAYS[0],
            "dagster/asset_partition_range_end": DAYS[-1],
        },
        raise_on_error=False,
    )

    assert result.success, "a bad day inside a range warns and lets the good days through"
    binance_checks = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["raw", "binance", "ohlcv"])
    ]
    assert [(e.passed, e.severity) for e in binance_checks] == [(False, dg.AssetCheckSeverity.WARN)]
    assert DAYS[1] in (binance_checks[0].description or "")
    with pg_engine.connect() as conn:
        verdicts = dict(
            conn.execute(
                sa.text(
                    "SELECT partition_date::text, passed FROM quality.candle_verdicts "
                    "WHERE asset = 'raw/binance/ohlcv'"
                )
            ).all()
        )
        assert verdicts == {DAYS[0]: True, DAYS[1]: False, DAYS[2]: True}
        for table, column in [
            ("analytics.stg_binance_ohlcv", "open_time"),
            ("signals.features", "ts"),
        ]:
            days = conn.execute(
                sa.text(f"SELECT DISTINCT ({column} AT TIME ZONE 'UTC')::date::text FROM {table}")
            ).scalars()
            assert sorted(days) == [DAYS[0], DAYS[2]], table
