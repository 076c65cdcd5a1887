"""Paper orders an assistant proposes: judged by the trading job's own risk gate, recorded, and
never sent anywhere.

The account is rebuilt the way the trading job rebuilds it (assets/decisions.py): the portfolio
from every stored fill, marked at each pair's latest quality-gated close; the gate from the
committee config's limits, its day opened at the previous day's closing equity with the stored
peak equity as the drawdown baseline; then ``TradingControl.apply_to`` so an engaged kill switch
halts it. The order is priced at the pair's latest close and evaluated exactly as an order of
the committee would be.

Nothing here can trade: there is no broker but a ``PaperBroker`` used for a fill *preview*, and
the only write is one row in ``trading.order_proposals`` per proposal, approved or not. Orders
and fills belong to the trading job. A paused system rejects proposals too (the gate would pass
them, the operator said no new trading), and an order larger than the limits allow is rejected
with the largest size that fits unless the caller opted into the gate's scaled-down size.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from orchestration.mcp.errors import InvalidArgument, NotFound
from orchestration.mcp.views import fetch_rows, fetch_scalar, jsonable
from orchestration.trading_control import ControlStatus, TradingControl
from trading.brokers.paper import PaperBroker
from trading.config import CommitteeConfig
from trading.domain import Bar, Fill, Order, OrderIntent, Side, split_symbol
from trading.execution import client_order_id
from trading.portfolio import Portfolio
from trading.risk import RiskDecision, RiskGate, check_limits

_LATEST_BARS = sa.text(
    "SELECT DISTINCT ON (symbol) symbol, open_time AS ts, open, high, low, close, volume "
    'FROM analytics.stg_binance_ohlcv WHERE "interval" = :interval '
    "ORDER BY symbol, open_time DESC"
)
_FILLS = sa.text(
    "SELECT fill_id, client_order_id, symbol, ts, side, quantity, price, fee, liquidity "
    "FROM trading.fills ORDER BY ts, fill_id"
)
_EQUITY_BEFORE = sa.text(
    "SELECT equity FROM trading.pnl WHERE partition_date < :day "
    "ORDER BY partition_date DESC LIMIT 1"
)
_PEAK_EQUITY = sa.text(
    "SELECT max(greatest(peak_equity, equity)) FROM trading.pnl WHERE partition_date <= :day"
)
_RECORD = sa.text(
    "INSERT INTO trading.order_proposals (actor, symbol, side, quantity, reference_price, "
    "approved, approved_quantity, risk_state, reason) VALUES (:actor, :symbol, :side, "
    ":quantity, :reference_price, :approved, :approved_quantity, :risk_state, :reason) "
    "RETURNING id, ts"
)
_SCALED = 1.0 - 1e-12
NOT_SUBMITTED = (
    "a preview only: nothing was sent to any broker and no order or fill was written "
    "(the trading job alone writes trading.orders and trading.fills)"
)


class PaperOrderDesk:
    """Evaluates proposed paper orders against the risk gate and records each verdict."""

    def __init__(
        self, engine: sa.Engine, committee_config: CommitteeConfig, *, candle_interval: str
    ) -> None:
        self.engine = engine
        self.config = committee_config
        self.candle_interval = candle_interval
        self.control = TradingControl(engine)

    def propose(
        self,
        *,
        symbol: str,
        side: str,
        quantity: float,
        reason: str,
        actor: str,
        allow_scaling: bool = False,
    ) -> dict[str, Any]:
        """Judge one order; ``symbol``, ``side``, ``quantity`` and ``reason`` are already
        validated (orchestration/mcp/arguments.py)."""
        _, quote = split_symbol(symbol)
        if quote != self.config.quote:
            raise InvalidArgument(
                f"symbol: the paper account holds {self.config.quote}; {symbol} is quoted in "
                f"{quote}"
            )
        with self.engine.connect() as conn:
            bars = {row["symbol"]: row for row in self._latest_bars(conn)}
            if symbol not in bars:
                known = ", ".join(sorted(bars)) or "none yet"
                raise NotFound(
                    f"no quality-gated candles for {symbol}; pairs with candles: {known}"
                )
            bar = Bar(**bars[symbol])
            fills = [_fill(row) for row in fetch_rows(conn, _FILLS)]
            day = bar.ts.date()
            day_start_equity = fetch_scalar(conn, _EQUITY_BEFORE, day=day)
            peak_equity = fetch_scalar(conn, _PEAK_EQUITY, day=day)
            status = self.control.status_in(conn)
        prices = {name: float(row["close"]) for name, row in bars.items()}
        portfolio = self._portfolio(fills, prices)
        equity = portfolio.equity(prices)

        gate = RiskGate(self.config.risk)
        gate.start_day(day_start_equity or equity, day, peak_equity=peak_equity)
        self.control.apply_to(gate, status)
        intent = OrderIntent(
            symbol=symbol,
            ts=bar.ts,
            side=Side(side),
            quantity=quantity,
            reference_price=bar.close,
            reason=f"proposed over MCP by {actor}: {reason}",
        )
        decision = gate.evaluate(intent, portfolio, prices, bar.ts)
        approved, verdict, largest = _verdict(decision, quantity, status, allow_scaling)
        approved_quantity = decision.intent.quantity if approved and decision.intent else None

        preview = after = None
        if approved_quantity is not None:
            preview, after = self._preview(
                symbol, bar, Side(side), approved_quantity, fills, prices
            )

        with self.engine.begin() as conn:
            recorded = conn.execute(
                _RECORD,
                {
                    "actor": actor,
                    "symbol": symbol,
                    "side": side,
                    "quantity": quantity,
                    "reference_price": bar.close,
                    "approved": approved,
                    "approved_quantity": approved_quantity,
                    "risk_state": decision.state.value,
                    "reason": verdict,
                },
            ).one()
        return jsonable(
            {
                "proposal_id": recorded.id,
                "recorded_at": recorded.ts,
                "actor": actor,
                "approved": approved,
                "reason": verdict,
                "symbol": symbol,
                "side": side,
                "requested_quantity": quantity,
                "approved_quantity": approved_quantity,
                "largest_allowed_quantity": largest,
                "reference_price": bar.close,
                "priced_at": bar.ts,
                "risk_state": decision.state.value,
                "trading_allowed": status.trading_allowed,
                "risk_limits": self.config.risk.model_dump(mode="json"),
                "account_before": _account(portfolio, prices, symbol, self.config),
                "paper_fill_preview": preview,
                "account_after": after,
                "submitted": False,
                "note": NOT_SUBMITTED,
            }
        )

    def _latest_bars(self, conn: sa.Connection) -> list[dict[str, Any]]:
        rows = fetch_rows(conn, _LATEST_BARS, interval=self.candle_interval)
        return [{**row, "ts": pd.Timestamp(row["ts"]).to_pydatetime()} for row in rows]

    def _portfolio(self, fills: list[Fill], prices: dict[str, float]) -> Portfolio:
        portfolio = Portfolio.from_fills(self.config.initial_cash, fills, quote=self.config.quote)
        portfolio.mark(prices)
        return portfolio

    def _preview(
        self,
        symbol: str,
        bar: Bar,
        side: Side,
        quantity: float,
        fills: list[Fill],
        prices: dict[str, float],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the paper broker would fill against the latest bar, and the account after it."""
        order = Order(
            client_order_id=client_order_id(symbol, bar.ts, side, quantity),
            symbol=symbol,
            ts=bar.ts,
            side=side,
            quantity=quantity,
            order_type="market",
        )
        broker = PaperBroker(
            fee_bps=self.config.fee_bps,
            slippage_bps=self.config.slippage_bps,
            max_participation=self.config.max_participation,
        )
        preview_fills = broker.submit(order, bar)
        after = self._portfolio([*fills, *preview_fills], prices)
        preview = {
            "order_type": "market",
            "fills": [fill.model_dump(mode="json") for fill in preview_fills],
            "filled_quantity": sum(fill.quantity for fill in preview_fills),
            "fees": sum(fill.fee for fill in preview_fills),
        }
        account = _account(after, prices, symbol, self.config)
        account["limit_breaches"] = check_limits(after, prices, self.config.risk)
        return preview, account


