"""``coinswarm live replay`` wired to real servers (through :func:`open_services`): PostgreSQL
holds the book, Redis the hot state, NATS receives the outbox, /metrics is scraped. And the
faults of issue 18 §6 on the replay itself: NATS stopped and restarted mid-replay (no publish
lost), Redis stopped (trading goes on, the book equals an embedded run's), PostgreSQL stopped
10 s (the replay pauses, resumes, and the book equals an uninterrupted run's)."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections import Counter

import pytest

from coinswarm.adapters.servers import Server, free_port, start_nats, start_postgres, start_redis
from coinswarm.live.hotstate import RedisHotState
from coinswarm.live.outbox import LIVE_STREAM
from coinswarm.live.replay import ReplaySpec, replay, replay_served
from tests.helpers.live import BOOK_KEYS, fast_stop
from tests.helpers.live import book as ledger_book

pytestmark = pytest.mark.integration
DATA = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]
START, END = "2021-01-01", "2021-01-31"
PACED = 3600 * 150  # 150 bar times per second: a month in ~5 s, long enough to stop servers in
WARM_START = "2020-12-01"  # a month of warm-up before START: the trend strategy trades all of January
OUTAGE_S = 8.0  # NATS down at most this long (wall time) mid-replay: four times the publisher's retry window


def outbox_failures(metrics_url: str | None) -> float:
    """The relay's failed publishes so far, scraped from /metrics (0 before the endpoint is known)."""
    if metrics_url is None:
        return 0.0
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("coinswarm_live_outbox_failures_total"))


def book(db: str) -> tuple[list, list, dict]:
    return ledger_book(db, BOOK_KEYS)


def embedded(tmp_path, strategy: str = "trend", start: str = START) -> tuple[list, list, dict]:
    db = f"sqlite:///{tmp_path / 'embedded.db'}"
    asyncio.run(replay(ReplaySpec(DATA, strategy, db, start=start, end=END)))
    return book(db)


class Probe:
    """A sink that calls ``actions[k]()`` after the k-th bar time and scrapes /metrics."""

    def __init__(self, actions: dict[int, object] | None = None, metrics_url: str | None = None) -> None:
        self.actions, self.metrics_url = actions or {}, metrics_url
        self.bars, self.scraped, self.snapshots = 0, "", []

    def on_order(self, order) -> None:
        pass

    def on_fill(self, fill) -> None:
        pass

    def on_bar(self, snapshot) -> None:
        self.bars += 1
        self.snapshots.append(snapshot) if self.bars % 100 == 0 else None
        action = self.actions.get(self.bars)
        if action is not None:
            action()
        if self.metrics_url and self.bars % 50 == 0:
            self.scraped = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()

    def on_event(self, name, fields) -> None:
        pass

    def close(self) -> None:
        pass


def attach(probe: Probe):
    def on_services(services) -> None:
        if services.metrics is not None:
            probe.metrics_url = services.metrics.url
        services.sinks.sinks.append(probe)
    return on_services


async def stream(url: str) -> list[tuple[str, str]]:
    """``(subject, Nats-Msg-Id)`` of every message in COINSWARM_LIVE."""
    import nats

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        last = (await js.stream_info(LIVE_STREAM)).state.last_seq
        out = []
        for seq in range(1, last + 1):
            msg = await js.get_msg(LIVE_STREAM, seq)
            out.append((msg.subject, msg.headers["Nats-Msg-Id"]))
        return out
    finally:
        await nc.close()


def published_once(nats_url: str, db: str) -> None:
    """Every order on agent.action and every fill on agent.trade, exactly once each."""
    orders, fills, _ = book(db)
    got = asyncio.run(stream(nats_url))
    ids = Counter(i for _, i in got)
    assert max(ids.values()) == 1
    actions = {i for s, i in got if s == "agent.action"}
    trades = {i for s, i in got if s == "agent.trade"}
    assert actions == {f"action:{o[0]}" for o in orders} and len(actions) > 20
    assert trades == {f"trade:{f[0]}" for f in fills} and len(trades) > 20


