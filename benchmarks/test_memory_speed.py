"""Issue #4 benchmarks: episodic kNN and the quorum, in-process and over real servers.

* kNN on 100,000 × 384 embeddings of real market states (six Binance 1h pairs): P50
  query latency and recall@10 against exact search — usearch HNSW in-process and Redis 8
  vector sets (``VSIM``) on a real redis-server.
* Quorum in-process (``LocalQuorum``): proposals decided per second.
* Quorum over real NATS JetStream + PostgreSQL (4 manager nodes + applier in this
  process): P50 latency proposal → votes → commit → applied row, and throughput sustained
  for ``COINSWARM_BENCH_SECONDS`` (default 60) seconds.
* The same as five processes (``coinswarm quorum node`` × 4 and ``coinswarm quorum
  applier``, the deployed shape): P50 proposal → commit published, and applied throughput
  with at most ``COINSWARM_BENCH_WINDOW`` (default 2,000) proposals submitted but not yet
  applied, in frames of 100.

Run: ``pytest benchmarks/test_memory_speed.py --benchmark-only -s``
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.memory.episodic import ExactIndex, HNSWIndex, RedisVectorIndex, embed, market_features, recall_at_k
from coinswarm.quorum import LocalQuorum, Proposal, QuorumConfig, derive_keys

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "integration"))  # harnesses
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "unit" / "quorum"))

N_VECTORS = 100_000
MANAGERS = ("m1", "m2", "m3", "m4")


@pytest.fixture(scope="module")
def embeddings():
    vectors, ids = [], []
    for pair in ("BTC", "ETH", "LTC", "XRP", "ADA", "SOL"):
        features = market_features(cs.load_ohlcv(f"binance:{pair}/USDT:1h")).dropna()
        vectors.append(embed(features))
        ids += [f"{pair}:{t}" for t in features.index.as_unit("s").asi8]
    matrix = np.vstack(vectors)[:N_VECTORS]
    queries = np.random.default_rng(0).choice(len(matrix), 300, replace=False)
    exact = ExactIndex()
    exact.add(ids[:N_VECTORS], matrix)
    truth = [[i for i, _ in exact.search(matrix[q])] for q in queries]
    return ids[:N_VECTORS], matrix, queries, truth


def _query_stats(index, matrix, queries, truth) -> tuple[float, float]:
    latencies, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = index.search(matrix[q], 10)
        latencies.append(time.perf_counter() - t0)
        found.append([i for i, _ in hits])
    return float(np.median(latencies)) * 1e3, recall_at_k(truth, found)


def test_knn_in_process_hnsw(benchmark, embeddings):
    ids, matrix, queries, truth = embeddings
    index = HNSWIndex()
    index.add(ids, matrix)
    p50, recall = _query_stats(index, matrix, queries, truth)
    benchmark(index.search, matrix[queries[0]], 10)
    print(f"\nHNSW in-process, {len(ids):,} x 384: P50 {p50:.3f} ms, recall@10 {recall:.3f}")
    assert recall >= 0.95


@pytest.mark.integration
def test_knn_redis_vector_sets(benchmark, embeddings, redis_server):
    import redis

    ids, matrix, queries, truth = embeddings
    client = redis.Redis.from_url(redis_server[0])
    client.delete("bench:episodes")
    index = RedisVectorIndex(client, "bench:episodes")
    index.add(ids, matrix)
    p50, recall = _query_stats(index, matrix, queries, truth)
    benchmark(index.search, matrix[queries[0]], 10)
    print(f"\nRedis 8 VSIM, {len(ids):,} x 384: P50 {p50:.3f} ms, recall@10 {recall:.3f}")
    assert recall >= 0.95


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (NaN where ``/proc`` is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _arrived(waiting: dict[str, asyncio.Future], pid: str, at: float) -> None:
    """Resolve ``waiting[pid]`` (if anyone waits for it) with the time its outcome was seen."""
    if pid in waiting and not waiting[pid].done():
        waiting[pid].set_result(at)


async def _one_at_a_time(waiting: dict[str, asyncio.Future], send, ids: list[str]) -> list[float]:
    """Latency of each id, sent one at a time by ``send(id)`` and awaited through
    ``waiting`` (see :func:`_arrived`) — no polling loop competing for the CPU."""
    latencies = []
    for pid in ids:
        waiting[pid] = arrived = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await send(pid)
        latencies.append(await asyncio.wait_for(arrived, 10) - t0)
        del waiting[pid]
    return latencies


def _weights(i: int, now: int) -> Proposal:
    return Proposal(f"w{i}", "planner_weights", "planner", now, now - 1, {"weights": {"a": 0.25, "b": 0.75}})


@pytest.mark.parametrize("mode", ["submit", "submit_many"])
def test_quorum_in_process_throughput(benchmark, mode):
    """50,000 planner-weight proposals through 4 managers: one signed vote per manager and
    proposal (``submit``), or one signed batch per manager and 256 proposals (``submit_many``)."""
    keys = derive_keys(b"bench", MANAGERS)
    now = 1_735_689_600_000
    batch = [_weights(i, now) for i in range(50_000)]
    # the 50,000 prepared proposals are the fixture, not the work: keep the garbage collector
    # from re-scanning them during the run (the quorum's own objects are still collected)
    gc.collect()
    gc.freeze()

    def run() -> int:
        quorum = LocalQuorum(QuorumConfig(MANAGERS), keys)
        if mode == "submit":
            for p in batch:
                quorum.submit(p, now)
        else:
            for start in range(0, len(batch), 256):
                quorum.submit_many(batch[start:start + 256], now)
        # the count, not the quorum: a round's decisions and audit trail (~300,000 objects) must
        # not stay alive into the next round, where the collector would scan them again
        return len(quorum.memory.commits)

    try:
        committed = benchmark.pedantic(run, rounds=3, iterations=1)
    finally:
        gc.unfreeze()
    n = len(batch)
    assert committed == n
    batch.clear()  # the benchmark keeps `run` (and so this list) alive: free the proposals for the next test
    rate = n / benchmark.stats.stats.median
    print(f"\nLocalQuorum.{mode}: {rate:,.0f} proposals/s decided (4 managers, HMAC-signed votes)")


@pytest.mark.integration
@pytest.mark.parametrize("persist_audit", [True, False], ids=["audit-stored", "audit-in-memory"])
def test_quorum_over_nats_and_postgres(benchmark, nats_url, postgres_url, persist_audit):
    from quorum_harness import clock, start_cluster

    from coinswarm.adapters.bus import NatsBus
    from coinswarm.memory import Store
    from coinswarm.memory.nodes import submit

    seconds = float(os.environ.get("COINSWARM_BENCH_SECONDS", "60"))
    store = Store(postgres_url, pool_size=10)
    store.migrate()

    async def scenario():
        cluster = await start_cluster(nats_url, store, prefix="bench", persist_audit=persist_audit)
        proposer = await NatsBus.connect(nats_url, name="bench-proposer")
        applied: dict[str, float] = {}
        waiting: dict[str, asyncio.Future] = {}

        def on_applied(pid: str) -> None:
            _arrived(waiting, pid, applied.setdefault(pid, time.perf_counter()))

        cluster.applier.on_applied = on_applied
        latencies = await _one_at_a_time(waiting, lambda pid: submit(proposer, _weights_at(pid)),
                                         [f"lat{i}" for i in range(300)])
        start, sent, window = time.perf_counter(), 0, 200  # at most `window` proposals in flight
        loaded = lambda: len(applied) - len(latencies)  # noqa: E731
        while time.perf_counter() - start < seconds:
            room = window - (sent - loaded())
            if room <= 0:
                await asyncio.sleep(0.001)
                continue
            await asyncio.gather(*(submit(proposer, _weights_at(f"load{sent + k}")) for k in range(min(room, 50))))
            sent += min(room, 50)
        while loaded() < sent and time.perf_counter() - start < seconds + 30:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        done = loaded()
        await proposer.close()
        await cluster.close()
        return np.array(latencies), done, elapsed

    def _weights_at(pid: str) -> Proposal:
        now = clock()
        return Proposal(pid, "planner_weights", "planner", now, now - 1, {"weights": {"a": 0.25, "b": 0.75}})

    latencies, done, elapsed = benchmark.pedantic(lambda: asyncio.run(scenario()), rounds=1, iterations=1)
    mode = "audit trail stored" if persist_audit else "audit kept in memory"
    print(f"\nquorum over NATS JetStream + PostgreSQL ({mode}): P50 {np.median(latencies) * 1e3:.2f} ms, "
          f"P95 {np.percentile(latencies, 95) * 1e3:.2f} ms (sequential); sustained {done / elapsed:,.0f} "
          f"proposals/s over {elapsed:.0f} s ({done:,} applied)")
    store.close()


async def _committed_one_at_a_time(proposer, proposal, n: int, pids: dict[str, int], cpu_ms: dict) -> list[float]:
    """Latency from submitting to seeing the commit on ``mem.commit`` of ``n`` proposals sent
    one at a time, after 100 unmeasured (the processes' first proposals touch code and
    connections cold); ``cpu_ms`` gets each process's CPU milliseconds per measured proposal."""
    from coinswarm.memory.commits import committed_ids
    from coinswarm.memory.nodes import submit

    waiting: dict[str, asyncio.Future] = {}

    async def seen(msg):
        at = time.perf_counter()
        for pid in committed_ids(msg.data):
            _arrived(waiting, pid, at)

    watch = await proposer.subscribe("mem.commit", seen)
    await _one_at_a_time(waiting, lambda pid: submit(proposer, proposal(pid)), [f"pwarm{i}" for i in range(100)])
    cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    latencies = await _one_at_a_time(waiting, lambda pid: submit(proposer, proposal(pid)),
                                     [f"plat{i}" for i in range(n)])
    await watch.unsubscribe()
    cpu_ms.update({name: (_cpu_seconds(pid) - cpu_before[name]) / n * 1e3 for name, pid in pids.items()})
    return latencies


