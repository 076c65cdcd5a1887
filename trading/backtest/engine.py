"""Backtests: the trading job's own path (committee -> risk gate -> execution -> paper broker)
run over recorded candles, point in time.

Features and regimes are computed once over the whole history with ``trading.features`` and
``trading.regime``, which only ever look backwards (the look-ahead test in
tests/trading/test_backtest.py holds them to it). The session then steps through the bars in
(ts, symbol) order exactly as the daily trading job does; the committee's weights are learned
walk-forward by ``trading.weights`` from outcomes already realised. Nothing here knows it is a
backtest except the source of the bars.

When several files hold the same pair, the first is traded and the others provide
``peer_close`` (the same asset's close on another venue) for the Arbitrage agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from trading import metrics as m
from trading.backtest.data import Dataset, DatasetError
from trading.config import CommitteeConfig, build_session
from trading.domain import Side
from trading.features import compute_features
from trading.portfolio import Portfolio, booking_order
from trading.reflection import Reflection
from trading.regime import classify_regimes
from trading.session import DecisionRecord, SessionResult, TradingSession
from trading.snapshots import build_snapshots

SECONDS_PER_YEAR = 365.0 * 86400.0
"""Crypto trades every day of the year."""

DEFAULT_INITIAL_CASH = 10_000.0
"""Starting cash when the data's quote differs from the config's (e.g. USDT data, BTC config)."""

Progress = Callable[[int, int], None]
"""Called as (timestamps done, timestamps in all) while the session runs."""


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run produced, as frames ready to write (see ``trading.backtest.outputs``)."""

    config: CommitteeConfig
    symbols: tuple[str, ...]
    equity: pd.DataFrame
    positions: pd.DataFrame
    trades: pd.DataFrame
    weights: pd.DataFrame
    metrics: dict[str, Any]
    session: SessionResult

    @property
    def decisions(self) -> list[DecisionRecord]:
        return self.session.decisions


def config_for_quote(
    config: CommitteeConfig, quote: str, initial_cash: float | None = None
) -> CommitteeConfig:
    """The config re-denominated in the data's quote currency.

    ``min_order_notional`` is in the config's quote; it keeps its size relative to the
    starting cash, so a BTC config run on USDT data trades the same fractions.
    """
    if quote == config.quote and initial_cash is None:
        return config
    cash = (
        initial_cash
        if initial_cash is not None
        else (config.initial_cash if quote == config.quote else DEFAULT_INITIAL_CASH)
    )
    if not (math.isfinite(cash) and cash > 0):
        raise ValueError(f"initial cash must be a finite number > 0, got {cash}")
    ratio = cash / config.initial_cash
    sizing = config.sizing.model_copy(
        update={"min_order_notional": config.sizing.min_order_notional * ratio}
    )
    return config.model_copy(update={"quote": quote, "initial_cash": cash, "sizing": sizing})


def _split_traded_and_peers(
    datasets: Sequence[Dataset],
) -> tuple[list[Dataset], dict[str, Dataset]]:
    traded: dict[str, Dataset] = {}
    peers: dict[str, Dataset] = {}
    for dataset in datasets:
        if dataset.symbol not in traded:
            traded[dataset.symbol] = dataset
        elif dataset.symbol not in peers and dataset.venue != traded[dataset.symbol].venue:
            peers[dataset.symbol] = dataset
        else:
            raise DatasetError(
                f"{dataset.path.name}: {dataset.symbol} is already loaded from "
                f"{traded[dataset.symbol].path.name}"
                + (f" and {peers[dataset.symbol].path.name}" if dataset.symbol in peers else "")
                + "; give one file per pair, plus at most one from another venue as its peer"
            )
    quotes = sorted({d.quote for d in traded.values()})
    if len(quotes) > 1:
        raise DatasetError(
            f"the traded pairs {sorted(traded)} have different quote currencies {quotes}; "
            "a backtest account holds one quote currency"
        )
    return list(traded.values()), peers


