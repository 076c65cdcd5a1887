"""The demo: the whole pipeline as a backfill over the bundled real-data window, then trading.

It launches the very jobs and sensor a production deployment uses, on the local Dagster instance,
so every run appears in ``make ui`` afterwards: one daily-pipeline run per partition (raw sources,
blocking quality checks, dbt, features, regime), then the fresh-signals sensor's run requests,
each executed as a trading run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from orchestration.deployment import coinswarm_home
from orchestration.quality import report_summary
from orchestration.sensors import FEATURES_KEY, REGIME_KEY

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Keep Dagster's console quiet (the demo prints one line per run); every event, including a
blocked partition's check failure, is still in the run's event log in the UI."""

COUNTED_TABLES = (
    "raw.binance_ohlcv", "raw.coinbase_ohlcv", "raw.fred_observations",
    "analytics.stg_binance_ohlcv", "analytics.fct_pair_returns",
    "signals.features", "signals.regimes",
    "trading.decisions", "trading.orders", "trading.fills", "trading.positions", "trading.pnl",
    "memory.proposals", "memory.votes", "memory.memories", "memory.patterns",
)  # fmt: skip


@dataclass
class DemoSummary:
    partitions: list[str]
    checks_passed: int = 0
    checks_failed: int = 0
    blocked: dict[str, list[str]] = field(default_factory=dict)
    failed_runs: dict[str, str] = field(default_factory=dict)
    traded_partitions: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    trades: int = 0
    orders: int = 0
    rejected: int = 0
    fees: float = 0.0
    initial_equity: float = 0.0
    final_equity: float = 0.0
    quote: str = ""
    risk_state: str = ""
    data_docs: Path | None = None

    def render(self) -> str:
        pnl = self.final_equity - self.initial_equity
        ret = pnl / self.initial_equity if self.initial_equity else 0.0
        lines = [
            "",
            "Coinswarm demo summary",
            "======================",
            f"partitions        {len(self.partitions)} daily ({self.partitions[0]} .. "
            f"{self.partitions[-1]})",
            f"quality checks    {self.checks_passed} passed, {self.checks_failed} failed",
        ]
        for partition, reasons in sorted(self.blocked.items()):
            lines.append(f"  blocked {partition}: {'; '.join(reasons)[:300]}")
        for partition, reason in sorted(self.failed_runs.items()):
            lines.append(f"  run failed {partition}: {reason[:300]}")
        lines.append(f"traded partitions {len(self.traded_partitions)}")
        lines.append("rows per table")
        lines += [f"  {table:<30} {count:>8}" for table, count in self.rows.items()]
        lines += [
            f"orders            {self.orders} "
            f"({self.rejected} proposals rejected by the risk gate)",
            f"trades (fills)    {self.trades}, fees {self.fees:.8f} {self.quote}",
            f"equity            {self.initial_equity:.6f} -> {self.final_equity:.6f} {self.quote} "
            f"(PnL {pnl:+.6f}, {ret:+.2%}), risk state {self.risk_state or 'n/a'}",
            f"data-quality report {self.data_docs}",
            "open the Dagster UI on the same stores with: make ui",
        ]
        return "\n".join(lines)


def _run_daily_pipeline(
    defs: dg.Definitions, instance: dg.DagsterInstance, partition: str, summary: DemoSummary
) -> None:
    job = defs.resolve_job_def("daily_pipeline_job")
    result = job.execute_in_process(
        partition_key=partition, instance=instance, run_config=QUIET, raise_on_error=False
    )
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            summary.checks_passed += 1
        else:
            summary.checks_failed += 1
            reason = evaluation.description or "check failed"
            summary.blocked.setdefault(partition, []).append(
                f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}: {reason}"
            )
    if not result.success and partition not in summary.blocked:
        failures = [
            event.step_key or "run"
            for event in result.all_events
            if event.event_type_value == "STEP_FAILURE"
        ]
        summary.failed_runs[partition] = f"failed steps: {', '.join(failures) or 'unknown'}"


