"""Quorum nodes and the applier on the deterministic in-process bus with a SQLite store."""

import asyncio
import sys
from pathlib import Path

import numpy as np

from coinswarm.adapters.batching import run_with_deadline
from coinswarm.adapters.bus import InProcessBus
from coinswarm.memory import Store
from coinswarm.memory.models import DecisionRow
from coinswarm.memory.nodes import Applier, QuorumNode, submit
from coinswarm.quorum import COMMITTED, Context, Manager, QuorumConfig, derive_keys

sys.path.insert(0, str(Path(__file__).parents[1] / "quorum"))
from proposals_factory import NOW, make_proposal, seeded_patterns  # noqa: E402
from test_faults import seeded  # noqa: E402

from coinswarm.quorum import LocalQuorum  # noqa: E402

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"inprocess", MANAGERS)
CONFIG = QuorumConfig(MANAGERS)


def context(now):
    return Context(now=now, patterns=seeded_patterns())


async def start_cluster(bus, store, clock, managers=MANAGERS, **node_options):
    """Started nodes (by manager name) and applier on ``bus``."""
    nodes = {m: QuorumNode(Manager(m, KEYS[m]), CONFIG, KEYS, bus, context=context, clock=clock, **node_options)
             for m in managers}
    for node in nodes.values():
        await node.start()
    applier = Applier(store, CONFIG, KEYS, bus)
    await applier.start()
    return nodes, applier


def run(tmp_path, tag):
    store = Store(f"sqlite:///{tmp_path / f'{tag}.db'}")
    store.migrate()
    seed = seeded(LocalQuorum(CONFIG, KEYS))
    for proposal in seed.memory.commits:
        store.apply_commit(proposal, seed.coordinator.decided[proposal.id])
    batch = [make_proposal(i, np.random.default_rng(i)) for i in range(120)]

    async def scenario():
        bus = InProcessBus()
        nodes, applier = await start_cluster(bus, store, lambda: NOW)
        for p in batch:
            await submit(bus, p)
        return list(nodes.values()), applier

    nodes, applier = run_with_deadline(scenario(), 60)
    with store.sessions() as s:
        statuses = {r.proposal_id: r.status for r in s.query(DecisionRow) if not r.proposal_id.startswith("seed")}
    audit = [(e.kind, e.proposal_id, e.actor) for n in nodes for e in n.coordinator.audit]
    return batch, statuses, audit, applier


def test_in_process_cluster_decides_like_the_rules_and_deterministically(tmp_path):
    batch, statuses, audit, applier = run(tmp_path, "a")
    judge = Manager("judge", b"k")
    want = {p.id: judge.evaluate(p, context(NOW)).approve for p in batch}
    assert {pid: s == COMMITTED for pid, s in statuses.items()} == want
    assert applier.refused == 0 and applier.duplicates == 0 and applier.failed == []
    _, statuses_b, audit_b, _ = run(tmp_path, "b")
    assert statuses_b == statuses and audit_b == audit


def test_votes_go_to_the_frames_coordinator_only(tmp_path):
    from coinswarm.quorum import coordinator_for
    from coinswarm.quorum.votes import decode_votes

    store = Store(f"sqlite:///{tmp_path / 'targeted.db'}")
    store.migrate()
    batch = [make_proposal(i, np.random.default_rng(i)) for i in range(40) if i % 5 == 4]  # planner weights
    sent = []

    async def scenario():
        bus = InProcessBus()

        async def spy(msg):
            votes = decode_votes(msg.data)
            sent.append((msg.subject, votes.manager, votes.entries[0][0]))

        await bus.subscribe("mem.vote.>", spy)
        await bus.subscribe("mem.vote", spy)
        _, applier = await start_cluster(bus, store, lambda: NOW)
        for p in batch:
            await submit(bus, p)
        return applier

    applier = run_with_deadline(scenario(), 60)
    assert applier.applied == len(batch)
    assert len(sent) == 3 * len(batch), "three messages per proposal: the coordinator counts its own vote"
    for subject, voter, proposal_id in sent:
        coordinator = coordinator_for(proposal_id, MANAGERS)
        assert subject == f"mem.vote.{coordinator}" and voter != coordinator


