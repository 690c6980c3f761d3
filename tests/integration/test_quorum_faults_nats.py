"""Partitions and server restarts with dedicated nats-server processes (real binaries)."""

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from quorum_harness import MANAGERS, connect, run_with_deadline, stamped, start_cluster, wait_until

from coinswarm.adapters.servers import start_nats
from coinswarm.memory.models import DecisionRow, Episode, PlannerWeights
from coinswarm.memory.nodes import submit
from coinswarm.quorum import COMMITTED, QuorumConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "quorum"))
from proposals_factory import make_proposal  # noqa: E402

pytestmark = pytest.mark.integration


def batch(n, seed, prefix):
    rng = np.random.default_rng(seed)
    return [p.__class__(**{**p.to_dict(), "id": prefix + p.id}) for p in (make_proposal(i, rng) for i in range(n))]


def statuses(store, prefix):
    with store.sessions() as s:
        return {r.proposal_id: r.status for r in s.query(DecisionRow) if r.proposal_id.startswith(prefix)}


def test_partition_two_two_commits_nothing_then_heals(store, tmp_path):
    side_a, side_b = start_nats(tmp_path / "a"), start_nats(tmp_path / "b")

    async def scenario():
        left = await start_cluster(side_a.url, store, live=MANAGERS[:2], prefix="pa")
        right = await start_cluster(side_b.url, store, live=MANAGERS[2:], prefix="pb")
        proposers = [await connect(url, f"pp{k}") for k, url in enumerate((side_a.url, side_b.url))]
        healed = None
        try:
            for k, proposer in enumerate(proposers):
                for p in batch(20, k, f"split{k}-"):
                    await submit(proposer, stamped(p))
            await asyncio.sleep(4.0)  # past the 3 s deadline
            split = {**statuses(store, "split0-"), **statuses(store, "split1-")}
            timeouts = sum(e.kind == "timeout" for node in (*left.nodes.values(), *right.nodes.values())
                           for e in node.coordinator.audit)
            await right.close()
            healed = await start_cluster(side_a.url, store, live=MANAGERS[2:], prefix="pb")
            fresh = batch(30, 5, "healed-")
            for p in fresh:
                await submit(proposers[0], stamped(p))
            done = await wait_until(lambda: len(statuses(store, "healed-")) == len(fresh), 30)
            return split, timeouts, done
        finally:
            for bus in proposers:
                await bus.close()
            for cluster in (left, right, healed):
                if cluster is not None:
                    await cluster.close()

    try:
        split, timeouts, done = run_with_deadline(scenario(), 120)
    finally:
        side_a.stop()
        side_b.stop()
    assert split == {}, "a 2|2 partition must not commit anything"
    assert timeouts >= 40, "every proposal on both sides should have timed out"
    assert done, "after healing, new proposals are decided again"
    assert statuses(store, "split0-") == {}, "old proposals stay undecided (no late half-commit)"


@pytest.mark.parametrize("applier_poll_ms", [None, 20], ids=["commits-pushed", "commits-polled"])
def test_nats_restart_mid_stream_loses_nothing_and_applies_nothing_twice(store, tmp_path, applier_poll_ms):
    # a 15 s deadline: what is measured is the transport across a restart, not whether a
    # restart on a loaded machine (servers, 5 connections and the store sharing 2 cores)
    # finishes inside the harness's usual 3 s — proposals past their deadline time out
    # (audited, not committed), which this test would count as lost
    config = QuorumConfig(MANAGERS, f=1, timeout_ms=15_000)
    server = start_nats(tmp_path / "n")
    proposals = batch(300, 9, "restart-")
    servers = [server]

    async def scenario():
        cluster = await start_cluster(server.url, store, prefix="rs", applier_poll_ms=applier_poll_ms, config=config)
        proposer = await connect(server.url, "rs-proposer")
        try:
            for i, p in enumerate(proposals):
                if i == 120:  # the server's stop and start run in a thread: the loop keeps serving
                    await asyncio.to_thread(server.stop)
                    await asyncio.sleep(0.5)
                    servers.append(await asyncio.to_thread(start_nats, server.workdir, port=server.port))
                await submit(proposer, stamped(p))
            done = await wait_until(lambda: len(statuses(store, "restart-")) == len(proposals), 60)
            reconnects = sum(bus.reconnects for bus in cluster.buses)
            return done, reconnects, cluster
        finally:
            await proposer.close()
            await cluster.close()

    try:
        done, reconnects, cluster = run_with_deadline(scenario(), 180)
    finally:
        for each in servers:
            each.stop()
    got, applier = statuses(store, "restart-"), cluster.applier
    assert len(servers) == 2, "the server was restarted"
    lost = [p.id for p in proposals if p.id not in got]
    assert done and not lost, f"{len(lost)} proposals lost: {lost[:5]}; " + "; ".join(
        f"{name}: {[(e.kind, e.proposal_id, e.detail) for e in node.coordinator.audit if e.proposal_id in lost]}"
        for name, node in cluster.nodes.items())
    assert reconnects >= 5, "every connection should have reconnected"
    committed = [p for p in proposals if got[p.id] == COMMITTED]
    assert store.count(Episode) == sum(p.kind == "add_episode" for p in committed)
    assert store.count(PlannerWeights) == sum(p.kind == "planner_weights" for p in committed)
    assert applier.failed == []
    assert os.path.isdir(Path(server.workdir) / "jetstream")
