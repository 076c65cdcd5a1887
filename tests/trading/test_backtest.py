"""Backtest honesty: no look-ahead, deterministic bytes, checked data, metrics that add up.

Runs on the recorded January 2018 Binance ETH/BTC and LTC/BTC 5-minute candles with the packaged
committee config, whichever agents it lists: the properties here hold for any committee.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED_DATA
from trading.agents.base import Agent
from trading.backtest.data import Dataset, DatasetError, load_dataset, parse_data_argument
from trading.backtest.engine import BacktestResult, prepare_frames, run_backtest
from trading.backtest.outputs import FILES, write_outputs
from trading.config import CommitteeConfig, load_committee_config, parse_committee_config
from trading.domain import ExecutionAdvice, MarketSnapshot, Vote
from trading.portfolio import Portfolio
from trading.risk import check_limits
from trading.snapshots import build_snapshots

REPO_ROOT = Path(__file__).resolve().parents[2]
ETH = "binance-ETHBTC-5m-2018-01.csv"
LTC = "binance-LTCBTC-5m-2018-01.csv"
FUNDING = "binance-futures-XRPUSDT-8h-funding-rate-2021.csv"
CUT = pd.Timestamp("2018-01-20T14:55:00Z")
"""The look-ahead cut: mid-run, mid-day, long after every feature has warmed up."""
CLI_TITLE = "Backtest: binance ETH/BTC, binance LTC/BTC"
"""The title ``coinswarm backtest`` gives these two files (so in-process bytes can match)."""


@pytest.fixture(scope="module")
def config() -> CommitteeConfig:
    return load_committee_config()


@pytest.fixture(scope="module")
def datasets(shared_data: Path) -> list[Dataset]:
    return [load_dataset(shared_data / "ohlcv" / name) for name in (ETH, LTC)]


@pytest.fixture(scope="module")
def baseline(datasets: list[Dataset], config: CommitteeConfig) -> BacktestResult:
    return run_backtest(datasets, config)


@pytest.fixture(scope="module")
def baseline_files(baseline: BacktestResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    write_outputs(baseline, out, title=CLI_TITLE)
    return out


# --------------------------------------------------------------------------------------------
# look-ahead
# --------------------------------------------------------------------------------------------


def wild_after(dataset: Dataset, cut: pd.Timestamp, seed: int) -> Dataset:
    """The same candles up to ``cut``; after it, a different market: a 4x jump, then a random
    walk of 8 % per bar with wide ranges and random volume (every bar still valid)."""
    frame = dataset.frame.copy()
    later = (frame["ts"] > cut).to_numpy()
    n = int(later.sum())
    rng = np.random.default_rng(seed)
    last = float(frame.loc[~later, "close"].iloc[-1])
    close = last * 4.0 * np.exp(np.cumsum(rng.normal(0.0, 0.08, n)))
    open_ = np.concatenate([[last], close[:-1]]) * np.exp(rng.normal(0.0, 0.02, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.1, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.1, n))
    for column, values in (("open", open_), ("high", high), ("low", low), ("close", close)):
        frame.loc[later, column] = values
    frame.loc[later, "volume"] = rng.uniform(0.0, 1e5, n)
    return Dataset(path=dataset.path, venue=dataset.venue, symbol=dataset.symbol, frame=frame)


def truncated_at(dataset: Dataset, cut: pd.Timestamp) -> Dataset:
    frame = dataset.frame[dataset.frame["ts"] <= cut].reset_index(drop=True)
    return Dataset(path=dataset.path, venue=dataset.venue, symbol=dataset.symbol, frame=frame)


def decisions_until(result: BacktestResult, cut: pd.Timestamp) -> list[tuple[Any, ...]]:
    return [
        (d.symbol, d.ts, d.direction, d.confidence, d.outcome, d.votes, d.regime, d.reason,
         d.risk_state)
        for d in result.decisions
        if d.ts <= cut
    ]  # fmt: skip


def fills_until(result: BacktestResult, cut: pd.Timestamp) -> list[Any]:
    return [f for f in result.session.fills if f.ts <= cut]


def rows_until(frame: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    return frame[frame["ts"] <= cut].reset_index(drop=True)


def test_changing_bars_after_t_changes_no_decision_at_or_before_t(
    datasets: list[Dataset], config: CommitteeConfig, baseline: BacktestResult
) -> None:
    """Three runs that share every bar up to the cut: the real data, the data with every later
    bar replaced by a different market, and the data truncated at the cut. Everything decided
    at or before the cut (votes, decisions, fills, the equity curve, learned weights) must be
    identical; anything that differs was computed from the future."""
    altered = run_backtest([wild_after(d, CUT, seed=i) for i, d in enumerate(datasets)], config)
    truncated = run_backtest([truncated_at(d, CUT) for d in datasets], config)

    expected = decisions_until(baseline, CUT)
    assert expected and expected[-1][1] == CUT.to_pydatetime()
    assert len(expected) == 2 * int((datasets[0].frame["ts"] <= CUT).sum())
    for other in (altered, truncated):
        assert decisions_until(other, CUT) == expected
        assert fills_until(other, CUT) == fills_until(baseline, CUT)
        pd.testing.assert_frame_equal(
            rows_until(other.equity, CUT), rows_until(baseline.equity, CUT), check_exact=True
        )
        pd.testing.assert_frame_equal(
            rows_until(other.positions, CUT), rows_until(baseline.positions, CUT), check_exact=True
        )
        pd.testing.assert_frame_equal(
            rows_until(other.weights, CUT), rows_until(baseline.weights, CUT), check_exact=True
        )
    assert len(truncated.decisions) == len(expected)
    # The altered market is seen after the cut: the comparison above can tell runs apart.
    later = [(d.symbol, d.ts, d.votes) for d in baseline.decisions if d.ts > CUT]
    assert later != [(d.symbol, d.ts, d.votes) for d in altered.decisions if d.ts > CUT]
    assert not rows_until(altered.equity, CUT).equals(altered.equity)


def test_features_at_t_do_not_depend_on_later_bars(
    datasets: list[Dataset], config: CommitteeConfig
) -> None:
    """The snapshots themselves (features, regimes, peer prices) up to the cut are identical."""
    altered = [wild_after(d, CUT, seed=7 + i) for i, d in enumerate(datasets)]

    def snapshots_until(data: list[Dataset]) -> list[MarketSnapshot]:
        candles, features, regimes, extra = prepare_frames(data, config)
        return [
            s
            for s in build_snapshots(candles, features, regimes, extra_features=extra)
            if s.ts <= CUT
        ]

    assert snapshots_until(altered) == snapshots_until(datasets)


# --------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------


def read_files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


def test_same_inputs_give_identical_files_in_one_process(
    datasets: list[Dataset],
    config: CommitteeConfig,
    baseline_files: Path,
    tmp_path: Path,
) -> None:
    again = run_backtest(datasets, config)
    write_outputs(again, tmp_path, title=CLI_TITLE)
    first, second = read_files(baseline_files), read_files(tmp_path)
    assert set(first) == set(FILES) and all(first.values())
    for name in FILES:
        assert first[name] == second[name], f"{name} differs between two identical runs"


def coinswarm_command() -> list[str]:
    script = Path(sys.executable).with_name("coinswarm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def test_same_inputs_give_identical_files_in_another_process(
    shared_data: Path, baseline_files: Path, tmp_path: Path
) -> None:
    """``coinswarm backtest`` in a fresh interpreter (another hash seed) writes the same bytes
    as the in-process run."""
    out = tmp_path / "cli"
    completed = subprocess.run(
        [
            *coinswarm_command(), "backtest", "--no-progress", "--out", str(out),
            "--data", str(shared_data / "ohlcv" / ETH), "--data", str(shared_data / "ohlcv" / LTC),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    expected, produced = read_files(baseline_files), read_files(out)
    for name in FILES:
        assert produced[name] == expected[name], f"{name} differs across processes"


# --------------------------------------------------------------------------------------------
# data loading
# --------------------------------------------------------------------------------------------

GOOD_ROWS = [
    "2018-01-10T00:00:00Z,0.1,0.11,0.09,0.105,10",
    "2018-01-10T00:05:00Z,0.105,0.12,0.1,0.11,12",
    "2018-01-10T00:10:00Z,0.11,0.115,0.1,0.1,0",
    "2018-01-10T00:15:00Z,0.1,0.1,0.095,0.097,3.5",
]
HEADER = "timestamp,open,high,low,close,volume"


def write_csv(directory: Path, name: str, rows: list[str], header: str = HEADER) -> Path:
    path = directory / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def with_row(index: int, row: str) -> list[str]:
    rows = list(GOOD_ROWS)
    rows[index] = row
    return rows


def test_a_good_file_loads_with_venue_and_pair_from_its_name(tmp_path: Path) -> None:
    dataset = load_dataset(write_csv(tmp_path, "kraken-ETHBTC-5m-test.csv", GOOD_ROWS))
    assert (dataset.venue, dataset.symbol, dataset.quote) == ("kraken", "ETH/BTC", "BTC")
    assert list(dataset.frame.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert len(dataset.frame) == 4 and dataset.bar_seconds == 300.0
    assert str(dataset.frame["ts"].dt.tz) == "UTC"


def test_the_funding_rate_file_is_refused_for_its_columns(shared_data: Path) -> None:
    with pytest.raises(DatasetError) as error:
        load_dataset(shared_data / "ohlcv" / FUNDING)
    message = str(error.value)
    assert FUNDING in message and "columns" in message and "'date'" in message


@pytest.mark.parametrize(
    ("rows", "row", "problem"),
    [
        (with_row(2, "2018-01-10T00:00:00Z,0.11,0.115,0.1,0.1,0"), 4, "strictly increase"),
        (with_row(2, "2018-01-10T00:05:00Z,0.11,0.115,0.1,0.1,0"), 4, "strictly increase"),
        (with_row(1, "2018-01-10T00:05:00Z,0.105,0.09,0.12,0.11,12"), 3, "low is above"),
        (with_row(1, "2018-01-10T00:05:00Z,0.105,0.108,0.1,0.11,12"), 3, "high is below"),
        (with_row(3, "2018-01-10T00:15:00Z,0.1,0.1,0.095,abc,3.5"), 5, "close is not a number"),
        (with_row(3, "2018-01-10T00:15:00Z,0.1,0.1,0.095,,3.5"), 5, "close is not a number"),
        (with_row(0, "2018-01-10T00:00:00Z,0.1,0.11,0.09,0.105,-1"), 2, "volume must be >= 0"),
        (with_row(0, "2018-01-10T00:00:00Z,0.1,0.11,0.09,0.105,inf"), 2, "volume is not a"),
        (with_row(2, "2018-01-10T00:10:00Z,0.11,0.115,0,0.1,0"), 4, "low must be > 0"),
        (with_row(2, "yesterday,0.11,0.115,0.1,0.1,0"), 4, "not an ISO-8601 time"),
    ],
    ids=[
        "unsorted", "duplicate", "high-below-low", "high-below-close", "non-numeric", "empty",
        "negative-volume", "infinite-volume", "zero-price", "bad-timestamp",
    ],
)  # fmt: skip
def test_bad_rows_are_refused_naming_file_row_and_problem(
    tmp_path: Path, rows: list[str], row: int, problem: str
) -> None:
    name = "binance-ETHBTC-5m-bad.csv"
    with pytest.raises(DatasetError) as error:
        load_dataset(write_csv(tmp_path, name, rows))
    message = str(error.value)
    assert name in message and f"row {row} " in message and problem in message


@pytest.mark.parametrize(
    ("header", "rows", "problem"),
    [
        ("timestamp,open,high,low,close", [r.rsplit(",", 1)[0] for r in GOOD_ROWS], "columns"),
        ("ts,open,high,low,close,volume", GOOD_ROWS, "columns"),
        (HEADER, [], "no rows"),
    ],
    ids=["missing-volume", "renamed-timestamp", "no-rows"],
)
def test_bad_files_are_refused_naming_file_and_problem(
    tmp_path: Path, header: str, rows: list[str], problem: str
) -> None:
    name = "binance-ETHBTC-5m-bad.csv"
    with pytest.raises(DatasetError) as error:
        load_dataset(write_csv(tmp_path, name, rows, header=header))
    assert name in str(error.value) and problem in str(error.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "binance-ETHBTC-5m-missing.csv"
    with pytest.raises(DatasetError, match="no such file") as error:
        load_dataset(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("binance-ETHXYZ-5m-2018.csv", "cannot tell the quote currency of 'ETHXYZ'"),
        ("prices.csv", "prices.csv: cannot read venue and pair"),
        ("binance-ETH-5m-2018.csv", "binance-ETH-5m-2018.csv: cannot read venue and pair"),
    ],
)
def test_a_file_name_without_a_known_pair_is_refused(
    tmp_path: Path, name: str, problem: str
) -> None:
    with pytest.raises(DatasetError, match=r"FILE\.csv:ETH/BTC") as error:
        load_dataset(write_csv(tmp_path, name, GOOD_ROWS))
    assert problem in str(error.value)


def test_an_unknown_quote_error_names_the_file(tmp_path: Path) -> None:
    name = "binance-ETHXYZ-5m-2018.csv"
    with pytest.raises(DatasetError) as error:
        load_dataset(write_csv(tmp_path, name, GOOD_ROWS))
    assert name in str(error.value)


def test_an_explicit_symbol_overrides_the_file_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "prices.csv", GOOD_ROWS)
    assert parse_data_argument(f"{path}:ETH/BTC") == (path, "ETH/BTC")
    assert parse_data_argument(str(path)) == (path, None)
    dataset = load_dataset(*parse_data_argument(f"{path}:ETH/BTC"))
    assert (dataset.symbol, dataset.venue) == ("ETH/BTC", "csv")
    with pytest.raises(DatasetError, match="BASE/QUOTE"):
        load_dataset(path, symbol="ethbtc")


def test_mixed_quote_currencies_are_refused(shared_data: Path, config: CommitteeConfig) -> None:
    data = [
        load_dataset(shared_data / "ohlcv" / n) for n in (ETH, "binance-BTCUSDT-1d-2017-2018.csv")
    ]
    with pytest.raises(DatasetError) as error:
        run_backtest(data, config)
    message = str(error.value)
    assert "ETH/BTC" in message and "BTC/USDT" in message and "quote" in message


def test_the_same_pair_twice_from_one_venue_is_refused(tmp_path: Path, shared_data: Path) -> None:
    first = load_dataset(shared_data / "ohlcv" / ETH)
    copy = tmp_path / "binance-ETHBTC-5m-copy.csv"
    shutil.copyfile(shared_data / "ohlcv" / ETH, copy)
    with pytest.raises(DatasetError) as error:
        prepare_frames([first, load_dataset(copy)], load_committee_config())
    message = str(error.value)
    assert copy.name in message and ETH in message and "already loaded" in message


def test_a_second_venue_of_the_same_pair_becomes_peer_close(
    tmp_path: Path, shared_data: Path, config: CommitteeConfig
) -> None:
    """The first file of a pair is traded; another venue's file of it supplies ``peer_close``
    (that venue's close at the same time) and is not traded itself."""
    traded = load_dataset(shared_data / "ohlcv" / ETH)
    traded = Dataset(path=traded.path, venue=traded.venue, symbol=traded.symbol,
                     frame=traded.frame.iloc[:600].reset_index(drop=True))  # fmt: skip
    peer_frame = traded.frame.iloc[1:].copy()  # the peer misses the first bar
    peer_frame[["open", "high", "low", "close"]] *= 1.01
    peer = Dataset(path=tmp_path / "kraken-ETHBTC-5m-peer.csv", venue="kraken",
                   symbol="ETH/BTC", frame=peer_frame.reset_index(drop=True))  # fmt: skip
    candles, features, regimes, extra = prepare_frames([traded, peer], config)
    assert extra == ("peer_close",) and len(candles) == len(traded.frame)
    snapshots = build_snapshots(candles, features, regimes, extra_features=extra)
    assert [s.symbol for s in snapshots] == ["ETH/BTC"] * len(traded.frame)
    assert snapshots[0].feature("peer_close") is None
    for snapshot in snapshots[1:]:
        assert snapshot.feature("peer_close") == pytest.approx(snapshot.bar.close * 1.01, rel=1e-12)
    result = run_backtest([traded, peer], config)
    assert result.symbols == ("ETH/BTC",) and result.metrics["bars"] == len(traded.frame)


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def closes_by_ts(datasets: list[Dataset]) -> pd.DataFrame:
    frame = pd.concat([d.frame for d in datasets]).pivot(
        index="ts", columns="symbol", values="close"
    )
    return frame.sort_index().ffill()


def test_final_equity_and_strategy_return_come_from_the_equity_curve(
    baseline: BacktestResult,
) -> None:
    metrics, equity = baseline.metrics, baseline.equity
    assert metrics["final_equity"] == equity["equity"].iloc[-1]
    assert metrics["bars"] == len(equity) == equity["ts"].nunique()
    assert metrics["initial_cash"] == baseline.config.initial_cash
    assert metrics["strategy"]["total_return"] == pytest.approx(
        metrics["final_equity"] / metrics["initial_cash"] - 1.0, rel=1e-12, abs=1e-15
    )
    assert metrics["decisions"]["total"] == len(baseline.decisions) == 2 * len(equity)
    assert metrics["fills"] == len(baseline.session.fills) == len(baseline.trades)
    assert metrics["fees"] == pytest.approx(sum(f.fee for f in baseline.session.fills))


def buy_and_hold_return(datasets: list[Dataset], fee_bps: float) -> float:
    """Equal parts of the cash in every pair at its first close, one taker fee on entry."""
    growth = [d.frame["close"].iloc[-1] / d.frame["close"].iloc[0] for d in datasets]
    return float(np.mean(growth)) * (1.0 - fee_bps / 1e4) - 1.0


def test_the_benchmark_curve_is_equal_weight_buy_and_hold(
    baseline: BacktestResult, datasets: list[Dataset]
) -> None:
    """Every point of the benchmark is the starting cash split equally, less the entry fee."""
    closes = closes_by_ts(datasets)
    first = closes.iloc[0]
    cash, fee = baseline.config.initial_cash, baseline.config.fee_bps / 1e4
    expected = cash * (1.0 - fee) * (closes / first).mean(axis=1)
    got = baseline.equity.set_index("ts")["benchmark"]
    np.testing.assert_allclose(got.to_numpy(), expected.reindex(got.index).to_numpy(), rtol=1e-12)
    assert got.iloc[-1] / cash - 1.0 == pytest.approx(
        buy_and_hold_return(datasets, baseline.config.fee_bps), rel=1e-9
    )


def test_the_benchmark_total_return_is_net_of_the_entry_fee(
    baseline: BacktestResult, datasets: list[Dataset]
) -> None:
    expected = buy_and_hold_return(datasets, baseline.config.fee_bps)
    assert baseline.metrics["benchmark_buy_and_hold"]["total_return"] == pytest.approx(
        expected, rel=1e-9
    )


def test_per_agent_statistics_are_rates(baseline: BacktestResult) -> None:
    per_agent = baseline.metrics["per_agent"]
    agents = {vote.agent for decision in baseline.decisions for vote in decision.votes}
    assert set(per_agent) == agents | {"committee"}
    for name, stats in per_agent.items():
        assert 0 <= stats["scored"] <= stats["votes"] <= len(baseline.decisions), name
        rate = stats["hit_rate"]
        assert (rate is None) == (stats["scored"] == 0), name
        assert rate is None or 0.0 <= rate <= 1.0, name
    for row in baseline.metrics["agent_correlation"].values():
        assert all(v is None or -1.0 - 1e-12 <= v <= 1.0 + 1e-12 for v in row.values())


def test_every_fill_is_in_trades_csv(baseline: BacktestResult, baseline_files: Path) -> None:
    trades = pd.read_csv(baseline_files / "trades.csv", keep_default_na=False)
    rows = {
        (r.client_order_id, r.ts, r.symbol, r.side, r.quantity, r.price, r.fee, r.liquidity)
        for r in trades.itertuples()
    }
    fills = {
        (f.client_order_id, f.ts.strftime("%Y-%m-%dT%H:%M:%SZ"), f.symbol, f.side.value,
         f.quantity, f.price, f.fee, f.liquidity)
        for f in baseline.session.fills
    }  # fmt: skip
    assert len(trades) == len(baseline.session.fills) > 0
    assert rows == fills


def test_limits_hold_at_every_step_and_equity_matches_the_fills(
    baseline: BacktestResult, datasets: list[Dataset]
) -> None:
    """Replay the fills in booking order and mark them at each bar's closes: the replayed
    account reproduces equity.csv's equity, cash and positions and breaks no limit."""
    closes = closes_by_ts(datasets)
    fills_by_ts: dict[datetime, list[Any]] = {}
    for fill in baseline.session.fills:
        fills_by_ts.setdefault(fill.ts, []).append(fill)
    positions = baseline.positions.set_index(["ts", "symbol"])["quantity"]
    account = Portfolio(baseline.config.quote, baseline.config.initial_cash)
    breaches: list[str] = []
    for row in baseline.equity.itertuples():
        for fill in fills_by_ts.pop(row.ts.to_pydatetime(), []):
            account.apply_fill(fill)
        prices = closes.loc[row.ts].dropna().to_dict()
        assert account.equity(prices) == pytest.approx(row.equity, rel=1e-12)
        assert account.cash == pytest.approx(row.cash, rel=1e-12, abs=1e-15)
        for symbol in baseline.symbols:
            assert account.quantity(symbol) == positions[(row.ts, symbol)]
        breaches.extend(
            f"{row.ts}: {b}" for b in check_limits(account, prices, baseline.config.risk)
        )
    assert fills_by_ts == {}, "fills at times with no equity row"
    assert breaches == []


class LimitThenSellAgent(Agent):
    """A test agent: buy with a limit order at the close on even 5-minute bars, sell everything
    on odd ones. The limit buy fills on the odd bar, the market sell right after it, so both
    fills of a round trip share a timestamp (as with the Execution agent's limit advice)."""

    def vote(self, snapshot: MarketSnapshot) -> Vote:
        buy = int(snapshot.ts.timestamp() // 300) % 2 == 0
        return Vote(
            agent=self.name,
            symbol=snapshot.symbol,
            ts=snapshot.ts,
            direction=1.0 if buy else -1.0,
            confidence=1.0,
            rationale="round trip",
            execution=ExecutionAdvice(order_type="limit") if buy else None,
        )


def test_trade_pnls_add_up_to_the_equity_change_when_the_book_ends_flat(
    datasets: list[Dataset],
) -> None:
    config = parse_committee_config(
        {
            "agents": [{"name": "flipper", "class": f"{__name__}:LimitThenSellAgent"}],
            "weights": {"flipper": 1.0},
            "quorum": 1,
            "min_confidence": 0.0,
            "risk": {
                "max_order_fraction": 1.0,
                "max_daily_loss_fraction": 0.5,
                "max_drawdown_fraction": None,
            },
            "fee_bps": 10,
            "slippage_bps": 5,
            "initial_cash": 1.0,
            "quote": "BTC",
        }
    )
    day = Dataset(path=datasets[0].path, venue="binance", symbol="ETH/BTC",
                  frame=datasets[0].frame.iloc[:288].reset_index(drop=True))  # fmt: skip
    result = run_backtest([day], config)
    assert {f.liquidity for f in result.session.fills} == {"maker", "taker"}
    assert result.positions["quantity"].iloc[-1] == 0.0
    pnl = result.trades["pnl"].dropna()
    assert pnl.sum() == pytest.approx(result.metrics["final_equity"] - 1.0, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------------------------
# every recorded dataset
# --------------------------------------------------------------------------------------------

ALL_DATASETS = (
    sorted(p.name for p in (SHARED_DATA / "ohlcv").glob("*.csv") if p.name != FUNDING)
    if (SHARED_DATA / "ohlcv").is_dir()
    else []
)


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_every_recorded_dataset_runs_with_the_default_config(
    shared_data: Path, config: CommitteeConfig, name: str
) -> None:
    dataset = load_dataset(shared_data / "ohlcv" / name)
    result = run_backtest([dataset], config)
    metrics = result.metrics
    assert result.symbols == (dataset.symbol,) and metrics["quote"] == dataset.quote
    assert metrics["bars"] == len(dataset.frame) == len(result.decisions)
    assert np.isfinite(metrics["final_equity"]) and metrics["final_equity"] > 0
    assert (result.equity["cash"] >= 0).all()
