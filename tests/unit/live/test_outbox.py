"""The transactional outbox and its relay: every state change's message is published at least
once, de-duplicated by id, in order, and nothing is lost while the bus is down."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest

from coinswarm.adapters.bus import InProcessBus, NatsBus
from coinswarm.errors import MessageError
from coinswarm.live.outbox import (
    LIVE_STREAM,
    OutboxMessage,
    Relay,
    ensure_live_stream,
    heartbeat_message,
)
from coinswarm.live.protocols import Fill, OrderIntent, OrderStatus, Side, client_order_id

T0 = 1_700_000_000_000


class FlakyBus:
    """The in-process bus behind a switch: while ``down`` every publish raises; ``lose_acks``
    publishes but raises afterwards (the ack was lost: the relay must resend, the id dedups)."""

    def __init__(self) -> None:
        self.inner = InProcessBus()
        self.down = False
        self.lose_acks = 0
        self.attempts = 0

    async def stream_publish(self, subject: str, data: bytes, msg_id: str) -> bool:
        self.attempts += 1
        if self.down:
            raise ConnectionError("nats: no servers available")
        fresh = await self.inner.stream_publish(subject, data, msg_id)
        if self.lose_acks:
            self.lose_acks -= 1
            raise TimeoutError("ack lost")
        return fresh


def trade(ledger, k: int) -> None:
    """One state change that reports: an order (agent.action) and its fill (agent.trade)."""
    order = OrderIntent(client_order_id("s", "BTC/USDT", T0, k), "BTC/USDT", Side.BUY, 1.0, T0, "s")
    ledger.record_new(order, T0 + k)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0 + k)
    ledger.apply_fill(Fill(f"f{k}", order.client_order_id, "BTC/USDT", Side.BUY, 1.0, 100.0 + k, 0.0, "USDT", T0 + k),
                      T0 + k)


def collect(bus: InProcessBus) -> list:
    received: list = []

    async def handler(msg):
        received.append(msg)

    for subject in ("agent.action", "agent.trade", "live.heartbeat"):
        asyncio.run(bus.subscribe(subject, handler))
    return received


def test_messages_are_written_with_their_state_change_and_relayed_in_order(ledger):
    bus = InProcessBus()
    received = collect(bus)
    trade(ledger, 0)
    ledger.enqueue([heartbeat_message("runner-1", T0, bars=3)], T0)
    ledger.enqueue([heartbeat_message("runner-1", T0, bars=3)], T0)  # the same id: once
    relay = Relay(ledger, bus, clock=lambda: T0)
    assert asyncio.run(relay.drain()) == 3
    assert [m.subject for m in received] == ["agent.action", "agent.trade", "live.heartbeat"]
    assert orjson.loads(received[1].data)["fill_id"] == "f0" and received[1].msg_id == "trade:f0"
    assert ledger.pending_outbox() == [] and asyncio.run(relay.drain()) == 0


def test_nothing_is_lost_while_the_bus_is_down_and_each_id_arrives_once(ledger):
    bus = FlakyBus()
    received = collect(bus.inner)
    relay = Relay(ledger, bus, clock=lambda: T0, batch=3)
    trade(ledger, 0)
    assert asyncio.run(relay.drain()) == 2
    bus.down = True
    for k in range(1, 6):
        trade(ledger, k)
        assert asyncio.run(relay.drain()) == 0
    assert len(ledger.pending_outbox(100)) == 10 and relay.failures == 5
    bus.down = False
    bus.lose_acks = 2  # the first message is taken twice without an ack: sent again, dropped by id
    asyncio.run(relay.drain())
    asyncio.run(relay.drain())
    asyncio.run(relay.drain())
    ids = [m.msg_id for m in received]
    assert Counter(ids).most_common(1)[0][1] == 1 and len(ids) == 12
    assert ids == [f"{kind}:{x}" for k in range(6)
                   for kind, x in (("action", client_order_id("s", "BTC/USDT", T0, k)), ("trade", f"f{k}"))]
    assert ledger.pending_outbox() == [] and relay.failures == 7 and relay.duplicates == 1


def test_a_relay_that_crashed_before_marking_republishes_and_the_id_dedups(ledger, tmp_path):
    bus = InProcessBus()
    received = collect(bus)
    trade(ledger, 0)
    pending = ledger.pending_outbox()
    for _, message in pending:  # published, then the process died before mark_published
        asyncio.run(bus.stream_publish(message.subject, message.payload, message.msg_id))
    relay = Relay(ledger, bus, clock=lambda: T0)
    assert asyncio.run(relay.drain()) == 2 and relay.duplicates == 2
    assert len(received) == 2


@pytest.mark.parametrize("args, match", [(("mem.commit", "x", b""), "subject"), (("agent.trade", "", b""), "msg_id"),
                                         (("agent.trade", "x", "text"), "payload")])
def test_bad_messages_are_refused(args, match):
    with pytest.raises(MessageError, match=match):
        OutboxMessage(*args)


def test_run_drains_until_stopped(ledger):
    bus = InProcessBus()
    received = collect(bus)
    relay = Relay(ledger, bus, clock=lambda: T0)

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop, interval_s=0.01))
        trade(ledger, 0)
        await asyncio.sleep(0.05)
        trade(ledger, 1)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert len(received) == 4


@pytest.mark.integration
def test_the_relay_publishes_to_jetstream_with_message_ids(ledger, nats_url):
    async def scenario():
        bus = await NatsBus.connect(nats_url, name="outbox-test")
        try:
            await ensure_live_stream(bus)
            await ensure_live_stream(bus)  # idempotent
            before = (await bus.js.stream_info(LIVE_STREAM)).state.messages  # the session's server is shared
            trade(ledger, 0)
            relay = Relay(ledger, bus, clock=lambda: T0)
            assert await relay.drain() == 2
            assert not await bus.stream_publish("agent.trade", b"again", "trade:f0")  # the server dedups the id
            info = await bus.js.stream_info(LIVE_STREAM)
            return info.state.messages - before
        finally:
            await bus.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == 2  # two new messages, the re-send not stored
