"""Episodic memory: embeddings of market states and k-nearest-neighbour retrieval.

**What goes into an embedding** (:func:`market_features`, all causal — bar t uses bars ≤ t):
log returns over 1, 4, 24, 72 and 168 bars; realised volatility (per-bar std) over 24
and 168 bars; the trend t-statistic and Corwin–Schultz spread of the regime detector;
one-hot volatility × trend cell (9) and session (3); the trend and mean-reversion
agents' votes and confidences — 25 features. Each is standardised with fixed robust
scales, then a seeded Gaussian random projection (Johnson–Lindenstrauss) maps them to
``dim`` dimensions (384 as in the seed) and the vector is L2-normalised, so cosine
similarity is a dot product.

**Indexes** share one interface (``add(ids, vectors)``, ``search(vector, k)``):
:class:`ExactIndex` (numpy, exact), :class:`HNSWIndex` (usearch HNSW),
:class:`RedisVectorIndex` (Redis 8 vector sets, ``VADD``/``VSIM``, persisted in Redis) and
:class:`RedisFallbackIndex` (vectors kept in a Redis hash, searched in-process) for a Redis
without vector sets; :func:`redis_index` picks between the last two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coinswarm.errors import ConfigError

FEATURES = ("r1", "r4", "r24", "r72", "r168", "vol24", "vol168", "trend_t", "spread",
            *(f"cell{k}" for k in range(9)), "asia", "europe", "us",
            "trend_vote", "trend_conf", "mr_vote", "mr_conf")
_SCALES = np.array([0.01, 0.02, 0.05, 0.08, 0.12, 0.01, 0.01, 2.0, 0.003] + [1.0] * 12 + [1.0] * 4)


def market_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The 25 causal features per bar (NaN during warm-up rows)."""
    from coinswarm.agents import MeanReversion, Trend
    from coinswarm.regime import regimes

    log_close = np.log(prices["close"])
    labels = regimes(prices, gaps="ignore")
    r1 = log_close.diff()
    out = {f"r{h}": log_close.diff(h) for h in (1, 4, 24, 72, 168)}
    out["vol24"], out["vol168"] = r1.rolling(24).std(ddof=0), r1.rolling(168).std(ddof=0)
    out["trend_t"], out["spread"] = labels["trend_t"], labels["spread"]
    for k in range(9):
        out[f"cell{k}"] = (labels["regime"] == k).astype(float)
    for name in ("asia", "europe", "us"):
        out[name] = (labels["session"] == name).astype(float)
    trend, mr = Trend().run(prices, gaps="ignore"), MeanReversion().run(prices, gaps="ignore")
    out["trend_vote"], out["trend_conf"] = trend["vote"], trend["confidence"]
    out["mr_vote"], out["mr_conf"] = mr["vote"], mr["confidence"]
    return pd.DataFrame(out, index=prices.index)[list(FEATURES)]


