"""Frames and group commit: many items per NATS message / per transaction, formed only under load."""

import asyncio

import pytest

from coinswarm.adapters.batching import Batcher, GroupWriter, bounded, run_with_deadline, stop_task
from coinswarm.adapters.bus import InProcessBus, NatsBus
from coinswarm.adapters.framing import SEQ_STRIDE, Coalescer, decode_frame, encode_frame, frame_id, item_size
from coinswarm.errors import ConfigError, MessageError


def test_frames_round_trip_and_malformed_frames_are_typed_errors():
    items = [("p1", b'{"a":1}'), ("p-\u00e9", b""), ("p3", bytes(range(256)))]
    payload = encode_frame(items)
    assert decode_frame(payload) == items
    assert frame_id(items) == frame_id(list(items)) != frame_id(items[:2])
    with pytest.raises(MessageError, match="malformed frame"):
        decode_frame(payload[:-1])
    with pytest.raises(MessageError, match="malformed frame"):
        decode_frame(b"\x00\x00")


def test_coalescer_sends_alone_when_idle_and_everything_queued_when_busy():
    sent = []

    async def send(items):
        sent.append([i for i, _ in items])
        await asyncio.sleep(0.01)
        return True

    async def scenario():
        c = Coalescer(send)
        assert await c.publish("solo", b"x")
        first = asyncio.create_task(c.publish("first", b"x"))
        await asyncio.sleep(0.001)  # "first" is on the wire now
        rest = await asyncio.gather(*(c.publish(f"m{i}", b"x") for i in range(50)))
        return [await first, *rest]

    results = run_with_deadline(scenario(), 60)
    assert all(results)
    assert sent[:2] == [["solo"], ["first"]], "an idle publisher does not wait for company"
    assert sent[2] == [f"m{i}" for i in range(50)], "what queued during a send goes out as one frame"


def test_coalescer_hands_a_failed_send_to_every_waiting_publisher():
    async def send(items):
        raise TimeoutError("server gone")

    async def scenario():
        c = Coalescer(send)
        return await asyncio.gather(*(c.publish(f"m{i}", b"x") for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, TimeoutError) for r in run_with_deadline(scenario(), 60))


def test_group_writer_batches_under_load_and_isolates_a_failing_item():
    calls = []

    def write(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]

    async def scenario():
        writer = GroupWriter(write)
        first = asyncio.create_task(writer.submit("a"))
        await asyncio.sleep(0.001)  # "a" is being written
        many = await asyncio.gather(*(writer.submit(x) for x in ["b", "c", "bad", "d"]), return_exceptions=True)
        return await first, many

    first, many = run_with_deadline(scenario(), 60)
    assert first == "A" and many[:2] == ["B", "C"] and many[3] == "D"
    assert isinstance(many[2], ValueError)
    assert calls[:2] == [["a"], ["b", "c", "bad", "d"]], "items queued during a write share the next one"
    assert calls[2:] == [["b"], ["c"], ["bad"], ["d"]], "after a failed batch each item is retried alone"


def test_group_writer_with_linger_lets_items_that_arrive_alone_share_a_write():
    calls = []

    def write(items):
        calls.append(list(items))
        return list(items)

    async def scenario(linger):
        writer = GroupWriter(write, linger=linger)
        futures = []
        for item in "abc":  # each arrives alone, 1 ms apart
            futures.append(writer.enqueue(item))
            await asyncio.sleep(0.001)
        return await asyncio.gather(*futures)

    assert run_with_deadline(scenario(0.0), 60) == ["a", "b", "c"]
    assert calls == [["a"], ["b"], ["c"]], "no linger: an item on an idle writer is written at once"
    calls.clear()
    assert run_with_deadline(scenario(0.05), 60) == ["a", "b", "c"]
    assert calls == [["a", "b", "c"]], "a linger of 50 ms gathers items 1 ms apart into one write"


