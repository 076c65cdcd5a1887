"""The sentence embedder as a Dagster resource: which model turns documents into vectors.

The default is the light, offline feature-hashing embedder; ``all-MiniLM-L6-v2`` needs the
``coinswarm[embeddings]`` extra (PyTorch). trading.sentiment explains the trade-off. The model is
loaded once per process and only when an asset asks for it.
"""

from __future__ import annotations

import os
import threading

import dagster as dg
from pydantic import Field

from trading.sentiment import EMBEDDERS, HASHING_EMBEDDER, Embedder, build_embedder

_lock = threading.Lock()
_embedders: dict[tuple[int, str], Embedder] = {}


class SentenceEmbedderResource(dg.ConfigurableResource):
    """Names the embedder the sentiment assets use; every document records it."""

    model: str = Field(
        default=HASHING_EMBEDDER,
        description=f"One of {', '.join(EMBEDDERS)}; the MiniLM model needs the embeddings extra.",
    )

    def get_embedder(self) -> Embedder:
        key = (os.getpid(), self.model)
        with _lock:
            embedder = _embedders.get(key)
            if embedder is None:
                embedder = build_embedder(self.model)
                _embedders[key] = embedder
            return embedder
