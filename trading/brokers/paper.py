"""Paper broker: fills simulated against the bar, deterministic to the last digit.

Market orders fill at the bar close moved against the taker by ``slippage_bps`` and pay
``fee_bps`` of notional. Limit orders fill at their limit price as maker when the bar traded
through it (buy: low <= limit; sell: high >= limit), without slippage. With
``max_participation`` the filled quantity is capped at that fraction of the bar's volume; the
remainder is cancelled (immediate-or-cancel), never carried to a later bar.
Fill ids derive from the client order id, so a replay produces the same ids.
"""

from __future__ import annotations

import logging

from trading.domain import Bar, Fill, Order, Side

logger = logging.getLogger(__name__)


class PaperBroker:
    def __init__(
        self,
        fee_bps: float,
        slippage_bps: float,
        max_participation: float | None = None,
        *,
        maker_fee_bps: float | None = None,
    ) -> None:
        if not 0 <= fee_bps <= 1000:
            raise ValueError(f"fee_bps must be in [0, 1000], got {fee_bps}")
        if not 0 <= slippage_bps <= 1000:
            raise ValueError(f"slippage_bps must be in [0, 1000], got {slippage_bps}")
        if max_participation is not None and not 0 < max_participation <= 1:
            raise ValueError(f"max_participation must be in (0, 1], got {max_participation}")
        if maker_fee_bps is not None and not 0 <= maker_fee_bps <= 1000:
            raise ValueError(f"maker_fee_bps must be in [0, 1000], got {maker_fee_bps}")
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self.max_participation = max_participation
        self.maker_fee_bps = fee_bps if maker_fee_bps is None else maker_fee_bps

    def submit(self, order: Order, bar: Bar) -> list[Fill]:
        if order.symbol != bar.symbol:
            raise ValueError(
                f"order {order.client_order_id} is for {order.symbol}, the bar for {bar.symbol}"
            )
        if order.order_type == "market":
            slip = self.slippage_bps / 1e4
            price = bar.close * (1.0 + slip if order.side is Side.BUY else 1.0 - slip)
            fee_bps, liquidity = self.fee_bps, "taker"
        else:
            assert order.limit_price is not None  # guaranteed by Order validation
            touched = (
                bar.low <= order.limit_price
                if order.side is Side.BUY
                else bar.high >= order.limit_price
            )
            if not touched:
                return []
            price, fee_bps, liquidity = order.limit_price, self.maker_fee_bps, "maker"

        quantity = order.quantity
        if self.max_participation is not None:
            quantity = min(quantity, self.max_participation * bar.volume)
        if quantity <= 0:
            logger.info("order %s not filled: no volume in bar", order.client_order_id)
            return []
        if quantity < order.quantity:
            logger.info(
                "order %s partially filled: %.10g of %.10g (participation cap)",
                order.client_order_id,
                quantity,
                order.quantity,
            )
        return [
            Fill(
                fill_id=f"{order.client_order_id}-1",
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                ts=bar.ts,
                side=order.side,
                quantity=quantity,
                price=price,
                fee=quantity * price * fee_bps / 1e4,
                liquidity=liquidity,
            )
        ]
