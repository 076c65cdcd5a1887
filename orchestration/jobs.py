"""Jobs: what runs together.

The blocking candle checks only gate assets in the same run, so the daily pipeline keeps raw
candles, their checks, the dbt models and the signals in one run per partition: a bad partition
stops its own day and nothing else.
"""

from __future__ import annotations

import dagster as dg

from orchestration.groups import (
    BACKTEST_GROUP,
    INGEST_GROUP,
    MEMORY_GROUP,
    SIGNALS_GROUP,
    TRADING_GROUP,
    TRANSFORM_GROUP,
)
from orchestration.partitions import daily_partitions

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups(INGEST_GROUP),
    partitions_def=daily_partitions,
    description=(
        "Fetch every raw source for the selected partitions and run their quality checks. "
        "Backfills of raw assets run as a single run over the whole range."
    ),
)

daily_pipeline_job = dg.define_asset_job(
    name="daily_pipeline_job",
    selection=dg.AssetSelection.groups(INGEST_GROUP, TRANSFORM_GROUP, SIGNALS_GROUP),
    partitions_def=daily_partitions,
    description=(
        "One day end to end up to the signals: raw sources -> blocking quality checks -> dbt "
        "models -> features and regime. A failing check stops that day's transforms and signals."
    ),
)

trading_job = dg.define_asset_job(
    name="trading_job",
    selection=dg.AssetSelection.groups(TRADING_GROUP, MEMORY_GROUP),
    partitions_def=daily_partitions,
    description=(
        "The committee -> memory evidence -> risk gate -> execution -> paper broker session for "
        "one day, committing the day's matured decisions to memory through the validator "
        "quorum. Launched by the fresh-signals sensor, once per partition."
    ),
)

backtest_job = dg.define_asset_job(
    name="backtest_job",
    selection=dg.AssetSelection.groups(BACKTEST_GROUP),
    description=(
        "Re-run every committee configuration's backtest over all staged candles and rewrite "
        "its report (equity, trades, metrics, report.html)."
    ),
)
