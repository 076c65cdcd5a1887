"""dbt builds analytics.fct_pair_returns on a real PostgreSQL from real recorded candles.

The reference is pandas (close.pct_change(), ret_1.rolling(n, min_periods=n).std()), the
definition the signal features use, so SQL and Python must agree to 1e-12 relative.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration

PAIRS = ("ETHBTC", "LTCBTC")
FIRST_DAY, END = "2018-01-10", "2018-01-14"  # four UTC days, the first one partial
VALUE_COLUMNS = ["close", "ret_1", "vol_12", "vol_288"]


def day_vars(day: str) -> str:
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    return f'{{min_date: "{start.isoformat()}", max_date: "{end.isoformat()}"}}'


@pytest.fixture
def raw_candles(shared_data: Path, pg_engine: sa.Engine, dbt_database: None) -> pd.DataFrame:
    """Four days of two real 5m pairs loaded into raw.binance_ohlcv."""
    frames = []
    for pair in PAIRS:
        raw = pd.read_csv(shared_data / "ohlcv" / f"binance-{pair}-5m-2018-01.csv")
        frame = pd.DataFrame(
            {
                "symbol": f"{pair[:-3]}/{pair[-3:]}",
                "interval": "5m",
                "open_time": pd.to_datetime(raw["timestamp"], utc=True),
                **{c: raw[c] for c in ("open", "high", "low", "close", "volume")},
            }
        )
        in_range = (frame["open_time"] >= pd.Timestamp(FIRST_DAY, tz="UTC")) & (
            frame["open_time"] < pd.Timestamp(END, tz="UTC")
        )
        frames.append(frame[in_range])
    candles = pd.concat(frames, ignore_index=True)
    days = sorted({t.date() for t in candles["open_time"]})
    with pg_engine.begin() as conn:
        candles.to_sql("binance_ohlcv", conn, schema="raw", if_exists="append", index=False)
        conn.execute(  # what the passing candle checks record; staging admits these days only
            sa.text(
                "insert into quality.candle_verdicts (asset, partition_date, passed, rows_checked)"
                " values ('raw/binance/ohlcv', :day, true, 0)"
            ),
            [{"day": day} for day in days],
        )
    return candles


def pandas_returns(engine: sa.Engine) -> pd.DataFrame:
    """The reference computation over everything in raw.binance_ohlcv."""
    raw = pd.read_sql(
        "select symbol, open_time, close from raw.binance_ohlcv order by symbol, open_time",
        engine,
    )
    by_symbol = raw.groupby("symbol", group_keys=False)
    raw["ret_1"] = by_symbol["close"].pct_change()
    for n in (12, 288):
        raw[f"vol_{n}"] = raw.groupby("symbol")["ret_1"].transform(
            lambda returns, n=n: returns.rolling(n, min_periods=n).std()
        )
    return raw


def fct_rows(engine: sa.Engine) -> pd.DataFrame:
    return pd.read_sql(
        "select symbol, open_time, close, ret_1, vol_12, vol_288, xmin::text as row_version"
        " from analytics.fct_pair_returns order by symbol, open_time",
        engine,
    )


def assert_matches_pandas(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    keys = ["symbol", "open_time"]
    merged = got.merge(expected, on=keys, how="left", suffixes=("", "_pandas"), indicator=True)
    assert (merged["_merge"] == "both").all(), "fct_pair_returns has rows pandas does not"
    for column in VALUE_COLUMNS:
        np.testing.assert_allclose(
            merged[column].to_numpy(dtype=float),
            merged[f"{column}_pandas"].to_numpy(dtype=float),
            rtol=1e-12,
            atol=0,
            equal_nan=True,
            err_msg=column,
        )


def day_of(frame: pd.DataFrame, day: str) -> pd.Series:
    start = pd.Timestamp(day, tz="UTC")
    return (frame["open_time"] >= start) & (frame["open_time"] < start + pd.Timedelta(days=1))


def run_partition(
    run_dbt: Callable[..., Any], day: str, command: str = "run", select: str = "+fct_pair_returns"
) -> Any:
    """What dagster-dbt runs for one daily partition (staging and the mart)."""
    return run_dbt(command, "--select", select, "--vars", day_vars(day))


def assert_all_passed(result: Any) -> None:
    failed = {
        r.node.name: f"{r.status}: {r.message}"
        for r in result.result
        if str(r.status) not in ("success", "pass")
    }
    assert result.success and not failed, failed


def test_full_build_matches_pandas_and_passes_its_tests(
    raw_candles: pd.DataFrame, pg_engine: sa.Engine, run_dbt: Callable[..., Any]
) -> None:
    result = run_dbt("build")

    assert_all_passed(result)
    built = {r.node.name for r in result.result if r.node.resource_type == "model"}
    assert {"stg_binance_ohlcv", "stg_fred_observations", "fct_pair_returns"} <= built
    got = fct_rows(pg_engine)
    expected = pandas_returns(pg_engine)
    assert len(got) == len(raw_candles) == len(expected)
    assert_matches_pandas(got, expected)
    # warm-up: NULL until the window is full, then always set (the slice has no gaps here)
    first = got[got["symbol"] == "ETH/BTC"].reset_index(drop=True)
    assert first["ret_1"].isna().tolist()[:2] == [True, False]
    assert first["vol_12"].isna().sum() == 12 and first["vol_288"].isna().sum() == 288


def test_partition_run_rewrites_only_its_day_and_is_repeatable(
    raw_candles: pd.DataFrame, pg_engine: sa.Engine, run_dbt: Callable[..., Any]
) -> None:
    assert_all_passed(run_dbt("build"))
    before = fct_rows(pg_engine)
    in_day = day_of(before, "2018-01-12")

    assert_all_passed(run_partition(run_dbt, "2018-01-12", "build"))
    after = fct_rows(pg_engine)

    assert len(after) == len(before)
    assert after[["symbol", "open_time"]].equals(before[["symbol", "open_time"]])
    untouched = after.loc[~in_day, "row_version"] == before.loc[~in_day, "row_version"]
    assert untouched.all(), "rows outside the partition window were rewritten"
    assert (after.loc[in_day, "row_version"] != before.loc[in_day, "row_version"]).all()
    assert_matches_pandas(after, pandas_returns(pg_engine))

    assert_all_passed(run_partition(run_dbt, "2018-01-12", "run"))
    again = fct_rows(pg_engine)
    assert len(again) == len(before)
    assert again.groupby("symbol").size().equals(before.groupby("symbol").size())
    assert_matches_pandas(again, pandas_returns(pg_engine))


def test_partition_runs_in_order_equal_a_full_computation(
    raw_candles: pd.DataFrame, pg_engine: sa.Engine, run_dbt: Callable[..., Any]
) -> None:
    """Staging is gated per partition, so the mart's lookback reaches the days staged before it;
    days built in order give exactly what a full computation gives."""
    assert_all_passed(run_partition(run_dbt, "2018-01-11", "run", select="+fct_pair_returns"))
    assert_all_passed(run_partition(run_dbt, "2018-01-12", "run", select="+fct_pair_returns"))
    two_days = fct_rows(pg_engine)

    assert len(two_days) == 4 * 288
    second = two_days[day_of(two_days, "2018-01-12")]
    assert second[["ret_1", "vol_12", "vol_288"]].notna().all().all()
    assert_matches_pandas(second, pandas_returns(pg_engine))


def test_a_partition_stages_only_its_own_window(
    raw_candles: pd.DataFrame, pg_engine: sa.Engine, run_dbt: Callable[..., Any]
) -> None:
    """Only partitions Dagster ran (after their quality gate passed) reach staging."""
    assert_all_passed(run_partition(run_dbt, "2018-01-12", "run", select="stg_binance_ohlcv"))
    with pg_engine.connect() as conn:
        days = conn.execute(
            sa.text("select distinct open_time::date::text from analytics.stg_binance_ohlcv")
        ).scalars()
        assert list(days) == ["2018-01-12"]


def test_rerun_drops_candles_that_vanished_upstream(
    raw_candles: pd.DataFrame, pg_engine: sa.Engine, run_dbt: Callable[..., Any]
) -> None:
    assert_all_passed(run_dbt("build"))
    gone = pd.Timestamp("2018-01-12T10:00Z")
    with pg_engine.begin() as conn:
        conn.execute(
            sa.text("delete from raw.binance_ohlcv where symbol = 'ETH/BTC' and open_time = :t"),
            {"t": gone.to_pydatetime()},
        )

    assert_all_passed(run_partition(run_dbt, "2018-01-12", "run"))

    got = fct_rows(pg_engine)
    eth = got[got["symbol"] == "ETH/BTC"]
    assert gone not in set(eth["open_time"])
    assert len(got) == len(raw_candles) - 1
    assert_matches_pandas(got[day_of(got, "2018-01-12")], pandas_returns(pg_engine))


def test_dbt_tests_catch_a_broken_candle(
    raw_candles: pd.DataFrame, pg_engine: sa.Engine, run_dbt: Callable[..., Any]
) -> None:
    with pg_engine.begin() as conn:
        conn.execute(
            sa.text(
                "update raw.binance_ohlcv set high = low * 0.5"
                " where symbol = 'LTC/BTC' and open_time = '2018-01-11T03:05Z'"
            )
        )

    result = run_dbt("build", "--select", "stg_binance_ohlcv")

    assert not result.success
    failed = [r.node.name for r in result.result if str(r.status) == "fail"]
    assert len(failed) == 1 and failed[0].startswith("expression_is_true_stg_binance_ohlcv")


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ('{min_date: "2018-01-12"}', "must be given together"),
        ('{min_date: "last tuesday", max_date: "2018-01-13"}', "is not an ISO-8601"),
        ('{min_date: "2018-01-13", max_date: "2018-01-12"}', "empty partition window"),
    ],
)
def test_bad_partition_vars_fail_clearly(
    raw_candles: pd.DataFrame, run_dbt: Callable[..., Any], dbt_vars: str, message: str
) -> None:
    """dbt renders the window while parsing, so a bad window stops it before any SQL runs."""
    with pytest.raises(AssertionError, match=message):
        run_dbt("run", "--select", "fct_pair_returns", "--vars", dbt_vars)
