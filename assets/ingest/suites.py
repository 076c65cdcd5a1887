"""The Great Expectations suites of the raw tables and documents, one contract per kind of data.

Each suite is a :class:`orchestration.quality.FrameSuite`: the expectations (built lazily, GX is
imported only when a suite is created) and the helper columns they check, computed from the
frame by ``prepare``. Every suite also checks the column ``in_partition`` that the raw asset adds
(each row's time falls in the partition being written), and that the partition is not empty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from assets.ingest.sources import fear_greed
from orchestration.quality import FrameSuite

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

IN_PARTITION = "in_partition"
"""Helper column the raw assets add: whether the row's time is inside the partition window."""

Build = Callable[[], "list[Expectation]"]


COMPLETE = "complete"
"""Helper column: the row has a value in every column its suite requires."""


def with_completeness(frame: pd.DataFrame, required: Sequence[str]) -> pd.DataFrame:
    """Add ``complete``; a required column that is missing altogether makes every row fail
    (and the columns expectation says which one)."""
    present = [c for c in required if c in frame.columns]
    complete = frame[present].notna().all(axis=1) if present else pd.Series(True, index=frame.index)
    if len(present) < len(required):
        complete = pd.Series(False, index=frame.index)
    frame[COMPLETE] = complete.astype(bool)
    return frame


def _common(columns: Sequence[str], not_null: Sequence[str], key: Sequence[str]) -> list:
    """Not empty, the columns present, rows inside the partition, no nulls where required
    (one expectation over the ``complete`` helper: a validation costs per expectation, and
    every raw asset runs one per partition), unique key."""
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="partition is not empty"),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*columns, IN_PARTITION], exact_match=False, description="columns present"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=IN_PARTITION, value_set=[True], description="rows inside the partition"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=COMPLETE, value_set=[True], description=f"no nulls in {', '.join(not_null)}"
        ),
    ]
    if len(key) == 1:
        expectations.append(
            gxe.ExpectColumnValuesToBeUnique(column=key[0], description=f"unique {key[0]}")
        )
    else:
        expectations.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=list(key), description=f"unique ({', '.join(key)})"
            )
        )
    return expectations


def _no_checks() -> list:
    return []


def _suite(
    name: str,
    description: str,
    *,
    columns: Sequence[str],
    key: Sequence[str],
    required: Sequence[str] | None = None,
    checks: Build = _no_checks,
    helpers: Sequence[Callable[[pd.DataFrame], pd.DataFrame]] = (),
    row_ids: Sequence[str] | None = None,
) -> FrameSuite:
    """The common contract (:func:`_common`: ``required`` columns, by default all of
    ``columns``, not null; ``key`` unique) followed by the suite's own ``checks``; ``helpers``
    add the helper columns those checks read. Failing rows are quoted by ``row_ids`` (the key
    unless said otherwise)."""
    not_null = tuple(columns if required is None else required)

    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        frame = with_completeness(frame, not_null)
        for helper in helpers:
            frame = helper(frame)
        return frame

    return FrameSuite(
        name=name,
        description=description,
        expectations=lambda: [*_common(columns, not_null, key), *checks()],
        row_id_columns=tuple(key if row_ids is None else row_ids),
        prepare=prepare,
    )


def _positive(*columns: str) -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column=c, min_value=0, strict_min=True, description=f"{c} > 0"
        )
        for c in columns
    ]


def _in_set(column: str, values: Sequence[object]) -> list:
    import great_expectations.expectations as gxe

    shown = ", ".join(map(str, values))
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=column, value_set=list(values), description=f"{column} in {{{shown}}}"
        )
    ]


def _true(column: str, description: str) -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], description=description)
    ]