@pytest.mark.integration
def test_nats_frames_deliver_every_item_once_with_its_id_and_a_distinct_sequence(nats_url):
    async def scenario():
        pub, sub = await NatsBus.connect(nats_url, name="fp"), await NatsBus.connect(nats_url, name="fs")
        got, batches = [], []

        async def handler(msg):
            got.append((msg.msg_id, msg.data, msg.seq))

        async def batch_handler(msgs):
            batches.append([m.msg_id for m in msgs])

        await sub.stream_subscribe("mem.propose", "frames-test", handler, concurrency=64)
        await sub.stream_subscribe("mem.propose", "frames-batch", batch_handler, concurrency=8, batch=True)
        await asyncio.gather(*(pub.stream_publish("mem.propose", f"v{i}".encode(), msg_id=f"id{i}")
                               for i in range(150)))
        assert await pub.stream_publish_many("mem.propose", [(f"id{i}", f"v{i}".encode()) for i in range(150, 300)])
        for _ in range(100):
            if len(got) >= 300 and sum(map(len, batches)) >= 300:
                break
            await asyncio.sleep(0.05)
        frames = pub._coalescers["mem.propose"].frames
        await pub.close()
        await sub.close()
        return got, batches, frames

    got, batches, frames = run_with_deadline(scenario(), 60)
    assert sorted(got) == sorted(set(got)) and len(got) == 300
    assert {(i, d) for i, d, _ in got} == {(f"id{k}", f"v{k}".encode()) for k in range(300)}
    assert len({s for *_, s in got}) == 300 and all(s >= SEQ_STRIDE for *_, s in got)
    assert frames < 300, "concurrent publishes share frames"
    assert sorted(i for b in batches for i in b) == sorted(f"id{k}" for k in range(300))
    assert len(batches) == frames and max(map(len, batches)) > 1, "a batch handler gets a frame's items at once"


def test_in_process_batch_subscribers_get_one_message_lists():
    async def scenario():
        bus = InProcessBus()
        seen = []

        async def handler(msgs):
            seen.append([m.msg_id for m in msgs])

        await bus.stream_publish("mem.propose", b"a", msg_id="a")
        await bus.stream_subscribe("mem.propose", "d", handler, batch=True)
        assert await bus.stream_publish_many("mem.propose", [("b", b"b"), ("a", b"a")]) == [True, False]
        return seen

    assert run_with_deadline(scenario(), 60) == [["a"], ["b"]]


def test_coalescer_caps_frames_by_bytes_and_sends_an_oversized_item_alone():
    sent = []

    async def send(items):
        sent.append(items)
        await asyncio.sleep(0.01)
        return True

    async def scenario():
        c = Coalescer(send, max_bytes=10_000)
        first = asyncio.create_task(c.publish("first", b"x"))
        await asyncio.sleep(0.001)
        items = [(f"m{i}", b"y" * 3_000) for i in range(7)] + [("huge", b"z" * 25_000), ("last", b"w")]
        rest = await asyncio.gather(*(c.publish(i, d) for i, d in items))
        return [await first, *rest]

    assert all(run_with_deadline(scenario(), 60))
    frames = [[msg_id for msg_id, _ in items] for items in sent]
    assert frames == [["first"], ["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6"], ["huge"], ["last"]]
    assert all(len(encode_frame(items)) <= 10_000 for items in sent if len(items) > 1)
    assert item_size(("m0", b"y" * 3_000)) == len(encode_frame([("m0", b"y" * 3_000)]))


def test_a_batcher_refuses_nonsense_limits():
    async def handle(items):
        return items

    for bad in ({"max_batch": 0}, {"max_weight": 0, "weigh": len}, {"max_weight": 10}):
        with pytest.raises(ConfigError, match="max_batch must be >= 1"):
            Batcher(handle, **bad)


def test_bounded_returns_on_time_even_when_the_work_swallows_its_cancel():
    async def stubborn():
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass  # what nats-py's drain does with a cancel

    async def scenario():
        assert await bounded(asyncio.sleep(0, "ok"), 1.0, "quick") == "ok"
        with pytest.raises(TimeoutError, match="stubborn did not finish within 0.1 s"):
            await bounded(stubborn(), 0.1, "stubborn")
        assert await bounded(stubborn(), 0.1, "stubborn", quiet=True) is None
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        return await stop_task(task, timeout=0.3, tick=0.05), task

    stopped, task = run_with_deadline(scenario(), 10, grace=0.5)
    assert stopped is False, "a task that ignores every cancel is reported, not waited for forever"


def test_run_with_deadline_raises_instead_of_hanging():
    async def forever():
        await asyncio.Event().wait()

    with pytest.raises(TimeoutError, match="did not finish within 0.2 s"):
        run_with_deadline(forever(), 0.2)
    assert run_with_deadline(asyncio.sleep(0, 7), 1.0) == 7
