"""Bitcoin on-chain network statistics from blockchain.com's Charts API
(``GET https://api.blockchain.info/charts/{chart}``) -> ``raw.blockchain_network_stats``.

The Charts API (not the snapshot-only ``/stats``) is used because it has history: ``start`` and
``timespan`` select days, so any partition can be backfilled. One value per chart and UTC day.

A response::

    {"status": "ok", "name": "Total Hash Rate (TH/s)", "unit": "Hash Rate TH/s",
     "period": "day", "description": "...", "values": [{"x": 1515715200, "y": 16358233.97}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.fields import (
    Where,
    as_utc,
    days_of,
    decimal,
    epoch_s,
    field,
    require_dict,
    require_list,
    text,
    utc_column,
)
from orchestration.resources.http import JsonClient, UpstreamError

VENUE = "blockchain"
PATH_TEMPLATE = "/charts/{chart}"
DEFAULT_SUBJECTS: tuple[str, ...] = (
    "hash-rate",
    "difficulty",
    "n-transactions",
    "n-unique-addresses",
    "miners-revenue",
)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("chart", "text", "blockchain.com chart name, e.g. hash-rate"),
    ("observed_at", "timestamptz", "the value's day, UTC"),
    ("value", "double precision", ""),
    ("unit", "text", "as blockchain.com names it"),
)
TIME_COLUMN = "observed_at"
KEY_COLUMNS = ("chart", "observed_at")


def fetch(client: JsonClient, chart: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The chart's answer for the days of ``[start, end)``, values filtered to the window."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    path = PATH_TEMPLATE.format(chart=chart)
    where = Where(VENUE, path)
    days = days_of(start, end)
    body = require_dict(
        client.get_json(
            path,
            {
                "start": days[0].isoformat(),
                "timespan": f"{len(days)}days",
                "format": "json",
                "sampled": "false",
            },
        ),
        where,
        "chart",
    )
    if body.get("status") != "ok":
        raise UpstreamError(
            f"chart status {body.get('status')!r}", venue=VENUE, path=path, status=200
        )
    values = require_list(field(body, "values", where, "chart"), where, "chart values")
    kept = [
        v
        for i, v in enumerate(values)
        if start <= epoch_s(field(v, "x", where, i), where, i, "x") < end
    ]
    return {**body, "values": kept}


def parse(payload: Mapping[str, Any], chart: str) -> pd.DataFrame:
    where = Where(VENUE, PATH_TEMPLATE.format(chart=chart))
    body = require_dict(payload, where, "chart")
    unit = text(field(body, "unit", where, "chart"), where, "chart", "unit")
    values = require_list(field(body, "values", where, "chart"), where, "chart values")
    times = [epoch_s(field(v, "x", where, i), where, i, "x") for i, v in enumerate(values)]
    numbers = [decimal(field(v, "y", where, i), where, i, "y") for i, v in enumerate(values)]
    return pd.DataFrame(
        {
            "chart": pd.Series([chart] * len(values), dtype=object),
            "observed_at": utc_column(times),
            "value": np.asarray(numbers, dtype="float64"),
            "unit": pd.Series([unit] * len(values), dtype=object),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