def _increasing_ids(frame: pd.DataFrame, id_column: str, time_column: str) -> pd.DataFrame:
    """``ids_follow_time``: per symbol, ordered by time then id, every id is above the last."""
    if {"symbol", id_column, time_column} <= set(frame.columns) and not frame.empty:
        ordered = frame.sort_values(["symbol", time_column, id_column], kind="stable")
        steps = ordered.groupby("symbol", sort=False)[id_column].diff()
        frame["ids_follow_time"] = (steps.isna() | (steps > 0)).reindex(frame.index)
    else:
        frame["ids_follow_time"] = pd.Series(True, index=frame.index, dtype=bool)
    return frame


# -- trades ----------------------------------------------------------------------------------------

AGG_TRADE_COLUMNS = (
    "symbol",
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "trade_time",
    "is_buyer_maker",
)


def _agg_trade_checks() -> list:
    import great_expectations.expectations as gxe

    return [
        *_positive("price", "quantity"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="last_trade_id",
            column_B="first_trade_id",
            or_equal=True,
            description="last_trade_id >= first_trade_id",
        ),
        *_true("ids_follow_time", "aggregate ids increase with trade time per symbol"),
    ]


AGG_TRADES = _suite(
    "raw_agg_trades",
    "not empty, in the partition, no nulls, unique (symbol, id), price and quantity > 0, first "
    "<= last trade id, ids increase with trade time",
    columns=AGG_TRADE_COLUMNS,
    key=("symbol", "agg_trade_id"),
    checks=_agg_trade_checks,
    helpers=(lambda f: _increasing_ids(f, "agg_trade_id", "trade_time"),),
)


def _trades_suite(
    name: str, description: str, quantity: str, extra: Build = _no_checks
) -> FrameSuite:
    def checks() -> list:
        return [
            *_positive("price", quantity),
            *_in_set("side", ("buy", "sell")),
            *_true("ids_follow_time", "trade ids increase with trade time per symbol"),
            *extra(),
        ]

    return _suite(
        name,
        description,
        columns=("symbol", "trade_id", "trade_time", "price", quantity, "side"),
        key=("symbol", "trade_id"),
        checks=checks,
        helpers=(lambda f: _increasing_ids(f, "trade_id", "trade_time"),),
    )


COINBASE_TRADES = _trades_suite(
    "raw_coinbase_trades",
    "not empty, in the partition, no nulls, unique (symbol, trade id), price and size > 0, side "
    "buy/sell, ids increase with trade time",
    "size",
)
KRAKEN_TRADES = _trades_suite(
    "raw_kraken_trades",
    "not empty, in the partition, no nulls, unique (symbol, trade id), price and volume > 0, side "
    "buy/sell, order type market/limit, ids increase with trade time",
    "volume",
    lambda: _in_set("order_type", ("market", "limit")),
)


# -- order books -----------------------------------------------------------------------------------

BOOK_COLUMNS = (
    "symbol",
    "snapshot_date",
    "taken_at",
    "update_id",
    "side",
    "level",
    "price",
    "quantity",
)


def _book_shape(frame: pd.DataFrame) -> pd.DataFrame:
    """``book_ordered``: bids fall and asks rise with the level; ``book_uncrossed``: the best bid
    is below the best ask of the same snapshot."""
    ordered = pd.Series(True, index=frame.index, dtype=bool)
    uncrossed = pd.Series(True, index=frame.index, dtype=bool)
    if set(BOOK_COLUMNS) <= set(frame.columns) and not frame.empty:
        snapshot = ["symbol", "snapshot_date"]
        by_level = frame.sort_values([*snapshot, "side", "level"], kind="stable")
        steps = by_level.groupby([*snapshot, "side"], sort=False)["price"].diff()
        falling = by_level["side"].eq("bid") & (steps >= 0)
        rising = by_level["side"].eq("ask") & (steps <= 0)
        ordered = (~(falling | rising)).reindex(frame.index)
        best = frame[frame["level"] == 1].pivot_table(
            index=snapshot, columns="side", values="price", aggfunc="first"
        )
        if {"bid", "ask"} <= set(best.columns):
            good = (best["bid"] < best["ask"]).rename("ok").reset_index()
            uncrossed = frame[snapshot].merge(good, on=snapshot, how="left")["ok"].fillna(False)
            uncrossed.index = frame.index
    frame["book_ordered"] = ordered.astype(bool)
    frame["book_uncrossed"] = uncrossed.astype(bool)
    return frame


