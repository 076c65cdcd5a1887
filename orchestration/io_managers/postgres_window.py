"""Stores partitioned DataFrames in PostgreSQL by replacing the partition's time window.

Every time-partitioned asset of the project writes through this IO manager, so a re-run or a
backfill of a window never duplicates: the window's rows are deleted and the new rows inserted in
one transaction (a failure leaves the previous rows untouched). The target table and its time
column come from the asset's definition metadata, as dagster-duckdb's ``partition_expr`` does:

    metadata={"table": "raw.binance_ohlcv", "partition_expr": "open_time"}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from orchestration.resources.postgres import PostgresStoreResource

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
_TABLE_KEY = "table"
_PARTITION_EXPR_KEY = "partition_expr"


class PostgresWindowIOManager(dg.ConfigurableIOManager):
    """Delete-the-window-then-insert persistence for time-partitioned DataFrame assets."""

    postgres: PostgresStoreResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "PostgresWindowIOManager stores pandas DataFrames"
            )
        table, partition_expr = _table_and_expr(context.definition_metadata, context.asset_key)
        start, end = _window(context)
        written = replace_window(
            self.postgres.get_engine(),
            table,
            obj,
            partition_expr=partition_expr,
            start=start,
            end=end,
        )
        context.add_output_metadata(
            {
                "dagster/row_count": written,
                "table": table,
                "window_start": start.isoformat() if start else None,
                "window_end": end.isoformat() if end else None,
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        assert upstream is not None
        table, partition_expr = _table_and_expr(upstream.definition_metadata, context.asset_key)
        start, end = (None, None)
        if context.has_asset_partitions:
            window = context.asset_partitions_time_window
            start, end = window.start, window.end
        return read_window(self.postgres.get_engine(), table, partition_expr, start, end)


def _table_and_expr(
    metadata: dg.ArbitraryMetadataMapping | None, key: dg.AssetKey
) -> tuple[str, str]:
    metadata = metadata or {}
    table, expr = metadata.get(_TABLE_KEY), metadata.get(_PARTITION_EXPR_KEY)
    if not table or not expr:
        raise ValueError(
            f"asset {key.to_user_string()} must declare metadata 'table' and 'partition_expr' "
            "to be stored by PostgresWindowIOManager"
        )
    return str(table), str(expr)


def _identifier(name: str, what: str) -> str:
    """Table and column names are spliced into SQL, so only plain identifiers are accepted."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} is not a plain [schema.]identifier")
    return name


def _window(context: dg.OutputContext) -> tuple[datetime | None, datetime | None]:
    if not context.has_asset_partitions:
        return None, None
    window = context.asset_partitions_time_window
    return window.start, window.end


def replace_window(
    engine: sa.Engine,
    table: str,
    frame: pd.DataFrame,
    *,
    partition_expr: str,
    start: datetime | None,
    end: datetime | None,
) -> int:
    """Replace ``[start, end)`` of ``table`` (the whole table when unpartitioned) by ``frame``.

    Rows of ``frame`` outside the window are refused rather than silently written, since they
    would escape the next re-run's delete and duplicate.
    """
    with engine.begin() as conn:
        return replace_window_in(
            conn, table, frame, partition_expr=partition_expr, start=start, end=end
        )


def replace_window_in(
    conn: sa.Connection,
    table: str,
    frame: pd.DataFrame,
    *,
    partition_expr: str,
    start: datetime | None,
    end: datetime | None,
) -> int:
    """The body of :func:`replace_window` on an open transaction, so that several tables can be
    replaced atomically together (the trading job writes five)."""
    _identifier(table, "table")
    _identifier(partition_expr, "partition column")
    for column in frame.columns:
        _identifier(str(column), "column")
    if start is not None and end is not None and _is_date_column(frame, partition_expr):
        # Compare a date column with dates, not with timestamps a session zone would shift.
        start, end = start.date(), end.date()  # type: ignore[assignment]
    if start is not None and end is not None and not frame.empty:
        times = pd.to_datetime(frame[partition_expr], utc=True)
        lower, upper = _utc(start), _utc(end)
        outside = frame[times.isna() | (times < lower) | (times >= upper)]
        if not outside.empty:
            raise ValueError(
                f"{len(outside)} rows for {table} fall outside the partition window "
                f"[{start.isoformat()}, {end.isoformat()}), e.g. {partition_expr}="
                f"{outside[partition_expr].iloc[0]}"
            )
    if start is not None and end is not None:
        conn.execute(
            sa.text(
                f"DELETE FROM {table} WHERE {partition_expr} >= :start AND {partition_expr} < :end"
            ),
            {"start": start, "end": end},
        )
    else:
        conn.execute(sa.text(f"DELETE FROM {table}"))
    if frame.empty:
        return 0
    columns = list(frame.columns)
    quoted = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
        for row in _rows(frame, columns):
            copy.write_row(row)
    return len(frame)


def _utc(moment: date | datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _is_date_column(frame: pd.DataFrame, column: str) -> bool:
    values = frame[column].dropna() if column in frame.columns else pd.Series(dtype=object)
    return not values.empty and all(
        isinstance(v, date) and not isinstance(v, datetime) for v in values.head(5)
    )


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> Iterable[tuple[Any, ...]]:
    for row in frame[list(columns)].itertuples(index=False, name=None):
        yield tuple(_plain(v) for v in row)


def _plain(value: Any) -> Any:
    """Turn pandas/numpy scalars into what psycopg's COPY adapts (NaN and NaT become NULL)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def read_window(
    engine: sa.Engine,
    table: str,
    partition_expr: str,
    start: datetime | None,
    end: datetime | None,
    *,
    order_by: str | None = None,
) -> pd.DataFrame:
    """Read ``[start, end)`` of ``table`` (all rows when no window)."""
    sql = f"SELECT * FROM {_identifier(table, 'table')}"
    params: dict[str, Any] = {}
    if start is not None and end is not None:
        column = _identifier(partition_expr, "partition column")
        sql += f" WHERE {column} >= :start AND {column} < :end"
        params = {"start": start, "end": end}
    columns = (order_by or partition_expr).split(",")
    ordering = [_identifier(c.strip(), "order column") for c in columns]
    sql += f" ORDER BY {', '.join(ordering)}"
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params=params)