def _run_trading(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    summary: DemoSummary,
    progress: Callable[[str], None],
    log_path: Path,
) -> None:
    sensor = defs.resolve_sensor_def("fresh_signals_sensor")
    context = dg.build_multi_asset_sensor_context(
        monitored_assets=[FEATURES_KEY, REGIME_KEY],
        instance=instance,
        definitions=defs,
        resources={"postgres": defs.resources["postgres"]},
    )
    evaluation = sensor(context)
    if isinstance(evaluation, dg.SkipReason):
        progress(f"the sensor requested no trading run: {evaluation.skip_message}")
    requests = evaluation if isinstance(evaluation, list) else []
    job = defs.resolve_job_def("trading_job")
    for request in requests:
        if request.partition_key not in summary.partitions:
            continue
        with _output_to(log_path):
            result = job.execute_in_process(
                partition_key=request.partition_key,
                instance=instance,
                run_config=QUIET,
                tags={"dagster/run_key": request.run_key or "", "launched_by": sensor.name},
                raise_on_error=False,
            )
        progress(f"trading {request.partition_key}: {'ok' if result.success else 'FAILED'}")
        if result.success:
            summary.traded_partitions.append(request.partition_key)
        else:
            summary.failed_runs[request.partition_key] = "trading run failed"


def _collect(engine: sa.Engine, summary: DemoSummary) -> None:
    first, last = summary.partitions[0], summary.partitions[-1]
    with engine.connect() as conn:
        for table in COUNTED_TABLES:
            summary.rows[table] = conn.execute(
                sa.text(f"SELECT count(*) FROM {table}")
            ).scalar_one()
        window = {"first": first, "last": last}
        summary.orders = conn.execute(
            sa.text(
                "SELECT count(*) FROM trading.orders WHERE partition_date BETWEEN :first AND :last"
            ),
            window,
        ).scalar_one()
        summary.rejected = conn.execute(
            sa.text(
                "SELECT count(*) FROM trading.decisions WHERE outcome = 'rejected' "
                "AND partition_date BETWEEN :first AND :last"
            ),
            window,
        ).scalar_one()
        trades, fees = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(fee), 0) FROM trading.fills "
                "WHERE partition_date BETWEEN :first AND :last"
            ),
            window,
        ).one()
        summary.trades, summary.fees = int(trades), float(fees)
        last_pnl = conn.execute(
            sa.text(
                "SELECT equity, risk_state FROM trading.pnl WHERE partition_date <= :last "
                "ORDER BY partition_date DESC LIMIT 1"
            ),
            window,
        ).one_or_none()
    if last_pnl is not None:
        summary.final_equity, summary.risk_state = float(last_pnl[0]), str(last_pnl[1])


@contextmanager
def _output_to(log_path: Path) -> Iterator[None]:
    """Send what runs print (dbt's own progress lines) to the demo log, not the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log, redirect_stdout(log):
        yield


def run_demo(
    partitions: list[str],
    defs: dg.Definitions | None = None,
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> DemoSummary:
    """Backfill ``partitions`` through the daily pipeline, then trade what the sensor requests.

    ``defs`` and ``instance`` default to the composition root and the local instance; tests pass
    their own (test servers, an ephemeral instance).
    """
    if defs is None:
        from orchestration.definitions import defs
    instance = instance or dg.DagsterInstance.get()
    summary = DemoSummary(partitions=partitions)
    log_path = coinswarm_home() / "logs" / "demo.log"
    progress(f"run output goes to {log_path}; every run is in the Dagster UI (make ui)")
    for partition in partitions:
        with _output_to(log_path):
            _run_daily_pipeline(defs, instance, partition, summary)
        if partition in summary.blocked:
            outcome = "BLOCKED by its quality check"
        elif partition in summary.failed_runs:
            outcome = f"FAILED ({summary.failed_runs[partition]})"
        else:
            outcome = "ok"
        progress(f"daily pipeline {partition}: {outcome}")
    progress("fresh-signals sensor -> trading runs")
    _run_trading(defs, instance, summary, progress, log_path)
    committee = defs.resources["committee"].load()
    summary.initial_equity, summary.quote = committee.initial_cash, committee.quote
    _collect(defs.resources["postgres"].get_engine(), summary)
    summary.data_docs = report_summary()
    return summary
