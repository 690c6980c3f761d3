"""Issue #20 §2 benchmarks: headline embedding throughput on the CPU, and top-10 similarity
query latency over stored headline vectors in pgvector and Redis 8 vector sets.

* Throughput (headlines/s) of the local all-MiniLM-L6-v2 (optional extra ``ml``; skipped with the
  reason when absent) with 1 and 2 PyTorch threads on 512 headlines, and of the hashing-trick
  fallback on 2,048 headlines.
* P50 / P99 of a top-10 query over ``COINSWARM_BENCH_VECTORS`` (default 20,000) stored 384-d
  headline vectors: pgvector HNSW on the embedded PostgreSQL and Redis 8 ``VSIM``, each on a real
  server on loopback, with recall@10 against exact search.

Headlines: no corpus of real headlines is available offline, so the text is composed from
templates (asset × event × figure; 10-14 words, the length of a real headline). Throughput depends
on length, not meaning. The stored vectors are the fallback's (20,000 through MiniLM would take
minutes on a shared CPU; an HNSW query's cost depends on the count and dimension of the vectors).

Run: ``pytest benchmarks/test_embedding_speed.py --benchmark-only -s``
"""

from __future__ import annotations

import itertools
import os
import time
import uuid

import numpy as np
import pytest

from coinswarm.adapters.sources.base import Record
from coinswarm.adapters.sources.embeddings import HashingEmbedder, ModelUnavailableError, load_embedder

N_VECTORS = int(os.environ.get("COINSWARM_BENCH_VECTORS", "20000"))
N_QUERIES = 200
ASSETS = ["Bitcoin", "Ether", "Solana", "XRP", "Cardano", "Litecoin", "Dogecoin", "Polygon", "Avalanche",
          "Chainlink", "Tether", "USDC", "BNB", "Tron", "Polkadot", "Cosmos"]
EVENTS = ["climbs {n}% as ETF inflows accelerate", "slides {n}% after exchange outage rattles traders",
          "holds steady near ${n},000 ahead of Fed decision", "jumps {n}% on record futures open interest",
          "drops {n}% as regulators open an investigation", "rallies {n}% after network upgrade goes live",
          "falls {n}% as whales move coins to exchanges", "edges up {n}% while funding rates turn negative",
          "tumbles {n}% after a $80 million bridge exploit", "gains {n}% as miners cut their selling",
          "sinks {n}% amid broad risk-off mood in equities", "surges {n}% on reports of a new treasury buyer"]
SUFFIXES = ["", " in Asian trading", " on Tuesday", " despite weak volumes", " analysts say"]


def headlines(n: int) -> list[str]:
    """``n`` distinct template headlines (deterministic)."""
    combos = itertools.product(range(1, 100), SUFFIXES, EVENTS, ASSETS)
    return [f"{a} {e.format(n=k)}{s}" for k, s, e, a in itertools.islice(combos, n)]


@pytest.fixture(scope="module")
def minilm():
    try:
        return load_embedder("minilm")
    except ModelUnavailableError as err:
        pytest.skip(f"the optional extra `ml` is absent: {err}")


def _throughput(benchmark, embedder, texts: list[str], rounds: int) -> float:
    embedder.embed(texts[:64])  # warm-up (lazy init, thread pools)
    result = benchmark.pedantic(embedder.embed, args=(texts,), rounds=rounds, iterations=1)
    assert result.shape == (len(texts), 384)
    rate = len(texts) / benchmark.stats.stats.median
    benchmark.extra_info["headlines_per_s"] = round(rate)
    return rate


@pytest.mark.parametrize("threads", [1, 2])
def test_embedding_throughput_minilm(benchmark, minilm, threads):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rate = _throughput(benchmark, minilm, headlines(512), rounds=3)
    finally:
        torch.set_num_threads(before)
    print(f"\nall-MiniLM-L6-v2 on the CPU, {threads} torch thread(s), batch {minilm.batch_size}: "
          f"{rate:,.0f} headlines/s (load average {os.getloadavg()[0]:.1f})")


def test_embedding_throughput_hashing_fallback(benchmark):
    rate = _throughput(benchmark, HashingEmbedder(), headlines(2048), rounds=5)
    print(f"\nhashing-trick fallback: {rate:,.0f} headlines/s (load average {os.getloadavg()[0]:.1f})")


@pytest.fixture(scope="module")
def stored():
    """``(records, vectors, query rows, exact top-10 of each query)`` for N_VECTORS headlines."""
    texts = headlines(N_VECTORS)
    embedder = HashingEmbedder()  # query time depends on count and dimension, not on the embedder
    vectors = np.vstack([embedder.embed(texts[i:i + 1024]) for i in range(0, len(texts), 1024)])
    records = [Record("news", "bench", "bench", 1_704_067_200_000 + i * 60_000,
                      {"title": t, "url": f"https://news.example.com/a/{i}"}) for i, t in enumerate(texts)]
    rng = np.random.default_rng(0)
    queries = embedder.embed([f"{t} today" for t in rng.choice(texts, N_QUERIES, replace=False)])
    truth = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]
    print(f"\n{N_VECTORS:,} headline vectors from {embedder.name}")
    return records, vectors, queries, truth


def _latency(store, queries, truth) -> tuple[float, float, float]:
    times, recalls = [], []
    for q, exact in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        hits = store.search(q, 10)
        times.append(time.perf_counter() - t0)
        recalls.append(len({int(h.url.rsplit("/", 1)[1]) for h in hits} & exact) / 10)
    return float(np.percentile(times, 50)) * 1e3, float(np.percentile(times, 99)) * 1e3, float(np.mean(recalls))


def _report(benchmark, name, store, stored):
    records, vectors, queries, truth = stored
    t0 = time.perf_counter()
    for lo in range(0, len(records), 2000):
        store.add(records[lo:lo + 2000], vectors[lo:lo + 2000])
    load_s = time.perf_counter() - t0
    assert len(store) == len(records)
    p50, p99, recall = _latency(store, queries, truth)
    benchmark.pedantic(store.search, args=(queries[0], 10), rounds=50, iterations=1)
    benchmark.extra_info.update(p50_ms=round(p50, 3), p99_ms=round(p99, 3), recall_at_10=round(recall, 3),
                                insert_per_s=round(len(records) / load_s))
    print(f"\n{name}, {len(records):,} x 384: top-10 P50 {p50:.3f} ms, P99 {p99:.3f} ms, recall@10 {recall:.3f}; "
          f"insert {len(records) / load_s:,.0f} headlines/s")
    assert recall >= 0.9


@pytest.mark.integration
def test_top10_query_pgvector(benchmark, stored, postgres_url):
    from coinswarm.ingest.vectors import PgVectorStore

    store = PgVectorStore(postgres_url, table="bench_headlines")
    store.migrate()
    try:
        _report(benchmark, "pgvector HNSW", store, stored)
    finally:
        store.close()


@pytest.mark.integration
def test_top10_query_redis_vector_sets(benchmark, stored, redis_server):
    import redis

    from coinswarm.ingest.vectors import RedisVectorStore

    client = redis.Redis.from_url(redis_server[0], socket_timeout=30)
    store = RedisVectorStore(client, key=f"bench:headlines:{uuid.uuid4().hex[:8]}")
    try:
        _report(benchmark, "Redis 8 VSIM", store, stored)
    finally:
        client.delete(store.key)
        client.close()
