"""Issue #20 benchmark: MCP tool-call latency in-process (the SDK's ``Client`` against the
server object), ``get_regime`` on Binance BTC/USDT 1h with a warm cache, audit row included.
Target: P50 ≤ 5 ms. ``place_order`` (a paper fill: write-ahead, fill, audit) is measured too.

The client lives on an event loop in a helper thread (an anyio session must be entered and left
by one task); each round hands it one call, so the cross-thread hop is inside the number.

Run: ``pytest benchmarks/test_mcp_speed.py --benchmark-only -s``
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from mcp import Client

from coinswarm.live.config import RiskLimits
from coinswarm.mcpserver import OrderLimits, ServerConfig, build_server

DATA = "binance:BTC/USDT:1h"


class Session:
    """An open in-process client on its own loop and thread."""

    def __init__(self, server) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready, self.stop = threading.Event(), None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._hold(server),), daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "the client did not connect"

    async def _hold(self, server) -> None:
        self.stop = asyncio.Event()
        async with Client(server) as client:
            self.client = client
            self.ready.set()
            await self.stop.wait()

    def call(self, name: str, arguments: dict):
        return asyncio.run_coroutine_threadsafe(self.client.call_tool(name, arguments), self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('mcp') / 'paper.db'}"
    limits = OrderLimits(risk=RiskLimits(max_position=1e6, max_order_notional=1e9), max_daily_notional=1e12)
    clock = iter(range(1_767_225_600_000, 1_767_225_600_000 + 10**9))
    app = build_server(ServerConfig(db=db, limits=limits), lambda: next(clock))
    opened = Session(app.server)
    assert not opened.call("get_regime", {"data": DATA}).is_error  # loads and labels the data once
    yield opened
    opened.close()
    asyncio.run(app.aclose())


def _report(benchmark, label: str, target_ms: float | None = None) -> None:
    data = np.asarray(benchmark.stats.stats.data) * 1e3
    p50, p99 = np.percentile(data, [50, 99])
    goal = "" if target_ms is None else f" (target P50 ≤ {target_ms} ms: {'met' if p50 <= target_ms else 'MISSED'})"
    print(f"\n{label}: P50 {p50:.2f} ms, P99 {p99:.2f} ms over {len(data)} calls{goal}")


def test_get_regime_in_process_latency(benchmark, session):
    result = benchmark.pedantic(session.call, args=("get_regime", {"data": DATA}), rounds=300, warmup_rounds=10)
    assert not result.is_error
    _report(benchmark, "get_regime in-process", 5.0)


def test_paper_place_order_in_process_latency(benchmark, session):
    result = benchmark.pedantic(session.call, args=("place_order", {"symbol": "BTC/USDT", "side": "buy",
                                                                    "qty": 0.0001}), rounds=100, warmup_rounds=3)
    assert not result.is_error and result.structured_content["status"] == "filled"
    _report(benchmark, "place_order (paper fill) in-process")