async def _sustained_load(proposer, stored, before: int, proposal, seconds: float) -> tuple[int, float]:
    """Submit frames of 100 for ``seconds`` while keeping at most ``COINSWARM_BENCH_WINDOW``
    (2,000) proposals submitted but not yet applied (a bounded backlog; ``stored()`` counts
    the decisions in the store, ``before`` of them from earlier); then wait (≤ 60 s) until
    all are applied. Returns ``(applied, seconds elapsed)``."""
    while stored() < before:
        await asyncio.sleep(0.01)
    start, sent, window = time.perf_counter(), 0, int(os.environ.get("COINSWARM_BENCH_WINDOW", "2000"))
    applied, polled = 0, 0.0
    while time.perf_counter() - start < seconds:
        if time.perf_counter() - polled > 0.02:
            applied, polled = await asyncio.to_thread(stored) - before, time.perf_counter()
        room = window - (sent - applied)
        if room <= 0:
            await asyncio.sleep(0.005)
            continue
        ids = [f"pload{sent + j}" for j in range(min(room, 100))]
        await proposer.stream_publish_many("mem.propose", [(pid, proposal(pid).encode()) for pid in ids])
        sent += len(ids)
    while stored() < before + sent and time.perf_counter() - start < seconds + 60:
        await asyncio.sleep(0.05)
    return stored() - before, time.perf_counter() - start


