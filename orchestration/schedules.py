"""Schedules: the daily pipeline runs shortly after each UTC day closes."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import daily_pipeline_job


def build_schedules(running: bool) -> list[dg.ScheduleDefinition]:
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    return [
        dg.build_schedule_from_partitioned_job(
            daily_pipeline_job,
            name="daily_pipeline_schedule",
            description="Ingest, check, transform and build signals for the day that just closed.",
            minute_of_hour=15,
            hour_of_day=0,
            default_status=status,
        )
    ]
