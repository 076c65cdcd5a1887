"""The Great Expectations candle gate on real recorded Binance candles.

No server is needed (GX validates pandas frames), but each test writes a real file data context
and real Data Docs under a temporary root. The context is shared by the module so GX's one-off
setup cost is paid once, which also exercises the get-or-create path on every later call.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from orchestration import quality

FIVE_MINUTES = 300


def read_day(shared_data: Path, pair: str, day: str) -> pd.DataFrame:
    """One UTC day of a recorded 5m pair in the common candle schema."""
    raw = pd.read_csv(shared_data / "ohlcv" / f"binance-{pair}-5m-2018-01.csv")
    frame = pd.DataFrame(
        {
            "symbol": f"{pair[:-3]}/{pair[-3:]}",
            "interval": "5m",
            "open_time": pd.to_datetime(raw["timestamp"], utc=True),
            **{c: raw[c].astype("float64") for c in ("open", "high", "low", "close", "volume")},
        }
    )
    start = pd.Timestamp(day, tz="UTC")
    in_day = (frame["open_time"] >= start) & (frame["open_time"] < start + pd.Timedelta(days=1))
    return frame[in_day].reset_index(drop=True)


@pytest.fixture(scope="module")
def gx_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("quality")
    return root / "gx", root / "reports" / "data_quality"


@pytest.fixture(scope="module")
def eth_day(shared_data: Path) -> pd.DataFrame:
    frame = read_day(shared_data, "ETHBTC", "2018-01-12")
    assert len(frame) == 288, "the recorded slice should hold a full day of 5m candles"
    return frame


def validate(
    frame: pd.DataFrame, gx_dirs: tuple[Path, Path], partition_key: str = "2018-01-12"
) -> quality.CandleQualityResult:
    context_root, docs_dir = gx_dirs
    return quality.validate_candles(
        frame,
        interval_seconds=FIVE_MINUTES,
        asset_name="raw/binance/ohlcv",
        partition_key=partition_key,
        context_root=context_root,
        data_docs_dir=docs_dir,
    )


def failures_of(result: quality.CandleQualityResult, description: str) -> list[str]:
    return [f for f in result.failures if f"({description})" in f]


def test_clean_real_day_passes_and_writes_data_docs(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    before = eth_day.copy()

    result = validate(eth_day, gx_dirs)

    assert result.passed, result.failures
    assert result.failures == []
    assert result.statistics["rows"] == 288
    assert result.statistics["symbols"] == 1
    assert result.statistics["unsuccessful_expectations"] == 0
    assert result.statistics["evaluated_expectations"] == len(quality.candle_expectations())
    assert result.statistics["first_open_time"] == "2018-01-12T00:00:00+00:00"
    pd.testing.assert_frame_equal(eth_day, before)  # the caller's frame is not modified

    _, docs_dir = gx_dirs
    assert result.data_docs_index == docs_dir / "index.html"
    assert result.data_docs_index.is_file()
    assert result.data_docs_page is not None and result.data_docs_page.is_file()
    assert "2018-01-12" in str(result.data_docs_page)  # the partition names the run


def test_metadata_is_accepted_by_an_asset_check_result(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    result = validate(eth_day, gx_dirs)

    metadata = result.to_metadata()
    check = dg.AssetCheckResult(passed=result.passed, metadata=metadata)

    assert check.passed
    assert metadata["rows"] == dg.MetadataValue.int(288)
    assert metadata["failed_expectations"] == dg.MetadataValue.int(0)
    assert metadata["data_docs"] == dg.MetadataValue.path(str(result.data_docs_index))
    assert "data_docs_page" in metadata


def test_high_below_low_fails_and_names_the_row(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    bad = eth_day.copy()
    row = bad.index[bad["open_time"] == pd.Timestamp("2018-01-12T03:05Z")][0]
    bad.loc[row, "high"] = bad.loc[row, "low"] * 0.99

    result = validate(bad, gx_dirs)

    assert not result.passed
    (failure,) = failures_of(result, "high >= low")
    assert failure == (
        "expect_column_pair_values_a_to_be_greater_than_b (high >= low): "
        "1 of 288 rows fail, e.g. ETH/BTC 2018-01-12T03:05Z"
    )
    assert failures_of(result, "high >= open") and failures_of(result, "high >= close")
    assert result.to_metadata()["failed_expectations"].value == len(result.failures)


def test_null_price_fails(eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]) -> None:
    bad = eth_day.copy()
    bad.loc[40, "close"] = float("nan")

    result = validate(bad, gx_dirs)

    assert not result.passed
    (failure,) = failures_of(result, "close not null")
    assert "1 of 288 rows fail" in failure
    assert "ETH/BTC 2018-01-12T03:20Z" in failure


def test_duplicate_timestamp_fails(eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]) -> None:
    bad = pd.concat([eth_day.iloc[:101], eth_day.iloc[100:]], ignore_index=True)

    result = validate(bad, gx_dirs)

    assert not result.passed
    (unique,) = failures_of(result, "unique (symbol, open_time)")
    assert "2 of 289 rows fail, e.g. ETH/BTC 2018-01-12T08:20Z" in unique
    (increasing,) = failures_of(result, "open_time strictly increasing per symbol")
    assert "1 of 289 rows fail" in increasing


def test_gap_fails_at_the_first_candle_after_it(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    bad = eth_day.drop(index=[60, 61]).reset_index(drop=True)  # 05:00 and 05:05 missing

    result = validate(bad, gx_dirs)

    assert not result.passed
    assert [f.split(":")[0] for f in result.failures] == [
        "expect_column_values_to_be_between (no gap beyond the interval per symbol)"
    ]
    assert result.failures[0].endswith("1 of 286 rows fail, e.g. ETH/BTC 2018-01-12T05:10Z")


def test_gap_is_judged_per_symbol(shared_data: Path, gx_dirs: tuple[Path, Path]) -> None:
    """Four real pairs interleaved in one frame: each symbol's first row is exempt."""
    day = pd.concat(
        [read_day(shared_data, p, "2018-01-12") for p in ("ETHBTC", "ADABTC", "LTCBTC", "XMRBTC")]
    ).sort_values(["open_time", "symbol"], ignore_index=True)

    result = validate(day, gx_dirs)

    assert result.passed, result.failures
    assert result.statistics == result.statistics | {"rows": 4 * 288, "symbols": 4}


