"""The one composition root: every asset, check, job, schedule, sensor and resource.

``dagster dev``, the code server, the demo and the tests all load ``defs`` from here. The
deployment switch picks the resources; nothing else here depends on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets.backtests import backtest_assets
from assets.decisions import trading_session
from assets.ingest.factory import raw_asset_checks, raw_assets
from assets.ingest.ticks import tick_definitions
from assets.memory import memory_checks
from assets.signals.features import features
from assets.signals.regime import regime
from assets.signals.sentiment import sentiment_assets, sentiment_checks
from assets.transform import coinswarm_dbt_models
from orchestration.deployment import Deployment, current_deployment
from orchestration.jobs import backtest_job, daily_pipeline_job, ingest_job, trading_job
from orchestration.resources.by_deployment import resources_for
from orchestration.schedules import build_schedules
from orchestration.sensors import build_fresh_signals_sensor


def build_definitions(
    deployment: Deployment, resources: Mapping[str, Any] | None = None
) -> dg.Definitions:
    """All definitions for ``deployment``; ``resources`` replaces the deployment's resources
    (tests bind their own servers this way)."""
    automate = deployment is Deployment.PROD
    ingest = dg.Definitions(assets=raw_assets, asset_checks=raw_asset_checks)
    ticks = tick_definitions(running=automate)
    transform = dg.Definitions(assets=[coinswarm_dbt_models])
    signals = dg.Definitions(
        assets=[features, regime, *sentiment_assets], asset_checks=sentiment_checks
    )
    trading = dg.Definitions(
        assets=[trading_session],
        asset_checks=memory_checks,
        jobs=[trading_job],
        sensors=[build_fresh_signals_sensor(running=automate)],
    )
    backtests = dg.Definitions(assets=backtest_assets, jobs=[backtest_job])
    pipeline = dg.Definitions(
        jobs=[ingest_job, daily_pipeline_job], schedules=build_schedules(running=automate)
    )
    return dg.Definitions.merge(
        ingest,
        ticks,
        transform,
        signals,
        trading,
        backtests,
        pipeline,
        dg.Definitions(resources=dict(resources or resources_for(deployment))),
    )


defs = build_definitions(current_deployment())
