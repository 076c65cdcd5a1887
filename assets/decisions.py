"""The trading job's assets: one trading session per daily partition.

Fresh features and regimes are loaded into the committee of agents; every proposal goes through
the risk gate and the execution stage to the paper broker. Decisions, orders, fills, end-of-day
positions and PnL land in PostgreSQL together, in one transaction, so a failed session writes
nothing and a re-run replaces the day. The portfolio a day starts with is rebuilt from the fills
of all earlier days, so sessions resume where the previous day ended.
"""

from collections.abc import Iterator
from datetime import datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from assets.ingest.registry import TRADED_FEED
from assets.signals.features import features
from assets.signals.regime import regime
from orchestration.groups import MEMORY_GROUP, TRADING_GROUP
from orchestration.io_managers.postgres_window import replace_window_in
from orchestration.memory_store import PostgresMemoryStore
from orchestration.partitions import daily_partitions
from orchestration.resources.committee import CommitteeConfigResource
from orchestration.resources.postgres import PostgresStoreResource
from orchestration.trading_control import TradingControl
from trading.config import build_session
from trading.domain import Fill, MarketSnapshot, Vote
from trading.features import FEATURE_COLUMNS
from trading.memory.records import PatternStats
from trading.portfolio import Portfolio
from trading.reflection import Reflection
from trading.risk import check_limits
from trading.session import PastDecision
from trading.snapshots import build_snapshots

_CANDLES = sa.text(
    "SELECT symbol, open_time, open, high, low, close, volume FROM analytics.stg_binance_ohlcv "
    'WHERE "interval" = :interval AND open_time >= :start AND open_time < :end'
)
_FEATURES = sa.text("SELECT * FROM signals.features WHERE ts >= :start AND ts < :end")
_REGIMES = sa.text(
    "SELECT symbol, ts, regime FROM signals.regimes WHERE ts >= :start AND ts < :end"
)
FILL_COLUMNS = [
    "fill_id", "client_order_id", "partition_date", "ts", "symbol",
    "side", "quantity", "price", "fee", "liquidity",
]  # fmt: skip
_LAST_CLOSES = sa.text(
    "SELECT DISTINCT ON (symbol) symbol, close FROM analytics.stg_binance_ohlcv "
    'WHERE "interval" = :interval AND open_time < :start ORDER BY symbol, open_time DESC'
)
_UNTRADED_EARLIER_DAY = sa.text(
    """
    SELECT min(f.ts)::date FROM signals.features f
    WHERE f.ts < :start
      AND f.ts >= coalesce(
            (SELECT max(partition_date) + 1 FROM trading.pnl WHERE partition_date < :day),
            '-infinity'::timestamptz)
    """
)
_LATER_TRADED_DAYS = sa.text(
    "SELECT partition_date FROM trading.pnl WHERE partition_date > :day ORDER BY 1"
)
_PEAK_EQUITY_BEFORE = sa.text(
    "SELECT max(greatest(peak_equity, equity)) FROM trading.pnl WHERE partition_date < :day"
)
_MEMORY_FEATURES = [c for c in FEATURE_COLUMNS if c != "close"]
_DECISIONS_BEFORE = sa.text(
    f"""
    SELECT d.symbol, d.ts, d.direction, d.confidence, d.votes, d.regime,
           coalesce(d.decided_under, 'active') AS decided_under,
           c.open, c.high, c.low, c.close, c.volume,
           {", ".join(f"f.{name}" for name in _MEMORY_FEATURES)}
    FROM trading.decisions d
    JOIN analytics.stg_binance_ohlcv c
      ON c.symbol = d.symbol AND c.open_time = d.ts AND c."interval" = :interval
    LEFT JOIN signals.features f ON f.symbol = d.symbol AND f.ts = d.ts
    WHERE d.ts < :start
    ORDER BY d.ts, d.symbol
    """
)
_FILLS_BEFORE = sa.text(
    "SELECT fill_id, client_order_id, symbol, ts, side, quantity, price, fee, liquidity "
    "FROM trading.fills WHERE ts < :start ORDER BY ts, fill_id"
)