def test_genuine_gap_in_real_data_fails(shared_data: Path, gx_dirs: tuple[Path, Path]) -> None:
    """ADA/BTC really has missing candles on 2018-01-15: the gate must flag them."""
    ada = read_day(shared_data, "ADABTC", "2018-01-15")

    result = validate(ada, gx_dirs, partition_key="2018-01-15")

    assert not result.passed
    assert failures_of(result, "no gap beyond the interval per symbol")
    assert all("no gap beyond" in f for f in result.failures)


def test_other_interval_uses_its_own_gap_limit(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    context_root, docs_dir = gx_dirs
    result = quality.validate_candles(
        eth_day,
        interval_seconds=60,
        asset_name="raw/binance/ohlcv",
        partition_key="2018-01-12",
        context_root=context_root,
        data_docs_dir=docs_dir,
    )

    assert not result.passed
    assert "287 of 288 rows fail" in failures_of(result, "no gap beyond the interval per symbol")[0]


def test_empty_partition_fails_with_a_clear_reason(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    result = validate(eth_day.iloc[0:0], gx_dirs, partition_key="2018-01-31")

    assert not result.passed
    assert result.failures == [
        "expect_table_row_count_to_be_between (no candles in partition): 0 rows"
    ]
    assert result.statistics["rows"] == 0


def test_wrong_schema_fails_by_name(eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]) -> None:
    naive = eth_day.assign(open_time=eth_day["open_time"].dt.tz_localize(None))
    textual = eth_day.assign(volume=eth_day["volume"].astype(str))

    naive_result = validate(naive, gx_dirs)
    textual_result = validate(textual, gx_dirs)
    missing_result = validate(eth_day.drop(columns=["volume"]), gx_dirs)

    assert not naive_result.passed
    assert naive_result.failures == [
        "expect_column_type_to_be (open_time is datetime64[ns, UTC]): open_time is datetime64[us]"
    ]
    assert not textual_result.passed
    assert failures_of(textual_result, "volume is float64")
    assert not missing_result.passed
    assert "missing columns volume" in failures_of(missing_result, "candle columns present")[0]
    assert failures_of(missing_result, "volume not null")[0].startswith(
        "expect_column_values_to_not_be_null (volume not null): could not be evaluated"
    )


def test_repeated_use_reuses_gx_definitions(
    eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]
) -> None:
    context_root, _ = gx_dirs
    validate(eth_day, gx_dirs)
    config = context_root / "great_expectations.yml"
    suite = context_root / "expectations" / f"{quality.SUITE_NAME}.json"
    checkpoint = context_root / "checkpoints" / "raw_binance_ohlcv__gate.json"
    definitions = (config, suite, checkpoint)
    stamps = [path.stat().st_mtime_ns for path in definitions]

    quality._workspaces.clear()  # what a fresh Dagster run process sees
    result = validate(eth_day, gx_dirs)

    assert result.passed
    assert [path.stat().st_mtime_ns for path in definitions] == stamps
    assert [p.name for p in (context_root / "checkpoints").glob("*.json")] == [
        "raw_binance_ohlcv__gate.json"
    ]
    assert len(list((context_root / "expectations").glob("*.json"))) == 1


