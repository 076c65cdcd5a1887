"""Cash-and-positions accounting in one quote currency.

Long-only spot without margin: a sell can never exceed the held quantity and cash can never go
negative. The risk gate prevents both; the portfolio refuses them too, so a bug upstream fails
loudly instead of booking a short or an overdraft.

Realized PnL is gross of fees (average-cost method); fees are summed separately, so
``equity - initial_cash == realized + unrealized - fees`` always holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trading.domain import Fill, Position, Side, split_symbol

logger = logging.getLogger(__name__)

_QTY_TOLERANCE = 1e-12


def booking_order(fill: Fill) -> tuple:
    """The order a session books fills in: by bar; within a bar, resting limit orders (maker)
    settle before new market orders (taker) are placed; then by symbol."""
    return (fill.ts, fill.liquidity != "maker", fill.symbol, fill.fill_id)


class AccountingError(ValueError):
    """A fill that a long-only, unlevered spot account cannot book."""


@dataclass
class _Holding:
    quantity: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0


class Portfolio:
    def __init__(self, quote: str, initial_cash: float, *, cash: float | None = None) -> None:
        if initial_cash <= 0:
            raise ValueError(f"initial_cash must be > 0, got {initial_cash}")
        self.quote = quote
        self.initial_cash = float(initial_cash)
        self.cash = float(initial_cash if cash is None else cash)
        self.fees_paid = 0.0
        self._holdings: dict[str, _Holding] = {}
        self._marks: dict[str, float] = {}

    @classmethod
    def from_fills(
        cls, initial_cash: float, fills: Iterable[Fill], *, quote: str = "BTC"
    ) -> Portfolio:
        """Rebuild the state from a fill history, in ``booking_order``.

        The order matches the session's own, so replaying stored fills reproduces the live state
        exactly, whatever order the store returned them in.
        """
        portfolio = cls(quote, initial_cash)
        for fill in sorted(fills, key=booking_order):
            portfolio.apply_fill(fill)
        return portfolio

    def apply_fill(self, fill: Fill) -> None:
        base, quote = split_symbol(fill.symbol)
        if quote != self.quote:
            raise AccountingError(
                f"fill {fill.fill_id} is quoted in {quote}, the portfolio in {self.quote}"
            )
        holding = self._holdings.get(fill.symbol) or _Holding()  # stored only once booked
        notional = fill.quantity * fill.price
        if fill.side is Side.BUY:
            new_cash = self.cash - notional - fill.fee
            if new_cash < -_QTY_TOLERANCE * max(1.0, self.initial_cash):
                raise AccountingError(
                    f"fill {fill.fill_id} costs {notional + fill.fee} {self.quote} "
                    f"but only {self.cash} is available (no margin)"
                )
            total = holding.quantity + fill.quantity
            holding.avg_price = (holding.quantity * holding.avg_price + notional) / total
            holding.quantity = total
            self.cash = max(new_cash, 0.0)
        else:
            held = holding.quantity
            if fill.quantity > held + _QTY_TOLERANCE * max(1.0, held):
                raise AccountingError(
                    f"fill {fill.fill_id} sells {fill.quantity} {base} but only {held} is held "
                    "(long-only spot)"
                )
            quantity = min(fill.quantity, held)
            holding.realized_pnl += (fill.price - holding.avg_price) * quantity
            holding.quantity = held - quantity
            if holding.quantity <= _QTY_TOLERANCE * max(1.0, held):
                holding.quantity = 0.0
                holding.avg_price = 0.0
            self.cash += notional - fill.fee
        self._holdings[fill.symbol] = holding
        self.fees_paid += fill.fee
        self._marks.setdefault(fill.symbol, fill.price)

    def mark(self, prices: Mapping[str, float]) -> None:
        """Remember the latest prices; later valuations without prices use them."""
        for symbol, price in prices.items():
            if not price > 0:
                raise ValueError(f"mark price for {symbol} must be > 0, got {price}")
            self._marks[symbol] = float(price)

    def _price(self, symbol: str, prices: Mapping[str, float] | None) -> float:
        if prices is not None and symbol in prices:
            return float(prices[symbol])
        try:
            return self._marks[symbol]
        except KeyError:
            raise KeyError(f"no price known for {symbol}") from None

    def position(self, symbol: str) -> Position:
        holding = self._holdings.get(symbol, _Holding())
        return Position(
            symbol=symbol,
            quantity=holding.quantity,
            avg_price=holding.avg_price,
            realized_pnl=holding.realized_pnl,
        )

    def quantity(self, symbol: str) -> float:
        holding = self._holdings.get(symbol)
        return 0.0 if holding is None else holding.quantity

    @property
    def positions(self) -> dict[str, Position]:
        """Every symbol ever traded, including flat ones (they carry realized PnL)."""
        return {symbol: self.position(symbol) for symbol in sorted(self._holdings)}

    def position_value(self, symbol: str, prices: Mapping[str, float] | None = None) -> float:
        quantity = self.quantity(symbol)
        return 0.0 if quantity == 0.0 else quantity * self._price(symbol, prices)

    def equity(self, prices: Mapping[str, float] | None = None) -> float:
        return self.cash + self.net_exposure(prices)

    def gross_exposure(self, prices: Mapping[str, float] | None = None) -> float:
        return sum((abs(self.position_value(s, prices)) for s in self._holdings), 0.0)

    def net_exposure(self, prices: Mapping[str, float] | None = None) -> float:
        return sum((self.position_value(s, prices) for s in self._holdings), 0.0)

    @property
    def realized_pnl(self) -> float:
        return sum((h.realized_pnl for h in self._holdings.values()), 0.0)

    def unrealized_pnl(self, prices: Mapping[str, float] | None = None) -> float:
        return sum(
            (
                h.quantity * (self._price(s, prices) - h.avg_price)
                for s, h in self._holdings.items()
                if h.quantity != 0.0
            ),
            0.0,
        )

    def snapshot(self, prices: Mapping[str, float] | None = None) -> dict[str, Any]:
        """Plain dicts: ``positions`` rows like trading.positions, the rest like trading.pnl."""
        positions = []
        for symbol, holding in sorted(self._holdings.items()):
            mark = self._price(symbol, prices)
            positions.append(
                {
                    "symbol": symbol,
                    "quantity": holding.quantity,
                    "avg_price": holding.avg_price,
                    "mark_price": mark,
                    "unrealized_pnl": (
                        holding.quantity * (mark - holding.avg_price) if holding.quantity else 0.0
                    ),
                    "realized_pnl": holding.realized_pnl,
                }
            )
        return {
            "quote": self.quote,
            "initial_cash": self.initial_cash,
            "cash": self.cash,
            "equity": self.equity(prices),
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl(prices),
            "fees": self.fees_paid,
            "gross_exposure": self.gross_exposure(prices),
            "net_exposure": self.net_exposure(prices),
            "positions": positions,
        }
