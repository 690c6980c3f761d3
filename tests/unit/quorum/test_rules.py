"""Pure quorum rules: proposals, managers, HMAC votes, tally, coordinator rotation."""

import collections
import dataclasses
import json

import numpy as np
import pytest
from proposals_factory import NOW, make_proposal, seeded_patterns

from coinswarm.errors import ConfigError, MessageError
from coinswarm.quorum import (
    COMMITTED,
    PENDING,
    REJECTED,
    TIMEOUT,
    Context,
    Manager,
    ManagerVote,
    Proposal,
    QuorumConfig,
    coordinator_for,
    derive_keys,
    tally,
)

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"test-secret", MANAGERS)
CONFIG = QuorumConfig(MANAGERS, f=1, timeout_ms=5_000)
CTX = Context(now=NOW, patterns=seeded_patterns())


def good_promotion(**override) -> Proposal:
    j = {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0, "kurtosis": 3.0, "periods_per_year": 365.0,
         "fold_sharpes": [1.1, 2.0, 0.7, 1.4], **override}
    return Proposal("promo", "promote_pattern", "agent", NOW - 10, NOW - 3_600_000, {"key": "normal-vol/up|trend"}, j)


def votes_for(proposal, approve_by=MANAGERS, reject_by=(), at=NOW):
    out = []
    for m in approve_by:
        out.append(ManagerVote(proposal.id, proposal.digest, m, True, ("ok",), at).signed(KEYS[m]))
    for m in reject_by:
        out.append(ManagerVote(proposal.id, proposal.digest, m, False, ("no",), at).signed(KEYS[m]))
    return out


def test_proposals_are_validated_with_the_field_named():
    with pytest.raises(MessageError, match="kind") as info:
        Proposal("x", "delete_everything", "a", 1, 0)
    assert info.value.field == "kind"
    with pytest.raises(MessageError) as info:
        Proposal("x", "add_episode", "a", 1, 5)
    assert info.value.field == "data_time"
    with pytest.raises(MessageError, match="finite"):
        Proposal("x", "add_episode", "a", 1, 0, {"outcome": float("nan")})
    with pytest.raises(MessageError, match="unknown fields"):
        Proposal.from_dict({"id": "x", "kind": "add_episode", "submitter": "a", "timestamp": 1, "data_time": 0,
                            "evil": 1})
    with pytest.raises(MessageError, match="JSON"):
        Proposal.decode(b"{not json")


def test_proposal_round_trips_and_digest_covers_every_field():
    p = good_promotion()
    assert Proposal.decode(p.encode()) == p
    assert good_promotion(n=401).digest != p.digest


def test_manager_verdicts_are_deterministic_and_explain_themselves():
    manager = Manager("m1", KEYS["m1"])
    first, second = manager.evaluate(good_promotion(), CTX), manager.evaluate(good_promotion(), CTX)
    assert first == second and first.approve and first.reasons == ("ok",)
    bad = manager.evaluate(good_promotion(n=50, sharpe=1.0, max_drawdown=0.2, fold_sharpes=[1.0, -1.0, -2.0]), CTX)
    assert not bad.approve
    text = " ".join(bad.reasons)
    for needle in ("sample 50 < 100", "Sharpe 1.000 < 1.5", "max drawdown 0.200 > 0.1", "PSR", "unstable"):
        assert needle in text


def test_promotion_requires_a_known_disabled_pattern_and_a_fresh_proposal():
    manager = Manager("m1", KEYS["m1"])
    enabled = Context(NOW, {"normal-vol/up|trend": {"enabled": True}})
    assert "already enabled" in " ".join(manager.evaluate(good_promotion(), enabled).reasons)
    assert "unknown pattern" in " ".join(manager.evaluate(good_promotion(), Context(NOW, {})).reasons)
    late = Context(NOW + 10 * 3_600_000, seeded_patterns())
    assert "stale" in " ".join(manager.evaluate(good_promotion(), late).reasons)


def test_planner_weights_must_sum_to_one_within_1e9():
    manager = Manager("m1", KEYS["m1"])
    def proposal(weights, limits=None):
        data = {"weights": weights, "limits": limits or {}}
        return Proposal("w", "planner_weights", "planner", NOW - 1, NOW - 2, data)
    assert manager.evaluate(proposal({"a": 0.25, "b": 0.75}), CTX).approve
    assert not manager.evaluate(proposal({"a": 0.25, "b": 0.75 + 2e-9}), CTX).approve
    assert not manager.evaluate(proposal({"a": 1.5, "b": -0.5}), CTX).approve
    assert not manager.evaluate(proposal({"a": 0.5, "b": 0.5}, {"max_position": 3.0}), CTX).approve


