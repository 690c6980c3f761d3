"""The bus contract, run against the in-process bus and a real NATS server."""

import asyncio

import nats.errors
import pytest

from coinswarm.adapters.batching import run_with_deadline
from coinswarm.adapters.bus import InProcessBus, NatsBus, PayloadTooLargeError, stream_position, subject_matches
from coinswarm.errors import ConfigError, MessageError


@pytest.fixture(params=["inprocess", pytest.param("nats", marks=pytest.mark.integration)])
def make_bus(request):
    if request.param == "inprocess":
        shared = InProcessBus()

        async def factory(name):
            return shared
    else:
        url = request.getfixturevalue("nats_url")

        async def factory(name):
            return await NatsBus.connect(url, name=name)
    return factory


async def settle(bus):
    if isinstance(bus, NatsBus):
        await bus.flush()
        await asyncio.sleep(0.1)


def test_wildcards():
    assert subject_matches("mem.*", "mem.vote") and not subject_matches("mem.*", "mem.vote.x")
    assert subject_matches("mem.>", "mem.vote.x") and not subject_matches("mem.>", "mem")
    assert subject_matches("agent.trade", "agent.trade") and not subject_matches("agent.trade", "agent.action")


def test_publish_subscribe_queue_groups_and_request_reply(make_bus):
    async def scenario():
        a, b = await make_bus("a"), await make_bus("b")
        seen, workers = [], {"w1": 0, "w2": 0}

        async def record(msg):
            seen.append((msg.subject, msg.data))

        def worker(name):
            async def handle(msg):
                workers[name] += 1
            return handle

        async def echo(msg):
            await b.respond(msg, b"pong:" + msg.data)

        await b.subscribe("agent.*", record)
        await b.subscribe("agent.trade", worker("w1"), queue="exec")
        await b.subscribe("agent.trade", worker("w2"), queue="exec")
        await b.subscribe("svc.ping", echo)
        await settle(b)
        for i in range(10):
            await a.publish("agent.trade", str(i).encode())
        await a.publish("agent.action", b"buy")
        await settle(a)
        reply = await a.request("svc.ping", b"x", timeout=2)
        return seen, workers, reply

    seen, workers, reply = run_with_deadline(scenario(), 60)
    assert [d for s, d in seen if s == "agent.trade"] == [str(i).encode() for i in range(10)]
    assert ("agent.action", b"buy") in seen
    assert sum(workers.values()) == 10 and min(workers.values()) > 0, "a queue group shares the work"
    assert reply.data == b"pong:x"


def test_stream_deduplicates_by_msg_id_and_replays_to_late_durables(make_bus):
    async def scenario():
        bus = await make_bus("s")
        first = await bus.stream_publish("mem.propose", b"p1", msg_id="p1")
        again = await bus.stream_publish("mem.propose", b"p1", msg_id="p1")
        await bus.stream_publish("mem.propose", b"p2", msg_id="p2")
        got = []

        async def collect(msg):
            got.append(msg.msg_id)

        await bus.stream_subscribe("mem.propose", "late-reader", collect)
        await bus.stream_publish("mem.propose", b"p3", msg_id="p3")
        await settle(bus)
        return first, again, got

    first, again, got = run_with_deadline(scenario(), 60)
    assert first and not again
    assert got == ["p1", "p2", "p3"]


def test_stream_poll_returns_what_arrived_since_the_last_poll(make_bus):
    async def scenario():
        writer, reader = await make_bus("w"), await make_bus("r")
        await writer.stream_publish("mem.commit", b"before", msg_id="c0")
        first = await reader.stream_poll("mem.commit", "poller")  # the reader starts here
        for i in range(1, 41):
            await writer.stream_publish("mem.commit", f"v{i}".encode(), msg_id=f"c{i}")
        await writer.stream_publish("mem.propose", b"other", msg_id="p1")  # another subject
        await settle(writer)
        burst = await reader.stream_poll("mem.commit", "poller")
        empty = await reader.stream_poll("mem.commit", "poller")
        for i in range(41, 51):
            await writer.stream_publish("mem.commit", f"v{i}".encode(), msg_id=f"c{i}")
        await settle(writer)
        limited = await reader.stream_poll("mem.commit", "poller", max_messages=4)
        rest = await reader.stream_poll("mem.commit", "poller")
        return first, burst, empty, limited, rest

    first, burst, empty, limited, rest = run_with_deadline(scenario(), 60)
    assert first == [] and empty == []
    assert [(m.msg_id, m.data) for m in burst] == [(f"c{i}", f"v{i}".encode()) for i in range(1, 41)]
    assert [m.msg_id for m in limited] == [f"c{i}" for i in range(41, 45)]
    assert [m.msg_id for m in rest] == [f"c{i}" for i in range(45, 51)]