def _order_book_checks() -> list:
    import great_expectations.expectations as gxe

    return [
        *_positive("price", "quantity"),
        *_in_set("side", ("bid", "ask")),
        gxe.ExpectColumnValuesToBeBetween(column="level", min_value=1, description="level >= 1"),
        *_true("book_ordered", "bids fall and asks rise level by level"),
        *_true("book_uncrossed", "best bid below best ask"),
    ]


ORDER_BOOK = _suite(
    "raw_order_book",
    "not empty, in the partition, no nulls, unique (symbol, day, side, level), price and "
    "quantity > 0, bids falling and asks rising by level, best bid below best ask",
    columns=BOOK_COLUMNS,
    key=("symbol", "snapshot_date", "side", "level"),
    checks=_order_book_checks,
    helpers=(_book_shape,),
    row_ids=("symbol", "side", "level"),
)


# -- funding rates ---------------------------------------------------------------------------------

FUNDING_COLUMNS = ("symbol", "funding_time", "funding_rate", "mark_price")
MAX_FUNDING_RATE = 0.03
"""Binance caps funding well inside 3% per interval; anything beyond is a parse or unit error."""


def _funding_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """``hours_since_prev``: per symbol, hours since the previous settlement (NaN on the first)."""
    hours = pd.Series(float("nan"), index=frame.index, dtype="float64")
    if {"symbol", "funding_time"} <= set(frame.columns) and not frame.empty:
        ordered = frame.sort_values(["symbol", "funding_time"], kind="stable")
        steps = ordered.groupby("symbol", sort=False)["funding_time"].diff()
        hours = (steps.dt.total_seconds() / 3600).reindex(frame.index).astype("float64")
    frame["hours_since_prev"] = hours
    return frame


def _funding_checks() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="funding_rate",
            min_value=-MAX_FUNDING_RATE,
            max_value=MAX_FUNDING_RATE,
            description=f"|funding_rate| <= {MAX_FUNDING_RATE}",
        ),
        *_positive("mark_price"),
        gxe.ExpectColumnValuesToBeBetween(
            column="hours_since_prev",
            min_value=0.5,
            max_value=8.05,
            description="settlements 0.5 to 8 hours apart",
        ),
    ]


FUNDING_RATES = _suite(
    "raw_funding_rates",
    "not empty, in the partition, no nulls, unique (symbol, time), |rate| <= 3%, mark price > 0 "
    "where given, settlements at most 8 hours apart",
    columns=FUNDING_COLUMNS,
    required=FUNDING_COLUMNS[:3],
    key=("symbol", "funding_time"),
    checks=_funding_checks,
    helpers=(_funding_gaps,),
)


# -- market-wide statistics ------------------------------------------------------------------------

MARKET_CAP_COLUMNS = (
    "snapshot_date",
    "taken_at",
    "coin_id",
    "symbol",
    "price_usd",
    "market_cap_usd",
    "total_market_cap_usd",
)


def _caps_within_total(frame: pd.DataFrame) -> pd.DataFrame:
    """``caps_within_total``: the listed coins' caps add up to at most the market's total."""
    ok = pd.Series(True, index=frame.index, dtype=bool)
    if {"snapshot_date", "market_cap_usd", "total_market_cap_usd"} <= set(frame.columns):
        listed = frame.groupby("snapshot_date")["market_cap_usd"].transform("sum")
        ok = (listed <= frame["total_market_cap_usd"] * 1.0001).astype(bool)
    frame["caps_within_total"] = ok
    return frame


def _market_cap_checks() -> list:
    import great_expectations.expectations as gxe

    return [
        *_positive("price_usd", "market_cap_usd", "total_market_cap_usd"),
        gxe.ExpectColumnValuesToBeBetween(
            column="dominance_pct", min_value=0, max_value=100, description="dominance 0..100%"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="market_cap_rank", min_value=1, description="rank >= 1"
        ),
        *_true("caps_within_total", "coins' caps within the total market cap"),
    ]


