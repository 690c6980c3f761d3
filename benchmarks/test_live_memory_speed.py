"""Issue 18 §3/§7: the daemon with memory proposals on (one ``add_episode`` per closed round
trip into the outbox, :mod:`coinswarm.live.proposals`) — decision latency and replay throughput
on the same data as ``benchmarks/test_live_speed.py``, to compare with memory off.

Run: ``pytest benchmarks/test_live_memory_speed.py --benchmark-only -s``
"""

from __future__ import annotations

import asyncio
import itertools
import os

import numpy as np
import pytest

from coinswarm.live.replay import ReplaySpec, build, feed_for, replay

DATA = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]
START, END = "2021-01-01", "2021-12-31"
_RUN = itertools.count()


def _spec(tmp_path, memory: bool) -> ReplaySpec:
    return ReplaySpec(DATA, "committee", f"sqlite:///{tmp_path / f'mem{next(_RUN)}.db'}", start=START, end=END,
                      memory=memory)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("memory", [False, True], ids=["memory-off", "memory-on"])
def test_decision_latency_with_memory_proposals(benchmark, tmp_path, memory):
    latencies: list[float] = []
    proposed = []

    def once() -> None:
        spec = _spec(tmp_path, memory)
        runner, _ = build(spec)
        try:
            asyncio.run(runner.run(feed_for(spec, runner)))
            latencies[:] = runner.latencies
            proposed[:] = [runner.memory.proposed if runner.memory else 0]
        finally:
            runner.ledger.close()

    benchmark.pedantic(once, rounds=1, iterations=1)
    p50, p99 = np.percentile(latencies, [50, 99])
    benchmark.extra_info.update(p50_us=float(p50), p99_us=float(p99), proposals=proposed[0])
    print(f"\nmemory {'on' if memory else 'off'}: closed bar → decision, committee BTC+ETH 1h 2021 "
          f"({len(latencies)} decisions, {proposed[0]} proposals): P50 {p50:.0f} µs, P99 {p99:.0f} µs "
          f"(targets 1,000 / 5,000; load average {os.getloadavg()[0]:.1f})")
    assert len(latencies) > 8000 and (proposed[0] > 50) == memory


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("memory", [False, True], ids=["memory-off", "memory-on"])
def test_replay_throughput_with_memory_proposals(benchmark, tmp_path, memory):
    summaries = []
    benchmark.pedantic(lambda: summaries.append(asyncio.run(replay(_spec(tmp_path, memory)))), rounds=3,
                       iterations=1)
    best = max(s["bars_per_s"] for s in summaries)
    benchmark.extra_info.update(bars_per_s=best)
    print(f"\nmemory {'on' if memory else 'off'}: replay committee, paper + SQLite, BTC+ETH 1h 2021: "
          f"{summaries[0]['bars']:,} bars, best {best:,.0f} bars/s (target 5,000)")
    assert summaries[0]["bars"] > 17000
