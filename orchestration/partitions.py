"""Partitions shared by every time-sliced asset.

Daily UTC windows from the first day of the bundled real-data slice. In production the same
definition simply runs on to today; the demo backfills the bundled window.
"""

from __future__ import annotations

import dagster as dg

PARTITIONS_START = "2018-01-10"
DEMO_WINDOW = ("2018-01-10", "2018-01-30")  # inclusive partition keys of the bundled slice

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC")