def test_a_polling_applier_reads_the_whole_stream_in_bursts_and_rides_out_failed_reads(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'polled.db'}")
    store.migrate()
    batch = [make_proposal(i, np.random.default_rng(i)) for i in range(80) if i % 5 == 4]  # planner weights

    async def scenario():
        bus = _FlakyPollBus()
        nodes = [QuorumNode(Manager(m, KEYS[m]), CONFIG, KEYS, bus, context=context, clock=lambda: NOW)
                 for m in MANAGERS]
        for node in nodes:
            await node.start()
        for p in batch[:8]:  # committed before the applier exists: it reads from the stream's start
            await submit(bus, p)
        applier = Applier(store, CONFIG, KEYS, bus, poll_ms=5)
        bus.failing_polls = 3  # the server is away for the applier's first three reads
        await applier.start()
        for p in batch[8:]:
            await submit(bus, p)
        for _ in range(100):
            if applier.applied == len(batch):
                break
            await asyncio.sleep(0.005)
        await applier.stop()
        return applier

    applier = run_with_deadline(scenario(), 60)
    assert applier.applied == len(batch) and applier.duplicates == 0 and applier.failed == []
    assert store.count(DecisionRow) == len(batch)
    assert applier._writer.batches < len(batch), "commits read together are written together"
    assert applier.failed_reads == 3 and "server away" in applier.last_read_error, "failed reads are counted, retried"


class _FlakyPollBus(InProcessBus):
    """Its next ``failing_polls`` polls raise, as a NATS connection does while the server is away."""

    failing_polls = 0

    async def stream_poll(self, *args, **kwargs):
        if self.failing_polls > 0:
            self.failing_polls -= 1
            raise ConnectionError("server away")
        return await super().stream_poll(*args, **kwargs)


def test_nodes_publish_their_audit_trail_and_forget_old_state(tmp_path):
    from coinswarm.memory.models import AuditRow

    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    store.migrate()
    now = [NOW]
    batch = [make_proposal(i, np.random.default_rng(i)) for i in range(40) if i % 5 == 4]  # planner weights

    async def scenario():
        bus = InProcessBus()
        nodes, applier = await start_cluster(bus, store, lambda: now[0], retention_ms=10_000)
        nodes = list(nodes.values())
        for p in batch:
            await submit(bus, p)
        for node in nodes:
            await node.tick()
        sizes_before = [len(n.coordinator.decided) for n in nodes]
        now[0] += 20_000
        for node in nodes:
            await node.tick()
        return nodes, applier, sizes_before

    nodes, applier, sizes_before = run_with_deadline(scenario(), 60)
    assert sum(sizes_before) == len(batch), "each proposal is tallied by its primary only (backups keep votes)"
    assert all(not n.deferred and not n.escalate_at and not n.coordinator.open for n in nodes), \
        "a seen commit releases what the backups kept"
    assert all(not n.coordinator.decided and not n.seen_commits and not n.early for n in nodes)
    assert applier.audited > 0 and store.count(AuditRow) == applier.audited


def test_backups_keep_votes_until_a_silent_primary_times_out_then_commit(tmp_path):
    from coinswarm.quorum import coordinator_for

    store = Store(f"sqlite:///{tmp_path / 'failover.db'}")
    store.migrate()
    now = [NOW]
    live = MANAGERS[1:]  # m1 crashed: it votes nowhere and commits nothing
    batch = [p for p in (make_proposal(i, np.random.default_rng(i)) for i in range(60) if i % 5 == 4)]
    orphans = {p.id for p in batch if coordinator_for(p.id, MANAGERS) == "m1"}
    assert orphans and len(orphans) < len(batch)

    async def scenario():
        bus = InProcessBus()
        nodes, applier = await start_cluster(bus, store, lambda: now[0], live, failover_ms=500)
        for p in batch:
            await submit(bus, p)
        for node in nodes.values():  # a tick reads the commits published so far: backups stand down
            await node.tick()
        applied_at_once = applier.applied
        kept = {m: set(n.deferred) for m, n in nodes.items()}
        applied = []
        for step in (499, 1):  # one tick just before the first backup's turn, one at it
            now[0] += step
            for node in nodes.values():
                await node.tick()
            applied.append(applier.applied)
        for node in nodes.values():  # the next tick reads the takeover's commits
            await node.tick()
        return [applied_at_once, *applied], kept, applier, nodes

    applied, kept, applier, nodes = run_with_deadline(scenario(), 60)
    assert applied == [len(batch) - len(orphans)] * 2 + [len(batch)], "live primaries commit at once, backups on time"
    assert kept["m2"] == orphans, "m2 (first backup after m1) kept exactly the orphans' votes, uncounted"
    assert applier.duplicates == 0
    assert not any(n.deferred or n.escalate_at for n in nodes.values())