def test_votes_are_authenticated():
    p = good_promotion()
    vote = Manager("m1", KEYS["m1"]).evaluate(p, CTX)
    assert vote.verify(KEYS["m1"]) and not vote.verify(KEYS["m2"])
    tampered = dataclasses.replace(vote, approve=False)
    assert not tampered.verify(KEYS["m1"])
    assert ManagerVote.decode(vote.encode()) == vote
    split = [ManagerVote("p", "d", "m1", True, reasons, NOW).body() for reasons in (("a|b",), ("a", "b"), ("1:a|1:b",))]
    assert len(set(split)) == 3, "field boundaries are part of the signed bytes"
    ambiguous = [ManagerVote(pid, d, "m1", True, (), NOW).body() for pid, d in (("p|1:d", "x"), ("p", "d|1:x"))]
    assert ambiguous[0] != ambiguous[1]
    with pytest.raises(MessageError, match="approve"):
        ManagerVote.decode(json.dumps({**json.loads(vote.encode()), "approve": "yes"}).encode())


def test_quorum_of_2f_plus_1_commits_and_rejects():
    p = good_promotion()
    assert tally(p, votes_for(p, MANAGERS[:3]), CONFIG, KEYS, NOW).status == COMMITTED
    assert tally(p, votes_for(p, (), MANAGERS[:3]), CONFIG, KEYS, NOW).status == REJECTED
    split = votes_for(p, MANAGERS[:2], MANAGERS[2:])
    assert tally(p, split, CONFIG, KEYS, NOW).status == PENDING
    assert tally(p, split, CONFIG, KEYS, NOW + 6_000).status == TIMEOUT


def test_forged_duplicate_late_and_equivocating_votes_are_discarded_and_recorded():
    p = good_promotion()
    forged = ManagerVote(p.id, p.digest, "m4", True, ("ok",), NOW).signed(b"wrong key")
    impostor = ManagerVote(p.id, p.digest, "m9", True, ("ok",), NOW).signed(b"whatever")
    dup = votes_for(p, ("m1", "m1"))
    late = votes_for(p, ("m2",), at=NOW + 5_001)  # the window opened at NOW (m1 and m3, f + 1 managers)
    both_ways = votes_for(p, ("m3",), ("m3",))
    decision = tally(p, [forged, impostor, *dup, *late, *both_ways], CONFIG, KEYS, NOW)
    assert decision.status == PENDING and decision.approvals == ("m1",)
    reasons = collections.Counter(r.split(":")[0] for _, r in decision.discarded)
    assert reasons == {"forged": 2, "duplicate": 1, "late": 1, "equivocation": 1}
    other = good_promotion(n=999)
    assert "another proposal" in tally(p, votes_for(other, ("m1",)), CONFIG, KEYS, NOW).discarded[0][1]


def test_unanimous_mode_needs_every_manager():
    config = QuorumConfig.unanimous(("m1", "m2", "m3"))
    p = good_promotion()
    assert tally(p, votes_for(p, ("m1", "m2")), config, KEYS, NOW).status == PENDING
    assert tally(p, votes_for(p, ("m1", "m2", "m3")), config, KEYS, NOW).status == COMMITTED


def test_configs_that_cannot_tolerate_f_faults_raise():
    with pytest.raises(ConfigError, match="3f"):
        QuorumConfig(("a", "b", "c"), f=1)
    with pytest.raises(ConfigError, match="distinct"):
        QuorumConfig(("a", "a", "b", "c"), f=1)


def test_coordinator_rotates_deterministically_and_evenly():
    picks = [coordinator_for(f"p{i}", MANAGERS) for i in range(4000)]
    assert picks == [coordinator_for(f"p{i}", MANAGERS) for i in range(4000)]
    counts = collections.Counter(picks)
    assert set(counts) == set(MANAGERS) and min(counts.values()) > 850


def test_factory_covers_both_verdicts_for_every_kind():
    rng = np.random.default_rng(0)
    manager = Manager("m1", KEYS["m1"])
    verdicts = collections.defaultdict(set)
    for i in range(200):
        p = make_proposal(i, rng)
        verdicts[p.kind].add(manager.evaluate(p, CTX).approve)
    assert all(v == {True, False} for v in verdicts.values())
