from __future__ import annotations

from datetime import timedelta

import pytest

from tests.trading.conftest import T0
from trading.domain import Fill, Side
from trading.portfolio import AccountingError, Portfolio


def fill(
    n: int,
    side: Side,
    quantity: float,
    price: float,
    *,
    symbol: str = "ETH/BTC",
    fee: float = 0.0,
) -> Fill:
    return Fill(
        fill_id=f"f{n}",
        client_order_id=f"o{n}",
        symbol=symbol,
        ts=T0 + timedelta(minutes=5 * n),
        side=side,
        quantity=quantity,
        price=price,
        fee=fee,
        liquidity="taker",
    )


def test_buy_then_partial_sell_average_cost_accounting() -> None:
    portfolio = Portfolio("BTC", 1.0)
    portfolio.apply_fill(fill(1, Side.BUY, 2.0, 0.10, fee=0.0002))
    portfolio.apply_fill(fill(2, Side.BUY, 2.0, 0.12, fee=0.0002))
    position = portfolio.position("ETH/BTC")
    assert position.quantity == pytest.approx(4.0)
    assert position.avg_price == pytest.approx(0.11)
    assert portfolio.cash == pytest.approx(1.0 - 0.44 - 0.0004)

    portfolio.apply_fill(fill(3, Side.SELL, 1.0, 0.13, fee=0.0001))
    assert portfolio.realized_pnl == pytest.approx(0.02)
    assert portfolio.fees_paid == pytest.approx(0.0005)

    prices = {"ETH/BTC": 0.15}
    assert portfolio.unrealized_pnl(prices) == pytest.approx(3.0 * 0.04)
    assert portfolio.gross_exposure(prices) == pytest.approx(0.45)
    assert portfolio.net_exposure(prices) == pytest.approx(0.45)
    equity = portfolio.equity(prices)
    assert equity - portfolio.initial_cash == pytest.approx(
        portfolio.realized_pnl + portfolio.unrealized_pnl(prices) - portfolio.fees_paid
    )


def test_long_only_and_no_margin_are_refused() -> None:
    portfolio = Portfolio("BTC", 1.0)
    with pytest.raises(AccountingError, match="only 0.0 is held"):
        portfolio.apply_fill(fill(1, Side.SELL, 1.0, 0.1))
    with pytest.raises(AccountingError, match="no margin"):
        portfolio.apply_fill(fill(2, Side.BUY, 20.0, 0.1))
    with pytest.raises(AccountingError, match="quoted in USDT"):
        portfolio.apply_fill(fill(3, Side.BUY, 1.0, 0.1, symbol="ETH/USDT"))
    assert portfolio.cash == 1.0 and portfolio.positions == {}


def test_selling_everything_leaves_a_flat_position_with_realized_pnl() -> None:
    portfolio = Portfolio("BTC", 1.0)
    portfolio.apply_fill(fill(1, Side.BUY, 3.0, 0.1))
    portfolio.apply_fill(fill(2, Side.SELL, 3.0, 0.09))
    position = portfolio.position("ETH/BTC")
    assert position.quantity == 0.0 and position.avg_price == 0.0
    assert position.realized_pnl == pytest.approx(-0.03)
    assert portfolio.equity() == pytest.approx(0.97)


def test_mark_updates_valuation_and_snapshot_rows() -> None:
    portfolio = Portfolio("BTC", 1.0)
    portfolio.apply_fill(fill(1, Side.BUY, 2.0, 0.1))
    portfolio.apply_fill(fill(2, Side.BUY, 10.0, 0.01, symbol="LTC/BTC"))
    assert portfolio.equity() == pytest.approx(1.0)  # marked at fill prices
    portfolio.mark({"ETH/BTC": 0.2})
    snapshot = portfolio.snapshot()
    assert snapshot["equity"] == pytest.approx(1.2)
    assert snapshot["gross_exposure"] == pytest.approx(0.5)
    assert [row["symbol"] for row in snapshot["positions"]] == ["ETH/BTC", "LTC/BTC"]
    eth = snapshot["positions"][0]
    assert eth == {
        "symbol": "ETH/BTC",
        "quantity": 2.0,
        "avg_price": 0.1,
        "mark_price": 0.2,
        "unrealized_pnl": pytest.approx(0.2),
        "realized_pnl": 0.0,
    }
    with pytest.raises(ValueError, match="must be > 0"):
        portfolio.mark({"ETH/BTC": 0.0})


def test_from_fills_round_trip_is_order_independent() -> None:
    fills = [
        fill(1, Side.BUY, 2.0, 0.10, fee=0.0001),
        fill(2, Side.BUY, 5.0, 0.02, symbol="LTC/BTC", fee=0.00001),
        fill(3, Side.SELL, 1.5, 0.11, fee=0.0001),
        fill(4, Side.BUY, 1.0, 0.105, fee=0.0001),
        fill(5, Side.SELL, 5.0, 0.018, symbol="LTC/BTC"),
    ]
    live = Portfolio("BTC", 1.0)
    for f in fills:
        live.apply_fill(f)
    prices = {"ETH/BTC": 0.1, "LTC/BTC": 0.02}
    rebuilt = Portfolio.from_fills(1.0, reversed(fills), quote="BTC")
    assert rebuilt.snapshot(prices) == live.snapshot(prices)
