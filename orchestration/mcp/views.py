"""What an assistant may read: bounded, JSON-ready views of the pipeline's tables.

Each view is one or two parameterised queries with a row limit (never a table dump) and answers
in plain JSON types: timestamps as ISO-8601 UTC strings, NaN as null. Time series (candles,
features, regimes, sentiment, PnL) come oldest first, ending at the newest row; logs (orders,
fills, proposals, verdicts) newest first. A view that needs a table the pipeline has not written
yet says which table and how to get it, instead of failing with a driver error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchestration.mcp.arguments import MAX_ROWS, url_safe
from orchestration.mcp.errors import MissingTable, NotFound
from orchestration.trading_control import TradingControl
from trading.config import CommitteeConfig

_UNDEFINED_TABLE = "42P01"
_RELATION = re.compile(r'relation "([\w.]+)" does not exist')
_HINTS = {
    "analytics.stg_binance_ohlcv": (
        "the dbt models have not run here (run `coinswarm demo`, or materialise "
        "analytics/stg_binance_ohlcv in the Dagster UI)"
    ),
}
_DEFAULT_HINT = "the pipeline has not written it yet (run `coinswarm demo` or its Dagster asset)"
MAX_FAILURE_TEXT = 500
"""Characters kept of one quality failure message (they quote example rows)."""

_CANDLES = sa.text(
    "SELECT open_time AS ts, open, high, low, close, volume FROM analytics.stg_binance_ohlcv "
    'WHERE symbol = :symbol AND "interval" = :interval ORDER BY open_time DESC LIMIT :limit'
)
_CANDLE_PAIRS = sa.text(
    "SELECT symbol, count(*) AS candles, min(open_time) AS first_ts, max(open_time) AS last_ts "
    'FROM analytics.stg_binance_ohlcv WHERE "interval" = :interval GROUP BY symbol '
    "ORDER BY symbol LIMIT :limit"
)
_FEATURES = sa.text(
    "SELECT * FROM signals.features WHERE symbol = :symbol ORDER BY ts DESC LIMIT :limit"
)
_REGIMES = sa.text(
    "SELECT ts, regime, trend_strength, vol_ratio FROM signals.regimes "
    "WHERE symbol = :symbol ORDER BY ts DESC LIMIT :limit"
)
_SENTIMENT = sa.text(
    "SELECT hour, n_documents, mean_compound, pos_share, neg_share, sources "
    "FROM signals.sentiment_hourly WHERE symbol = :ticker ORDER BY hour DESC LIMIT :limit"
)
_SENTIMENT_LATEST = sa.text(
    "SELECT * FROM (SELECT DISTINCT ON (symbol) symbol, hour, n_documents, mean_compound, "
    "pos_share, neg_share, sources FROM signals.sentiment_hourly ORDER BY symbol, hour DESC) "
    "latest ORDER BY symbol LIMIT :limit"
)
_POSITIONS = sa.text(
    "SELECT partition_date, symbol, quantity, avg_price, mark_price, unrealized_pnl, "
    "realized_pnl FROM trading.positions "
    "WHERE partition_date = (SELECT max(partition_date) FROM trading.positions) "
    "ORDER BY symbol LIMIT :limit"
)
_EQUITY_ON = sa.text("SELECT equity FROM trading.pnl WHERE partition_date = :day")
_ORDERS = sa.text(
    "SELECT client_order_id, ts, partition_date, symbol, side, quantity, order_type, "
    "limit_price, status, reason FROM trading.orders "
    "WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol "
    "ORDER BY ts DESC, client_order_id DESC LIMIT :limit"
)
_ORDER_COUNT = sa.text(
    "SELECT count(*) FROM trading.orders WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol"
)
_FILLS = sa.text(
    "SELECT fill_id, client_order_id, ts, partition_date, symbol, side, quantity, price, fee, "
    "liquidity FROM trading.fills WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol "
    "ORDER BY ts DESC, fill_id DESC LIMIT :limit"
)
_FILL_COUNT = sa.text(
    "SELECT count(*), coalesce(sum(fee), 0) AS fees FROM trading.fills "
    "WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol"
)
_PNL = sa.text(
    "SELECT partition_date, cash, equity, realized_pnl, unrealized_pnl, fees, gross_exposure, "
    "net_exposure, risk_state, peak_equity FROM trading.pnl "
    "ORDER BY partition_date DESC LIMIT :limit"
)
_PNL_SUMMARY = sa.text(
    "SELECT count(*) AS days, min(partition_date) AS first_day, max(partition_date) AS last_day, "
    "max(greatest(peak_equity, equity)) AS peak_equity FROM trading.pnl"
)
_VERDICTS = sa.text(
    "SELECT asset, partition_date, passed, rows_checked, failures, checked_at "
    "FROM quality.candle_verdicts WHERE NOT (passed AND :failed_only) "
    "ORDER BY partition_date DESC, asset LIMIT :limit"
)
_VERDICT_TOTALS = sa.text(
    "SELECT asset, count(*) AS days, count(*) FILTER (WHERE passed) AS passed, "
    "count(*) FILTER (WHERE NOT passed) AS failed, min(partition_date) AS first_day, "
    "max(partition_date) AS last_day, max(checked_at) AS last_checked_at "
    "FROM quality.candle_verdicts GROUP BY asset ORDER BY asset"
)
_PROPOSALS = sa.text(
    "SELECT id, ts, actor, symbol, side, quantity, reference_price, approved, "
    "approved_quantity, risk_state, reason FROM trading.order_proposals "
    "ORDER BY id DESC LIMIT :limit"
)
_LATEST_DECISIONS = sa.text(
    "SELECT DISTINCT ON (symbol) symbol, ts, direction, confidence, regime, votes, outcome, "
    "reason, decided_under, memory_scale FROM trading.decisions "
    "WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol ORDER BY symbol, ts DESC"
)
_LATEST_FEATURES = sa.text(
    "SELECT DISTINCT ON (symbol) * FROM signals.features "
    "WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol ORDER BY symbol, ts DESC"
)
_LATEST_REGIMES = sa.text(
    "SELECT DISTINCT ON (symbol) symbol, ts, regime, trend_strength, vol_ratio "
    "FROM signals.regimes WHERE CAST(:symbol AS text) IS NULL OR symbol = :symbol "
    "ORDER BY symbol, ts DESC"
)


def jsonable(value: Any) -> Any:
    """Plain JSON types: ISO-8601 UTC timestamps, ISO dates, NaN and infinities as null."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Enum):
        return jsonable(value.value)
    return value


