"""The exchange daemon (``run_venue`` on the fake Binance venue) with a real NATS server: its
outbox (``agent.action``, ``agent.trade``, ``live.heartbeat``) is relayed to the
``COINSWARM_LIVE`` JetStream stream — every order and fill once, nothing left unpublished."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue
from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker
from coinswarm.live.config import BrokerConfig, Credentials, LiveConfig, RiskLimits, ServerUrls, StrategyConfig
from coinswarm.live.ledger import Ledger, OutboxRow
from coinswarm.live.outbox import LIVE_STREAM
from coinswarm.live.venue import run_venue

pytestmark = pytest.mark.integration
SYMBOL = "BTC/USDT"


async def live_stream(url: str) -> list[tuple[str, str]]:
    """``(subject, Nats-Msg-Id)`` of every message in COINSWARM_LIVE, in stream order."""
    import nats

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.stream_info(LIVE_STREAM)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(LIVE_STREAM, seq)
            out.append((msg.subject, msg.headers["Nats-Msg-Id"]))
        return out
    finally:
        await nc.close()


@pytest.mark.timeout(300)
def test_the_exchange_daemon_relays_its_outbox_to_nats(nats_url, tmp_path):
    db = f"sqlite:///{tmp_path}/live.db"

    async def scenario():
        async with FakeVenue({SYMBOL: "binance:BTC/USDT:1h"}, start="2024-03-01T00:30", speed=0.0,
                             data_start="2024-02-01", data_end="2024-03-20") as venue:
            config = LiveConfig(symbols=(SYMBOL,), timeframe="1h", strategy=StrategyConfig("trend"),
                                broker=BrokerConfig("binance", sandbox=True, api_url=venue.url),
                                risk=RiskLimits(max_drawdown=0.9, daily_loss=0.9, max_position=10.0,
                                                max_order_notional=1e6),
                                servers=ServerUrls(db=db, nats=nats_url),
                                credentials=Credentials("binance", DUMMY_KEY, DUMMY_SECRET))

            async def sleep(seconds: float) -> None:  # the feed waits for the next close: move the venue clock
                venue.advance(max(int(seconds * 1000), 1))

            broker = CcxtBroker("binance", keys=ApiKeys(DUMMY_KEY, DUMMY_SECRET), api_url=venue.url, timeout_ms=2_000)
            broker._ex.enableRateLimit = False
            async with broker:
                await run_venue(config, broker=broker, max_bars=100, sleep=sleep)
        return await live_stream(nats_url)

    stream = asyncio.run(scenario())
    ledger = Ledger(db)
    try:
        orders, fills = ledger.orders(), ledger.fills()
        with ledger.sessions() as s:
            rows = s.execute(select(OutboxRow.subject, OutboxRow.msg_id, OutboxRow.published_ms)).all()
    finally:
        ledger.close()
    assert len(orders) >= 5 and len(fills) >= 5
    assert all(r.published_ms is not None for r in rows), "the relay drained the outbox"
    ids = [msg_id for _, msg_id in stream]
    assert len(ids) == len(set(ids)), "a message reached the stream twice"
    assert {r.msg_id for r in rows} <= set(ids)
    by_subject = {subject: {m for s, m in stream if s == subject} for subject, _ in stream}
    assert {f"action:{o.client_order_id}" for o in orders} <= by_subject["agent.action"]
    assert {f"trade:{f.fill_id}" for f in fills} <= by_subject["agent.trade"]
    assert by_subject["live.heartbeat"]
