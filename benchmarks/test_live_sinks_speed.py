"""What the runner's sinks cost per closed bar (they run after the decision, inside the bar loop):
PrometheusSink.on_bar, RedisHotState.on_bar on a real redis-server (one MULTI/EXEC round trip),
one redacted JSON log line, and the outbox relay publishing to real NATS JetStream.

Run: ``pytest benchmarks/test_live_sinks_speed.py --benchmark-only``
"""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from coinswarm.live.hotstate import RedisHotState
from coinswarm.live.logs import JsonFormatter, RedactingFilter
from coinswarm.live.metrics import PrometheusSink
from coinswarm.live.sinks import Snapshot

pytestmark = pytest.mark.integration
SNAP = Snapshot(bar_time=1_709_251_200_000, positions={"BTC/USDT": 0.25, "ETH/USDT": -1.5}, cash=1000.0,
                equity=1500.5, drawdown=0.01, regimes={"BTC/USDT": "trend_up", "ETH/USDT": "range"},
                weights={"BTC/USDT": {"trend": 0.6, "meanrev": 0.4}, "ETH/USDT": {"trend": 0.3, "meanrev": 0.7}},
                targets={"BTC/USDT": 0.5, "ETH/USDT": -0.2}, latency_us=250.0, bars_processed=10, feed_lag_ms=12)


def test_prometheus_on_bar(benchmark):
    sink = PrometheusSink()
    benchmark(sink.on_bar, SNAP)


def test_redis_hot_state_on_bar(benchmark, redis_server):
    hot = RedisHotState(redis_server[0], "bench")
    try:
        benchmark(hot.on_bar, SNAP)
    finally:
        hot.client.delete(*hot.client.keys(hot.prefix + ":*"))
        hot.close()


def test_redacted_json_log_line(benchmark):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(["dummy-secret-value-1", "dummy-secret-value-2", "dummy-token-3"]))
    logger = logging.getLogger("coinswarm.bench.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel("INFO")
    try:
        benchmark(logger.info, "order %s sent to %s", "cs0123456789abcdef", "nats://tok@127.0.0.1:4222",
                  extra={"client_order_id": "cs0123456789abcdef", "symbol": "BTC/USDT"})
    finally:
        logger.removeHandler(handler)


def test_relay_publish_to_nats(benchmark, nats_server, tmp_path):
    from coinswarm.live.ledger import Ledger
    from coinswarm.live.outbox import Relay, heartbeat_message
    from coinswarm.live.publisher import connect_publisher

    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.migrate()
    loop = asyncio.new_event_loop()
    bus = loop.run_until_complete(connect_publisher(nats_server[0], connect_timeout=10))
    relay = Relay(ledger, bus, clock=lambda: 0)
    counter = iter(range(10**9))

    def one() -> int:
        ledger.enqueue([heartbeat_message("bench", next(counter))], 0)
        return loop.run_until_complete(relay.drain())

    try:
        benchmark(one)
        assert relay.failures == 0
    finally:
        loop.run_until_complete(bus.close())
        loop.close()
        ledger.close()
