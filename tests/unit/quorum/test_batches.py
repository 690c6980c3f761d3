"""Batched votes: ``LocalQuorum.submit_many`` decides exactly as one ``submit`` per proposal,
and a signed ``VoteBatch`` cannot be altered, forged or replayed into another proposal."""

import dataclasses

import numpy as np
import pytest
from proposals_factory import NOW, make_proposal
from test_faults import CONFIG, KEYS, MANAGERS, byzantine, seeded

from coinswarm.quorum import COMMITTED, TIMEOUT, Coordinator, LocalQuorum, Manager, Proposal, VoteBatch


def _mixed(n: int, seed: int = 0) -> list[Proposal]:
    """Every kind, half of them bad, some stale or from the future, and repeated ids (a
    repeated id with changed content is a ConflictError: see test_conflicts below)."""
    rng = np.random.default_rng(seed)
    proposals = [make_proposal(i, rng) for i in range(n)]
    proposals += [make_proposal(n, rng, now=NOW - 10 * 3_600_000),  # stale
                  make_proposal(n + 1, rng, now=NOW + 5_000)]  # from the future
    return proposals + proposals[:7]  # resubmissions of decided ids


def _both(behaviours_factory=dict, seed_memory=True) -> tuple[list, list, LocalQuorum, LocalQuorum]:
    prepare = seeded if seed_memory else lambda quorum: quorum
    one_by_one = prepare(LocalQuorum(CONFIG, KEYS, behaviours=behaviours_factory()))
    batched = prepare(LocalQuorum(CONFIG, KEYS, behaviours=behaviours_factory()))
    proposals = _mixed(300)
    expected = [one_by_one.submit(p, NOW) for p in proposals]
    return expected, batched.submit_many(proposals, NOW), one_by_one, batched


def test_submit_many_decides_like_one_submit_per_proposal():
    expected, got, one_by_one, batched = _both()
    assert got == expected
    assert {d.status for d in got} >= {"committed", "rejected"}
    assert [p.id for p in batched.memory.commits] == [p.id for p in one_by_one.memory.commits]
    assert batched.memory.view().patterns == one_by_one.memory.view().patterns


def test_submit_many_with_a_byzantine_manager_decides_like_submit():
    expected, got, _, _ = _both(lambda: {"m2": byzantine(np.random.default_rng(7))})
    assert got == expected
    assert any(d.discarded for d in got)  # the Byzantine votes were screened the same way


def test_submit_many_times_out_each_proposal_at_its_own_deadline():
    crashed = lambda: {"m1": lambda *_: [], "m2": lambda *_: []}  # noqa: E731
    expected, got, _, batched = _both(crashed, seed_memory=False)
    assert got == expected
    assert {d.status for d in got} == {TIMEOUT}
    assert len({d.decided_at for d in got}) > 1 and batched.memory.commits == []


def test_a_promotion_sees_the_update_committed_just_before_it_in_the_same_batch():
    quorum = LocalQuorum(CONFIG, KEYS)
    stats = {"n": 150, "mean": 0.002, "std": 0.01, "win_rate": 0.56, "p05": -0.01, "p95": 0.02,
             "mean_slippage_bps": 3.0}
    update = Proposal("u", "update_pattern", "agent", NOW - 5, NOW - 10, {"key": "k", "stats": stats})
    promote = Proposal("p", "promote_pattern", "agent", NOW - 5, NOW - 10, {"key": "k"},
                       {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0, "kurtosis": 3.0,
                        "periods_per_year": 365.0, "fold_sharpes": [1.0, 2.0, 1.5]})
    assert [d.status for d in quorum.submit_many([update, promote], NOW)] == [COMMITTED, COMMITTED]
    assert quorum.memory.view().enabled("k")


def _batch(manager: str = "m1", n: int = 3) -> tuple[list[Proposal], VoteBatch, Coordinator]:
    proposals = [make_proposal(5 * i + 4, np.random.default_rng(i)) for i in range(n)]  # planner weights
    coordinator = Coordinator(CONFIG, KEYS)
    for p in proposals:
        coordinator.propose(p, NOW)
    context = LocalQuorum(CONFIG, KEYS).memory.context(NOW)
    return proposals, Manager(manager, KEYS[manager]).evaluate_many(proposals, context), coordinator


def test_a_vote_batch_carries_each_verdict_of_evaluate_and_verifies():
    proposals, batch, _ = _batch()
    manager = Manager("m1", KEYS["m1"])
    context = LocalQuorum(CONFIG, KEYS).memory.context(NOW)
    singles = [manager.evaluate(p, context) for p in proposals]
    assert [(e[0], e[1], e[2], e[3]) for e in batch.entries] == [
        (v.proposal_id, v.digest, v.approve, v.reasons) for v in singles]
    assert batch.verify(KEYS["m1"]) and not batch.verify(KEYS["m2"])


