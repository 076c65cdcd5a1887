from __future__ import annotations

import pytest

from tests.trading.conftest import T0, make_bar
from trading.brokers.base import Broker
from trading.brokers.paper import PaperBroker
from trading.domain import Order, Side


def order(side: Side, quantity: float, **kwargs: object) -> Order:
    return Order(
        client_order_id="cs-abc",
        symbol="ETH/BTC",
        ts=T0,
        side=side,
        quantity=quantity,
        order_type=kwargs.pop("order_type", "market"),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_market_orders_pay_slippage_against_the_taker_and_fees() -> None:
    broker = PaperBroker(fee_bps=10, slippage_bps=5)
    assert isinstance(broker, Broker)
    bar = make_bar(close=0.1)
    (buy,) = broker.submit(order(Side.BUY, 2.0), bar)
    assert buy.price == pytest.approx(0.1 * 1.0005)
    assert buy.fee == pytest.approx(2.0 * 0.1 * 1.0005 * 0.001)
    assert (buy.liquidity, buy.quantity, buy.ts, buy.side) == ("taker", 2.0, T0, Side.BUY)
    (sell,) = broker.submit(order(Side.SELL, 2.0), bar)
    assert sell.price == pytest.approx(0.1 * 0.9995)
    assert sell.fee == pytest.approx(2.0 * 0.1 * 0.9995 * 0.001)


def test_fill_ids_derive_from_the_client_order_id() -> None:
    broker = PaperBroker(fee_bps=10, slippage_bps=5)
    first = broker.submit(order(Side.BUY, 1.0), make_bar())
    again = broker.submit(order(Side.BUY, 1.0), make_bar())
    assert first == again and first[0].fill_id == "cs-abc-1"
    assert first[0].client_order_id == "cs-abc"


def test_partial_fill_is_capped_by_bar_volume_participation() -> None:
    broker = PaperBroker(fee_bps=10, slippage_bps=0, max_participation=0.1)
    (fill,) = broker.submit(order(Side.BUY, 50.0), make_bar(volume=200.0))
    assert fill.quantity == pytest.approx(20.0)
    assert fill.fee == pytest.approx(20.0 * 0.1 * 0.001)
    assert broker.submit(order(Side.BUY, 5.0), make_bar(volume=0.0)) == []
    (whole,) = broker.submit(order(Side.BUY, 5.0), make_bar(volume=200.0))
    assert whole.quantity == 5.0


def test_limit_orders_fill_as_maker_only_when_touched() -> None:
    broker = PaperBroker(fee_bps=10, slippage_bps=5, maker_fee_bps=2)
    bar = make_bar(close=0.1, spread=0.01)  # low 0.099, high 0.101
    (fill,) = broker.submit(order(Side.BUY, 1.0, order_type="limit", limit_price=0.0995), bar)
    assert (fill.price, fill.liquidity) == (0.0995, "maker")
    assert fill.fee == pytest.approx(0.0995 * 0.0002)
    assert broker.submit(order(Side.BUY, 1.0, order_type="limit", limit_price=0.098), bar) == []
    assert broker.submit(order(Side.SELL, 1.0, order_type="limit", limit_price=0.102), bar) == []


def test_paper_broker_validates_inputs() -> None:
    with pytest.raises(ValueError, match="fee_bps"):
        PaperBroker(fee_bps=-1, slippage_bps=0)
    with pytest.raises(ValueError, match="max_participation"):
        PaperBroker(fee_bps=1, slippage_bps=0, max_participation=0)
    with pytest.raises(ValueError, match="bar for LTC/BTC"):
        PaperBroker(fee_bps=1, slippage_bps=0).submit(
            order(Side.BUY, 1.0), make_bar(symbol="LTC/BTC")
        )
