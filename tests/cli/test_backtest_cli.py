"""``coinswarm backtest`` through the real entry point (``cli.main.main``), in process.

Inputs are the first two days of the recorded Binance ETH/BTC and LTC/BTC 5-minute candles,
copied under names the loader understands, so each run takes about a second.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cli.main import main
from trading.backtest.outputs import FILES

BARS = 576  # two days of 5-minute candles


@pytest.fixture(scope="module")
def data_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("data")
    for pair in ("ETH", "LTC"):
        name = f"binance-{pair}BTC-5m-2018-01.csv"
        lines = (shared_data / "ohlcv" / name).read_text(encoding="utf-8").splitlines()
        (directory / name).write_text("\n".join(lines[: BARS + 1]) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def eth(data_dir: Path) -> Path:
    return data_dir / "binance-ETHBTC-5m-2018-01.csv"


@pytest.fixture
def ltc(data_dir: Path) -> Path:
    return data_dir / "binance-LTCBTC-5m-2018-01.csv"


def default_config() -> dict:
    text = resources.files("trading").joinpath("committee.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def test_backtest_writes_the_four_files_and_prints_a_summary(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(eth), "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert all((out / name).stat().st_size > 0 for name in FILES)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["symbols"] == ["ETH/BTC"] and metrics["bars"] == BARS
    equity = pd.read_csv(out / "equity.csv")
    assert len(equity) == BARS and equity["equity"].iloc[-1] == metrics["final_equity"]
    summary = captured.out
    assert f"{BARS} bars of ETH/BTC" in summary and "buy-and-hold" in summary
    assert "Sharpe" in summary and "max drawdown" in summary
    for name in FILES:
        assert str(out / name) in summary
    assert "<title>Backtest: binance ETH/BTC</title>" in (out / "report.html").read_text(
        encoding="utf-8"
    )


def test_several_data_files_trade_several_pairs(
    eth: Path, ltc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        ["backtest", "--data", str(eth), "--data", str(ltc), "--out", str(out), "--no-progress",
         "--title", "two pairs"]
    )  # fmt: skip
    assert code == 0
    assert f"{BARS} bars of ETH/BTC, LTC/BTC" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["symbols"] == ["ETH/BTC", "LTC/BTC"]
    assert metrics["decisions"]["total"] == 2 * BARS
    assert "<title>two pairs</title>" in (out / "report.html").read_text(encoding="utf-8")


def test_an_explicit_symbol_names_a_file_the_loader_cannot_read(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "prices.csv"
    plain.write_bytes(eth.read_bytes())
    out = tmp_path / "run"
    assert main(["backtest", "--data", str(plain), "--out", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "prices.csv" in error and "FILE.csv:ETH/BTC" in error
    assert not out.exists()

    assert main(["backtest", "--data", f"{plain}:ETH/BTC", "--out", str(out), "--no-progress"]) == 0
    assert f"{BARS} bars of ETH/BTC" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["symbols"] == ["ETH/BTC"]


def test_a_config_with_a_bad_field_exits_2_naming_it(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = default_config()
    config["risk"]["max_position_fraction"] = 2
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "run"
    code = main(
        ["backtest", "--data", str(eth), "--config", str(path), "--out", str(out), "--no-progress"]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "risk.max_position_fraction" in error and str(path) in error
    assert not out.exists()


def test_a_config_with_an_unknown_field_exits_2_naming_it(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = default_config()
    config["risk"]["max_leverage"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    args = ["backtest", "--data", str(eth), "--config", str(path), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "risk.max_leverage" in capsys.readouterr().err


def test_a_good_config_file_is_used_and_quoted_in_the_report(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = default_config()
    config["initial_cash"] = 2.0
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "run"
    args = ["backtest", "--data", str(eth), "--config", str(path), "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    capsys.readouterr()
    assert json.loads((out / "metrics.json").read_text())["initial_cash"] == 2.0
    assert "initial_cash: 2.0" in (out / "report.html").read_text(encoding="utf-8")


def test_a_missing_data_file_exits_2_naming_it(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "binance-XMRBTC-5m-2018-01.csv"
    out = tmp_path / "run"
    args = ["backtest", "--data", str(eth), "--data", str(missing), "--out", str(out)]
    assert main(args) == 2
    assert str(missing) in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_config_file_exits_2_naming_it(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    args = ["backtest", "--data", str(eth), "--config", str(missing), "--out", str(tmp_path)]
    assert main(args) == 2
    assert str(missing) in capsys.readouterr().err


def test_a_bad_row_exits_2_naming_file_and_row(
    eth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = eth.read_text(encoding="utf-8").splitlines()
    lines[10] = lines[10].rsplit(",", 1)[0] + ",-5"
    bad = tmp_path / "binance-ETHBTC-5m-bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["backtest", "--data", str(bad), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "binance-ETHBTC-5m-bad.csv" in error and "row 11" in error and "volume" in error


def test_arguments_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["backtest", "--out", "somewhere"])
    assert exit_.value.code == 2
    assert "--data" in capsys.readouterr().err
