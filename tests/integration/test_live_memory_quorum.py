"""The daemon's memory proposals through a real quorum: a replay with memory on writes one
``add_episode`` per closed round trip to its outbox, the relay publishes them to NATS
``mem.propose``, four manager nodes vote, the applier commits them to PostgreSQL (the ledger, on
the same PostgreSQL, holds the tracker's state with each checkpoint). Then NATS is
stopped, the replay resumes and closes more trips (they wait in the outbox), NATS comes back:
every proposal is decided and committed once, none lost — also when they waited in the outbox
longer than the managers' 1 h age limit (the relay stamps them when it publishes them), and
when NATS stored them while the managers were down for longer than that (the managers judge
a proposal's age at the time the stream received it, and a ballot's vote window opens when
they vote, not at the proposal's timestamp)."""

from __future__ import annotations

import asyncio
import time

import pytest
from quorum_harness import clock, start_cluster, wait_until
from sqlalchemy import func, select

from coinswarm.adapters.servers import Server, executable, free_port, launch
from coinswarm.live.ledger import Ledger, OutboxRow
from coinswarm.live.outbox import PROPOSAL_SUBJECT, Relay
from coinswarm.live.publisher import connect_publisher
from coinswarm.live.replay import ReplaySpec, build, feed_for
from coinswarm.memory.models import DecisionRow, Episode, ProposalRow
from coinswarm.quorum import COMMITTED

pytestmark = pytest.mark.integration
DATA = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]


