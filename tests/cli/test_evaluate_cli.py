"""``coinswarm evaluate`` through the real entry point, on a folder of real recorded files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli.main import main
from trading.backtest.outputs import FILES


@pytest.fixture
def data_dir(shared_data: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    for name in (
        "binance-BTCUSDT-1d-2017-2018.csv",  # daily bars: the swing committee
        "binance-futures-XRPUSDT-8h-funding-rate-2021.csv",  # not a price series
    ):
        shutil.copy(shared_data / "ohlcv" / name, directory / name)
    lines = (shared_data / "ohlcv" / "binance-ETHBTC-5m-2018-01.csv").read_text().splitlines()
    (directory / "binance-ETHBTC-5m-2018-01.csv").write_text("\n".join(lines[:577]) + "\n")
    return directory


def test_evaluate_runs_each_file_with_the_committee_for_its_bar_length(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["evaluate", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    runs = {run["dataset"]: run for run in report["runs"]}
    assert set(runs) == {"binance-BTCUSDT-1d-2017-2018.csv", "binance-ETHBTC-5m-2018-01.csv"}
    assert runs["binance-BTCUSDT-1d-2017-2018.csv"]["config"] == "trading/configs/swing.yaml"
    assert runs["binance-ETHBTC-5m-2018-01.csv"]["config"] == "trading/committee.yaml"
    assert runs["binance-ETHBTC-5m-2018-01.csv"]["bars"] == 576
    for name, run in runs.items():
        stem = out / Path(name).stem
        assert all((stem / f).is_file() for f in FILES)
        metrics = json.loads((stem / "metrics.json").read_text())
        assert run["total_return"] == metrics["strategy"]["total_return"]
        assert run["buy_and_hold_return"] == metrics["benchmark_buy_and_hold"]["total_return"]
    (skipped,) = report["skipped"].items()
    assert skipped[0] == "binance-futures-XRPUSDT-8h-funding-rate-2021.csv"
    assert "columns are ['date'" in skipped[1]
    table = (out / "evaluation.md").read_text()
    assert "| binance-BTCUSDT-1d-2017-2018.csv | swing | 255 |" in table
    assert "Skipped binance-futures-XRPUSDT-8h-funding-rate-2021.csv" in table
    assert "skip binance-futures" in capsys.readouterr().out


def test_evaluate_refuses_an_empty_folder_and_a_bad_config(tmp_path: Path) -> None:
    assert main(["evaluate", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("quorum: 0\n")
    assert main(["evaluate", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2


def test_evaluate_memory_ab_runs_each_file_with_and_without_memory(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(["evaluate", "--data-dir", str(data_dir), "--out", str(out), "--memory-ab"]) == 0
    report = json.loads((out / "memory_ab.json").read_text())
    runs = {run["dataset"]: run for run in report["runs"]}
    assert set(runs) == {"binance-BTCUSDT-1d-2017-2018.csv", "binance-ETHBTC-5m-2018-01.csv"}
    for name, run in runs.items():
        with_memory, without = run["with_memory"], run["without_memory"]
        assert with_memory["memory"]["outcomes"]["committed"] > 0, name
        assert without["memory"] is None, name  # B really ran without memory
        metrics = json.loads((out / Path(name).stem / "metrics.json").read_text())
        assert with_memory["total_return"] == metrics["strategy"]["total_return"]
    table = (out / "memory_ab.md").read_text()
    assert "| binance-ETHBTC-5m-2018-01.csv |" in table
    assert "Memory raised the return on" in table