MARKET_CAPS = _suite(
    "raw_market_caps",
    "not empty, in the partition, no nulls, unique (day, coin), price, cap and total > 0, "
    "dominance 0..100%, rank >= 1, listed caps within the total",
    columns=MARKET_CAP_COLUMNS,
    key=("snapshot_date", "coin_id"),
    checks=_market_cap_checks,
    helpers=(_caps_within_total,),
)


def _fear_greed_checks() -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="value", min_value=0, max_value=100, description="value 0..100"
        ),
        *_in_set("classification", fear_greed.CLASSIFICATIONS),
    ]


FEAR_GREED = _suite(
    "raw_fear_greed",
    "not empty, in the partition, no nulls, one value per time, value 0..100, a known "
    "classification",
    columns=("observed_at", "value", "classification"),
    key=("observed_at",),
    checks=_fear_greed_checks,
)

NETWORK_STATS = _suite(
    "raw_network_stats",
    "not empty, in the partition, no nulls, unique (chart, day), values > 0",
    columns=("chart", "observed_at", "value", "unit"),
    key=("chart", "observed_at"),
    checks=lambda: _positive("value"),
)

OBSERVATIONS = _suite(
    "raw_observations",
    "not empty, in the partition, series and date not null, unique (series, date) (FRED's "
    "missing values are NULL, not errors)",
    columns=("series_id", "observation_date", "value"),
    required=("series_id", "observation_date"),
    key=("series_id", "observation_date"),
)


# -- documents -------------------------------------------------------------------------------------

DOCUMENT_COLUMNS = ("_id", "source", "native_id", "published_at", "partition_date")


def _document_shape(frame: pd.DataFrame) -> pd.DataFrame:
    """``day_matches``: partition_date is published_at's UTC day; ``text_length``: characters
    of title and text together; ``symbols_are_list``: symbols is a list of tickers."""
    if {"published_at", "partition_date"} <= set(frame.columns) and not frame.empty:
        days = pd.to_datetime(frame["published_at"], utc=True).dt.strftime("%Y-%m-%d")
        frame["day_matches"] = (days == frame["partition_date"]).astype(bool)
    else:
        frame["day_matches"] = pd.Series(True, index=frame.index, dtype=bool)
    title = frame["title"].fillna("") if "title" in frame else ""
    body = frame["text"].fillna("") if "text" in frame else ""
    frame["text_length"] = (
        pd.Series(title, index=frame.index).astype(str).str.len()
        + pd.Series(body, index=frame.index).astype(str).str.len()
    ).astype("int64")
    symbols = frame["symbols"] if "symbols" in frame else pd.Series([None] * len(frame))
    frame["symbols_are_list"] = [
        isinstance(s, list) and all(isinstance(t, str) for t in s) for s in symbols
    ]
    return frame


def documents_suite(source: str) -> FrameSuite:
    def checks() -> list:
        import great_expectations.expectations as gxe

        return [
            *_in_set("source", (source,)),
            gxe.ExpectColumnValuesToMatchRegex(
                column="_id", regex=rf"^{source}:.+$", description=f"_id is '{source}:<id>'"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="text_length", min_value=1, description="title or text not empty"
            ),
            gxe.ExpectColumnValuesToMatchRegex(
                column="url", regex=r"^https?://", description="url is http(s)"
            ),
            *_true("day_matches", "partition_date is published_at's UTC day"),
            *_true("symbols_are_list", "symbols is a list of tickers"),
        ]

    return _suite(
        f"raw_documents_{source}",
        "not empty, in the partition, unique _id '<source>:<id>', no nulls, title or text "
        "present, http(s) url, partition_date = published_at's day, symbols a list",
        columns=DOCUMENT_COLUMNS,
        key=("_id",),
        checks=checks,
        helpers=(_document_shape,),
    )