def start_nats(workdir, port: int) -> Server:
    """nats-server with JetStream stored under ``workdir`` (kept across restarts)."""
    args = [executable("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "js")]
    return launch("nats", args, port=port, url=f"nats://127.0.0.1:{port}", workdir=workdir,
                  log=workdir / "nats.log", ready_timeout=15.0)


def outbox(db: str) -> tuple[list[str], int]:
    """The proposal ids in the outbox (write order) and how many are not yet published."""
    ledger = Ledger(db)
    try:
        with ledger.sessions() as s:
            rows = list(s.scalars(select(OutboxRow).where(OutboxRow.subject == PROPOSAL_SUBJECT)
                                  .order_by(OutboxRow.id)))
            return [r.msg_id for r in rows], sum(r.published_ms is None for r in rows)
    finally:
        ledger.close()


def decisions(store, ids: list[str]) -> dict[str, str]:
    with store.sessions() as s:
        rows = s.execute(select(DecisionRow.proposal_id, DecisionRow.status).where(DecisionRow.proposal_id.in_(ids)))
        return dict(rows.all())


def episodes(store) -> int:
    with store.sessions() as s:
        return s.scalar(select(func.count()).select_from(Episode))


async def _replay(spec: ReplaySpec, bus, runner_clock=clock) -> None:
    runner, _ = build(spec, bus=bus)
    runner.clock = runner_clock  # the managers judge staleness against the cluster's clock
    try:
        await runner.run(feed_for(spec, runner))
    finally:
        runner.ledger.close()


@pytest.mark.timeout(600)
def test_a_replays_episodes_are_committed_by_the_quorum_and_none_is_lost_while_nats_is_down(
        server_dir, store, postgres_url):
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    servers = [start_nats(server_dir, port)]
    db = postgres_url  # the ledger beside the memory store (its tables are prefixed live_)
    first = ReplaySpec(DATA, "committee", db, start="2023-01-01", end="2023-02-01", memory=True)
    second = ReplaySpec(DATA, "committee", db, start="2023-01-01", end="2023-03-01", memory=True)

    async def scenario() -> tuple[list[str], list[str], int]:
        cluster = await start_cluster(url, store, prefix="live")
        bus = await connect_publisher(url, connect_timeout=5, retry_for=0.5)
        try:
            await _replay(first, bus)
            up, pending = outbox(db)
            assert up and pending == 0
            assert await wait_until(lambda: len(decisions(store, up)) == len(up), 60)
            servers[0].stop()
            await _replay(second, bus)  # trades on with NATS away: the new proposals wait in the outbox
            ids, pending = outbox(db)
            held = len(ids) - len(up)
            assert held > 0 and pending == held
            servers[0] = start_nats(server_dir, port)
            await drain_outbox(db, bus)
            assert await wait_until(lambda: len(decisions(store, ids)) == len(ids), 60)
            return up, ids, held
        finally:
            await bus.close()
            await cluster.close()
            servers[0].stop()

    up, ids, held = asyncio.run(scenario())
    assert len(up) >= 3 and held >= 3
    assert len(set(ids)) == len(ids) and ids[:len(up)] == up
    assert set(decisions(store, ids).values()) == {COMMITTED}
    assert episodes(store) == len(ids)  # each committed once: none lost, none twice


async def drain_outbox(db: str, bus) -> Relay:
    """Relay the ledger's outbox to NATS until it is empty (at most 60 s); the relay, for its counters."""
    ledger = Ledger(db)
    try:
        relay = Relay(ledger, bus, clock)
        deadline = time.monotonic() + 60
        while outbox(db)[1] and time.monotonic() < deadline:
            await relay.drain()
            await asyncio.sleep(0.2)
    finally:
        ledger.close()
    return relay


@pytest.mark.timeout(600)
def test_proposals_written_more_than_an_hour_before_nats_comes_back_are_committed(server_dir, store, postgres_url):
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    servers = [start_nats(server_dir, port)]
    db = postgres_url
    spec = ReplaySpec(DATA, "committee", db, start="2023-01-01", end="2023-02-01", memory=True)
    hours_ago = 2 * 3_600_000

    async def scenario() -> tuple[list[str], Relay, dict[str, int]]:
        cluster = await start_cluster(url, store, prefix="late")
        bus = await connect_publisher(url, connect_timeout=5, retry_for=0.5)
        try:
            servers[0].stop()
            await _replay(spec, bus, lambda: clock() - hours_ago)  # written two hours before NATS is back
            ids, pending = outbox(db)
            assert ids and pending == len(ids)
            servers[0] = start_nats(server_dir, port)
            relay = await drain_outbox(db, bus)
            assert await wait_until(lambda: len(decisions(store, ids)) == len(ids), 60)
            with store.sessions() as s:
                stamps = dict(s.execute(select(ProposalRow.id, ProposalRow.timestamp)
                                        .where(ProposalRow.id.in_(ids))).all())
            return ids, relay, stamps
        finally:
            await bus.close()
            await cluster.close()
            servers[0].stop()

    written_before = clock()
    ids, relay, stamps = asyncio.run(scenario())
    assert len(ids) >= 3 and len(set(ids)) == len(ids)
    assert set(decisions(store, ids).values()) == {COMMITTED}, decisions(store, ids)
    assert episodes(store) == len(ids)
    assert relay.delayed == len(ids) and relay.unreadable == 0  # each counted (and logged) as delayed
    assert all(t >= written_before for t in stamps.values())  # stamped at the publish, not when written


@pytest.mark.timeout(600)
def test_proposals_stored_while_the_managers_are_down_over_an_hour_are_committed_once(server_dir, store,
                                                                                        postgres_url):
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    server = start_nats(server_dir, port)
    db = postgres_url
    spec = ReplaySpec(DATA, "committee", db, start="2023-01-01", end="2023-02-01", memory=True)
    hours_later = 2 * 3_600_000
    # the harness's 3 s vote timeout: a ballot's window opens with the votes, so managers that
    # vote two hours after the publish are in time

    async def scenario() -> tuple[list[str], dict[str, int], list[int]]:
        cluster = await start_cluster(url, store, prefix="down")  # the managers' consumers exist
        await cluster.close()  # ... and the managers go down; NATS stays up
        bus = await connect_publisher(url, connect_timeout=5, retry_for=0.5)
        cluster = None
        try:
            await _replay(spec, bus)  # published at once: the stream holds them, nobody reads them
            ids, pending = outbox(db)
            assert ids and pending == 0
            assert decisions(store, ids) == {}
            cluster = await start_cluster(url, store, prefix="down", node_clock=lambda: clock() + hours_later)
            assert await wait_until(lambda: len(decisions(store, ids)) == len(ids), 60)
            with store.sessions() as s:
                stamps = dict(s.execute(select(ProposalRow.id, ProposalRow.timestamp)
                                        .where(ProposalRow.id.in_(ids))).all())
                decided = list(s.scalars(select(DecisionRow.decided_at).where(DecisionRow.proposal_id.in_(ids))))
            return ids, stamps, decided
        finally:
            await bus.close()
            if cluster is not None:
                await cluster.close()
            server.stop()

    ids, stamps, decided = asyncio.run(scenario())
    assert len(ids) >= 3 and len(set(ids)) == len(ids)
    assert set(decisions(store, ids).values()) == {COMMITTED}, decisions(store, ids)
    assert episodes(store) == len(ids)  # each committed once: none lost, none twice
    assert min(decided) - max(stamps.values()) > 3_600_000  # decided more than an hour after the publish