def prepare_frames(
    datasets: Sequence[Dataset], config: CommitteeConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, tuple[str, ...]]:
    """(candles, features, regimes, extra feature names) for ``datasets``."""
    if not datasets:
        raise DatasetError("no datasets given")
    traded, peers = _split_traded_and_peers(datasets)
    candles = pd.concat([d.frame for d in traded], ignore_index=True)
    features = compute_features(candles, config.features)
    regimes = classify_regimes(
        features,
        volatile_ratio=config.regime.volatile_ratio,
        trend_threshold=config.regime.trend_threshold,
    )
    extra: tuple[str, ...] = ()
    if peers:
        peer_closes = pd.concat(
            [p.frame[["symbol", "ts", "close"]] for p in peers.values()], ignore_index=True
        ).rename(columns={"close": "peer_close"})
        features = features.merge(peer_closes, on=["symbol", "ts"], how="left")
        extra = ("peer_close",)
    return candles, features, regimes, extra


def _bar_seconds(datasets: Sequence[Dataset]) -> float:
    seconds = [d.bar_seconds for d in datasets if math.isfinite(d.bar_seconds)]
    if not seconds:
        raise DatasetError("need at least two candles to know the bar length")
    return float(min(seconds))


def _trade_frame(fills: Sequence[Any], quote: str) -> pd.DataFrame:
    """Fills with each sell's realised PnL net of fees (average cost, buy fees included)."""
    cost: dict[str, tuple[float, float]] = {}  # symbol -> (quantity, cost incl. buy fees)
    rows = []
    for fill in sorted(fills, key=booking_order):
        quantity, basis = cost.get(fill.symbol, (0.0, 0.0))
        pnl: float | None = None
        if fill.side is Side.BUY:
            cost[fill.symbol] = (quantity + fill.quantity, basis + fill.notional + fill.fee)
        else:
            sold = min(fill.quantity, quantity)
            unit = basis / quantity if quantity > 0 else 0.0
            pnl = fill.notional - fill.fee - unit * sold
            left = quantity - sold
            dust = left <= 1e-12 * max(1.0, quantity)
            cost[fill.symbol] = (0.0, 0.0) if dust else (left, unit * left)
        rows.append(
            {
                "ts": fill.ts,
                "symbol": fill.symbol,
                "side": fill.side.value,
                "quantity": fill.quantity,
                "price": fill.price,
                "notional": fill.notional,
                "fee": fill.fee,
                "liquidity": fill.liquidity,
                "pnl": pnl,
                "client_order_id": fill.client_order_id,
            }
        )
    columns = [
        "ts", "symbol", "side", "quantity", "price", "notional", "fee", "liquidity", "pnl",
        "client_order_id",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame.attrs["quote"] = quote
    return frame


def _agent_signal_frame(decisions: Sequence[DecisionRecord]) -> pd.DataFrame:
    """One row per decision, one column per agent: direction * confidence (0 when neutral)."""
    rows = []
    for decision in decisions:
        row: dict[str, Any] = {"symbol": decision.symbol, "ts": decision.ts}
        for vote in decision.votes:
            row[vote.agent] = vote.direction * vote.confidence
        rows.append(row)
    return pd.DataFrame(rows)


def agent_statistics(
    decisions: Sequence[DecisionRecord], candles: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """Per-agent hit rates against the next bar's move, and the correlation of agents' signals.

    A vote counts when its direction is not 0; it is a hit when the symbol's next close moved
    the way it pointed (unchanged closes count for neither). The committee's own decisions are
    scored the same way under the name ``committee``. Correlations are Pearson over decisions,
    None where an agent never varied.
    """
    signals = _agent_signal_frame(decisions)
    if signals.empty:
        return {}, {}
    closes = candles[["symbol", "ts", "close"]].sort_values(["symbol", "ts"])
    closes = closes.assign(
        next_return=closes.groupby("symbol")["close"].shift(-1) / closes["close"] - 1.0
    )
    signals["committee"] = [d.direction for d in decisions]
    agents = [c for c in signals.columns if c not in ("symbol", "ts")]
    scored = signals.merge(closes[["symbol", "ts", "next_return"]], on=["symbol", "ts"], how="left")
    move = np.sign(scored["next_return"].to_numpy(dtype=float))
    hit_rates: dict[str, Any] = {}
    for agent in agents:
        direction = np.sign(scored[agent].fillna(0.0).to_numpy(dtype=float))
        counted = (direction != 0) & np.isfinite(move) & (move != 0)
        hits = int(np.count_nonzero(direction[counted] == move[counted]))
        n = int(np.count_nonzero(counted))
        hit_rates[agent] = {
            "votes": int(np.count_nonzero(direction != 0)),
            "scored": n,
            "hit_rate": (hits / n) if n else None,
        }
    voting = [a for a in agents if a != "committee"]
    matrix = signals[voting].fillna(0.0).corr(method="pearson")
    correlation = {a: {b: _finite_or_none(matrix.loc[a, b]) for b in voting} for a in voting}
    return hit_rates, correlation


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def mean_abs_correlation(correlation: Mapping[str, Mapping[str, float | None]]) -> float | None:
    """The mean |correlation| over distinct agent pairs with a defined correlation."""
    names = sorted(correlation)
    values = [
        abs(v)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if (v := correlation[a].get(b)) is not None
    ]
    return float(np.mean(values)) if values else None


def run_backtest(
    datasets: Sequence[Dataset],
    config: CommitteeConfig,
    *,
    initial_cash: float | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Run ``config``'s committee over ``datasets`` and measure it against buy-and-hold.

    The benchmark holds every traded pair in equal parts of the starting cash from its first
    bar (one taker fee paid on entry), marked at the same closes as the strategy.
    """
    candles, features, regimes, extra = prepare_frames(datasets, config)
    symbols = tuple(sorted(candles["symbol"].unique()))
    quote = symbols[0].split("/")[1]
    config = config_for_quote(config, quote, initial_cash)
    snapshots = build_snapshots(candles, features, regimes, extra_features=extra)
    session = build_session(config, Portfolio(quote, config.initial_cash))

    timestamps = sorted({s.ts for s in snapshots})
    total = len(timestamps)
    share = config.initial_cash / len(symbols)
    entry_fee = 1.0 - config.fee_bps / 1e4
    first_close: dict[str, float] = {}
    equity_rows: list[tuple[Any, ...]] = []
    position_rows: list[tuple[Any, ...]] = []
    done = 0

    def on_step(ts: datetime, portfolio: Portfolio, prices: Mapping[str, float]) -> None:
        nonlocal done
        equity = portfolio.equity(prices)
        benchmark = 0.0
        for symbol in symbols:
            price = prices.get(symbol)
            if price is None:
                benchmark += share
                continue
            start = first_close.setdefault(symbol, price)
            benchmark += share * entry_fee * price / start
        gross = portfolio.gross_exposure(prices)
        equity_rows.append(
            (ts, equity, portfolio.cash, gross / equity if equity > 0 else math.nan, benchmark,
             session.risk_gate.state.value)
        )  # fmt: skip
        for symbol in symbols:
            value = portfolio.position_value(symbol, prices) if symbol in prices else 0.0
            position_rows.append(
                (ts, symbol, portfolio.quantity(symbol), value, value / equity if equity else 0.0)
            )
        done += 1
        if progress is not None:
            progress(done, total)

    result = session.run(snapshots, on_step=on_step)

    equity = pd.DataFrame(
        equity_rows,
        columns=["ts", "equity", "cash", "gross_exposure", "benchmark", "risk_state"],
    )
    equity["ts"] = pd.to_datetime(equity["ts"], utc=True)
    equity["drawdown"] = m.drawdown_series(equity.set_index("ts")["equity"]).abs().to_numpy()
    equity["benchmark_drawdown"] = (
        m.drawdown_series(equity.set_index("ts")["benchmark"]).abs().to_numpy()
    )
    positions = pd.DataFrame(
        position_rows, columns=["ts", "symbol", "quantity", "value", "position_fraction"]
    )
    positions["ts"] = pd.to_datetime(positions["ts"], utc=True)
    trades = _trade_frame(result.fills, quote)
    weights = _weights_frame(session)
    metrics = _metrics(
        config, datasets, candles, equity, positions, trades, result, session, weights
    )
    return BacktestResult(
        config=config,
        symbols=symbols,
        equity=equity,
        positions=positions,
        trades=trades,
        weights=weights,
        metrics=metrics,
        session=result,
    )


def _weights_frame(session: TradingSession) -> pd.DataFrame:
    """Agent weights over time: one row per walk-forward window and agent."""
    provider = session.committee.weight_provider
    rows = [(row["window_start"], row["agent"], row["weight"]) for row in provider.history_rows()]
    frame = pd.DataFrame(rows, columns=["ts", "agent", "weight"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _metrics(
    config: CommitteeConfig,
    datasets: Sequence[Dataset],
    candles: pd.DataFrame,
    equity: pd.DataFrame,
    positions: pd.DataFrame,
    trades: pd.DataFrame,
    result: SessionResult,
    session: TradingSession,
    weights: pd.DataFrame,
) -> dict[str, Any]:
    bar_seconds = _bar_seconds(datasets)
    ppy = SECONDS_PER_YEAR / bar_seconds
    # Both curves start from the opening cash one bar before the first close, so the first
    # bar's fees (the benchmark's entry fee, the strategy's first orders) count in every metric.
    opening = equity["ts"].iloc[0] - pd.Timedelta(seconds=bar_seconds)

    def from_opening(column: str) -> pd.Series:
        series = equity.set_index("ts")[column]
        return pd.concat([pd.Series([config.initial_cash], index=[opening]), series])

    curve = from_opening("equity")
    values = positions.pivot(index="ts", columns="symbol", values="value").fillna(0.0)
    values = pd.concat([pd.DataFrame(0.0, index=[opening], columns=values.columns), values])
    traded = trades.set_index("ts")["notional"] if not trades.empty else pd.Series(dtype=float)
    pnls = trades["pnl"].dropna().to_numpy(dtype=float)
    strategy = m.summarize(curve, pnls, values, traded, ppy)
    bench_curve = from_opening("benchmark")
    held = np.ones(len(bench_curve))
    held[0] = 0.0
    benchmark = m.summarize(bench_curve, [], held, np.zeros(len(bench_curve)), ppy)
    hit_rates, correlation = agent_statistics(result.decisions, candles)
    outcomes = pd.Series([d.outcome for d in result.decisions]).value_counts()
    halted = equity.loc[equity["risk_state"] == "halted", "ts"]
    provider = session.committee.weight_provider
    learning: dict[str, Any] = {"weighting": provider.summary()}
    notes: list[Any] = []
    for observer in session.committee.observers:
        if isinstance(observer, Reflection):
            learning["reflection"] = observer.summary()
            notes.extend(note.model_dump(mode="json") for note in observer.notes)
    if session.memory is not None:
        learning["memory"] = session.memory.summary()
    return {
        "symbols": sorted(candles["symbol"].unique().tolist()),
        "start": equity["ts"].iloc[0].isoformat() if len(equity) else None,
        "end": equity["ts"].iloc[-1].isoformat() if len(equity) else None,
        "bars": int(len(equity)),
        "bar_seconds": bar_seconds,
        "quote": config.quote,
        "initial_cash": config.initial_cash,
        "final_equity": float(curve.iloc[-1]) if len(curve) else None,
        "strategy": strategy,
        "benchmark_buy_and_hold": benchmark,
        "excess_total_return": _difference(strategy["total_return"], benchmark["total_return"]),
        "decisions": {
            "total": len(result.decisions),
            **{str(k): int(v) for k, v in sorted(outcomes.items())},
        },
        "orders": len(result.orders),
        "fills": len(result.fills),
        "fees": float(trades["fee"].sum()) if not trades.empty else 0.0,
        "first_halt": halted.iloc[0].isoformat() if len(halted) else None,
        "per_agent": hit_rates,
        "agent_correlation": correlation,
        "mean_abs_agent_correlation": mean_abs_correlation(correlation),
        "weights_over_time": {
            ts.isoformat(): {row.agent: row.weight for row in group.itertuples()}
            for ts, group in weights.groupby("ts", sort=True)
        },
        "weights_final": {
            row.agent: row.weight for row in weights.groupby("agent").tail(1).itertuples()
        }
        if not weights.empty
        else {},
        "learning": learning,
        "reflection_notes": notes,
    }


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