MEMORIES = dg.AssetKey(["memory", "memories"])
PATTERNS = dg.AssetKey(["memory", "patterns"])


def _spec(name: str, description: str, deps: list) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=["trading", name],
        description=description,
        group_name=TRADING_GROUP,
        kinds={"python", "postgres"},
        deps=deps,
        partitions_def=daily_partitions,
        metadata={"table": f"trading.{name}"},
    )


TRADING_SPECS = [
    _spec("decisions", "Every committee decision per pair and bar, with each agent's vote.",
          [features, regime, dg.AssetKey(["analytics", "stg_binance_ohlcv"])]),
    _spec("orders", "Orders that passed the risk gate and went to the broker.",
          [dg.AssetKey(["trading", "decisions"])]),
    _spec("fills", "Executions reported by the broker, with fees.",
          [dg.AssetKey(["trading", "orders"])]),
    _spec("positions", "End-of-day positions per pair, marked to the last close.",
          [dg.AssetKey(["trading", "fills"])]),
    _spec("pnl", "End-of-day cash, equity, PnL, exposure and risk state.",
          [dg.AssetKey(["trading", "positions"])]),
    dg.AssetSpec(
        key=MEMORIES, group_name=MEMORY_GROUP, kinds={"python", "postgres"},
        deps=[dg.AssetKey(["trading", "decisions"])], partitions_def=daily_partitions,
        description=(
            "Episodic memory: each decision whose outcome became known this day, proposed to "
            "the 2-of-3 validator quorum; committed states are searchable with pgvector (HNSW). "
            "Every proposal and vote is kept in memory.proposals and memory.votes."
        ),
        metadata={"table": "memory.memories"},
    ),
    dg.AssetSpec(
        key=PATTERNS, group_name=MEMORY_GROUP, kinds={"python", "postgres"},
        deps=[MEMORIES], partitions_def=daily_partitions,
        description=(
            "Recurring situations (regime and state signature): count, hit rate, mean and "
            "spread of returns, first and last seen; updated only by committed memories."
        ),
        metadata={"table": "memory.patterns"},
    ),
]  # fmt: skip


def load_snapshots(conn: sa.Connection, start: datetime, end: datetime) -> list[MarketSnapshot]:
    """Market snapshots for ``[start, end)``: bar, features and regime per pair and timestamp.

    Only bars that have features are traded: a day blocked by the quality gate has none.
    """
    window = {"start": start, "end": end, "interval": TRADED_FEED.interval}
    features = pd.read_sql(_FEATURES, conn, params=window)
    if features.empty:
        return []
    candles = pd.read_sql(_CANDLES, conn, params=window)
    regimes = pd.read_sql(_REGIMES, conn, params=window)
    featured = candles.merge(
        features[["symbol", "ts"]].rename(columns={"ts": "open_time"}), on=["symbol", "open_time"]
    )
    return build_snapshots(featured, features, regimes)


def load_decisions_before(conn: sa.Connection, start: datetime) -> list[PastDecision]:
    """Every earlier decision with its bar, features and regime, to replay into the committee's
    learners and to refill the memory's queue of decisions whose outcome is still pending."""
    rows = conn.execute(
        _DECISIONS_BEFORE, {"start": start, "interval": TRADED_FEED.interval}
    ).mappings()
    history = []
    for row in rows:
        ts = pd.Timestamp(row["ts"]).to_pydatetime()
        bar = {k: row[k] for k in ("open", "high", "low", "close", "volume")}
        snapshot = MarketSnapshot(
            symbol=row["symbol"],
            ts=ts,
            bar={"symbol": row["symbol"], "ts": ts, **bar},
            features={name: row[name] for name in _MEMORY_FEATURES},
            regime=row["regime"],
        )
        votes = tuple(Vote.model_validate(v) for v in row["votes"])
        history.append(
            PastDecision(snapshot, votes, row["direction"], row["confidence"], row["decided_under"])
        )
    return history


