"""Backtest reports: one asset per committee configuration, over every staged candle.

Each report runs ``trading.backtest`` (the trading job's own committee -> risk gate ->
execution -> paper broker path) over the quality-gated candles in ``analytics.stg_binance_ohlcv``
and writes equity.csv, trades.csv, metrics.json and report.html under
``<coinswarm home>/reports/backtests/<name>/``. The headline metrics land in the
materialisation's metadata, so the UI compares configurations run to run.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from assets.ingest.registry import TRADED_FEED
from orchestration.deployment import coinswarm_home
from orchestration.groups import BACKTEST_GROUP
from orchestration.resources.postgres import PostgresStoreResource
from trading.backtest.data import Dataset
from trading.backtest.engine import run_backtest
from trading.backtest.outputs import write_outputs
from trading.config import CONFIGS_DIR, load_committee_config

BACKTEST_CONFIGS: dict[str, Path | None] = {
    "default": None,
    **{path.stem: path for path in sorted(CONFIGS_DIR.glob("*.yaml"))},
}
"""Report name -> committee YAML (None: the packaged default the trading job uses)."""

_STAGED = sa.text(
    "SELECT symbol, open_time AS ts, open, high, low, close, volume "
    'FROM analytics.stg_binance_ohlcv WHERE "interval" = :interval ORDER BY symbol, open_time'
)


def load_staged_datasets(postgres: PostgresStoreResource) -> list[Dataset]:
    """The traded feed's gated candles, one Dataset per pair."""
    with postgres.get_engine().connect() as conn:
        frame = pd.read_sql(_STAGED, conn, params={"interval": TRADED_FEED.interval})
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return [
        Dataset(
            path=Path(f"analytics.stg_binance_ohlcv[{symbol}]"),
            venue=TRADED_FEED.venue,
            symbol=str(symbol),
            frame=group.reset_index(drop=True),
        )
        for symbol, group in frame.groupby("symbol", sort=True)
    ]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def build_backtest_asset(name: str, config_path: Path | None) -> dg.AssetsDefinition:
    @dg.asset(
        key=["backtests", name],
        group_name=BACKTEST_GROUP,
        kinds={"python", "html"},
        deps=[dg.AssetKey(["analytics", "stg_binance_ohlcv"])],
        description=(
            f"Backtest report of the committee config '{name}' "
            f"({config_path.name if config_path else 'trading/committee.yaml'}) over every "
            "quality-gated candle: equity and drawdown against buy-and-hold, trades, metrics, "
            "per-agent hit rates, weights over time and reflection notes."
        ),
    )
    def backtest_report(
        context: dg.AssetExecutionContext, postgres: PostgresStoreResource
    ) -> dg.MaterializeResult:
        config = load_committee_config(config_path)
        datasets = load_staged_datasets(postgres)
        if not datasets:
            raise dg.Failure(
                description="no staged candles: materialise the dbt models first",
                allow_retries=False,
            )
        result = run_backtest(datasets, config)
        out = coinswarm_home() / "reports" / "backtests" / name
        config_text = config_path.read_text(encoding="utf-8") if config_path else None
        paths = write_outputs(
            result, out, title=f"Backtest '{name}' on staged candles", config_text=config_text
        )
        strategy = result.metrics["strategy"]
        benchmark = result.metrics["benchmark_buy_and_hold"]
        context.log.info(
            "backtest %s: return %s vs buy-and-hold %s over %d bars",
            name,
            _pct(strategy["total_return"]),
            _pct(benchmark["total_return"]),
            result.metrics["bars"],
        )
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.path(str(paths["report.html"])),
                "metrics_json": dg.MetadataValue.path(str(paths["metrics.json"])),
                "symbols": result.metrics["symbols"],
                "bars": result.metrics["bars"],
                "start": result.metrics["start"],
                "end": result.metrics["end"],
                "total_return": strategy["total_return"],
                "buy_and_hold_return": benchmark["total_return"],
                "sharpe_ratio": strategy["sharpe_ratio"],
                "max_drawdown": strategy["max_drawdown"],
                "win_rate": strategy["win_rate"],
                "fills": result.metrics["fills"],
                "mean_abs_agent_correlation": result.metrics["mean_abs_agent_correlation"],
                "reflection_notes": len(result.metrics["reflection_notes"]),
            }
        )

    return backtest_report


backtest_assets = [build_backtest_asset(n, p) for n, p in BACKTEST_CONFIGS.items()]