@pytest.mark.timeout(300)
def test_replay_with_postgres_redis_nats_and_metrics(postgres_url, redis_server, server_dir, tmp_path):
    nats = start_nats(server_dir / "nats")
    probe = Probe()
    try:
        summary = asyncio.run(replay_served(
            ReplaySpec(DATA, "committee", postgres_url, start="2020-01-01", end=END), redis=redis_server[0],
            nats=nats.url, metrics_port=free_port(), run="wired", on_services=attach(probe)))
        assert summary["bars"] > 15_000 and not summary["halted"]
        published_once(nats.url, postgres_url)
        hot = RedisHotState(redis_server[0], "wired")
        state = hot.read()
        hot.close()
        _, _, report = book(postgres_url)
        assert state["positions"] == pytest.approx({s: p["qty"] for s, p in report["positions"].items()})
        assert set(state["weights"]) == {"BTC/USDT", "ETH/USDT"} and state["regime"]
        assert state["heartbeat_ms"] is not None
        assert probe.snapshots[-1].regimes and probe.snapshots[-1].weights["BTC/USDT"]
        text = probe.scraped
        bars = [float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("coinswarm_live_bars_processed ")]
        assert bars and bars[0] >= 1000
        count = [float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith("coinswarm_live_decision_latency_seconds_count")]
        assert count and count[0] >= 500
    finally:
        nats.stop()


@pytest.mark.timeout(300)
def test_nats_stopped_and_restarted_mid_replay_loses_no_publish(server_dir, tmp_path):
    port = free_port()
    box: dict[str, Server] = {"nats": start_nats(server_dir / "nats", port)}
    url = box["nats"].url

    def restart() -> None:
        box["nats"] = start_nats(server_dir / "nats", port)

    def restart_once_the_relay_failed() -> None:
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline and outbox_failures(probe.metrics_url) < 1:
            time.sleep(0.1)
        restart()

    def stop_for_a_while() -> None:  # down until the relay met the stopped server (whatever the machine's
        box["nats"].stop()           # load), restarted from another thread while the replay goes on
        threading.Thread(target=restart_once_the_relay_failed, daemon=True).start()

    probe = Probe({800: stop_for_a_while})  # trend trades from its 720th bar on: orders wait in the outbox
    db = f"sqlite:///{tmp_path / 'nats.db'}"
    try:
        asyncio.run(replay_served(ReplaySpec(DATA, "trend", db, start=WARM_START, end=END, speed=PACED // 2), nats=url,
                                  run="natsdown", metrics_port=free_port(), on_services=attach(probe)))
        assert probe.bars > 1400
        failures = [float(line.split()[-1]) for line in probe.scraped.splitlines()
                    if line.startswith("coinswarm_live_outbox_failures_total")]
        assert failures and failures[0] >= 1  # the relay did meet the stopped server
        published_once(url, db)
        assert book(db)[:2] == embedded(tmp_path, "trend", WARM_START)[:2]
    finally:
        box["nats"].stop()


@pytest.mark.timeout(300)
def test_redis_stopped_mid_replay_trading_goes_on(server_dir, tmp_path):
    redis = start_redis(server_dir / "redis")
    probe = Probe({100: redis.stop})
    db = f"sqlite:///{tmp_path / 'redis.db'}"
    try:
        asyncio.run(replay_served(ReplaySpec(DATA, "trend", db, start=START, end=END, speed=PACED),
                                  redis=redis.url, run="redisdown", on_services=attach(probe)))
    finally:
        redis.stop()
    assert probe.bars > 700
    assert book(db) == embedded(tmp_path)


@pytest.mark.timeout(400)
def test_postgres_stopped_ten_seconds_mid_replay_pauses_and_resumes(server_dir, tmp_path):
    port = free_port()
    box = {"pg": start_postgres(server_dir / "pg", port)}
    url = box["pg"].url
    down: dict[str, float] = {}

    def stop_for_ten_seconds() -> None:
        fast_stop(box["pg"])
        down["at"] = time.monotonic()

        def back() -> None:
            box["pg"] = start_postgres(server_dir / "pg", port)
            down["back"] = time.monotonic()
        threading.Timer(10.0, back).start()

    probe = Probe({200: stop_for_ten_seconds})
    seen = {}
    try:
        summary = asyncio.run(replay_served(
            ReplaySpec(DATA, "trend", url, start=START, end=END, speed=PACED), run="pgdown",
            on_services=lambda s: (s.sinks.sinks.append(probe), seen.update(guard=s.guard))))
        assert down["back"] - down["at"] >= 10
        assert seen["guard"].pauses >= 1 and seen["guard"].paused_s >= 5
        assert summary["seconds"] >= 10 and not summary["halted"]
        assert book(url) == embedded(tmp_path)
    finally:
        time.sleep(0.1)
        box["pg"].stop()
