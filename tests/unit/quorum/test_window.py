"""The ballot's window opens with the votes (when f + 1 managers have voted), not at the
proposal's timestamp: a proposal that waited in a stream while every manager was down is
decided when they return; a ballot that gathered votes but no quorum still times out
``timeout_ms`` after it opened; Byzantine back-dating cannot shut the window; and the
deadline is a function of the votes, not of the order they arrived in."""

import collections
import itertools
import random

import pytest
from proposals_factory import NOW

from coinswarm.memory.commits import encode_commit, verified_commits
from coinswarm.quorum import (
    COMMITTED,
    PENDING,
    REJECTED,
    TIMEOUT,
    Coordinator,
    LocalQuorum,
    ManagerVote,
    Proposal,
    QuorumConfig,
    derive_keys,
    tally,
)
from coinswarm.quorum.tally import screened

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"window-secret", MANAGERS)
TIMEOUT_MS = 300
CONFIG = QuorumConfig(MANAGERS, f=1, timeout_ms=TIMEOUT_MS)
HOUR = 3_600_000
pytestmark = pytest.mark.timeout(60)


def weights(pid: str = "w1", timestamp: int = NOW) -> Proposal:
    return Proposal(pid, "planner_weights", "planner", timestamp, timestamp - 1, {"weights": {"a": 0.25, "b": 0.75}})


def vote(p: Proposal, manager: str, at: int, approve: bool = True) -> ManagerVote:
    return ManagerVote(p.id, p.digest, manager, approve, ("ok",) if approve else ("no",), at).signed(KEYS[manager])


def test_a_proposal_every_manager_votes_on_hours_after_its_timestamp_is_committed():
    p = weights()
    back = NOW + 2 * HOUR  # the managers were down two hours; the stream kept the proposal
    votes = [vote(p, m, back + 40 * k) for k, m in enumerate(MANAGERS[:3])]
    decision = tally(p, votes, CONFIG, KEYS, back + 100)
    assert decision.status == COMMITTED and decision.approvals == MANAGERS[:3] and decision.discarded == ()
    assert screened(p, votes, CONFIG, KEYS).deadline == back + 40 + TIMEOUT_MS  # opened at the 2nd manager's vote


def test_a_ballot_with_votes_but_no_quorum_times_out_timeout_ms_after_it_opened():
    p = weights()
    back = NOW + 2 * HOUR
    split = [vote(p, "m1", back), vote(p, "m2", back + 10, approve=False)]  # f + 1 managers: the window opens
    opened = back + 10
    assert tally(p, split, CONFIG, KEYS, opened + TIMEOUT_MS).status == PENDING
    assert tally(p, split, CONFIG, KEYS, opened + TIMEOUT_MS + 1).status == TIMEOUT
    late = [*split, vote(p, "m3", opened + TIMEOUT_MS + 1), vote(p, "m4", opened + TIMEOUT_MS + 1)]
    decision = tally(p, late, CONFIG, KEYS, opened + TIMEOUT_MS + 2)
    assert decision.status == TIMEOUT and decision.approvals == ("m1",)
    assert [r.split(":")[0] for _, r in decision.discarded] == ["late", "late"]


def test_until_f_plus_1_managers_voted_there_is_no_window_to_close():
    p = weights()
    one = [vote(p, "m1", NOW)]  # f = 1: one manager (possibly Byzantine) cannot open the window
    ballot = screened(p, one, CONFIG, KEYS)
    assert ballot.deadline is None
    assert ballot.status(NOW + 365 * 24 * HOUR) == PENDING
    assert tally(p, [], CONFIG, KEYS, NOW + 24 * HOUR).status == PENDING  # nobody voted: nothing timed out
    coordinator = Coordinator(CONFIG, KEYS)
    coordinator.propose(p, NOW)
    coordinator.vote(one[0], NOW)
    assert coordinator.tick(NOW + 24 * HOUR) == [] and p.id in coordinator.open
    closed = coordinator.expire(p.id, NOW + 24 * HOUR)  # a caller that knows no more votes can come
    assert closed.status == TIMEOUT and p.id not in coordinator.open


@pytest.mark.parametrize("backdated_to", [NOW, NOW - HOUR, 0])
def test_a_byzantine_manager_cannot_shut_the_window_by_backdating_its_vote(backdated_to):
    p = weights()
    back = NOW + 2 * HOUR
    votes = [vote(p, "m4", backdated_to, approve=False)] + [vote(p, m, back) for m in MANAGERS[:3]]
    assert tally(p, votes, CONFIG, KEYS, back).status == COMMITTED
    future = [vote(p, "m4", back + 10 * HOUR)] + [vote(p, m, back) for m in MANAGERS[:2]]
    ballot = screened(p, future, CONFIG, KEYS)  # nor hold it open: the 2nd-earliest first vote is honest
    assert ballot.deadline == back + TIMEOUT_MS and ballot.status(back + TIMEOUT_MS + 1) == TIMEOUT


