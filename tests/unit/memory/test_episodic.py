"""Episodic memory: embeddings of real market states and kNN retrieval (in-process and Redis)."""

import numpy as np
import pytest

from coinswarm.errors import ConfigError
from coinswarm.memory.episodic import (
    FEATURES,
    ExactIndex,
    HNSWIndex,
    RedisFallbackIndex,
    RedisVectorIndex,
    embed,
    market_features,
    recall_at_k,
    redis_index,
)


@pytest.fixture(scope="module")
def vectors(btc_1h):
    features = market_features(btc_1h.loc["2023"]).dropna()
    return [str(t) for t in features.index], embed(features), features


def test_features_are_causal_and_embeddings_unit_norm(btc_1h, vectors):
    ids, emb, features = vectors
    assert list(features.columns) == list(FEATURES) and emb.shape == (len(features), 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    prefix = market_features(btc_1h.loc["2023"].iloc[:3000])
    np.testing.assert_array_equal(prefix.dropna().to_numpy(), features.loc[prefix.dropna().index].to_numpy())
    assert np.array_equal(embed(features.iloc[:10], dim=64), embed(features.iloc[:10], dim=64))


def test_hnsw_recall_against_exact_search(vectors):
    ids, emb, _ = vectors
    exact, hnsw = ExactIndex(), HNSWIndex()
    exact.add(ids, emb)
    hnsw.add(ids, emb)
    queries = np.random.default_rng(0).choice(len(ids), 100, replace=False)
    truth = [[i for i, _ in exact.search(emb[q])] for q in queries]
    found = [[i for i, _ in hnsw.search(emb[q])] for q in queries]
    assert recall_at_k(truth, found) >= 0.95
    best, score = exact.search(emb[queries[0]], 1)[0]
    assert best == ids[queries[0]] and score == pytest.approx(1.0, abs=1e-5)


def test_bad_vectors_and_features_raise(vectors):
    ids, emb, features = vectors
    with pytest.raises(ConfigError, match="dimensions"):
        ExactIndex().add(["a"], np.zeros((1, 10)))
    with pytest.raises(ConfigError, match="NaN"):
        ExactIndex().add(["a"], np.full((1, 384), np.nan))
    with pytest.raises(ConfigError, match="not finite"):
        embed(features.iloc[:5].assign(r1=np.nan))
    with pytest.raises(ConfigError, match="ids"):
        HNSWIndex().add(["a", "b"], emb[:1])


@pytest.mark.integration
def test_redis_vector_set_persists_and_matches_exact_search(redis_server, vectors):
    import redis

    ids, emb, _ = vectors
    client = redis.Redis.from_url(redis_server[0])
    client.delete("test:episodes")
    index = redis_index(client, "test:episodes")
    assert isinstance(index, RedisVectorIndex)
    index.add(ids[:3000], emb[:3000])
    reopened = RedisVectorIndex(client, "test:episodes")
    assert len(reopened) == 3000
    exact = ExactIndex()
    exact.add(ids[:3000], emb[:3000])
    queries = range(0, 3000, 60)
    truth = [[i for i, _ in exact.search(emb[q])] for q in queries]
    found = [[i for i, _ in reopened.search(emb[q])] for q in queries]
    assert recall_at_k(truth, found) >= 0.95


@pytest.mark.integration
def test_fallback_keeps_vectors_in_redis_and_searches_in_process(redis_server, vectors):
    import redis

    ids, emb, _ = vectors
    client = redis.Redis.from_url(redis_server[0])
    client.delete("test:fallback:vectors")
    index = RedisFallbackIndex(client, "test:fallback:vectors")
    index.add(ids[:500], emb[:500])
    again = RedisFallbackIndex(client, "test:fallback:vectors")
    assert len(again) == 500 and client.hlen("test:fallback:vectors") == 500
    assert again.search(emb[7], 1)[0][0] == ids[7]