def test_acked_stream_poll_reads_from_the_start_and_resumes_after_its_ack(make_bus):
    async def scenario():
        writer = await make_bus("w")
        for i in range(5):
            await writer.stream_publish("mem.commit", f"v{i}".encode(), msg_id=f"c{i}")
        await settle(writer)
        reader = await make_bus("r")
        first = await reader.stream_poll("mem.commit", "acked-reader", acked=True)
        await reader.stream_ack(first[-1])
        await writer.stream_publish("mem.commit", b"v5", msg_id="c5")
        await settle(writer)
        later = await make_bus("r2")  # another connection on the same durable reader
        second = await later.stream_poll("mem.commit", "acked-reader", acked=True)
        return first, second

    first, second = run_with_deadline(scenario(), 60)
    assert [m.msg_id for m in first] == [f"c{i}" for i in range(5)], "an acked reader starts at the beginning"
    assert [m.msg_id for m in second] == ["c5"], "acknowledged messages do not come again"
    assert all(m.seq is not None for m in first) and len({m.seq for m in first}) == 5


@pytest.mark.integration
@pytest.mark.integration
def test_stream_poll_resumes_after_a_server_restart(tmp_path):
    from coinswarm.adapters.servers import start_nats

    server = start_nats(tmp_path / "n")
    servers = [server]

    async def scenario():
        writer = await NatsBus.connect(server.url, name="w", reconnect_wait=0.05, max_reconnect_attempts=400)
        reader = await NatsBus.connect(server.url, name="r", reconnect_wait=0.05, max_reconnect_attempts=400)
        try:
            await reader.stream_poll("mem.commit", "poller")
            await writer.stream_publish("mem.commit", b"a", msg_id="a")
            await settle(writer)
            before = [m.msg_id for m in await reader.stream_poll("mem.commit", "poller")]
            await asyncio.to_thread(server.stop)
            failed = await reader.stream_poll("mem.commit", "poller", timeout=0.2)  # nobody answers
            servers.append(await asyncio.to_thread(start_nats, server.workdir, port=server.port))
            await writer.stream_publish("mem.commit", b"b", msg_id="b")  # retried until the server is back
            after = []
            for _ in range(50):
                after += [m.msg_id for m in await reader.stream_poll("mem.commit", "poller", timeout=0.2)]
                if after:
                    break
                await asyncio.sleep(0.1)
            return before, failed, after
        finally:
            await writer.close()
            await reader.close()

    try:
        before, failed, after = run_with_deadline(scenario(), 60)
    finally:
        for each in servers:
            each.stop()
    assert before == ["a"] and failed == []
    assert after == ["b"], "the durable reader resumes where it stopped, nothing read twice"


@pytest.mark.integration
def test_every_wait_of_the_nats_bus_is_bounded(tmp_path):
    from coinswarm.adapters.servers import free_port, start_nats

    server = start_nats(tmp_path / "n")

    async def scenario():
        with pytest.raises(ConfigError, match=r"cannot connect to NATS .* within 1 s"):
            await NatsBus.connect(f"nats://127.0.0.1:{free_port()}", connect_timeout=1.0)  # nobody listens
        bus = await NatsBus.connect(server.url, name="b", reconnect_wait=0.05, max_reconnect_attempts=3,
                                    retry_for=60.0, close_timeout=1.0)
        with pytest.raises(PayloadTooLargeError, match="max_payload"):
            await bus.publish("agent.action", b"x" * (bus.max_payload + 1))
        await asyncio.to_thread(server.stop)  # gone for good: 3 attempts, then the connection closes
        for _ in range(200):
            if bus.nc.is_closed:
                break
            await asyncio.sleep(0.05)
        closed = bus.nc.is_closed
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(nats.errors.ConnectionClosedError):
            await bus.stream_publish("mem.commit", b"late", msg_id="late")  # not transient: raised at once
        raised_after = loop.time() - t0
        await bus.close()  # nothing left to drain: returns
        return closed, raised_after

    try:
        closed, raised_after = run_with_deadline(scenario(), 30)
    finally:
        server.stop()
    assert closed, "bounded reconnect attempts end in a closed connection, not an endless loop"
    assert raised_after < 10, "a closed connection is not retried for retry_for (60 s)"