def test_a_forged_commit_message_does_not_silence_the_backups(tmp_path):
    from coinswarm.memory.commits import commit_msg_id, encode_commit
    from coinswarm.quorum import Decision, Vote, coordinator_for

    store = Store(f"sqlite:///{tmp_path / 'forged.db'}")
    store.migrate()
    now = [NOW]
    batch = [p for p in (make_proposal(i, np.random.default_rng(i)) for i in range(60) if i % 5 == 4)
             if coordinator_for(p.id, MANAGERS) == "m1"]  # every primary is the dead m1
    assert batch

    async def scenario():
        bus = InProcessBus()
        nodes, applier = await start_cluster(bus, store, lambda: now[0], MANAGERS[1:], failover_ms=500)
        nodes = list(nodes.values())
        for p in batch:
            await submit(bus, p)
            forged_votes = [Vote(p.id, p.digest, m, True, ("ok",), NOW).signed(b"stolen?") for m in MANAGERS]
            forged = Decision(p.id, p.digest, COMMITTED, MANAGERS[:3], (), (), NOW, "m1")
            payload = encode_commit(p, forged, forged_votes)
            await bus.stream_publish("mem.commit", payload, msg_id=commit_msg_id(p.id, payload))
        now[0] += 500
        for node in nodes:
            await node.tick()
        return nodes, applier

    nodes, applier = run_with_deadline(scenario(), 60)
    assert applier.refused == len(batch), "the applier refuses the forged commits"
    assert all(n.bad_messages == len(batch) for n in nodes), "every node saw through them"
    with store.sessions() as s:
        statuses = {r.proposal_id: r.status for r in s.query(DecisionRow)}
    judge = Manager("judge", b"k")
    assert {p.id: statuses.get(p.id) == COMMITTED for p in batch} == \
        {p.id: judge.evaluate(p, context(NOW)).approve for p in batch}, "the backups still decided each one"


def _lone_backup(now):
    """Node m2 alone on a bus, holding the votes of a frame coordinated by m1 (so m2 is its
    first backup), and the list the commits it publishes land in."""
    from coinswarm.adapters.bus import Message
    from coinswarm.memory.commits import committed_ids
    from coinswarm.quorum import coordinator_for

    frame = [p for p in (make_proposal(i, np.random.default_rng(i)) for i in range(80) if i % 5 == 4)]
    while coordinator_for(frame[0].id, MANAGERS) != "m1":
        frame = frame[1:]
    bus = InProcessBus()
    node = QuorumNode(Manager("m2", KEYS["m2"]), CONFIG, KEYS, bus, context=context, clock=lambda: now[0],
                      failover_ms=500)
    published = []

    async def setup():
        await bus.subscribe("mem.commit", lambda msg: _collect(published, committed_ids(msg.data)))
        await node.on_proposals([Message("mem.propose", p.encode(), p.id) for p in frame])
        batches = [Manager(m, KEYS[m]).evaluate_many(frame, context(now[0])) for m in MANAGERS]
        await node.on_votes([Message("mem.vote", b.encode(), f"votes-{b.manager}") for b in batches])

    asyncio.run(setup())
    assert set(node.deferred) == {p.id for p in frame}, "m2 keeps the votes of m1's frame uncounted"
    return node, frame, published


async def _collect(published, ids):
    published.extend(ids)


def test_a_slow_primary_keeps_its_frame_and_a_silent_one_loses_it():
    now = [NOW]
    node, frame, published = _lone_backup(now)
    for _ in range(3):  # m1 keeps voting on other frames: slow, not dead
        node.last_heard.update(m1=now[0], m3=now[0])
        now[0] += 400
        asyncio.run(node.tick())
    assert published == [] and set(node.deferred) == {p.id for p in frame}
    now[0] += 600  # nothing heard from anyone (m2 may be the one cut off): still no verdict on m1
    asyncio.run(node.tick())
    assert published == []
    now[0] += 500
    node.last_heard["m3"] = now[0]  # m3 heard long after m1's last word: m1 is silent, m2 takes over
    asyncio.run(node.tick())
    assert sorted(published) == sorted(p.id for p in frame) and not node.deferred


def test_a_primary_that_is_heard_from_but_never_commits_is_overruled_before_the_deadline():
    now = [NOW]
    node, frame, published = _lone_backup(now)
    while not published:
        node.last_heard["m1"] = now[0]
        now[0] += 250
        asyncio.run(node.tick())
    # the votes were cast, and the window opened, at NOW (after the frame's timestamps); m2 is
    # the first backup: it takes over n - rank = 3 intervals before that window closes
    assert all(p.timestamp <= NOW for p in frame)
    taken_over_after = now[0] - NOW
    assert CONFIG.timeout_ms - 3 * 500 <= taken_over_after < CONFIG.timeout_ms - 3 * 500 + 250
    assert node.taken_over == len(frame)
    assert sorted(published) == sorted(p.id for p in frame)


