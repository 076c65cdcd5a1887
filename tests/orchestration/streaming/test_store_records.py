"""``TickStore.write_records``: the streaming service's batches, stored as ``write`` stores them.

InfluxDB takes a fast path that builds the line protocol straight from the parsed rows; it must
produce exactly the lines of ``to_line_protocol(normalize_ticks(...))``, and hand anything that
is not plain and valid to the DataFrame path, which names the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.ingest.streams import binance, coinbase
from orchestration.resources.ticks import (
    InfluxTickStore,
    ParquetTickStore,
    TickValidationError,
    normalize_ticks,
    record_lines,
    to_line_protocol,
)
from orchestration.streaming.model import Tick
from orchestration.streaming.replay import read_recording
from tests.support.streaming import BTC_TICKS, CRYPTOFEED_BINANCE, CRYPTOFEED_COINBASE


@pytest.fixture(scope="module")
def parsed(shared_data: Path) -> list[Tick]:
    ticks: list[Tick] = []
    for path, module in ((BTC_TICKS, binance), (CRYPTOFEED_BINANCE, binance),
                         (CRYPTOFEED_COINBASE, coinbase)):  # fmt: skip
        for message in read_recording(shared_data / path):
            ticks.extend(module.parse(message.payload, message.received_ns).ticks)
    return ticks


def test_fast_lines_equal_the_dataframe_lines(parsed: list[Tick]) -> None:
    odd = [
        Tick("v", "A B,C=D\\x", "trade", 5, 0.1, 2.0, "buy", None, None, None, None, "x 1"),
        Tick("v", "S", "book_top", 6, None, None, None, 1.5, None, None, None, ""),
        Tick("v", "S", "book_top", 6, None, None, None, 1.6, 2.0, None, 3.0, ""),  # wins
    ]
    rows = parsed + odd
    fast = record_lines(rows)
    slow = to_line_protocol(normalize_ticks(pd.DataFrame(rows)))
    assert len(fast) == len(slow) == len(rows) - 1
    assert sorted(fast) == sorted(slow)


def test_what_is_not_plain_goes_the_dataframe_way(tmp_path: Path) -> None:
    trade = Tick("v", "S", "trade", 5, 1.0, 2.0, "buy", None, None, None, None, "1")

    class Spy(InfluxTickStore):
        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:9", "", "o", "b")
            self.frames: list[pd.DataFrame] = []
            self.posted: list[list[str]] = []

        def write(self, ticks: pd.DataFrame) -> int:
            self.frames.append(ticks)
            return super().write(ticks)

        def _post(self, lines: list[str]) -> None:
            self.posted.append(lines)

    store = Spy()
    assert store.write_records([trade]) == 1 and not store.frames  # plain: the fast path
    assert store.write_records([trade._replace(ts=np.int64(5), size=2)]) == 1
    assert len(store.frames) == 1  # numpy and int values: normalised first, same line
    assert store.posted[0] == store.posted[1]
    for bad, message in [
        (trade._replace(price=None), "needs a price and a size"),
        (trade._replace(side="long"), "unknown side"),
        (trade._replace(size=float("inf")), "finite"),
        (trade._replace(kind="quote"), "unknown kind"),
    ]:
        with pytest.raises(TickValidationError, match=message):
            store.write_records([bad])
    assert len(store.posted) == 2, "nothing invalid was sent"

    # Stores without a fast path take the rows through write().
    parquet = ParquetTickStore(tmp_path)
    assert parquet.write_records([trade, trade]) == 1
    assert parquet.read("v", "S", 0, 10)["trade_id"].tolist() == ["1"]
