"""The fresh-signals sensor: launches the trading job when a day's features and regime land.

An imperative sensor (not declarative automation) because trading has side effects: it needs one
run key per partition, so a day is traded once, and an off switch in the UI. It also obeys the
operator's switches in ``trading.control`` (orchestration/trading_control.py): while trading is
paused or the kill switch is engaged it requests nothing and keeps its cursor, so the days that
landed meanwhile are requested, in order, once trading is allowed again.
"""

import dagster as dg

from orchestration.jobs import trading_job
from orchestration.resources.postgres import PostgresStoreResource
from orchestration.trading_control import TradingControl

FEATURES_KEY = dg.AssetKey(["signals", "features"])
REGIME_KEY = dg.AssetKey(["signals", "regime"])


def trading_run_key(partition_key: str) -> str:
    return f"trading-{partition_key}"


def build_fresh_signals_sensor(running: bool) -> dg.MultiAssetSensorDefinition:
    @dg.multi_asset_sensor(
        name="fresh_signals_sensor",
        monitored_assets=[FEATURES_KEY, REGIME_KEY],
        job=trading_job,
        minimum_interval_seconds=30,
        default_status=(
            dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
        ),
        description=(
            "Requests one trading run per daily partition once both its features and its regime "
            "have materialised; partitions are requested in time order."
        ),
    )
    def fresh_signals_sensor(
        context: dg.MultiAssetSensorEvaluationContext, postgres: PostgresStoreResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        status = TradingControl(postgres.get_engine()).status()
        if not status.trading_allowed:
            return dg.SkipReason(status.stopped_reason)
        by_partition = context.latest_materialization_records_by_partition_and_asset()
        requests = []
        for partition_key in sorted(by_partition):
            records = by_partition[partition_key]
            if FEATURES_KEY in records and REGIME_KEY in records:
                requests.append(
                    dg.RunRequest(
                        run_key=trading_run_key(partition_key), partition_key=partition_key
                    )
                )
                context.advance_cursor(
                    {FEATURES_KEY: records[FEATURES_KEY], REGIME_KEY: records[REGIME_KEY]}
                )
        if not requests:
            return dg.SkipReason("no partition has both fresh features and a fresh regime")
        return requests

    return fresh_signals_sensor
