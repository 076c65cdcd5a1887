"""The Coinswarm MCP server: the pipeline's data as resources, a few guarded actions as tools.

``build_mcp_server`` binds one database, committee config and reports directory, so tests bind
a test database and ``coinswarm mcp`` the deployment's. It speaks stdio and streamable HTTP
through the official SDK (``mcp`` 2.x, ``MCPServer``).

Safety model (docs/mcp.md has the long form):

- Nothing here can place a real order. ``propose_paper_order`` runs the trading job's risk gate
  on a rebuilt paper account, records its verdict in ``trading.order_proposals`` and previews
  a paper fill; it never writes ``trading.orders``/``trading.fills`` and has no live broker.
- The switches go through ``TradingControl``, so every change is audited with its actor and
  reason. An assistant may pause, resume and engage the kill switch (stopping is always safe);
  it may not reset the kill switch or release live trading: a human does that with
  ``coinswarm control``.
- Every argument is validated (orchestration/mcp/arguments.py) before use; a bad one is
  answered with an error naming it.
- Nothing answers with the database URL. Errors the server anticipates carry its own words;
  any other exception reaches the client only as the SDK's generic "Error executing tool ..."
  or "Error reading resource ...", never as driver text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ToolAnnotations
from pydantic import Field

from orchestration.mcp.arguments import (
    DEFAULT_ROWS,
    MAX_ROWS,
    Pair,
    Quantity,
    Reason,
    ReportName,
    Side,
    Ticker,
    parse_argument,
    parse_limit,
)
from orchestration.mcp.backtests import (
    DEFAULT_BARS,
    MAX_BARS,
    MAX_DATASETS,
    MAX_TOTAL_BARS,
    STAGED,
    BacktestDesk,
)
from orchestration.mcp.errors import Busy, InvalidArgument, MissingTable, NotFound
from orchestration.mcp.paper_orders import PaperOrderDesk
from orchestration.mcp.views import TradingViews, jsonable
from orchestration.trading_control import ControlStatus, TradingControl
from trading.config import CommitteeConfig

logger = logging.getLogger(__name__)

SERVER_NAME = "coinswarm"
DEFAULT_ACTOR = "mcp"
JSON = "application/json"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_CLIENT_NAME = re.compile(r"[^A-Za-z0-9._ -]")
_DATABASE_TROUBLE = "the database could not answer ({kind}); the MCP server's log has the details"

INSTRUCTIONS = """\
Coinswarm is a crypto data-and-trading pipeline that trades on a PAPER broker.
Read the data as resources: start with coinswarm://pairs, then coinswarm://candles/ETH-BTC,
coinswarm://features/ETH-BTC, coinswarm://regimes/ETH-BTC, coinswarm://sentiment,
coinswarm://positions, coinswarm://orders, coinswarm://fills, coinswarm://pnl,
coinswarm://quality, coinswarm://backtests, coinswarm://proposals and coinswarm://control.
Pairs are written ETH/BTC or, in URIs, ETH-BTC. Row counts are bounded (?limit=, at most 1000).
Tools: signals_and_votes (the committee's latest decision and every agent's vote per pair),
propose_paper_order (checked by the trading job's risk gate, recorded, previewed, never sent to
any broker), run_backtest (bounded), trading_status, pause_trading, resume_trading and
engage_kill_switch. Every switch change needs a reason and is audited. Only a human can reset
the kill switch (coinswarm control reset-kill-switch).
"""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
RECORDS_ONLY = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
SWITCH = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def build_mcp_server(
    engine: sa.Engine,
    *,
    committee_config: CommitteeConfig,
    reports_dir: Path,
    candle_interval: str,
    dataset_dirs: Sequence[Path] = (),
    actor: str = DEFAULT_ACTOR,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO",
) -> MCPServer:
    """An MCP server over ``engine``'s database.

    ``reports_dir`` holds ``backtests/<name>/`` and ``data_quality/`` (the deployment's is
    ``<COINSWARM_HOME>/reports``); ``candle_interval`` is the traded feed's bar length;
    ``dataset_dirs`` hold the recorded OHLCV files ``run_backtest`` may use; ``actor`` is
    recorded with every switch change and proposal, followed by the client's own name when it
    gives one (``mcp:claude-desktop``).
    """
    reports_dir = Path(reports_dir)
    views = TradingViews(
        engine,
        committee_config,
        candle_interval=candle_interval,
        data_quality_dir=reports_dir / "data_quality",
    )
    orders = PaperOrderDesk(engine, committee_config, candle_interval=candle_interval)
    backtests = BacktestDesk(
        engine,
        candle_interval=candle_interval,
        reports_dir=reports_dir,
        dataset_dirs=dataset_dirs,
    )
    control = TradingControl(engine)
    server: MCPServer = MCPServer(
        SERVER_NAME,
        title="Coinswarm",
        description="Crypto data-and-trading pipeline on a paper broker",
        instructions=INSTRUCTIONS,
        version=_version(),
        log_level=log_level,
    )
    _add_resources(server, views, backtests)
    _add_tools(server, views, orders, backtests, control, actor)
    return server


# --------------------------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------------------------


def _add_resources(server: MCPServer, views: TradingViews, backtests: BacktestDesk) -> None:
    def static(uri: str, name: str, description: str, produce: Callable[[], Any]) -> None:
        def read() -> str:
            return _resource_answer(produce)

        read.__name__ = name
        server.resource(uri, name=name, description=description, mime_type=JSON)(read)

    def limited(produce: Callable[[int], Any]) -> Callable[[], Any]:
        return lambda: produce(DEFAULT_ROWS)

    static(
        "coinswarm://pairs",
        "pairs",
        "The traded pairs with candles: count, first and last bar, and their resource URIs.",
        views.pairs,
    )
    static(
        "coinswarm://sentiment",
        "sentiment",
        "The latest hour of news and social sentiment per ticker (VADER over NewsAPI, X, Reddit).",
        views.latest_sentiment,
    )
    static(
        "coinswarm://positions",
        "positions",
        "End-of-day paper positions of the last traded day, marked to its last close, with "
        "their share of equity.",
        views.positions,
    )
    static(
        "coinswarm://orders",
        "orders",
        f"The {DEFAULT_ROWS} newest orders the trading job sent to the paper broker "
        "(coinswarm://orders?symbol=ETH-BTC&limit=N to filter).",
        limited(lambda limit: views.orders(None, limit)),
    )
    static(
        "coinswarm://fills",
        "fills",
        f"The {DEFAULT_ROWS} newest paper fills with fees (coinswarm://fills?symbol=&limit=).",
        limited(lambda limit: views.fills(None, limit)),
    )
    static(
        "coinswarm://pnl",
        "pnl",
        "Daily cash, equity, realised and unrealised PnL, fees, exposure and risk state, with "
        "a summary (total return, drawdown from peak); coinswarm://pnl?limit=N for more days.",
        limited(views.pnl),
    )
    static(
        "coinswarm://quality",
        "quality",
        "Data-quality status: the blocking candle gate's verdict per asset and day (failed days "
        "first) and the latest Great Expectations validation per asset and partition.",
        limited(views.quality),
    )
    static(
        "coinswarm://proposals",
        "proposals",
        "Every paper order proposed over MCP with the risk gate's verdict, newest first.",
        limited(views.proposals),
    )
    static(
        "coinswarm://control",
        "control",
        "The operator's switches (pause, kill switch, live release) and their recent audit trail.",
        views.control,
    )
    static(
        "coinswarm://backtests",
        "backtests",
        "The backtest reports on disk with headline metrics, and what run_backtest accepts.",
        backtests.reports,
    )

    @server.resource(
        "coinswarm://candles/{symbol}{?limit}",
        name="candles",
        description="Quality-gated OHLCV candles of a pair (ETH-BTC), the newest `limit` "
        f"(default {DEFAULT_ROWS}, at most {MAX_ROWS}), oldest first.",
        mime_type=JSON,
    )
    def candles(symbol: str, limit: str | None = None) -> str:
        return _resource_answer(
            lambda: views.candles(parse_argument(Pair, "symbol", symbol), parse_limit(limit))
        )

    @server.resource(
        "coinswarm://features/{symbol}{?limit}",
        name="features",
        description="Point-in-time features of a pair (returns, volatility, moving averages, "
        "z-score, RSI, momentum), the newest `limit` bars, oldest first.",
        mime_type=JSON,
    )
    def features(symbol: str, limit: str | None = None) -> str:
        return _resource_answer(
            lambda: views.features(parse_argument(Pair, "symbol", symbol), parse_limit(limit))
        )

    @server.resource(
        "coinswarm://regimes/{symbol}{?limit}",
        name="regimes",
        description="Market regime per bar of a pair (trending_up, trending_down, ranging, "
        "volatile) with trend strength and volatility ratio, oldest first.",
        mime_type=JSON,
    )
    def regimes(symbol: str, limit: str | None = None) -> str:
        return _resource_answer(
            lambda: views.regimes(parse_argument(Pair, "symbol", symbol), parse_limit(limit))
        )

    @server.resource(
        "coinswarm://sentiment/{ticker}{?limit}",
        name="sentiment_hourly",
        description="Hourly sentiment of one ticker (BTC, ETH, ...): documents, mean compound "
        "score, positive and negative shares, documents per source; oldest first.",
        mime_type=JSON,
    )
    def sentiment_hourly(ticker: str, limit: str | None = None) -> str:
        return _resource_answer(
            lambda: views.sentiment(parse_argument(Ticker, "ticker", ticker), parse_limit(limit))
        )

    @server.resource(
        "coinswarm://orders{?symbol,limit}",
        name="orders_filtered",
        description="Orders, newest first, optionally of one pair (symbol=ETH-BTC).",
        mime_type=JSON,
    )
    def orders_filtered(symbol: str | None = None, limit: str | None = None) -> str:
        return _resource_answer(lambda: views.orders(_optional_pair(symbol), parse_limit(limit)))

    @server.resource(
        "coinswarm://fills{?symbol,limit}",
        name="fills_filtered",
        description="Paper fills, newest first, optionally of one pair (symbol=ETH-BTC).",
        mime_type=JSON,
    )
    def fills_filtered(symbol: str | None = None, limit: str | None = None) -> str:
        return _resource_answer(lambda: views.fills(_optional_pair(symbol), parse_limit(limit)))

    @server.resource(
        "coinswarm://pnl{?limit}", name="pnl_days", description="Daily PnL.", mime_type=JSON
    )
    def pnl_days(limit: str | None = None) -> str:
        return _resource_answer(lambda: views.pnl(parse_limit(limit)))

    @server.resource(
        "coinswarm://quality{?limit}",
        name="quality_verdicts",
        description="Data-quality status with up to `limit` verdicts per list.",
        mime_type=JSON,
    )
    def quality_verdicts(limit: str | None = None) -> str:
        return _resource_answer(lambda: views.quality(parse_limit(limit)))

    @server.resource(
        "coinswarm://proposals{?limit}",
        name="proposals_log",
        description="Paper order proposals made over MCP, newest first.",
        mime_type=JSON,
    )
    def proposals_log(limit: str | None = None) -> str:
        return _resource_answer(lambda: views.proposals(parse_limit(limit)))

    @server.resource(
        "coinswarm://backtests/{name}",
        name="backtest_report",
        description="One backtest report's metrics.json (return, Sharpe, Sortino, drawdown, win "
        "rate, per-agent hit rates, weights, reflection notes) by report name.",
        mime_type=JSON,
    )
    def backtest_report(name: str) -> str:
        return _resource_answer(lambda: backtests.report(parse_argument(ReportName, "name", name)))


def _optional_pair(value: str | None) -> str | None:
    return None if value in (None, "") else parse_argument(Pair, "symbol", value)


def _resource_answer(produce: Callable[[], Any]) -> str:
    """Run a view and answer with JSON, or with the MCP error the failure deserves."""
    try:
        payload = produce()
    except InvalidArgument as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from None
    except (MissingTable, Busy) as exc:
        raise ResourceError(str(exc)) from None
    except sa.exc.DBAPIError as exc:
        raise ResourceError(_database_trouble(exc)) from None
    return json.dumps(jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------


def _add_tools(
    server: MCPServer,
    views: TradingViews,
    orders: PaperOrderDesk,
    backtests: BacktestDesk,
    control: TradingControl,
    base_actor: str,
) -> None:
    def actor_of(ctx: Context) -> str:
        return _actor(base_actor, ctx)

    @server.tool(annotations=READ_ONLY)
    def signals_and_votes(symbol: Pair | None = None) -> dict[str, Any]:
        """The committee's latest decision per pair: direction, confidence, regime, the risk
        outcome (order, hold or rejected, and why), every agent's vote with its rationale, and
        the latest features and regime. Give `symbol` (ETH/BTC or ETH-BTC) for one pair."""
        return _tool_answer(lambda: views.signals_and_votes(symbol))

    @server.tool(annotations=RECORDS_ONLY)
    def propose_paper_order(
        symbol: Pair,
        side: Side,
        quantity: Quantity,
        reason: Reason,
        ctx: Context,
        allow_scaling: Annotated[
            bool,
            Field(
                description="accept the risk gate's scaled-down size when the order is too "
                "large (default: reject it and report the largest size that fits)"
            ),
        ] = False,
    ) -> dict[str, Any]:
        """Propose a PAPER order and get the risk gate's verdict. The order is priced at the
        pair's latest quality-gated close and judged by the trading job's own risk gate on the
        paper account rebuilt from every fill (position, exposure, order-size and daily-loss
        limits, long-only spot, the kill switch; a paused system rejects too). Every proposal
        is recorded in trading.order_proposals; an approved one comes with a paper fill
        preview. Nothing is ever sent to a broker or written as an order or fill."""
        return _tool_answer(
            lambda: orders.propose(
                symbol=symbol,
                side=side,
                quantity=quantity,
                reason=reason,
                actor=actor_of(ctx),
                allow_scaling=allow_scaling,
            )
        )

    inputs = backtests.inputs()

    @server.tool(
        annotations=READ_ONLY,
        description=f"{_RUN_BACKTEST_DOC} Configs: {', '.join(inputs['configs'])}. Datasets: "
        f"{', '.join(inputs['datasets'])}.",
    )
    def run_backtest(
        config: BacktestConfigName = "committee",
        datasets: BacktestDatasets = None,
        symbols: Annotated[
            list[Pair] | None, Field(description="only these pairs", max_length=20)
        ] = None,
        start: Annotated[date | None, Field(description="first UTC day (YYYY-MM-DD)")] = None,
        end: Annotated[date | None, Field(description="last UTC day, included")] = None,
        max_bars: BacktestBars = DEFAULT_BARS,
    ) -> dict[str, Any]:
        return _tool_answer(
            lambda: backtests.run(
                config=config,
                datasets=datasets or [STAGED],
                symbols=symbols,
                start=start,
                end=end,
                max_bars=max_bars,
            )
        )

    @server.tool(annotations=READ_ONLY)
    def trading_status(
        events: Annotated[int, Field(ge=0, le=MAX_ROWS, description="audit rows to show")] = 20,
    ) -> dict[str, Any]:
        """Whether trading is allowed: pause, kill switch and live release, who set them and
        why, and the recent audit trail of switch changes."""
        return _tool_answer(lambda: views.control(events))

    @server.tool(annotations=SWITCH)
    def pause_trading(reason: Reason, ctx: Context) -> dict[str, Any]:
        """Pause trading: the trading job starts no new day until resume_trading. Days that
        arrive meanwhile are traded, in order, after the resume. Audited with your reason."""
        return _tool_answer(lambda: _switched(control.pause(reason, actor=actor_of(ctx))))

    @server.tool(annotations=SWITCH)
    def resume_trading(reason: Reason, ctx: Context) -> dict[str, Any]:
        """Lift a pause. It does not reset an engaged kill switch (only a human can, with
        `coinswarm control reset-kill-switch`). Audited with your reason."""
        return _tool_answer(lambda: _switched(control.resume(reason, actor=actor_of(ctx))))

    @server.tool(annotations=SWITCH)
    def engage_kill_switch(reason: Reason, ctx: Context) -> dict[str, Any]:
        """Engage the kill switch: every risk gate halts, no order of any side passes, a live
        run's release is withdrawn. Only a human resets it (`coinswarm control
        reset-kill-switch`), never this server. Audited with your reason."""
        return _tool_answer(
            lambda: _switched(control.engage_kill_switch(reason, actor=actor_of(ctx)))
        )


_RUN_BACKTEST_DOC = (
    "Backtest a committee config over history with the trading job's own path (committee -> "
    "risk gate -> execution -> paper broker) and return its metrics: return, Sharpe, Sortino, "
    "max drawdown, win rate, against buy-and-hold, per-agent hit rates. Bounded: the newest "
    f"`max_bars` per pair, {MAX_TOTAL_BARS:,} bars in all, one run at a time; it writes no "
    "files. coinswarm://backtests lists the configs and datasets too."
)
BacktestConfigName = Annotated[
    str, Field(min_length=1, max_length=64, description="a committee config by name")
]
BacktestDatasets = Annotated[
    list[str] | None,
    Field(
        min_length=1,
        max_length=MAX_DATASETS,
        description=f"{STAGED!r} (the quality-gated candles in PostgreSQL, every pair; the "
        f"default) or 1-{MAX_DATASETS} recorded OHLCV files by name",
    ),
]
BacktestBars = Annotated[
    int, Field(ge=2, le=MAX_BARS, description="the most recent bars per pair in the window")
]


def _switched(status: ControlStatus) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "status": status.model_dump(mode="json"),
        "trading_allowed": status.trading_allowed,
        "stopped_reason": status.stopped_reason,
    }
    if status.kill_switch:
        answer["note"] = (
            "the kill switch is engaged; only a human resets it "
            "(coinswarm control reset-kill-switch --reason ...)"
        )
    return answer


def _tool_answer(produce: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a tool's work; an anticipated failure becomes a ToolError in our own words."""
    try:
        return jsonable(produce())
    except (InvalidArgument, NotFound, MissingTable, Busy) as exc:
        raise ToolError(str(exc)) from None
    except sa.exc.DBAPIError as exc:
        raise ToolError(_database_trouble(exc)) from None


def _database_trouble(exc: sa.exc.DBAPIError) -> str:
    # The driver's text stays in the log: it names hosts and users, and is no answer to give.
    logger.warning("database error answering an MCP request: %s", exc.orig)
    return _DATABASE_TROUBLE.format(kind=type(exc.orig).__name__)


def _actor(base: str, ctx: Context) -> str:
    """``base``, then the client's self-reported name when it gives one (``mcp:claude-ai``).
    The name is the client's own claim, kept for the audit trail, never trusted for access."""
    try:
        params = ctx.session.client_params
    except ValueError:  # no request context (a direct call)
        return base
    name = params.client_info.name if params is not None else ""
    name = _CLIENT_NAME.sub("", name or "").strip()[:60]
    return f"{base}:{name}" if name else base


def _version() -> str:
    try:
        return metadata.version("coinswarm")
    except metadata.PackageNotFoundError:
        return "0"
