"""Issue 17 over real NATS: a proposal too large for the server is refused at once, and
proposals that queue up together are split into frames that fit the server's max_payload."""

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest
from quorum_harness import NOW, connect, fixed_context, run_with_deadline, stamped, start_cluster, wait_until

from coinswarm.adapters.bus import PayloadTooLargeError
from coinswarm.errors import MessageError
from coinswarm.memory.models import DecisionRow
from coinswarm.memory.nodes import submit
from coinswarm.quorum import COMMITTED, Manager, Proposal

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "quorum"))
from proposals_factory import make_proposal  # noqa: E402

pytestmark = pytest.mark.integration


def padded(i: int, size: int, prefix: str) -> Proposal:
    """An ``add_episode`` proposal of about ``size`` bytes on the wire (notes of ≤ 1,000
    characters each: the quorum's per-string limit)."""
    base = make_proposal(5 * i, np.random.default_rng(i)).to_dict()  # kind add_episode
    missing = max(0, size - len(Proposal(**base).encode()))
    base["data"]["notes"] = ["x" * 1000] * (missing // 1006)
    return Proposal(**{**base, "id": f"{prefix}{i:04d}"})


def counting_publish(bus) -> list[int]:
    """Record the size of every JetStream publish the bus attempts (payload + headers)."""
    sizes, publish = [], bus.js.publish

    async def spy(subject, payload=b"", timeout=None, stream=None, headers=None, **kw):
        sizes.append(len(payload) + sum(len(k) + len(v) + 4 for k, v in (headers or {}).items()) + 12)
        return await publish(subject, payload, timeout=timeout, stream=stream, headers=headers, **kw)

    bus.js.publish = spy
    return sizes


@pytest.mark.timeout(20)  # the bus below would retry for 60 s: only an immediate refusal passes
def test_a_proposal_larger_than_max_payload_is_refused_at_once_without_retries(nats_url):
    async def scenario():
        bus = await connect(nats_url, "big-proposer")
        bus.retry_for = 60.0
        sizes = counting_publish(bus)
        with pytest.raises(MessageError, match="at most"):
            padded(0, 2_000_000, "huge-")  # the quorum refuses it before any bus sees it
        huge = b"x" * 2_000_000
        try:
            with pytest.raises(PayloadTooLargeError, match="exceeds the NATS server's max_payload") as caught:
                await bus.stream_publish("mem.propose", huge, msg_id="huge-0000")
            fits = await submit(bus, padded(1, 20_000, "fits-"))  # the bus still works
            return caught.value, sizes, fits, bus.max_payload
        finally:
            await bus.close()

    error, sizes, fits, max_payload = run_with_deadline(scenario(), 15)
    assert f"{max_payload:,}" in str(error), "the message names the limit"
    assert len(sizes) == 1 and fits, "nothing of the huge proposal was sent; the next one was"


@pytest.mark.timeout(240)
def test_300_concurrent_20kb_proposals_travel_in_frames_under_max_payload_and_are_all_decided(nats_url, store):
    batch = [padded(i, 20_000, "kb20-") for i in range(300)]

    async def scenario():
        cluster = await start_cluster(nats_url, store, prefix="kb")
        proposer = await connect(nats_url, "kb-proposer")
        sizes = counting_publish(proposer)
        try:
            sent = await asyncio.gather(*(submit(proposer, stamped(p)) for p in batch))
            frames = proposer._coalescers["mem.propose"].frames
            done = await wait_until(lambda: store.count(DecisionRow) >= len(batch) + seeded, 120)
            return sent, frames, sizes, proposer.max_payload, done, cluster.applier
        finally:
            await proposer.close()
            await cluster.close()

    seeded = store.count(DecisionRow)
    sent, frames, sizes, max_payload, done, applier = run_with_deadline(scenario(), 200)
    assert sent == [True] * len(batch), "every proposal was accepted by the stream"
    assert sum(len(p.encode()) for p in batch) > 5 * max_payload, "they could not have fit one frame"
    assert frames >= 6 and len(sizes) == frames and max(sizes) <= max_payload, (frames, max(sizes), max_payload)
    assert done, "every proposal was decided"
    judge = Manager("judge", b"k")
    with store.sessions() as s:
        got = {r.proposal_id: r.status for r in s.query(DecisionRow) if r.proposal_id.startswith("kb20-")}
    want = {p.id: judge.evaluate(p, fixed_context(NOW)).approve for p in batch}
    assert {pid: status == COMMITTED for pid, status in got.items()} == want, "decided as the pure rules say"
    assert sum(want.values()) >= 100, "and most of them committed: 20 KB commits travelled too"
    assert applier.failed == [] and applier.refused == 0
