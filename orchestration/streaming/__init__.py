"""The ``coinswarm stream`` service: venue websockets (or recorded sessions) -> ticks -> the
tick store, published on NATS.

``model`` (what parsers return), ``sequencing`` (de-duplication, gap detection), ``backoff``,
``batching`` (the bounded buffer and the store writer), ``publish`` (NATS), ``replay``
(recording formats), ``service`` (the asyncio service tying them together). The venue parsers
live with the other sources, in ``assets.ingest.streams``.
"""
