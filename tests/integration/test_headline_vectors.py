"""Headline vectors on the real servers: pgvector on the embedded PostgreSQL, Redis 8 vector sets."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from coinswarm.adapters.sources.base import Record, RecordError
from coinswarm.adapters.sources.embeddings import HashingEmbedder
from coinswarm.adapters.sources.rss import parse_feed
from coinswarm.ingest.vectors import PgVectorStore, RedisVectorStore, VectorStoreError

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures" / "rss"


@pytest.fixture(scope="module")
def headlines():
    records = []
    for name in ("crypto_news_rss2.xml", "crypto_atom.xml", "malformed_entries_rss2.xml"):
        records += parse_feed((FIXTURES / name).read_bytes(), "https://feed/" + name, "rss:" + name).records
    return records, HashingEmbedder().embed([r.values["title"] for r in records])


@pytest.fixture
def pg(postgres_url):
    store = PgVectorStore(postgres_url)
    store.migrate()
    store.migrate()  # idempotent
    yield store
    store.close()


@pytest.fixture
def rv(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server[0], socket_timeout=10)
    store = RedisVectorStore(client, key=f"test:headlines:{uuid.uuid4().hex[:8]}")
    yield store
    client.delete(store.key)
    client.close()


@pytest.fixture(params=["pg", "rv"])
def store(request):
    return request.getfixturevalue(request.param)


def test_inserts_are_idempotent_by_url(store, headlines):
    records, vectors = headlines
    assert len(records) == 8
    assert store.add(records[:6], vectors[:6]) == 6
    assert store.add(records[:6], vectors[:6]) == 0
    assert store.add(records[4:], vectors[4:]) == 2  # 2 known, 2 new
    twice = [records[0], records[0]]
    assert store.add(twice, vectors[[0, 0]]) == 0
    assert len(store) == 8


def test_search_finds_the_headline_and_its_lexical_neighbour_first(store, headlines):
    records, vectors = headlines
    store.add(records, vectors)
    hits = store.search(vectors[0], k=10)
    assert len(hits) == 8
    assert hits[0].url == records[0].values["url"] and hits[0].title == records[0].values["title"]
    assert hits[0].similarity == pytest.approx(1.0, abs=0.02)
    assert hits[0].time_ms == records[0].time_ms and hits[0].source == records[0].source
    sims = [h.similarity for h in hits]
    assert sims == sorted(sims, reverse=True)
    query = HashingEmbedder().embed(["Regulators publish stablecoin guidance today"])[0]
    assert store.search(query, k=1)[0].url.endswith("stablecoin-guidance")


def test_bad_input_writes_nothing(store, headlines):
    records, vectors = headlines
    store.add(records[:2], vectors[:2])
    bad_calls = [
        (VectorStoreError, records[2:4], vectors[2:3]),                         # count mismatch
        (VectorStoreError, records[2:3], np.zeros((1, 384))),                   # zero vector
        (VectorStoreError, records[2:3], np.full((1, 384), np.nan)),            # NaN
        (VectorStoreError, records[2:3], np.ones((1, 12))),                     # wrong dim
        (RecordError, [Record("candle", "x", "BTC/USDT", 0, {})], vectors[:1]),   # not a headline
        (RecordError, [Record("news", "x", "k", 0, {"title": "t", "url": ""})], vectors[:1]),
    ]
    for error, recs, vecs in bad_calls:
        with pytest.raises(error):
            store.add(recs, vecs)
    assert len(store) == 2
    for query, k in [(np.zeros(384), 3), (vectors[0], 0), (vectors[0], True), (np.ones(5), 3)]:
        with pytest.raises(VectorStoreError):
            store.search(query, k)