def test_defaults_live_under_coinswarm_home(
    eth_day: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COINSWARM_HOME", str(tmp_path))

    result = quality.validate_candles(
        eth_day.iloc[:12],
        interval_seconds=FIVE_MINUTES,
        asset_name="raw/binance/ohlcv",
        partition_key=None,
    )

    assert result.passed, result.failures
    assert quality.data_docs_index() == tmp_path / "reports" / "data_quality" / "index.html"
    assert quality.data_docs_index().is_file()
    assert (tmp_path / "gx" / "great_expectations.yml").is_file()


def test_rejects_meaningless_arguments(eth_day: pd.DataFrame, gx_dirs: tuple[Path, Path]) -> None:
    context_root, docs_dir = gx_dirs
    with pytest.raises(ValueError, match="interval_seconds must be positive"):
        quality.validate_candles(
            eth_day,
            interval_seconds=0,
            asset_name="raw/binance/ohlcv",
            partition_key=None,
            context_root=context_root,
            data_docs_dir=docs_dir,
        )


def test_offline_summary_lists_each_partition_with_its_latest_verdict(
    eth_day: pd.DataFrame, tmp_path: Path
) -> None:
    dirs = (tmp_path / "gx", tmp_path / "reports")
    bad = eth_day.copy()
    bad.loc[bad.index[10], "high"] = bad.loc[bad.index[10], "low"] * 0.5

    validate(eth_day, dirs, partition_key="2018-01-12")
    validate(bad, dirs, partition_key="2018-01-13")
    validate(bad, dirs, partition_key="2018-01-12")  # a later run replaces the earlier verdict

    summary = quality.report_summary(dirs[1])
    page = summary.read_text()
    assert summary.is_file() and "<script" not in page, "plain HTML, readable offline"
    assert "2 validations (latest per asset and partition), 2 failed" in page
    rows = [row for row in page.split("<tr") if "raw_binance_ohlcv" in row]
    assert [("2018-01-12" in r, "FAILED" in r) for r in rows] == [(True, True), (False, True)]
    for link in re.findall(r'href="([^"]+\.html)"', page):
        assert (dirs[1] / link).is_file(), link


# -- any frame, any suite ----------------------------------------------------------------------


def _positive_prices() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="not empty"),
        gxe.ExpectColumnValuesToBeBetween(
            column="price", min_value=0, strict_min=True, description="price > 0"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="price_is_round", value_set=[False], description="prices are not round"
        ),
    ]


PRICES = quality.FrameSuite(
    name="test_prices",
    description="not empty, price > 0, no round prices",
    expectations=_positive_prices,
    row_id_columns=("symbol", "trade_id"),
    prepare=lambda f: f.assign(price_is_round=(f["price"] % 1 == 0)),
)


def _trades(*prices: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"symbol": "ETH/BTC", "trade_id": range(1, len(prices) + 1), "price": list(prices)}
    )


def test_frame_suite_reports_failures_by_row_id_and_pages_only_failures(tmp_path: Path) -> None:
    dirs = (tmp_path / "gx", tmp_path / "docs")
    good = _trades(0.091, 0.092)
    bad = _trades(0.091, -0.5, 3.0)

    passed = quality.validate_frame(
        good, PRICES, asset_name="raw/test/trades", partition_key="2018-01-12",
        context_root=dirs[0], data_docs_dir=dirs[1], docs="failures",
    )  # fmt: skip
    failed = quality.validate_frame(
        bad, PRICES, asset_name="raw/test/trades", partition_key="2018-01-13",
        context_root=dirs[0], data_docs_dir=dirs[1], docs="failures",
    )  # fmt: skip

    assert passed.passed and passed.data_docs_page is None
    assert "price_is_round" not in good.columns, "the caller's frame is not modified"
    assert not failed.passed and failed.data_docs_page is not None
    assert failed.data_docs_page.is_file()
    assert failed.failures == [
        "expect_column_values_to_be_between (price > 0): 1 of 3 rows fail, e.g. ETH/BTC 2",
        "expect_column_values_to_be_in_set (prices are not round): 1 of 3 rows fail, "
        "e.g. ETH/BTC 3",
    ]
    metadata = failed.to_metadata()
    assert metadata["suite"].value == "test_prices" and metadata["failed_expectations"].value == 2

    page = quality.report_summary(dirs[1]).read_text()
    assert "2 validations (latest per asset and partition), 1 failed" in page
    assert "<code>test_prices</code>: not empty, price &gt; 0, no round prices" in page
    assert page.count("details</a>") == 1

    quality.build_data_docs(*dirs)
    page = quality.report_summary(dirs[1]).read_text()
    assert page.count("details</a>") == 2, "build_data_docs renders the pages left for later"
    assert "raw_test_trades" in quality.data_docs_index(dirs[1]).read_text()


def test_summary_index_is_rebuilt_from_the_store_when_lost(tmp_path: Path) -> None:
    dirs = (tmp_path / "gx", tmp_path / "docs")
    for day in ("2018-01-12", "2018-01-13"):
        quality.validate_frame(
            _trades(0.5), PRICES, asset_name="raw/test/trades", partition_key=day,
            context_root=dirs[0], data_docs_dir=dirs[1],
        )  # fmt: skip
    (dirs[1] / quality.SUMMARY_INDEX_NAME).unlink()

    quality.validate_frame(
        _trades(2.0), PRICES, asset_name="raw/test/trades", partition_key="2018-01-12",
        context_root=dirs[0], data_docs_dir=dirs[1],
    )  # fmt: skip

    page = quality.report_summary(dirs[1]).read_text()
    assert "2 validations (latest per asset and partition), 1 failed" in page
    rows = [row for row in page.split("<tr") if "raw_test_trades" in row]
    assert [("2018-01-12" in r, "FAILED" in r) for r in rows] == [(True, True), (False, False)]
