"""The common order-book snapshot schema of ``raw.<venue>_order_book`` tables.

One row per (symbol, snapshot day, side, level): level 1 is the best price of its side. The
venue's answer is stored as given (a crossed or unsorted book parses fine); catching such a
book is the quality suite's job, and it has to be stored to be caught.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from assets.ingest.sources.candles import canonical_symbol
from assets.ingest.sources.fields import (
    DaySnapshot,
    Where,
    decimal,
    field,
    item,
    require_dict,
    utc_column,
    whole,
)

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("symbol", "text", "BASE/QUOTE, e.g. ETH/BTC"),
    ("snapshot_date", "date", "the partition day the snapshot fills"),
    ("taken_at", "timestamptz", "when the venue answered, UTC"),
    ("update_id", "bigint", "the venue's book sequence (Binance lastUpdateId, Coinbase sequence)"),
    ("side", "text", "bid or ask"),
    ("level", "integer", "1 = best price of the side"),
    ("price", "double precision", "in the quote asset"),
    ("quantity", "double precision", "in the base asset"),
    ("order_count", "integer", "orders at the level, where the venue says (Coinbase)"),
)
TIME_COLUMN = "snapshot_date"
KEY_COLUMNS = ("symbol", "snapshot_date", "side", "level")


def parse_snapshots(
    payload: Sequence[DaySnapshot],
    symbol: str,
    where: Where,
    *,
    what: str,
    row: str,
    sequence_field: str,
    with_counts: bool,
) -> pd.DataFrame:
    """A venue's day snapshots -> rows. Each body is a JSON object with ``bids``, ``asks`` and
    the book's sequence in ``sequence_field``; errors call the body ``what`` and ``row``."""
    frames = []
    for snapshot in payload:
        body = require_dict(snapshot.body, where, what)
        update_id = whole(field(body, sequence_field, where, row), where, row, sequence_field)
        frames.append(
            _book_frame(
                canonical_symbol(symbol),
                snapshot,
                update_id,
                field(body, "bids", where, row),
                field(body, "asks", where, row),
                where,
                with_counts=with_counts,
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else empty_book()


def _book_frame(
    symbol: str,
    snapshot: DaySnapshot,
    update_id: int,
    bids: Sequence[Any],
    asks: Sequence[Any],
    where: Where,
    *,
    with_counts: bool,
) -> pd.DataFrame:
    """Rows of one snapshot; a level is ``[price, quantity]`` or ``[price, quantity, orders]``."""
    rows: dict[str, list[Any]] = {name: [] for name, _, _ in COLUMNS}
    for side, levels in (("bid", bids), ("ask", asks)):
        if not isinstance(levels, list):
            raise where.error(f"{side}s are not a JSON array: {levels!r:.80}")
        for level, entry in enumerate(levels, start=1):
            row = f"{side} {level}"
            rows["price"].append(decimal(item(entry, 0, "price", where, row), where, row, "price"))
            rows["quantity"].append(
                decimal(item(entry, 1, "quantity", where, row), where, row, "quantity")
            )
            rows["order_count"].append(
                whole(item(entry, 2, "num_orders", where, row), where, row, "num_orders")
                if with_counts
                else None
            )
            rows["side"].append(side)
            rows["level"].append(level)
    count = len(rows["side"])
    return pd.DataFrame(
        {
            "symbol": pd.Series([symbol] * count, dtype=object),
            "snapshot_date": pd.Series([snapshot.snapshot_date] * count, dtype=object),
            "taken_at": utc_column([snapshot.taken_at] * count),
            "update_id": pd.Series([update_id] * count, dtype="int64"),
            "side": pd.Series(rows["side"], dtype=object),
            "level": pd.Series(rows["level"], dtype="int64"),
            "price": np.asarray(rows["price"], dtype="float64"),
            "quantity": np.asarray(rows["quantity"], dtype="float64"),
            # object, not Int64: a missing count is None (SQL NULL), never pandas' NA
            "order_count": pd.Series(rows["order_count"], dtype=object),
        },
        columns=[name for name, _, _ in COLUMNS],
    )


def empty_book() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name, _, _ in COLUMNS})
