"""The exchange daemon (``run_venue`` on the fake Binance venue) with a real NATS server: its
outbox (``agent.action``, ``agent.trade``, ``live.heartbeat``) is relayed to the
``COINSWARM_LIVE`` JetStream stream — every order and fill once, nothing left unpublished."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.live.config import BrokerConfig
from coinswarm.live.outbox import LIVE_STREAM
from tests.helpers.live import ledger_rows, make_config, make_venue, run

pytestmark = pytest.mark.integration


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
        async with make_venue() as venue:
            config = make_config(venue, db, grace_ms=BrokerConfig("binance").grace_ms, nats=nats_url)
            await run(venue, config, 100)
        return await live_stream(nats_url)

    stream = asyncio.run(scenario())
    orders, fills, rows = ledger_rows(db)
    assert len(orders) >= 5 and len(fills) >= 5
    assert all(r.published_ms is not None for r in rows), "the relay drained the outbox"
    ids = [msg_id for _, msg_id in stream]
    assert len(ids) == len(set(ids)), "a message reached the stream twice"
    assert {r.msg_id for r in rows} <= set(ids)
    by_subject = {subject: {m for s, m in stream if s == subject} for subject, _ in stream}
    assert {f"action:{o.client_order_id}" for o in orders} <= by_subject["agent.action"]
    assert {f"trade:{f.fill_id}" for f in fills} <= by_subject["agent.trade"]
    assert by_subject["live.heartbeat"]
