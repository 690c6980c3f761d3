"""``coinswarm live run`` (the daemon from its config) wired to real servers through
``open_services``: with ``COINSWARM_REDIS_URL`` and ``COINSWARM_NATS_URL`` set, the paper run's
orders and fills reach NATS once each and its positions Redis (candles from an exchange-like
source serving real Binance candles)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

import coinswarm as cs
from coinswarm.adapters.servers import start_nats
from coinswarm.live.config import load_config
from coinswarm.live.daemon import run_paper
from coinswarm.live.hotstate import RedisHotState
from coinswarm.live.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
HOUR = 3_600_000


def _venue_class():
    path = Path(__file__).parents[1] / "unit" / "live" / "test_daemon.py"
    spec = importlib.util.spec_from_file_location("_daemon_venue", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Venue


def test_live_run_publishes_to_nats_and_keeps_hot_state_in_redis(redis_server, server_dir, tmp_path):
    nats = start_nats(server_dir / "nats")
    db = f"sqlite:///{tmp_path / 'run.db'}"
    config = load_config(None, env={"COINSWARM_DB_URL": db, "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT",
                                    "COINSWARM_STRATEGY": "trend", "COINSWARM_MAX_DRAWDOWN": "0.9",
                                    "COINSWARM_DAILY_LOSS": "0.9", "COINSWARM_REDIS_URL": redis_server[0],
                                    "COINSWARM_NATS_URL": nats.url})
    Venue = _venue_class()
    venue = Venue(int(cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-10", end="2021-01-10").index[0].value
                      // 1_000_000) + HOUR // 2)
    try:
        asyncio.run(run_paper(config, venue, max_bars=600, sleep=venue.sleep))
        got = asyncio.run(_stream(nats.url))
    finally:
        nats.stop()
    ledger = Ledger(db)
    orders, fills, positions = ledger.orders(), ledger.fills(), ledger.positions()
    ledger.close()
    assert len(orders) > 10 and max(Counter(i for _, i in got).values()) == 1
    assert {i for s, i in got if s == "agent.action"} == {f"action:{o.client_order_id}" for o in orders}
    assert {i for s, i in got if s == "agent.trade"} == {f"trade:{f.fill_id}" for f in fills}
    assert any(s == "live.heartbeat" for s, _ in got)
    hot = RedisHotState(redis_server[0], "trend")
    state = hot.read()
    hot.close()
    assert state["positions"] == pytest.approx({s: p.qty for s, p in positions.items()})


async def _stream(url: str) -> list[tuple[str, str]]:
    import nats

    from coinswarm.live.outbox import LIVE_STREAM

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        last = (await js.stream_info(LIVE_STREAM)).state.last_seq
        return [(m.subject, m.headers["Nats-Msg-Id"]) for m in
                [await js.get_msg(LIVE_STREAM, seq) for seq in range(1, last + 1)]]
    finally:
        await nc.close()