@pytest.mark.integration
def test_stream_messages_carry_the_time_the_server_stored_them_not_when_they_are_read(nats_url):
    """``received_ms`` is JetStream's metadata timestamp: set when the server stored the message,
    the same however late, and by whichever reader, it is read."""
    import time

    async def scenario():
        writer, reader = await NatsBus.connect(nats_url, name="w"), await NatsBus.connect(nats_url, name="r")
        before = int(time.time() * 1000)  # noqa: TID251  (compared with the server's clock)
        await writer.stream_publish("mem.propose", b"single", msg_id="stored-1")
        await writer.stream_publish_many("mem.propose", [("stored-2", b"a"), ("stored-3", b"b")])
        after = int(time.time() * 1000)  # noqa: TID251
        await asyncio.sleep(1.5)  # read well after the store
        got: list = []
        sub = await reader.stream_subscribe("mem.propose", "stored-reader", lambda ms: _extend(got, ms), batch=True)
        polled = await reader.stream_poll("mem.propose", "stored-poller", acked=True)
        for _ in range(100):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.05)
        read = int(time.time() * 1000)  # noqa: TID251
        await sub.unsubscribe()
        await writer.close()
        await reader.close()
        return before, after, read, got, polled

    before, after, read, got, polled = run_with_deadline(scenario(), 60)
    mine = [m for m in got if m.msg_id.startswith("stored-")]
    assert [m.msg_id for m in mine] == ["stored-1", "stored-2", "stored-3"]
    polled = [m for m in polled if m.msg_id.startswith("stored-")]
    assert [m.received_ms for m in polled] == [m.received_ms for m in mine]
    for messages in (mine, polled):
        assert len(messages) == 3
        assert all(before - 50 <= m.received_ms <= after + 50 < read - 1_000 for m in messages)


async def _extend(into: list, messages: list) -> None:
    into.extend(messages)


def test_the_in_process_stream_has_no_receive_time():
    async def scenario():
        bus, got = InProcessBus(), []
        await bus.stream_publish("mem.propose", b"p", msg_id="p1")
        await bus.stream_subscribe("mem.propose", "d", lambda m: _extend(got, [m]))
        await bus.close()
        return got

    assert [m.received_ms for m in run_with_deadline(scenario(), 10)] == [None]


@pytest.mark.parametrize("reply", [
    "$JS.ACK.COINSWARM.mgr-m1.1.12345.678.1700000000123456789.5",
    "$JS.ACK._.ACCHASH.COINSWARM.mgr-m1.1.12345.678.1700000000123456789.5",
    "$JS.ACK.dom.ACCHASH.COINSWARM.mgr-m1.2.99.678.1700000000123456789.5.token.more",
])
def test_stream_position_reads_the_ack_subject_as_nats_py_does(reply):
    from nats.aio.msg import Msg

    metadata = Msg(None, reply=reply).metadata
    sequence, received_ms = stream_position(reply)
    assert sequence == metadata.sequence.stream
    assert received_ms == round(metadata.timestamp.timestamp() * 1000) == 1_700_000_000_123


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "$JS.ACK.S.C.1.2", "$JS.ACK.a.b.c.d.e.f.g.h"])
def test_stream_position_refuses_what_is_not_a_jetstream_delivery(reply):
    with pytest.raises(MessageError, match="not a JetStream delivery"):
        stream_position(reply)


def test_bad_subjects_and_missing_ids_are_message_errors():
    async def scenario():
        bus = InProcessBus()
        with pytest.raises(MessageError, match="subject"):
            await bus.publish("bad subject", b"")
        with pytest.raises(MessageError, match="msg_id"):
            await bus.stream_publish("mem.propose", b"", msg_id="")

    run_with_deadline(scenario(), 60)
