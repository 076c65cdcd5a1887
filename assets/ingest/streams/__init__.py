"""Venue websocket parsers: one module per venue, each a :class:`VenueFeed` for the service.

Pure functions from a received message to ticks in the tick store's schema, shared by the live
``coinswarm stream`` service and its replay of the recorded sessions in ``../shared/data``.
"""

from __future__ import annotations

from types import MappingProxyType

from assets.ingest.streams import binance, coinbase

VENUE_FEEDS = MappingProxyType({binance.VENUE: binance, coinbase.VENUE: coinbase})
"""Venue name -> its parser module (satisfies ``orchestration.streaming.model.VenueFeed``)."""

DEFAULT_SYMBOLS = MappingProxyType(
    {binance.VENUE: ("BTC/USDT", "ETH/USDT"), coinbase.VENUE: ("BTC/USD", "ETH/USD")}
)
"""What ``coinswarm stream`` subscribes to by default, and what the 1m bars are built for."""
