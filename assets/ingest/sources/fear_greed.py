"""The crypto Fear & Greed index (alternative.me, ``GET /fng/``) -> ``raw.fear_greed_index``.

The API has no start parameter: ``limit=0`` returns the whole history (one value per day since
2018-02-01, newest first, a couple of thousand small objects), which ``fetch`` filters to
``[start, end)``. History up to "now" depends on when it is asked, so it goes through
``get_json_at`` (a replay answers as of the window's end).

A response::

    {"name": "Fear and Greed Index", "data": [{"value": "40", "value_classification": "Fear",
      "timestamp": "1551157200", "time_until_update": "68499"}], "metadata": {"error": null}}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.fields import (
    Where,
    as_utc,
    epoch_s,
    field,
    require_dict,
    require_list,
    text,
    utc_column,
    whole,
)
from orchestration.resources.http import TimedJsonClient, UpstreamError

VENUE = "alternative_me"
PATH = "/fng/"
DEFAULT_SUBJECTS: tuple[str, ...] = ("crypto",)
"""One subject: the index (alternative.me publishes a single crypto index)."""
CLASSIFICATIONS: tuple[str, ...] = ("Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed")
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("observed_at", "timestamptz", "the value's timestamp, UTC"),
    ("value", "integer", "0 (extreme fear) .. 100 (extreme greed)"),
    ("classification", "text", "alternative.me's label for the value"),
)
TIME_COLUMN = "observed_at"
KEY_COLUMNS = ("observed_at",)
WHERE = Where(VENUE, PATH)


def fetch(
    client: TimedJsonClient, index: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The index values timestamped in ``[start, end)``, oldest first."""
    start, end = as_utc(start, "start"), as_utc(end, "end")
    body = require_dict(
        client.get_json_at(PATH, {"limit": 0, "format": "json"}, at=end).body, WHERE, "index"
    )
    metadata = body.get("metadata") or {}
    if isinstance(metadata, dict) and metadata.get("error"):
        raise UpstreamError(
            f"alternative.me error: {metadata['error']}", venue=VENUE, path=PATH, status=200
        )
    values = require_list(field(body, "data", WHERE, "response"), WHERE, "index values")
    chosen = []
    for i, value in enumerate(values):
        moment = epoch_s(field(value, "timestamp", WHERE, i), WHERE, i, "timestamp")
        if start <= moment < end:
            chosen.append((moment, value))
    return [value for _, value in sorted(chosen, key=lambda pair: pair[0])]


def parse(payload: Sequence[Any], index: str) -> pd.DataFrame:
    values = require_list(list(payload), WHERE, "index values")
    times, numbers, labels = [], [], []
    for i, value in enumerate(values):
        times.append(epoch_s(field(value, "timestamp", WHERE, i), WHERE, i, "timestamp"))
        numbers.append(whole(field(value, "value", WHERE, i), WHERE, i, "value"))
        labels.append(
            text(field(value, "value_classification", WHERE, i), WHERE, i, "value_classification")
        )
    return pd.DataFrame(
        {
            "observed_at": utc_column(times),
            "value": np.asarray(numbers, dtype="int64"),
            "classification": pd.Series(labels, dtype=object),
        },
        columns=[name for name, _, _ in COLUMNS],
    )