def fetch_rows(conn: sa.Connection, query: sa.TextClause, **params: Any) -> list[dict[str, Any]]:
    """Rows as dicts of driver values; a missing table becomes ``MissingTable`` naming it."""
    try:
        return [dict(row) for row in conn.execute(query, params).mappings()]
    except sa.exc.ProgrammingError as exc:
        raise _missing_table(exc) from None


def fetch(conn: sa.Connection, query: sa.TextClause, **params: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (see ``jsonable``)."""
    return [jsonable(row) for row in fetch_rows(conn, query, **params)]


def fetch_scalar(conn: sa.Connection, query: sa.TextClause, **params: Any) -> Any:
    try:
        return conn.execute(query, params).scalar()
    except sa.exc.ProgrammingError as exc:
        raise _missing_table(exc) from None


def _missing_table(exc: sa.exc.ProgrammingError) -> Exception:
    original = exc.orig
    code = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if code != _UNDEFINED_TABLE:
        return exc
    match = _RELATION.search(str(original))
    table = match[1] if match else "a table this answer needs"
    return MissingTable(table, _HINTS.get(table, _DEFAULT_HINT))


class TradingViews:
    """Read-only views over one database. ``candle_interval`` is the traded feed's bar length
    (the trading job decides on those candles only)."""

    def __init__(
        self,
        engine: sa.Engine,
        committee_config: CommitteeConfig,
        *,
        candle_interval: str,
        data_quality_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.config = committee_config
        self.candle_interval = candle_interval
        self.data_quality_dir = data_quality_dir

    # -- market data ------------------------------------------------------------------------

    def pairs(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _CANDLE_PAIRS, interval=self.candle_interval, limit=MAX_ROWS)
        for row in rows:
            safe = url_safe(row["symbol"])
            row["resources"] = [
                f"coinswarm://{what}/{safe}" for what in ("candles", "features", "regimes")
            ]
        return {"interval": self.candle_interval, "quote": self.config.quote, "pairs": rows}

    def candles(self, symbol: str, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _CANDLES, symbol=symbol, interval=self.candle_interval, limit=limit)
            if not rows:
                raise NotFound(
                    f"no candles for {symbol} at {self.candle_interval}; "
                    f"pairs with candles: {self._known(conn, 'analytics.stg_binance_ohlcv')}"
                )
        return self._series(symbol, rows, interval=self.candle_interval)

    def features(self, symbol: str, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _FEATURES, symbol=symbol, limit=limit)
            if not rows:
                raise NotFound(
                    f"no features for {symbol}; pairs with features: "
                    f"{self._known(conn, 'signals.features')}"
                )
        for row in rows:
            row.pop("symbol", None)
        return self._series(symbol, rows)

    def regimes(self, symbol: str, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _REGIMES, symbol=symbol, limit=limit)
            if not rows:
                raise NotFound(
                    f"no regimes for {symbol}; pairs with regimes: "
                    f"{self._known(conn, 'signals.regimes')}"
                )
        return self._series(symbol, rows)

    def sentiment(self, ticker: str, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _SENTIMENT, ticker=ticker, limit=limit)
            if not rows:
                raise NotFound(
                    f"no hourly sentiment for {ticker}; tickers with sentiment: "
                    f"{self._known(conn, 'signals.sentiment_hourly')}"
                )
        rows.reverse()
        return {"ticker": ticker, "count": len(rows), "rows": rows}

    def latest_sentiment(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _SENTIMENT_LATEST, limit=MAX_ROWS)
        for row in rows:
            row["resource"] = f"coinswarm://sentiment/{row['symbol']}"
        return {"latest_hour_per_ticker": rows}

    # -- the paper account ------------------------------------------------------------------

    def positions(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _POSITIONS, limit=MAX_ROWS)
            as_of = rows[0]["partition_date"] if rows else None
            equity = (
                fetch_scalar(conn, _EQUITY_ON, day=date.fromisoformat(as_of)) if as_of else None
            )
        for row in rows:
            row.pop("partition_date")
            value = (row["quantity"] or 0.0) * (row["mark_price"] or 0.0)
            row["value"] = value
            row["fraction_of_equity"] = value / equity if equity else None
        return {
            "as_of": as_of,
            "what": "end-of-day positions of the last traded day, marked to its last close",
            "quote": self.config.quote,
            "equity": jsonable(equity),
            "open_positions": sum(1 for row in rows if row["quantity"]),
            "positions": rows,
        }

    def orders(self, symbol: str | None, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            total = fetch_scalar(conn, _ORDER_COUNT, symbol=symbol)
            rows = fetch(conn, _ORDERS, symbol=symbol, limit=limit)
        return {"symbol": symbol, "total": total, "count": len(rows), "orders": rows}

    def fills(self, symbol: str | None, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            totals = fetch(conn, _FILL_COUNT, symbol=symbol)[0]
            rows = fetch(conn, _FILLS, symbol=symbol, limit=limit)
        return {
            "symbol": symbol,
            "total": totals["count"],
            "total_fees": totals["fees"],
            "quote": self.config.quote,
            "count": len(rows),
            "fills": rows,
        }

    def pnl(self, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _PNL, limit=limit)
            summary = fetch(conn, _PNL_SUMMARY)[0]
        rows.reverse()
        initial = self.config.initial_cash
        latest = rows[-1]["equity"] if rows else None
        peak = summary["peak_equity"]
        summary.update(
            {
                "quote": self.config.quote,
                "initial_cash": initial,
                "equity": latest,
                "total_return": (latest / initial - 1.0) if latest is not None else None,
                "drawdown_from_peak": (1.0 - latest / peak) if latest and peak else None,
                "risk_state": rows[-1]["risk_state"] if rows else None,
            }
        )
        return {"summary": summary, "count": len(rows), "days": rows}

    def proposals(self, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = fetch(conn, _PROPOSALS, limit=limit)
        return {"count": len(rows), "proposals": rows}

    def control(self, events: int = 20) -> dict[str, Any]:
        control = TradingControl(self.engine)
        status = control.status()
        return {
            "status": status.model_dump(mode="json"),
            "trading_allowed": status.trading_allowed,
            "stopped_reason": status.stopped_reason,
            "recent_events": [event.model_dump(mode="json") for event in control.events(events)],
        }

    # -- data quality -----------------------------------------------------------------------

    def quality(self, limit: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            totals = fetch(conn, _VERDICT_TOTALS)
            failed = fetch(conn, _VERDICTS, failed_only=True, limit=limit)
            latest = fetch(conn, _VERDICTS, failed_only=False, limit=limit)
        for row in (*failed, *latest):
            row["failures"] = [
                str(failure)[:MAX_FAILURE_TEXT] for failure in (row["failures"] or [])[:10]
            ]
        return {
            "candle_gate": {
                "what": (
                    "one verdict per asset and UTC day from the blocking Great Expectations "
                    "check (quality.candle_verdicts); only passing days reach dbt and trading"
                ),
                "per_asset": totals,
                "failed_days": failed,
                "latest_verdicts": latest,
            },
            "validations": self._validations(limit),
        }

    def _validations(self, limit: int) -> dict[str, Any] | None:
        """Every suite's latest verdict per asset and partition, from the data-quality report's
        index (summary.json beside summary.html), when the report exists."""
        if self.data_quality_dir is None:
            return None
        index = self.data_quality_dir / "summary.json"
        try:
            entries = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entries, dict):
            return None
        rows = []
        for run_name, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            asset, _, partition = str(run_name).partition("__")
            rows.append(
                {
                    "asset": asset,
                    "partition": partition or None,
                    "suite": str(entry.get("suite", "")),
                    "passed": bool(entry.get("success")),
                    "failed_expectations": entry.get("unsuccessful"),
                    "evaluated_expectations": entry.get("evaluated"),
                    "run_time": str(entry.get("run_time", "")),
                }
            )
        rows.sort(key=lambda row: row["run_time"], reverse=True)
        failed = [row for row in rows if not row["passed"]]
        return {
            "what": "every Great Expectations validation, latest per asset and partition",
            "report": str(self.data_quality_dir / "summary.html"),
            "total": len(rows),
            "failed": len(failed),
            "failed_validations": jsonable(failed[:limit]),
            "latest": jsonable(rows[:limit]),
        }

    # -- signals and votes ------------------------------------------------------------------

    def signals_and_votes(self, symbol: str | None) -> dict[str, Any]:
        """The latest committee decision per pair with every agent's vote, beside the latest
        features and regime the signals layer produced."""
        with self.engine.connect() as conn:
            decisions = {
                row["symbol"]: row for row in fetch(conn, _LATEST_DECISIONS, symbol=symbol)
            }
            features = {row["symbol"]: row for row in fetch(conn, _LATEST_FEATURES, symbol=symbol)}
            regimes = {row["symbol"]: row for row in fetch(conn, _LATEST_REGIMES, symbol=symbol)}
            status = TradingControl(self.engine).status_in(conn)
        pairs = sorted({*decisions, *features, *regimes})
        if symbol is not None and not pairs:
            raise NotFound(f"no decisions, features or regimes for {symbol}")
        answer = []
        for pair in pairs:
            decision = decisions.get(pair)
            if decision is not None:
                decision.pop("symbol")
                decision["risk_outcome"] = {
                    "outcome": decision.pop("outcome"),
                    "reason": decision.pop("reason"),
                    "decided_under": decision.pop("decided_under"),
                }
                decision["votes"] = [_vote(vote) for vote in decision["votes"] or []]
            feature_row = features.get(pair)
            if feature_row is not None:
                feature_row.pop("symbol")
            regime_row = regimes.get(pair)
            if regime_row is not None:
                regime_row.pop("symbol")
            answer.append(
                {
                    "symbol": pair,
                    "latest_decision": decision,
                    "latest_features": feature_row,
                    "latest_regime": regime_row,
                }
            )
        return {
            "trading_allowed": status.trading_allowed,
            "stopped_reason": status.stopped_reason,
            "pairs": answer,
        }

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _series(symbol: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        rows.reverse()
        return {
            "symbol": symbol,
            **extra,
            "count": len(rows),
            "first_ts": rows[0]["ts"] if rows else None,
            "last_ts": rows[-1]["ts"] if rows else None,
            "rows": rows,
        }

    @staticmethod
    def _known(conn: sa.Connection, table: str) -> str:
        # ``table`` is one of this module's literals, never caller input.
        query = sa.text(f"SELECT DISTINCT symbol FROM {table} ORDER BY 1 LIMIT 50")
        names: Sequence[str] = [row[0] for row in conn.execute(query)]
        return ", ".join(names) if names else "none yet"


def _vote(vote: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "agent": vote.get("agent"),
        "direction": vote.get("direction"),
        "confidence": vote.get("confidence"),
        "rationale": vote.get("rationale"),
        "scale": vote.get("scale"),
        "execution": vote.get("execution"),
    }
