"""Every manager down for far longer than the vote timeout while proposals are published on
NATS JetStream: when they return, each proposal is decided — committed exactly once — rather
than timed out on arrival (a ballot's window opens with the votes, not at the proposal's
timestamp; see :class:`coinswarm.quorum.tally.Ballot`)."""

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest
from quorum_harness import (
    MANAGERS,
    NOW,
    clock,
    connect,
    fixed_context,
    run_with_deadline,
    stamped,
    start_cluster,
    wait_until,
)
from sqlalchemy import select

from coinswarm.adapters.servers import start_nats
from coinswarm.memory.models import DecisionRow, ProposalRow
from coinswarm.memory.nodes import submit
from coinswarm.quorum import COMMITTED, Manager, QuorumConfig

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "quorum"))
from proposals_factory import make_proposal  # noqa: E402

pytestmark = pytest.mark.integration
TIMEOUT_MS = 300
DOWN_S = 2.0  # the managers' outage: more than six times the vote timeout


def approved(n: int, seed: int, prefix: str) -> list:
    """Proposals the pure rules approve (so each must end committed), ids prefixed."""
    rng = np.random.default_rng(seed)
    judge = Manager("judge", b"k")
    batch = [p.__class__(**{**p.to_dict(), "id": prefix + p.id}) for p in (make_proposal(i, rng) for i in range(n))]
    return [p for p in batch if judge.evaluate(p, fixed_context(NOW)).approve]


def rows(store, prefix: str) -> tuple[dict[str, tuple[str, int]], dict[str, int]]:
    """``{id: (status, decided_at)}`` of the decisions and ``{id: timestamp}`` of the proposals stored."""
    with store.sessions() as s:
        decided = {pid: (status, at) for pid, status, at in s.execute(
            select(DecisionRow.proposal_id, DecisionRow.status, DecisionRow.decided_at)) if pid.startswith(prefix)}
        stamps = {pid: t for pid, t in s.execute(select(ProposalRow.id, ProposalRow.timestamp))
                  if pid.startswith(prefix)}
    return decided, stamps


@pytest.mark.timeout(120)
def test_proposals_published_while_every_manager_is_down_are_committed_once_when_they_return(store, tmp_path):
    config = QuorumConfig(MANAGERS, f=1, timeout_ms=TIMEOUT_MS)
    server = start_nats(tmp_path / "n")
    before, during = approved(12, 1, "up-"), approved(40, 2, "down-")
    assert len(before) >= 3 and len(during) >= 10

    async def scenario():
        cluster = await start_cluster(server.url, store, prefix="out", config=config)
        proposer = await connect(server.url, "out-proposer")
        try:
            for p in before:
                await submit(proposer, stamped(p))
            warm = await wait_until(lambda: len(rows(store, "up-")[0]) == len(before), 30)
            await cluster.close()  # every manager (and the applier) down; NATS stays up
            cluster = None
            for p in during:  # stored by the stream, read by nobody
                await submit(proposer, stamped(p))
            await asyncio.sleep(DOWN_S)
            assert rows(store, "down-") == ({}, {})
            returned = clock()
            # the managers return together (their durable consumers resume where they stopped):
            # a quorum's votes come within timeout_ms of one another, as after any restart of
            # the cluster; a manager returning more than timeout_ms after f + 1 others would
            # find those ballots timed out — the timeout's job against managers that never vote
            cluster = await start_cluster(server.url, store, prefix="out", config=config, together=True)
            done = await wait_until(lambda: len(rows(store, "down-")[0]) == len(during), 30)
            await asyncio.sleep(3 * TIMEOUT_MS / 1000)  # room for a second commit of any of them, were there one
            return warm, done, returned, cluster.applier
        finally:
            await proposer.close()
            if cluster is not None:
                await cluster.close()

    try:
        warm, done, returned, applier = run_with_deadline(scenario(), 100)
    finally:
        server.stop()
    decided, stamps = rows(store, "down-")
    assert warm, "the cluster decides proposals before the outage"
    assert done, f"decided after the outage: {len(decided)} of {len(during)}"
    assert {status for status, _ in decided.values()} == {COMMITTED}
    assert sorted(stamps) == sorted(p.id for p in during)  # each stored once, none lost
    assert applier.applied == len(during) and not applier.failed  # each applied once (repeats are no-ops)
    assert all(at >= returned and at - stamps[pid] > DOWN_S * 1000 - 100 for pid, (_, at) in decided.items()), \
        "decided after the managers returned, long past timestamp + timeout_ms"
