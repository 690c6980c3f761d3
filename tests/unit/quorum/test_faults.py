"""Fault scenarios through the pure rules (in-process transport; the same scenarios run
over real NATS + PostgreSQL in tests/integration/test_quorum_nats.py)."""

import numpy as np
import pytest
from proposals_factory import NOW, make_proposal

from coinswarm.quorum import (
    COMMITTED,
    REJECTED,
    TIMEOUT,
    LocalQuorum,
    Manager,
    ManagerVote,
    Proposal,
    QuorumConfig,
    derive_keys,
)

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"fault-secret", MANAGERS)
CONFIG = QuorumConfig(MANAGERS, f=1)


def seeded(quorum: LocalQuorum) -> LocalQuorum:
    stats = {"n": 150, "mean": 0.002, "std": 0.01, "win_rate": 0.56, "p05": -0.01, "p95": 0.02,
             "mean_slippage_bps": 3.0}
    for i, key in enumerate(("normal-vol/up|trend", "high-vol/down|trend")):
        p = Proposal(f"seed{i}", "update_pattern", "agent", NOW - 5, NOW - 10, {"key": key, "stats": stats})
        assert quorum.submit(p, NOW).status == COMMITTED
    promote = Proposal("seed-promote", "promote_pattern", "agent", NOW - 5, NOW - 10, {"key": "high-vol/down|trend"},
                       {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0, "kurtosis": 3.0,
                        "periods_per_year": 365.0, "fold_sharpes": [1.0, 2.0, 1.5]})
    assert quorum.submit(promote, NOW).status == COMMITTED
    return quorum


def byzantine(rng: np.random.Generator):
    """Each call misbehaves differently: random, flipped, forged, duplicated, equivocating votes."""
    def act(manager: Manager, proposal: Proposal, context) -> list[ManagerVote]:
        honest_vote = manager.evaluate(proposal, context)
        mode = rng.integers(5)
        if mode == 0:
            return [ManagerVote(proposal.id, proposal.digest, manager.name, bool(rng.integers(2)), ("?",), context.now)
                    .signed(manager.key)]
        flipped = ManagerVote(proposal.id, proposal.digest, manager.name, not honest_vote.approve, ("lie",),
                              context.now)
        if mode == 1:
            return [flipped.signed(manager.key)]
        if mode == 2:  # forge votes in the honest managers' names
            return [ManagerVote(proposal.id, proposal.digest, m, not honest_vote.approve, ("forged",), context.now)
                    .signed(b"not their key") for m in MANAGERS]
        if mode == 3:
            return [flipped.signed(manager.key)] * 3
        return [flipped.signed(manager.key), honest_vote]
    return act


def run(quorum: LocalQuorum, n: int, seed: int = 0) -> tuple[int, int, list[str]]:
    rng = np.random.default_rng(seed)
    wrong, decided, statuses = 0, 0, []
    judge = Manager("judge", b"k")
    for i in range(n):
        p = make_proposal(i, rng)
        expected = judge.evaluate(p, quorum.memory.context(NOW)).approve
        decision = quorum.submit(p, NOW)
        statuses.append(decision.status)
        if decision.status in (COMMITTED, REJECTED):
            decided += 1
            wrong += (decision.status == COMMITTED) != expected
    return wrong, decided, statuses


def test_all_honest_managers_decide_as_the_pure_rules_say():
    wrong, decided, _ = run(seeded(LocalQuorum(CONFIG, KEYS)), 500)
    assert wrong == 0 and decided == 500


def test_one_crashed_manager_does_not_stop_decisions():
    quorum = seeded(LocalQuorum(CONFIG, KEYS, behaviours={"m3": lambda *_: []}))
    wrong, decided, _ = run(quorum, 500)
    assert wrong == 0 and decided == 500


@pytest.mark.slow
def test_one_byzantine_manager_over_10000_proposals_causes_no_wrong_commit():
    quorum = seeded(LocalQuorum(CONFIG, KEYS, behaviours={"m2": byzantine(np.random.default_rng(42))}))
    wrong, decided, statuses = run(quorum, 10_000, seed=1)
    assert wrong == 0
    assert decided == 10_000, "three honest managers always form a quorum"
    discarded = [e for e in quorum.coordinator.audit if e.kind == "discard"]
    assert len(discarded) > 5_000, "forged, duplicate and equivocating votes must be audited"


def test_two_faulty_managers_can_block_but_never_corrupt():
    silent = {"m1": lambda *_: [], "m2": byzantine(np.random.default_rng(3))}
    wrong, _, statuses = run(seeded(LocalQuorum(CONFIG, KEYS)), 0)
    quorum = seeded(LocalQuorum(CONFIG, KEYS))
    quorum.behaviours = silent
    wrong, _, statuses = run(quorum, 300, seed=2)
    assert wrong == 0 and TIMEOUT in statuses


def test_partition_two_two_commits_nothing_and_heals():
    quorum = seeded(LocalQuorum(CONFIG, KEYS))
    applied_before = len(quorum.memory.commits)
    quorum.behaviours = {"m3": lambda *_: [], "m4": lambda *_: []}  # this side sees only m1, m2
    good = Proposal("w1", "planner_weights", "planner", NOW - 1, NOW - 2, {"weights": {"a": 0.5, "b": 0.5}})
    assert quorum.submit(good, NOW).status == TIMEOUT
    assert len(quorum.memory.commits) == applied_before, "a half commit happened"
    quorum.behaviours = {}
    retry = Proposal("w2", "planner_weights", "planner", NOW - 1, NOW - 2, {"weights": {"a": 0.5, "b": 0.5}})
    assert quorum.submit(retry, NOW).status == COMMITTED
    assert quorum.memory.view().planner_weights == {"a": 0.5, "b": 0.5}


def test_applying_a_commit_twice_has_one_effect_and_views_respect_data_time():
    quorum = seeded(LocalQuorum(CONFIG, KEYS))
    p = Proposal("w3", "planner_weights", "planner", NOW - 1, NOW - 500, {"weights": {"a": 1.0}})
    decision = quorum.submit(p, NOW)
    assert not quorum.memory.apply(p, decision)
    assert [c.id for c in quorum.memory.commits].count("w3") == 1
    assert quorum.memory.view(as_of=NOW - 500).planner_weights is None
    assert quorum.memory.view(as_of=NOW - 499).planner_weights == {"a": 1.0}
    assert quorum.memory.view().enabled("high-vol/down|trend")