@pytest.mark.parametrize("tamper", ["flip", "drop", "reorder", "manager", "time"])
def test_an_altered_vote_batch_is_discarded_whole_and_audited(tamper):
    proposals, batch, coordinator = _batch()
    entries = list(batch.entries)
    if tamper == "flip":
        entries[1] = (*entries[1][:2], not entries[1][2], entries[1][3])
    elif tamper == "drop":
        entries.pop()
    elif tamper == "reorder":
        entries.reverse()
    altered = dataclasses.replace(batch, entries=tuple(entries))
    if tamper == "manager":
        altered = dataclasses.replace(batch, manager="m2")
    elif tamper == "time":
        altered = dataclasses.replace(batch, timestamp=batch.timestamp + 1)
    assert coordinator.vote_batch(altered, NOW) == []
    assert all(not ballot.valid for ballot in coordinator.open.values())
    assert coordinator.audit[-1].kind == "discard" and "forged batch" in coordinator.audit[-1].detail["reason"]


def test_batch_bodies_are_unambiguous():
    a = VoteBatch("m1", 1, (("a|1", "d", True, ("ok",)),))
    b = VoteBatch("m1", 1, (("a", "1|d", True, ("ok",)),))
    c = VoteBatch("m1", 1, (("a", "d", True, ("x", "y")),))
    d = VoteBatch("m1", 1, (("a", "d", True, ("x|1:y",)),))
    assert len({a.body(), b.body(), c.body(), d.body()}) == 4


def test_batch_entries_for_unknown_or_decided_proposals_are_audited_as_discards():
    proposals, _, coordinator = _batch()
    quorum_batches = [Manager(m, KEYS[m]).evaluate_many(proposals, LocalQuorum(CONFIG, KEYS).memory.context(NOW))
                      for m in MANAGERS]
    decided = [d for b in quorum_batches[:3] for d in coordinator.vote_batch(b, NOW)]
    assert len(decided) == len(proposals) and not coordinator.open
    assert coordinator.vote_batch(quorum_batches[3], NOW) == []
    discards = [e.detail for e in coordinator.audit if e.kind == "discard"]
    assert discards == [{"reason": "already decided", "proposals": tuple(p.id for p in proposals)}]
    stray = Manager("m1", KEYS["m1"]).evaluate_many([make_proposal(999, np.random.default_rng(1))],
                                                    LocalQuorum(CONFIG, KEYS).memory.context(NOW))
    coordinator.vote_batch(stray, NOW)
    assert coordinator.audit[-1].detail == {"reason": "unknown proposal", "proposals": (stray.entries[0][0],)}


def _body_without_memo(batch: VoteBatch) -> bytes:
    from coinswarm.quorum import votes

    votes._entries_text.forget()  # built from scratch
    return VoteBatch(batch.manager, batch.timestamp, tuple(list(batch.entries))).body()


def test_shared_entries_sign_the_same_text_as_fresh_copies_and_never_a_stale_one():
    """Managers that agree share one entries object, whose signed text and approve/reject
    split are built once; a batch over other entries, or an equal copy, gets its own."""
    from coinswarm.quorum.manager import verdict_entries
    from coinswarm.quorum.votes import split_verdicts

    rng = np.random.default_rng(4)
    context = LocalQuorum(CONFIG, KEYS).memory.context(NOW)
    first, second = [make_proposal(i, rng) for i in range(12)], [make_proposal(i, rng) for i in range(12, 20)]
    judge = Manager("m1", KEYS["m1"])
    shared = verdict_entries(first, [judge.reasons(p, context) for p in first])
    other = verdict_entries(second, [judge.reasons(p, context) for p in second])
    batches = [Manager(m, KEYS[m]).sign_entries(entries, NOW)
               for m, entries in zip(MANAGERS, (shared, other, shared, tuple(list(shared))), strict=True)]
    assert [b.body() for b in batches] == [_body_without_memo(b) for b in batches]
    assert all(b.verify(KEYS[b.manager]) for b in batches)
    assert batches[0].body().split(b"|", 3)[3] == batches[2].body().split(b"|", 3)[3] != batches[1].body()
    approve, reject = split_verdicts(other)
    assert approve == tuple(pid for pid, _, ok, _ in other if ok)
    assert reject == tuple(pid for pid, _, ok, _ in other if not ok) and approve + reject
    assert split_verdicts(shared) == (tuple(pid for pid, _, ok, _ in shared if ok),
                                      tuple(pid for pid, _, ok, _ in shared if not ok))