def _verdict(
    decision: RiskDecision, requested: float, status: ControlStatus, allow_scaling: bool
) -> tuple[bool, str, float | None]:
    """(approved, reason, the largest quantity the gate allows when it had to scale)."""
    if not decision.approved or decision.intent is None:
        return False, decision.reason, None
    allowed = decision.intent.quantity
    scaled = allowed < requested * _SCALED
    if not status.trading_allowed:
        return False, f"rejected: {status.stopped_reason}", allowed if scaled else None
    if scaled and not allow_scaling:
        return (
            False,
            f"too large for the risk limits: the risk gate would have {decision.reason}; "
            f"rejected as proposed (propose at most {allowed:.10g}, or set allow_scaling to "
            "accept the smaller order)",
            allowed,
        )
    return True, decision.reason, allowed if scaled else None


def _account(
    portfolio: Portfolio, prices: dict[str, float], symbol: str, config: CommitteeConfig
) -> dict[str, Any]:
    equity = portfolio.equity(prices)
    value = portfolio.position_value(symbol, prices)
    return {
        "quote": config.quote,
        "cash": portfolio.cash,
        "equity": equity,
        "position_quantity": portfolio.quantity(symbol),
        "position_fraction_of_equity": value / equity if equity > 0 else None,
        "gross_exposure_fraction_of_equity": (
            portfolio.gross_exposure(prices) / equity if equity > 0 else None
        ),
    }


def _fill(row: dict[str, Any]) -> Fill:
    return Fill(**{**row, "ts": pd.Timestamp(row["ts"]).to_pydatetime()})
