"""Backtest reports: one asset per committee configuration, over every staged candle.

Each report runs ``trading.backtest`` (the trading job's own committee -> risk gate ->
execution -> paper broker path) over the quality-gated candles in ``analytics.stg_binance_ohlcv``
and writes equity.csv, trades.csv, metrics.json and report.html under
``<coinswarm home>/reports/backtests/<name>/``. The headline metrics land in the
materialisation's metadata, so the UI compares configurations run to run.
"""

from collections.abc import Callable

import dagster as dg
import pandas as pd
import sqlalchemy as sa
import yaml

from assets.ingest.registry import TRADED_FEED
from orchestration.deployment import coinswarm_home
from orchestration.groups import BACKTEST_GROUP
from orchestration.resources.postgres import PostgresStoreResource
from trading.backtest.data import Dataset, datasets_by_symbol
from trading.backtest.engine import run_backtest
from trading.backtest.outputs import write_outputs
from trading.config import CommitteeConfig, load_committee_config
from trading.planner import PlannerConfig
from trading.weights import WeightingConfig


def default_committee() -> CommitteeConfig:
    return load_committee_config()


def static_weights_committee() -> CommitteeConfig:
    """The default committee with its base weights frozen: no learned multipliers, no planner
    priors. Side by side with ``default`` it shows what the dynamic weighting adds."""
    config = load_committee_config()
    return config.model_copy(
        update={"weighting": WeightingConfig(scheme="static"), "planner": PlannerConfig()}
    )


BACKTEST_CONFIGS = {
    "default": (default_committee, "trading/committee.yaml, the trading job's committee"),
    "static_weights": (static_weights_committee, "the default with static weights, no planner"),
}
"""Report name -> (config factory, what it is)."""

_STAGED = sa.text(
    "SELECT symbol, open_time AS ts, open, high, low, close, volume "
    'FROM analytics.stg_binance_ohlcv WHERE "interval" = :interval ORDER BY symbol, open_time'
)


def load_staged_datasets(postgres: PostgresStoreResource) -> list[Dataset]:
    """The traded feed's gated candles, one Dataset per pair."""
    with postgres.get_engine().connect() as conn:
        frame = pd.read_sql(_STAGED, conn, params={"interval": TRADED_FEED.interval})
    return datasets_by_symbol(frame, TRADED_FEED.venue, source="analytics.stg_binance_ohlcv")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2%}"


def build_backtest_asset(
    name: str, make_config: Callable[[], CommitteeConfig], what: str
) -> dg.AssetsDefinition:
    @dg.asset(
        key=["backtests", name],
        group_name=BACKTEST_GROUP,
        kinds={"python", "html"},
        deps=[dg.AssetKey(["analytics", "stg_binance_ohlcv"])],
        description=(
            f"Backtest report of the committee config '{name}' ({what}) over every "
            "quality-gated candle: equity and drawdown against buy-and-hold, trades, metrics, "
            "per-agent hit rates, weights over time and reflection notes."
        ),
    )
    def backtest_report(
        context: dg.AssetExecutionContext, postgres: PostgresStoreResource
    ) -> dg.MaterializeResult:
        config = make_config()
        datasets = load_staged_datasets(postgres)
        if not datasets:
            raise dg.Failure(
                description="no staged candles: materialise the dbt models first",
                allow_retries=False,
            )
        result = run_backtest(datasets, config)
        out = coinswarm_home() / "reports" / "backtests" / name
        config_text = yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
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


backtest_assets = [build_backtest_asset(n, f, w) for n, (f, w) in BACKTEST_CONFIGS.items()]