def projection(dim: int = 384, seed: int = 20240101) -> np.ndarray:
    """The fixed random projection ``(len(FEATURES), dim)`` (same seed → same embeddings)."""
    if dim < 1:
        raise ConfigError(f"embedding dim must be positive, got {dim}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((len(FEATURES), dim)) / np.sqrt(dim)


def embed(features: pd.DataFrame | np.ndarray, dim: int = 384, seed: int = 20240101) -> np.ndarray:
    """Unit-norm ``float32`` embeddings ``(n, dim)``; rows with NaN features raise."""
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(FEATURES):
        raise ConfigError(f"features must be (n, {len(FEATURES)}), got {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise ConfigError(f"feature row {bad[0]} is not finite (drop the warm-up rows first)")
    z = np.tanh(values / _SCALES)
    vectors = z @ projection(dim, seed)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _as_matrix(vectors, dim: int) -> np.ndarray:
    matrix = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
    if matrix.shape[1] != dim:
        raise ConfigError(f"vectors must have {dim} dimensions, got {matrix.shape[1]}")
    if not np.isfinite(matrix).all():
        raise ConfigError("vectors contain NaN or inf")
    return matrix


class ExactIndex:
    """Brute-force cosine kNN over unit vectors (the ground truth for recall)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.ids: list[str] = []
        self._blocks: list[np.ndarray] = []
        self._matrix = np.empty((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: list[str], vectors) -> None:
        """Append vectors under string ids."""
        matrix = _as_matrix(vectors, self.dim)
        if len(ids) != len(matrix):
            raise ConfigError(f"{len(ids)} ids for {len(matrix)} vectors")
        self.ids.extend(ids)
        self._matrix = np.vstack([self._matrix, matrix])

    def search(self, vector, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most similar ids with cosine similarity, best first."""
        scores = self._matrix @ _as_matrix(vector, self.dim)[0]
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.empty(0, dtype=int)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top]


class HNSWIndex:
    """Approximate kNN with usearch's HNSW graph (cosine)."""

    def __init__(self, dim: int = 384, connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 64) -> None:
        from usearch.index import Index

        self.dim = dim
        self.index = Index(ndim=dim, metric="cos", dtype="f32", connectivity=connectivity,
                           expansion_add=expansion_add, expansion_search=expansion_search)
        self.ids: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, ids: list[str], vectors) -> None:
        """Insert vectors under string ids."""
        matrix = _as_matrix(vectors, self.dim)
        if len(ids) != len(matrix):
            raise ConfigError(f"{len(ids)} ids for {len(matrix)} vectors")
        keys = np.arange(len(self.ids), len(self.ids) + len(ids), dtype=np.uint64)
        self.index.add(keys, matrix)
        self.ids.extend(ids)

    def search(self, vector, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest ids with cosine similarity (1 − distance), best first."""
        matches = self.index.search(_as_matrix(vector, self.dim)[0], k)
        return [(self.ids[int(key)], 1.0 - float(dist)) for key, dist in zip(matches.keys, matches.distances,
                                                                                strict=True)]


class RedisVectorIndex:
    """Redis 8 vector set: ``VADD key FP32 <blob> <id>`` / ``VSIM key FP32 <blob> COUNT k WITHSCORES``."""

    def __init__(self, client, key: str = "coinswarm:episodes", dim: int = 384, ef: int = 200) -> None:
        self.client, self.key, self.dim, self.ef = client, key, dim, ef

    def __len__(self) -> int:
        return int(self.client.execute_command("VCARD", self.key) or 0)

    def add(self, ids: list[str], vectors, batch: int = 1000) -> None:
        """Insert vectors (pipelined in batches)."""
        matrix = _as_matrix(vectors, self.dim)
        if len(ids) != len(matrix):
            raise ConfigError(f"{len(ids)} ids for {len(matrix)} vectors")
        for lo in range(0, len(ids), batch):
            pipe = self.client.pipeline(transaction=False)
            for i in range(lo, min(lo + batch, len(ids))):
                pipe.execute_command("VADD", self.key, "FP32", matrix[i].tobytes(), ids[i])
            pipe.execute()

    def search(self, vector, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most similar ids (Redis reports cosine similarity in [0, 1])."""
        reply = self.client.execute_command("VSIM", self.key, "FP32", _as_matrix(vector, self.dim)[0].tobytes(),
                                            "COUNT", k, "WITHSCORES", "EF", self.ef)
        pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
        return [(i.decode() if isinstance(i, bytes) else str(i), float(s)) for i, s in pairs]


class RedisFallbackIndex:
    """Vectors persisted in a Redis hash; search runs in-process (for a Redis without vector sets)."""

    def __init__(self, client, key: str = "coinswarm:episodes:vectors", dim: int = 384) -> None:
        self.client, self.key, self.dim = client, key, dim
        self.local = HNSWIndex(dim)
        stored = client.hgetall(key)
        if stored:
            ids = [k.decode() for k in stored]
            self.local.add(ids, np.vstack([np.frombuffer(v, dtype=np.float32) for v in stored.values()]))

    def __len__(self) -> int:
        return len(self.local)

    def add(self, ids: list[str], vectors) -> None:
        """Store in Redis and index locally."""
        matrix = _as_matrix(vectors, self.dim)
        self.client.hset(self.key, mapping={i: matrix[k].tobytes() for k, i in enumerate(ids)})
        self.local.add(ids, matrix)

    def search(self, vector, k: int = 10) -> list[tuple[str, float]]:
        """In-process HNSW search."""
        return self.local.search(vector, k)


def has_vector_sets(client) -> bool:
    """Whether the Redis server knows ``VADD`` (Redis ≥ 8 or the vector-sets module)."""
    from redis.exceptions import ResponseError

    try:
        client.execute_command("VCARD", "coinswarm:probe:vector-sets")
    except ResponseError:  # "unknown command" on servers without vector sets
        return False
    return True


def redis_index(client, key: str = "coinswarm:episodes", dim: int = 384):
    """A vector-set index when the server has them, otherwise the hash-backed fallback."""
    if has_vector_sets(client):
        return RedisVectorIndex(client, key, dim)
    return RedisFallbackIndex(client, key + ":vectors", dim)


def recall_at_k(truth: list[list[str]], found: list[list[str]], k: int = 10) -> float:
    """Mean fraction of the exact top-k found by an approximate index."""
    hits = [len(set(t[:k]) & set(f[:k])) / k for t, f in zip(truth, found, strict=True)]
    return float(np.mean(hits)) if hits else 0.0
