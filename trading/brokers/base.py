"""The broker contract: execution hands over an approved order, the broker returns fills.

Paper and live brokers implement the same protocol; nothing upstream knows which one it has.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from trading.domain import Bar, Fill, Order


@runtime_checkable
class Broker(Protocol):
    def submit(self, order: Order, bar: Bar) -> list[Fill]:
        """Execute ``order`` against the market as of ``bar``; unfilled remainder is cancelled."""
        ...
