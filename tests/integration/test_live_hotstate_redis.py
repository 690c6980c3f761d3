"""The Redis hot state on a real Redis server: the snapshot round trip, the heartbeat's TTL, an
ACL user with a password from the URL, and Redis stopped mid-run (the sink fails and is counted,
trading goes on, the state is restored once Redis is back)."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from coinswarm.live.hotstate import HotStateError, RedisHotState
from coinswarm.live.orders import StoredOrder
from coinswarm.live.protocols import Fill, OrderStatus, Side
from coinswarm.live.sinks import Sinks, Snapshot

pytestmark = pytest.mark.integration
T0 = 1_709_251_200_000  # 2024-03-01T00:00Z
HOUR = 3_600_000


def order(status: OrderStatus, cid: str = "cs1") -> StoredOrder:
    return StoredOrder(cid, "BTC/USDT", Side.BUY, 0.5, None, status, T0, "committee", False, None, 0.0, None, "",
                       T0, T0, None)


def snapshot(k: int, qty: float = 0.25) -> Snapshot:
    return Snapshot(bar_time=T0 + k * HOUR, positions={"BTC/USDT": qty, "ETH/USDT": 0.0}, cash=1000.0 - k,
                    equity=1500.5 + k, drawdown=0.01 * k, regimes={"BTC/USDT": "trend_up"},
                    weights={"BTC/USDT": {"trend": 0.6, "meanrev": 0.4}}, targets={"BTC/USDT": 0.5},
                    latency_us=123.5, bars_processed=k + 1, halted=False, feed_lag_ms=7)


class Recorder:
    """A sink that only remembers the bars it saw (what trading relies on keeps going)."""

    def __init__(self) -> None:
        self.bars: list[int] = []

    def on_order(self, order) -> None: ...

    def on_fill(self, fill) -> None: ...

    def on_bar(self, snapshot) -> None:
        self.bars.append(snapshot.bar_time)

    def on_event(self, name, fields) -> None: ...

    def close(self) -> None: ...


def test_snapshot_orders_and_heartbeat_round_trip(redis_server):
    run = "t" + uuid.uuid4().hex[:8]
    hot = RedisHotState(redis_server[0], run, heartbeat_ttl_s=5, clock=lambda: 1_800_000_000.25)
    try:
        hot.on_order(order(OrderStatus.NEW))
        hot.on_order(order(OrderStatus.OPEN, "cs2"))
        hot.on_bar(snapshot(3))
        hot.on_fill(Fill("f1", "cs1", "BTC/USDT", Side.BUY, 0.5, 60000.0, 0.1, "USDT", T0))
        hot.on_order(order(OrderStatus.FILLED))
        hot.on_event("halt", {"reason": "manual"})
        state = hot.read()
        assert state["positions"] == {"BTC/USDT": 0.25, "ETH/USDT": 0.0}
        assert state["regime"] == {"BTC/USDT": "trend_up"}
        assert state["weights"] == {"BTC/USDT": {"trend": 0.6, "meanrev": 0.4}}
        assert state["targets"] == {"BTC/USDT": 0.5}
        assert list(state["orders"]) == ["cs2"] and state["orders"]["cs2"]["status"] == "open"
        bar = state["bar"]
        assert int(bar["bar_time"]) == T0 + 3 * HOUR and float(bar["equity"]) == 1503.5
        assert bar["halted"] == "1" and int(bar["bars_processed"]) == 4
        ttl = hot.client.pttl(hot.key("heartbeat"))
        assert 0 < ttl <= 5000
        assert state["heartbeat_ms"] == 1_800_000_000_250 and bar["updated_ms"] == "1800000000250"
        hot.on_bar(Snapshot(T0 + 4 * HOUR, {"BTC/USDT": 0.1}, 1.0, 2.0))
        state = hot.read()  # a bar replaces the whole snapshot: no stale symbol survives
        assert state["positions"] == {"BTC/USDT": 0.1} and state["regime"] == {} and state["weights"] == {}
    finally:
        hot.client.delete(*hot.client.keys(hot.prefix + ":*"))
        hot.close()


def test_acl_user_and_password_from_the_url(redis_server):
    url = redis_server[0]
    admin = redis.Redis.from_url(url)
    user, password = "cs" + uuid.uuid4().hex[:6], "pw-" + uuid.uuid4().hex
    admin.acl_setuser(user, enabled=True, passwords=["+" + password], keys=["coinswarm:live:acl*"],
                      commands=["+@all"])
    host = url.split("://", 1)[1]
    try:
        hot = RedisHotState(f"redis://{user}:{password}@{host}", "acl1")
        hot.on_bar(snapshot(1))
        assert hot.read()["positions"]["BTC/USDT"] == 0.25
        assert password not in repr(hot)
        other = RedisHotState(f"redis://{user}:{password}@{host}", "other")  # outside the user's key pattern
        with pytest.raises(HotStateError) as refused:
            other.on_bar(snapshot(1))
        wrong = RedisHotState(f"redis://{user}:wrong-{password}@{host}", "acl1")
        with pytest.raises(HotStateError) as denied:
            wrong.on_bar(snapshot(1))
        for exc in (refused.value, denied.value):
            assert password not in str(exc) and password not in repr(exc)
        assert "***" in str(denied.value)
        for h in (hot, other, wrong):
            h.close()
    finally:
        admin.delete(*admin.keys("coinswarm:live:acl1:*"))
        admin.acl_deluser(user)
        admin.close()


@pytest.mark.timeout(120)
def test_redis_down_mid_run_trading_goes_on_and_state_returns(server_dir):
    from coinswarm.adapters.servers import free_port, start_redis

    port = free_port()
    server = start_redis(server_dir, port)
    try:
        hot = RedisHotState(server.url, "down", retry_s=0.05, socket_timeout_s=0.3)
        recorder = Recorder()
        sinks = Sinks([hot, recorder])
        for k in range(5):
            sinks.on_bar(snapshot(k))
        assert sinks.failures == {} and hot.read()["bar"]["bar_time"] == str(T0 + 4 * HOUR)
        server.stop()
        started = time.monotonic()
        for k in range(5, 15):
            sinks.on_bar(snapshot(k))
            sinks.on_order(order(OrderStatus.NEW, f"cs{k}"))
            time.sleep(0.03)
        assert time.monotonic() - started < 10  # a dead Redis never stalls the bar loop
        assert recorder.bars == [T0 + k * HOUR for k in range(15)]  # trading went on
        assert sinks.failures["RedisHotState"] == 20 and hot.failures >= 1
        with pytest.raises(HotStateError):
            hot.read()
        server = start_redis(server_dir, port)  # back, empty (no persistence)
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.06)
            before = sinks.failures["RedisHotState"]
            sinks.on_bar(snapshot(15))
            if sinks.failures["RedisHotState"] == before or time.monotonic() > deadline:
                break
        state = hot.read()
        assert state["bar"]["bar_time"] == str(T0 + 15 * HOUR) and state["positions"]["BTC/USDT"] == 0.25
        assert state["heartbeat_ms"] is not None and hot.reconnects == 1
        hot.close()
    finally:
        server.stop()


def test_min_interval_writes_the_latest_snapshot_once_per_interval(redis_server):
    now = [1000.0]
    hot = RedisHotState(redis_server[0], "t" + uuid.uuid4().hex[:8], clock=lambda: now[0], min_interval_s=0.25)
    try:
        for k in range(10):  # a replay at full speed: ten bars inside one interval
            hot.on_bar(snapshot(k))
        assert hot.skipped == 9 and hot.read()["bar"]["bar_time"] == str(T0)
        now[0] += 0.3
        hot.on_bar(snapshot(10))
        assert hot.read()["bar"]["bar_time"] == str(T0 + 10 * HOUR) and hot.skipped == 9
        hot.on_bar(snapshot(11))  # kept back ...
        assert hot.read()["bar"]["bar_time"] == str(T0 + 10 * HOUR)
        hot.close()  # ... and written on close
        assert RedisHotState(redis_server[0], hot.run).read()["bar"]["bar_time"] == str(T0 + 11 * HOUR)
    finally:
        hot.client = redis.Redis.from_url(redis_server[0])
        hot.client.delete(*hot.client.keys(hot.prefix + ":*"))
        hot.client.close()
