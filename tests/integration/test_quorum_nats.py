"""The quorum on real servers: NATS JetStream for transport, PostgreSQL as the store.

Fault scenarios from the issue: all honest, one crashed, one Byzantine, a 2|2 partition
(two NATS servers that cannot see each other) and a NATS restart mid-stream.
"""


import numpy as np
import pytest
from quorum_harness import MANAGERS, NOW, connect, fixed_context, run_with_deadline, stamped, start_cluster, wait_until

from coinswarm.memory.models import DecisionRow
from coinswarm.memory.nodes import submit
from coinswarm.quorum import COMMITTED, Manager, coordinator_for

pytestmark = pytest.mark.integration

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "quorum"))
from proposals_factory import make_proposal  # noqa: E402
from test_faults import byzantine  # noqa: E402


def expected_verdicts(proposals):
    judge = Manager("judge", b"k")
    return {p.id: judge.evaluate(p, fixed_context(NOW)).approve for p in proposals}


def decisions(store):
    with store.sessions() as s:
        return {row.proposal_id: row.status for row in s.query(DecisionRow) if not row.proposal_id.startswith("seed")}


async def run_scenario(nats_url, store, proposals, *, live=MANAGERS, behaviours=None, prefix="t", timeout=60,
                       frame=1, applier_poll_ms=None):
    """Submit one at a time (``frame=1``) or ``frame`` proposals per frame, and wait for every decision."""
    cluster = await start_cluster(nats_url, store, live=live, behaviours=behaviours, prefix=prefix,
                                  applier_poll_ms=applier_poll_ms)
    proposer = await connect(nats_url, f"{prefix}-proposer")
    target = store.count(DecisionRow) + len(proposals)
    try:
        for start in range(0, len(proposals), frame):
            chunk = [stamped(p) for p in proposals[start:start + frame]]
            if frame == 1:
                await submit(proposer, chunk[0])
            else:
                await proposer.stream_publish_many("mem.propose", [(p.id, p.encode()) for p in chunk])
        done = await wait_until(lambda: store.count(DecisionRow) >= target, timeout)
        return done, cluster
    finally:
        await proposer.close()
        await cluster.close()


def proposals(n, seed=0, prefix=""):
    rng = np.random.default_rng(seed)
    return [p.__class__(**{**p.to_dict(), "id": prefix + p.id}) for p in (make_proposal(i, rng) for i in range(n))]


@pytest.mark.parametrize("frame", [1, 40], ids=["one-by-one", "framed"])
def test_honest_managers_decide_as_the_pure_rules_say(nats_url, store, frame):
    batch = proposals(300, prefix=f"honest{frame}-")
    done, cluster = run_with_deadline(run_scenario(nats_url, store, batch, prefix=f"honest{frame}", frame=frame), 180)
    assert done
    got, want = decisions(store), expected_verdicts(batch)
    assert {pid: status == COMMITTED for pid, status in got.items()} == want
    assert cluster.applier.refused == 0


def test_one_crashed_manager_does_not_stop_decisions(nats_url, store):
    batch = proposals(200, seed=1, prefix="crash-")  # in frames of 25: those the dead m4 coordinates fail over
    assert "m4" in {coordinator_for(batch[i].id, MANAGERS) for i in range(0, len(batch), 25)}
    done, _ = run_with_deadline(run_scenario(nats_url, store, batch, live=MANAGERS[:3], prefix="crash", frame=25,
                                             applier_poll_ms=20), 180)  # the applier as the CLI runs it
    assert done
    assert {pid: s == COMMITTED for pid, s in decisions(store).items()} == expected_verdicts(batch)


@pytest.mark.slow
def test_one_byzantine_manager_causes_no_wrong_commit(nats_url, store):
    batch = proposals(10_000, seed=2, prefix="byz-")
    behaviours = {"m2": byzantine(np.random.default_rng(7))}
    done, cluster = run_with_deadline(run_scenario(nats_url, store, batch, behaviours=behaviours, prefix="byz",
                                                   timeout=300), 1500)
    assert done
    got, want = decisions(store), expected_verdicts(batch)
    wrong = [pid for pid, status in got.items() if (status == COMMITTED) != want[pid]]
    assert wrong == [] and len(got) == len(batch)