@pytest.mark.integration
def test_quorum_as_processes_over_nats_and_postgres(benchmark, nats_url, postgres_url):
    """Four ``coinswarm quorum node`` processes and a ``coinswarm quorum applier`` (the deployed
    shape); this process only proposes and watches ``mem.commit``."""
    import signal

    from test_quorum_processes import MANAGERS as NODES
    from test_quorum_processes import _start, _wait_ready

    from coinswarm.adapters.bus import NatsBus
    from coinswarm.memory import Store
    from coinswarm.memory.models import DecisionRow
    from coinswarm.memory.nodes import wall_clock_ms

    seconds = float(os.environ.get("COINSWARM_BENCH_SECONDS", "60"))
    env = {**os.environ, "COINSWARM_QUORUM_SECRET": "bench", "PYTHONUNBUFFERED": "1"}
    procs = [_start("node", "--name", m, "--failover-ms", "500", env=env,  # the CLI's default failover
                    urls=(nats_url, postgres_url)) for m in NODES]
    procs.append(_start("applier", env=env, urls=(nats_url, postgres_url)))
    roles, cpu_ms = [*NODES, "applier"], {}  # CPU ms per sequential proposal, by process
    for proc in procs:
        _wait_ready(proc)
    store = Store(postgres_url)
    sequential = 1000
    before_load = 100 + sequential  # warm-up and measured sequential proposals

    def proposal(pid: str) -> Proposal:
        now = wall_clock_ms()
        return Proposal(pid, "planner_weights", "planner", now, now - 1, {"weights": {"a": 0.25, "b": 0.75}})

    async def scenario():
        proposer = await NatsBus.connect(nats_url, name="bench-proposer")
        latencies = await _committed_one_at_a_time(proposer, proposal, sequential,
                                                   dict(zip(roles, (p.pid for p in procs), strict=True)), cpu_ms)
        applied, elapsed = await _sustained_load(proposer, lambda: store.count(DecisionRow), before_load, proposal,
                                                 seconds)
        await proposer.close()
        return np.array(latencies), applied, elapsed

    try:
        latencies, applied, elapsed = benchmark.pedantic(lambda: asyncio.run(scenario()), rounds=1, iterations=1)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30)[0] for proc in procs]
        store.close()
    print("".join(line for out in outputs for line in out.splitlines(keepends=True) if "stopped" in line))
    print(f"\nquorum as 5 processes over NATS + PostgreSQL: P50 {np.median(latencies) * 1e3:.2f} ms, "
          f"P95 {np.percentile(latencies, 95) * 1e3:.2f} ms proposal -> commit published (sequential); "
          f"sustained {applied / elapsed:,.0f} proposals/s applied over {elapsed:.0f} s ({applied:,})")
    if all(v == v for v in cpu_ms.values()):  # CPU time per sequential proposal (user + system; Linux)
        print("CPU per sequential proposal: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu_ms.items()))