def load_fills_before(conn: sa.Connection, start: datetime) -> list[Fill]:
    rows = conn.execute(_FILLS_BEFORE, {"start": start}).mappings().all()
    return [Fill(**{**row, "ts": pd.Timestamp(row["ts"]).to_pydatetime()}) for row in rows]


@dg.multi_asset(
    specs=TRADING_SPECS,
    partitions_def=daily_partitions,
    pool="trading",
    can_subset=False,
)
def trading_session(
    context: dg.AssetExecutionContext,
    postgres: PostgresStoreResource,
    committee: CommitteeConfigResource,
) -> Iterator[dg.MaterializeResult]:
    """Runs the committee -> risk gate -> execution -> paper broker path over the day's bars."""
    window = context.partition_time_window
    day = window.start.date()
    config = committee.load()
    engine = postgres.get_engine()
    with engine.connect() as conn:
        switches = TradingControl(engine)
        control = switches.status_in(conn)
        if not control.trading_allowed:
            raise dg.Failure(
                description=f"{day} not traded: {control.stopped_reason}",
                allow_retries=False,
            )
        untraded = conn.execute(
            _UNTRADED_EARLIER_DAY, {"start": window.start, "day": day}
        ).scalar_one()
        if untraded is not None:
            raise dg.Failure(
                description=(
                    f"{untraded} has signals but has not been traded: trade days in order, "
                    f"since {day} starts from the book the days before it leave"
                ),
                allow_retries=False,
            )
        later_days = [str(d) for d in conn.execute(_LATER_TRADED_DAYS, {"day": day}).scalars()]
        snapshots = load_snapshots(conn, window.start, window.end)
        history = load_fills_before(conn, window.start)
        peak_equity = conn.execute(_PEAK_EQUITY_BEFORE, {"day": day}).scalar_one()
        past_decisions = load_decisions_before(conn, window.start)
        last_closes = dict(
            conn.execute(_LAST_CLOSES, {"start": window.start, "interval": TRADED_FEED.interval})
            .tuples()
            .all()
        )
    if later_days:
        context.log.warning(
            "re-trading %s while later days %s are already traded: they were decided from this "
            "day's previous book; re-run them in order to bring them up to date",
            day,
            later_days,
        )
    if not snapshots:
        raise dg.Failure(
            description=f"no features and regimes for {day}: nothing to decide on",
            allow_retries=False,
        )
    portfolio = Portfolio.from_fills(config.initial_cash, history, quote=config.quote)
    # Mark the carried-over positions at the previous close, so the day's loss limit starts
    # from the true opening equity.
    portfolio.mark(last_closes)
    # One transaction for the day: the memory decides each proposal in a savepoint of it, and
    # the decisions, orders, fills, positions and PnL are replaced in it, so a failed session
    # leaves neither rows nor memories behind.
    with engine.begin() as conn:
        memory_store = PostgresMemoryStore(engine).bound(conn)
        session = build_session(config, portfolio=portfolio, memory_store=memory_store)
        session.prices.update(last_closes)
        replayed = session.replay(past_decisions)
        # The kill switch engaged during the run halts the gate from the next bar on.
        kill_switch = switches.watch(session.risk_gate, conn)
        result = session.run(snapshots, peak_equity=peak_equity, on_step=kill_switch)
        violations = check_limits(session.portfolio, session.prices, config.risk)
        if violations:
            raise dg.Failure(
                description=f"risk limits broken at the end of {day}: {violations}",
                allow_retries=False,
            )
        tables = {
            "decisions": pd.DataFrame(result.decision_rows()),
            "orders": pd.DataFrame(result.order_rows()),
            "fills": pd.DataFrame(result.fill_rows(), columns=FILL_COLUMNS),
            "positions": pd.DataFrame(result.daily_positions),
            "pnl": pd.DataFrame(result.daily_pnl),
        }
        kw = {"start": window.start, "end": window.end}
        # Orders first: deleting the day's orders cascades to their fills (FK on delete cascade).
        written = {
            "decisions": replace_window_in(
                conn, "trading.decisions", tables["decisions"], partition_expr="ts", **kw
            ),
            "orders": replace_window_in(
                conn, "trading.orders", tables["orders"], partition_expr="ts", **kw
            ),
            "fills": replace_window_in(
                conn, "trading.fills", tables["fills"], partition_expr="ts", **kw
            ),
            "positions": replace_window_in(
                conn,
                "trading.positions",
                tables["positions"],
                partition_expr="partition_date",
                **kw,
            ),
            "pnl": replace_window_in(
                conn, "trading.pnl", tables["pnl"], partition_expr="partition_date", **kw
            ),
        }
        memory_summary = session.memory.summary() if session.memory is not None else {}
        namespace = config.memory.namespace
        memory_totals = memory_store.statistics(namespace)
        patterns = memory_store.patterns(namespace)
    notes = [
        f"{note.ts.isoformat()} {note.layer}/{note.subject} {note.kind}: {note.message}"
        for observer in session.committee.observers
        if isinstance(observer, Reflection)
        for note in observer.notes
        if window.start <= note.ts < window.end
    ]
    for note in notes:
        context.log.warning("reflection: %s", note)
    weights = session.committee.weight_provider.summary().get("current") or {}
    pnl = tables["pnl"].iloc[0].to_dict() if not tables["pnl"].empty else {}
    outcomes = tables["decisions"]["outcome"].value_counts().to_dict()
    summary = {
        "decisions": {"outcomes": {str(k): int(v) for k, v in outcomes.items()}},
        "orders": {"rejected_by_risk": int(outcomes.get("rejected", 0))},
        "fills": {"fees": float(tables["fills"]["fee"].sum()) if written["fills"] else 0.0},
        "positions": {
            "open_positions": int((tables["positions"].get("quantity", pd.Series()) != 0).sum())
        },
        "pnl": {
            "equity": float(pnl.get("equity", 0.0)),
            "risk_state": str(pnl.get("risk_state", "")),
            "risk_violations": len(violations),
            "later_days_to_retrade": later_days,
            "decisions_replayed_into_learners": replayed,
            "agent_weights": weights.get("weights", {}),
            "reflection_notes": notes,
        },
    }
    for name, count in written.items():
        yield dg.MaterializeResult(
            asset_key=["trading", name],
            metadata={"dagster/row_count": count, **summary[name]},
        )
    yield dg.MaterializeResult(
        asset_key=MEMORIES,
        metadata={
            "dagster/row_count": memory_totals["memories"],
            "this_day": memory_summary,
            "all_days": memory_totals,
        },
    )
    yield dg.MaterializeResult(
        asset_key=PATTERNS,
        metadata={
            "dagster/row_count": len(patterns),
            "patterns": dg.MetadataValue.md(pattern_table(patterns)),
        },
    )


def pattern_table(patterns: list[PatternStats], limit: int = 20) -> str:
    """The most frequent patterns as a markdown table for the UI."""
    top = sorted(patterns, key=lambda p: (-p.count, str(p.key)))[:limit]
    lines = [
        "| regime | signature | memories | hit rate | mean return | sd | last seen |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for p in top:
        hit = f"{p.hit_rate:.1%}" if p.hit_rate is not None else "-"
        mean = f"{p.mean_return:+.3%}" if p.mean_return is not None else "-"
        std = f"{p.std_return:.3%}" if p.std_return is not None else "-"
        seen = p.last_seen.isoformat() if p.last_seen else "-"
        lines.append(
            f"| {p.key.regime} | {p.key.signature} | {p.count} | {hit} | {mean} | {std} | {seen} |"
        )
    if len(patterns) > limit:
        lines.append(f"\n{len(patterns) - limit} more in memory.patterns")
    return "\n".join(lines)