class _LossyBus(InProcessBus):
    """Drops the first vote message of each manager in ``lose`` (a connection that dropped it)."""

    def __init__(self, lose):
        super().__init__()
        self.lose, self.dropped = set(lose), []

    async def publish(self, subject, data, **kwargs):
        from coinswarm.quorum.votes import decode_votes

        manager = decode_votes(data).manager if subject.startswith("mem.vote") else None
        if manager in self.lose:
            self.lose.discard(manager)
            self.dropped.append(manager)
            return
        await super().publish(subject, data, **kwargs)


def _weights_coordinated_by(managers):
    """A planner-weights proposal whose coordinator is one of ``managers``."""
    from coinswarm.quorum import coordinator_for

    return next(p for p in (make_proposal(i, np.random.default_rng(i)) for i in range(200))
                if p.kind == "planner_weights" and coordinator_for(p.id, MANAGERS) in managers)


def test_lost_votes_are_sent_again_until_their_proposals_are_settled(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'lossy.db'}")
    store.migrate()
    now = [NOW]
    weights = _weights_coordinated_by({"m3", "m4"})  # so m1's and m2's votes travel (and get lost)

    async def scenario():
        bus = _LossyBus({"m1", "m2"})  # two of four votes lost: no quorum until they come again
        nodes, applier = await start_cluster(bus, store, lambda: now[0], failover_ms=500)
        await submit(bus, weights)
        applied = [applier.applied]
        for step in (499, 1):  # nothing re-sent before resend_ms (= failover_ms), everything open at it
            now[0] += step
            for node in nodes.values():
                await node.tick()
            applied.append(applier.applied)
        resent = {m: n.resent for m, n in nodes.items()}
        now[0] += 2_000
        for node in nodes.values():
            await node.tick()
        return applied, resent, bus.dropped, nodes, applier

    applied, resent, dropped, nodes, applier = run_with_deadline(scenario(), 60)
    assert sorted(dropped) == ["m1", "m2"]
    assert applied == [0, 0, 1], "the quorum forms from the re-sent votes"
    assert resent == {"m1": 1, "m2": 0, "m3": 0, "m4": 0}, \
        "m1 ticks first: its vote completes the quorum, the commit settles the proposal before m2 re-sends"
    assert all(not n.sent for n in nodes.values()), "settled proposals' votes are forgotten, not re-sent"
    assert applier.duplicates == 0 and applier.failed == []


def test_a_reconnect_sends_every_open_vote_again_at_once(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'reconnect.db'}")
    store.migrate()
    weights = _weights_coordinated_by({"m3", "m4"})

    async def scenario():
        bus = _LossyBus({"m1", "m2"})
        nodes, applier = await start_cluster(bus, store, lambda: NOW, failover_ms=500)
        await submit(bus, weights)
        before = applier.applied
        bus.reconnects = 1  # as NatsBus counts them
        for node in nodes.values():
            await node.tick()
        return before, applier.applied

    assert run_with_deadline(scenario(), 60) == (0, 1)


class _SwallowingPollBus(InProcessBus):
    """A poll that swallows the cancel landing as its reply arrives (as ``asyncio.wait_for`` and
    nats-py's flush can on Python 3.11) and returns normally."""

    polls = 0

    async def stream_poll(self, *args, **kwargs):
        self.polls += 1
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            pass  # the reply won the race: the cancel is lost
        return await super().stream_poll(*args, **kwargs)


def test_an_applier_stops_even_when_its_poll_swallows_the_cancel(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'stop.db'}")
    store.migrate()

    async def scenario():
        bus = _SwallowingPollBus()
        applier = Applier(store, CONFIG, KEYS, bus, poll_ms=1)
        await applier.start()
        while bus.polls < 3:
            await asyncio.sleep(0.005)
        stopped = await applier.stop(timeout=5.0)
        polls = bus.polls
        await asyncio.sleep(0.05)
        return stopped, applier, polls, bus.polls

    stopped, applier, polls, later = run_with_deadline(scenario(), 30)
    assert stopped and applier.stopping and applier._poller.done()
    assert later == polls, "no poll after stop()"


def test_a_node_ticker_ends_on_its_stop_flag(tmp_path):
    async def scenario():
        bus = InProcessBus()
        node = QuorumNode(Manager("m1", KEYS["m1"]), CONFIG, KEYS, bus, context=context, clock=lambda: NOW)
        await node.start()
        ticker = asyncio.create_task(node.run_ticker(interval=0.001))
        await asyncio.sleep(0.01)
        await node.stop()
        await asyncio.wait({ticker}, timeout=2.0)  # no cancel: the flag alone ends it
        return ticker

    ticker = run_with_deadline(scenario(), 10)
    assert ticker.done() and not ticker.cancelled() and ticker.exception() is None
