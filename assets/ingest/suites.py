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


def _prepared(
    required: Sequence[str], *steps: Callable[[pd.DataFrame], pd.DataFrame]
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def prepare(frame: pd.DataFrame) -> pd.DataFrame:
        frame = with_completeness(frame, required)
        for step in steps:
            frame = step(frame)
        return frame

    return prepare


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


def _agg_trades() -> list:
    import great_expectations.expectations as gxe

    return [
        *_common(AGG_TRADE_COLUMNS, AGG_TRADE_COLUMNS, ("symbol", "agg_trade_id")),
        *_positive("price", "quantity"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="last_trade_id",
            column_B="first_trade_id",
            or_equal=True,
            description="last_trade_id >= first_trade_id",
        ),
        *_true("ids_follow_time", "aggregate ids increase with trade time per symbol"),
    ]


AGG_TRADES = FrameSuite(
    name="raw_agg_trades",
    description="not empty, in the partition, no nulls, unique (symbol, id), price and quantity "
    "> 0, first <= last trade id, ids increase with trade time",
    expectations=_agg_trades,
    row_id_columns=("symbol", "agg_trade_id"),
    prepare=_prepared(
        AGG_TRADE_COLUMNS, lambda f: _increasing_ids(f, "agg_trade_id", "trade_time")
    ),
)


def _trade_columns(quantity: str) -> tuple[str, ...]:
    return ("symbol", "trade_id", "trade_time", "price", quantity, "side")


def _trades(quantity: str, extra: Build | None = None) -> Build:
    columns = _trade_columns(quantity)

    def build() -> list:
        return [
            *_common(columns, columns, ("symbol", "trade_id")),
            *_positive("price", quantity),
            *_in_set("side", ("buy", "sell")),
            *_true("ids_follow_time", "trade ids increase with trade time per symbol"),
            *(extra() if extra else []),
        ]

    return build


COINBASE_TRADES = FrameSuite(
    name="raw_coinbase_trades",
    description="not empty, in the partition, no nulls, unique (symbol, trade id), price and "
    "size > 0, side buy/sell, ids increase with trade time",
    expectations=_trades("size"),
    row_id_columns=("symbol", "trade_id"),
    prepare=_prepared(
        _trade_columns("size"), lambda f: _increasing_ids(f, "trade_id", "trade_time")
    ),
)
KRAKEN_TRADES = FrameSuite(
    name="raw_kraken_trades",
    description="not empty, in the partition, no nulls, unique (symbol, trade id), price and "
    "volume > 0, side buy/sell, order type market/limit, ids increase with trade time",
    expectations=_trades("volume", lambda: _in_set("order_type", ("market", "limit"))),
    row_id_columns=("symbol", "trade_id"),
    prepare=_prepared(
        _trade_columns("volume"), lambda f: _increasing_ids(f, "trade_id", "trade_time")
    ),
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


def _order_book() -> list:
    import great_expectations.expectations as gxe

    return [
        *_common(BOOK_COLUMNS, BOOK_COLUMNS, ("symbol", "snapshot_date", "side", "level")),
        *_positive("price", "quantity"),
        *_in_set("side", ("bid", "ask")),
        gxe.ExpectColumnValuesToBeBetween(column="level", min_value=1, description="level >= 1"),
        *_true("book_ordered", "bids fall and asks rise level by level"),
        *_true("book_uncrossed", "best bid below best ask"),
    ]


ORDER_BOOK = FrameSuite(
    name="raw_order_book",
    description="not empty, in the partition, no nulls, unique (symbol, day, side, level), "
    "price and quantity > 0, bids falling and asks rising by level, best bid below best ask",
    expectations=_order_book,
    row_id_columns=("symbol", "side", "level"),
    prepare=_prepared(BOOK_COLUMNS, _book_shape),
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


def _funding() -> list:
    import great_expectations.expectations as gxe

    return [
        *_common(FUNDING_COLUMNS, FUNDING_COLUMNS[:3], ("symbol", "funding_time")),
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


FUNDING_RATES = FrameSuite(
    name="raw_funding_rates",
    description="not empty, in the partition, no nulls, unique (symbol, time), |rate| <= 3%, "
    "mark price > 0 where given, settlements at most 8 hours apart",
    expectations=_funding,
    row_id_columns=("symbol", "funding_time"),
    prepare=_prepared(FUNDING_COLUMNS[:3], _funding_gaps),
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


def _market_caps() -> list:
    import great_expectations.expectations as gxe

    return [
        *_common(MARKET_CAP_COLUMNS, MARKET_CAP_COLUMNS, ("snapshot_date", "coin_id")),
        *_positive("price_usd", "market_cap_usd", "total_market_cap_usd"),
        gxe.ExpectColumnValuesToBeBetween(
            column="dominance_pct", min_value=0, max_value=100, description="dominance 0..100%"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="market_cap_rank", min_value=1, description="rank >= 1"
        ),
        *_true("caps_within_total", "coins' caps within the total market cap"),
    ]


MARKET_CAPS = FrameSuite(
    name="raw_market_caps",
    description="not empty, in the partition, no nulls, unique (day, coin), price, cap and total "
    "> 0, dominance 0..100%, rank >= 1, listed caps within the total",
    expectations=_market_caps,
    row_id_columns=("snapshot_date", "coin_id"),
    prepare=_prepared(MARKET_CAP_COLUMNS, _caps_within_total),
)

FEAR_GREED_CLASSES = ("Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed")


def _fear_greed() -> list:
    import great_expectations.expectations as gxe

    columns = ("observed_at", "value", "classification")
    return [
        *_common(columns, columns, ("observed_at",)),
        gxe.ExpectColumnValuesToBeBetween(
            column="value", min_value=0, max_value=100, description="value 0..100"
        ),
        *_in_set("classification", FEAR_GREED_CLASSES),
    ]


FEAR_GREED = FrameSuite(
    name="raw_fear_greed",
    description="not empty, in the partition, no nulls, one value per time, value 0..100, a "
    "known classification",
    expectations=_fear_greed,
    row_id_columns=("observed_at",),
    prepare=_prepared(("observed_at", "value", "classification")),
)


def _network_stats() -> list:
    columns = ("chart", "observed_at", "value", "unit")
    return [*_common(columns, columns, ("chart", "observed_at")), *_positive("value")]


NETWORK_STATS = FrameSuite(
    name="raw_network_stats",
    description="not empty, in the partition, no nulls, unique (chart, day), values > 0",
    expectations=_network_stats,
    row_id_columns=("chart", "observed_at"),
    prepare=_prepared(("chart", "observed_at", "value", "unit")),
)


def _observations() -> list:
    columns = ("series_id", "observation_date", "value")
    return _common(columns, columns[:2], ("series_id", "observation_date"))


OBSERVATIONS = FrameSuite(
    name="raw_observations",
    description="not empty, in the partition, series and date not null, unique (series, date) "
    "(FRED's missing values are NULL, not errors)",
    expectations=_observations,
    row_id_columns=("series_id", "observation_date"),
    prepare=_prepared(("series_id", "observation_date")),
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


def _documents(source: str) -> Build:
    def build() -> list:
        import great_expectations.expectations as gxe

        return [
            *_common(DOCUMENT_COLUMNS, DOCUMENT_COLUMNS, ("_id",)),
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

    return build


def documents_suite(source: str) -> FrameSuite:
    return FrameSuite(
        name=f"raw_documents_{source}",
        description="not empty, in the partition, unique _id '<source>:<id>', no nulls, title or "
        "text present, http(s) url, partition_date = published_at's day, symbols a list",
        expectations=_documents(source),
        row_id_columns=("_id",),
        prepare=_prepared(DOCUMENT_COLUMNS, _document_shape),
    )
