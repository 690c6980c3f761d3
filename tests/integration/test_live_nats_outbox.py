"""The daemon's publisher on real NATS servers: token and user/password from the URL (never in
an error), and the outbox relay with NATS stopped and restarted: nothing lost, published in
order, a re-sent message de-duplicated by its id."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import update

from coinswarm.adapters.servers import Server, executable, free_port, launch
from coinswarm.errors import ConfigError
from coinswarm.live.ledger import Ledger, OutboxRow
from coinswarm.live.outbox import LIVE_STREAM, Relay, heartbeat_message
from coinswarm.live.protocols import OrderIntent, Side, client_order_id
from coinswarm.live.publisher import connect_publisher

pytestmark = pytest.mark.integration
TOKEN = "dummy-nats-token-5f1c"
T0 = 1_709_251_200_000


def start_nats(workdir, port: int, *auth: str) -> Server:
    """nats-server with JetStream stored under ``workdir`` (kept across restarts) and ``auth`` flags."""
    args = [executable("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "js"), *auth]
    return launch("nats", args, port=port, url=f"nats://127.0.0.1:{port}", workdir=workdir,
                  log=workdir / "nats.log", ready_timeout=15.0)


async def stream_ids(url: str) -> list[str]:
    """Every message id stored in COINSWARM_LIVE, in stream order."""
    import nats

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        last = (await js.stream_info(LIVE_STREAM)).state.last_seq
        return [(await js.get_msg(LIVE_STREAM, seq)).headers["Nats-Msg-Id"] for seq in range(1, last + 1)]
    finally:
        await nc.close()


def enqueue(ledger: Ledger, k0: int, n: int) -> None:
    for k in range(k0, k0 + n):
        if k % 2:
            ledger.enqueue([heartbeat_message("r1", T0 + k)], T0 + k)
        else:
            cid = client_order_id("s", "BTC/USDT", T0, k)
            ledger.record_new(OrderIntent(cid, "BTC/USDT", Side.BUY, 0.1, T0, "s"), T0 + k)


@pytest.mark.timeout(180)
def test_relay_loses_nothing_while_nats_is_down(server_dir, tmp_path):
    port = free_port()
    url = f"nats://{TOKEN}@127.0.0.1:{port}"
    server = start_nats(server_dir, port, "--auth", TOKEN)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()

    async def scenario():
        nonlocal server
        bus = await connect_publisher(url, connect_timeout=5, retry_for=0.5)
        relay = Relay(ledger, bus, clock=lambda: T0)
        try:
            enqueue(ledger, 0, 6)
            assert await relay.drain() == 6
            server.stop()
            enqueue(ledger, 6, 6)
            started = time.monotonic()
            assert await relay.drain() == 0  # stops at the first failure, within retry_for
            assert time.monotonic() - started < 10 and relay.failures >= 1
            assert len(ledger.pending_outbox()) == 6
            enqueue(ledger, 12, 2)
            server = start_nats(server_dir, port, "--auth", TOKEN)
            deadline = time.monotonic() + 60
            while ledger.pending_outbox() and time.monotonic() < deadline:
                await relay.drain()
                await asyncio.sleep(0.2)
            assert ledger.pending_outbox() == []
            # a crash between NATS's ack and marking the rows: the relay sends them again
            with ledger.sessions.begin() as s:
                s.execute(update(OutboxRow).where(OutboxRow.id <= 3).values(published_ms=None))
            assert await relay.drain() == 3 and relay.duplicates == 3
        finally:
            await bus.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 150))
        with ledger.sessions() as s:
            expected = [m for (m,) in s.execute(OutboxRow.__table__.select().with_only_columns(
                OutboxRow.msg_id).order_by(OutboxRow.id))]
        got = asyncio.run(stream_ids(url))
        assert len(expected) == 14 and got == expected  # all, once each, in the outbox's order
    finally:
        server.stop()
        ledger.close()


@pytest.mark.timeout(120)
def test_user_password_and_bad_credentials(server_dir):
    port = free_port()
    password = "dummy-nats-pass-77a"
    server = start_nats(server_dir, port, "--user", "coinswarm", "--pass", password)

    async def scenario():
        bus = await connect_publisher(f"nats://coinswarm:{password}@127.0.0.1:{port}", connect_timeout=5)
        try:
            assert await bus.stream_publish("live.heartbeat", b"{}", "heartbeat:x:1") is True
            assert await bus.stream_publish("live.heartbeat", b"{}", "heartbeat:x:1") is False
        finally:
            await bus.close()
        with pytest.raises(ConfigError) as bad:
            await connect_publisher(f"nats://coinswarm:wrong-{password}@127.0.0.1:{port}", connect_timeout=3,
                                    max_reconnect_attempts=2)
        assert password not in str(bad.value) and "***" in str(bad.value)
        with pytest.raises(ConfigError) as bad_token:
            await connect_publisher(f"nats://{TOKEN}@127.0.0.1:{port}", connect_timeout=3, max_reconnect_attempts=2)
        assert TOKEN not in str(bad_token.value)

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        server.stop()
