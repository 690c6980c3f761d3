"""End to end on real servers: an RSS feed on 127.0.0.1 → news records → VADER sentiment →
MiniLM embeddings (or the fallback without the ``ml`` extra) → pgvector and Redis → similarity search."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from coinswarm.adapters.sources.base import Record
from coinswarm.adapters.sources.embeddings import HashingEmbedder, ModelUnavailableError, load_embedder
from coinswarm.adapters.sources.rss import RssSource
from coinswarm.ingest.vectors import PgVectorStore, RedisVectorStore, index_headlines
from tests.fixtures.http_server import fixture_server as _fixture_server

pytestmark = pytest.mark.integration
fixture_server = _fixture_server  # the recorded-reply server on 127.0.0.1 (a pytest fixture)
FAR = 2_000_000_000_000


def _minilm():
    try:
        return load_embedder("minilm")
    except ModelUnavailableError as err:
        pytest.skip(f"the optional extra `ml` is absent: {err}")


def _ingest_twice(fixture_server, embedder, store):
    fixture_server.route("/rss", (200, "rss/crypto_news_rss2.xml"))
    fixture_server.route("/atom", (200, "rss/crypto_atom.xml"))
    reports = []
    for _ in range(2):  # the second pass re-reads the same feeds: nothing new is stored
        for path in ("/rss", "/atom"):
            batch = asyncio.run(RssSource(fixture_server.url + path).fetch(0, FAR, now_ms=1))
            reports.append(index_headlines(batch.records, embedder, store, received_ms=1))
    assert [r.inserted for r in reports] == [4, 2, 0, 0]
    assert len(store) == 6
    return reports


@pytest.fixture(params=["pg", "redis"])
def store(request):
    if request.param == "pg":
        s = PgVectorStore(request.getfixturevalue("postgres_url"))
        s.migrate()
        yield s
        s.close()
        return
    import redis

    client = redis.Redis.from_url(request.getfixturevalue("redis_server")[0], socket_timeout=10)
    s = RedisVectorStore(client, key=f"test:pipeline:{uuid.uuid4().hex[:8]}")
    yield s
    client.delete(s.key)
    client.close()


@pytest.mark.timeout(900)
def test_semantic_search_over_ingested_headlines(fixture_server, store):
    embedder = _minilm()
    reports = _ingest_twice(fixture_server, embedder, store)
    hack = next(r for r in reports[0].sentiment if "hack" in r.values["title"])
    assert hack.values["score"] < 0
    # queries sharing no word with the headline they should find (BTC ~ Bitcoin, breach ~ hack)
    [hit] = store.search(embedder.embed(["security breach at a trading venue"])[0], k=1)
    assert hit.url.endswith("exchange-hack") and hit.source.startswith("rss:")
    [hit] = store.search(embedder.embed(["BTC hits new high"])[0], k=1)
    assert hit.url.endswith("bitcoin-climbs-above-45000")
    [hit] = store.search(embedder.embed(["perpetual futures shorts paying longs"])[0], k=1)
    assert hit.url.endswith("funding-negative")


def test_fallback_pipeline_runs_without_the_model(fixture_server, store):
    embedder = HashingEmbedder()
    _ingest_twice(fixture_server, embedder, store)
    [hit] = store.search(embedder.embed(["stablecoin guidance from regulators"])[0], k=1)
    assert hit.url.endswith("stablecoin-guidance")
    bad = [Record("candle", "binance", "BTC/USDT", 0, {}), Record("news", "f", "k", 0, {"title": " ", "url": "u"}),
           Record("news", "f", "k", 5, {"title": "Miners sell coins", "url": "https://n.example/miners"})]
    report = index_headlines(bad, embedder, store)
    assert report.inserted == 1 and [e.field for e in report.rejected] == ["kind", "title"] and len(store) == 7