def test_every_vote_set_the_fixed_deadline_accepted_is_still_accepted():
    p = weights()
    for times in itertools.product((NOW - 50, NOW, NOW + TIMEOUT_MS), repeat=3):  # all ≤ timestamp + timeout
        votes = [vote(p, m, t) for m, t in zip(MANAGERS, times, strict=False)]
        assert tally(p, votes, CONFIG, KEYS, NOW + TIMEOUT_MS).status == COMMITTED


def test_the_outcome_does_not_depend_on_the_order_the_votes_arrive_in():
    p = weights()
    back = NOW + 2 * HOUR
    cases = [  # early votes of f + 1 managers open the window; the ones after the outage are late
        [vote(p, "m1", NOW), vote(p, "m2", NOW + 5), vote(p, "m3", back), vote(p, "m4", back)],
        # one manager voted before the outage and again after: the window opens at the 2nd manager
        [vote(p, "m1", NOW), vote(p, "m1", back), vote(p, "m2", back), vote(p, "m3", back + 1)],
        # an equivocator among on-time votes, and a rejection quorum after the outage
        [vote(p, "m1", back), vote(p, "m1", back, False), vote(p, "m2", back, False), vote(p, "m3", back, False),
         vote(p, "m4", back, False)],
    ]
    outcomes = []
    for votes in cases:
        seen = set()
        for order in itertools.permutations(votes):
            ballot = screened(p, list(order), CONFIG, KEYS)
            decision = ballot.decide(back + 10)
            kinds = collections.Counter(r.split(":")[0] for _, r in decision.discarded)
            seen.add((ballot.deadline, decision.status, decision.approvals, decision.rejections,
                      tuple(sorted(kinds.items()))))
        assert len(seen) == 1, seen
        outcomes.append(seen.pop()[1])
    assert outcomes == [TIMEOUT, COMMITTED, REJECTED]


def test_a_commit_decided_after_an_outage_verifies_from_its_proof():
    p = weights()
    back = NOW + 2 * HOUR
    votes = [vote(p, m, back + k) for k, m in enumerate(MANAGERS[:3])]
    decision = tally(p, votes, CONFIG, KEYS, back + 5)
    [(proposal, verified, _)] = verified_commits(encode_commit(p, decision, votes), CONFIG, KEYS)
    assert proposal == p and verified.status == COMMITTED


def test_the_in_process_quorum_commits_a_proposal_judged_after_timeout_ms():
    quorum = LocalQuorum(QuorumConfig(MANAGERS, f=1, timeout_ms=5_000), KEYS)
    p = weights()
    assert quorum.submit(p, NOW + 60_000).status == COMMITTED  # judged a minute later (fresh: < 1 h old)
    many = quorum.submit_many([weights("w2"), weights("w3")], NOW + 60_000)
    assert [d.status for d in many] == [COMMITTED, COMMITTED]


def reference_status(p: Proposal, votes: list[ManagerVote], config: QuorumConfig, now: int) -> str:
    """The rule written as a definition over the set of votes (no incremental bookkeeping)."""
    first: dict[str, int] = {}
    for v in votes:
        first[v.manager] = min(first.get(v.manager, v.timestamp), v.timestamp)
    deadline = None
    if len(first) > config.f:
        deadline = max(sorted(first.values())[config.f], p.timestamp) + config.timeout_ms
    verdicts: dict[str, set[bool]] = {}
    for v in votes:
        if deadline is None or v.timestamp <= deadline:
            verdicts.setdefault(v.manager, set()).add(v.approve)
    single = [next(iter(s)) for s in verdicts.values() if len(s) == 1]  # equivocators dropped
    if sum(single) >= config.quorum:
        return COMMITTED
    if len(single) - sum(single) >= config.quorum:
        return REJECTED
    return TIMEOUT if deadline is not None and now > deadline else PENDING


def test_the_incremental_tally_matches_the_rule_written_as_a_definition():
    # synthetic vote sets (a shape, not data): times spread around the window's edges
    rng = random.Random(7)
    p = weights()
    offsets = (-TIMEOUT_MS, 0, TIMEOUT_MS // 2, TIMEOUT_MS, TIMEOUT_MS + 1, 2 * TIMEOUT_MS, HOUR, HOUR + TIMEOUT_MS)
    for _ in range(3_000):
        votes = [vote(p, rng.choice(MANAGERS), NOW + rng.choice(offsets), rng.random() < 0.7)
                 for _ in range(rng.randint(0, 7))]
        now = NOW + rng.choice(offsets) + rng.choice((0, 1, 3 * TIMEOUT_MS))
        assert tally(p, votes, CONFIG, KEYS, now).status == reference_status(p, votes, CONFIG, now), votes
