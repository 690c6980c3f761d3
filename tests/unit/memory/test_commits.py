"""Commit messages: groups of decisions, each re-tallied from its own signed proof."""

import json

import numpy as np
import pytest

from coinswarm.errors import MessageError
from coinswarm.memory.commits import (
    committed_ids,
    decode_commits,
    encode_commit,
    encode_commits,
    verified_commits,
)
from coinswarm.quorum import COMMITTED, Coordinator, Manager, QuorumConfig, Vote, VoteBatch, derive_keys
from coinswarm.quorum.votes import decode_votes

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"commits", MANAGERS)
CONFIG = QuorumConfig(MANAGERS)

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "quorum"))
from proposals_factory import NOW, make_proposal, seeded_patterns  # noqa: E402

from coinswarm.quorum import Context  # noqa: E402


def _decided(n: int = 6):
    """``n`` proposals, the four managers' batches on them, and the decisions the first three make."""
    proposals = [make_proposal(i, np.random.default_rng(i)) for i in range(n)]
    context = Context(NOW, seeded_patterns())
    batches = [Manager(m, KEYS[m]).evaluate_many(proposals, context) for m in MANAGERS]
    coordinator = Coordinator(CONFIG, KEYS)
    for p in proposals:
        coordinator.propose(p, NOW)
    decisions = {d.proposal_id: d for b in batches[:3] for d in coordinator.vote_batch(b, NOW)}
    return proposals, batches, [decisions[p.id] for p in proposals]


def test_a_group_round_trips_and_each_batch_travels_once():
    proposals, batches, decisions = _decided()
    payload = encode_commits([(p, d, batches[:3]) for p, d in zip(proposals, decisions, strict=True)])
    assert len(json.loads(payload)["batches"]) == 3
    commits = verified_commits(payload, CONFIG, KEYS)
    assert [(p, d) for p, d, _ in commits] == list(zip(proposals, decisions, strict=True))
    assert committed_ids(payload) == [p.id for p in proposals]
    assert {d.status for d in decisions} == {COMMITTED, "rejected"}


def test_a_decision_its_proof_does_not_make_is_refused():
    proposals, batches, decisions = _decided()
    flipped = decisions[0]._replace(status="rejected" if decisions[0].status == COMMITTED else COMMITTED)
    with pytest.raises(MessageError, match="claims"):
        verified_commits(encode_commit(proposals[0], flipped, batches[:3]), CONFIG, KEYS)
    with pytest.raises(MessageError, match="claims"):  # two batches are no quorum
        verified_commits(encode_commit(proposals[0], decisions[0], batches[:2]), CONFIG, KEYS)
    forged = VoteBatch("m3", NOW, batches[2].entries).signed(b"not m3's key")
    with pytest.raises(MessageError, match="claims"):
        verified_commits(encode_commit(proposals[0], decisions[0], [*batches[:2], forged]), CONFIG, KEYS)


def test_each_decision_is_retallied_from_its_own_proof_only():
    """An equivocating vote that backs another decision of the group is not read into this one."""
    proposals, batches, decisions = _decided(2)
    p0, p1 = proposals
    m1_flips = VoteBatch("m1", NOW, tuple((pid, d, not ok, ("flip",)) for pid, d, ok, _ in batches[0].entries))
    m1_flips = m1_flips.signed(KEYS["m1"])
    good = [(p0, decisions[0], batches[:3]), (p1, decisions[1], [*batches[1:4]])]
    assert verified_commits(encode_commits(good), CONFIG, KEYS)
    tainted = [(p0, decisions[0], [*batches[:3], m1_flips])]  # m1 equivocates inside p0's own proof
    with pytest.raises(MessageError):
        verified_commits(encode_commits(tainted), CONFIG, KEYS)
    shared = [(p0, decisions[0], batches[:3]), (p1, decisions[1], [*batches[1:4], m1_flips])]
    assert verified_commits(encode_commits(shared), CONFIG, KEYS)  # m1's flip is only in p1's proof


@pytest.mark.parametrize("payload", [b"{", b"[]", b'{"commits": [], "votes": [], "batches": []}',
                                     b'{"commits": [{"proposal": {}, "decision": {}, "votes": [0], "batches": []}],'
                                     b' "votes": [], "batches": []}'])
def test_malformed_commit_messages_raise_typed_errors(payload):
    with pytest.raises(MessageError):
        decode_commits(payload)


def test_vote_batches_round_trip_on_the_wire_and_bad_ones_name_the_field():
    _, batches, _ = _decided(3)
    batch = batches[0]
    again = decode_votes(batch.encode())
    assert again == batch and again.verify(KEYS["m1"])
    single = Vote("p", "d", "m1", True, ("ok",), NOW).signed(KEYS["m1"])
    assert decode_votes(single.encode()) == single
    raw = json.loads(batch.encode())
    with pytest.raises(MessageError, match="entry 1"):
        decode_votes(json.dumps({**raw, "entries": [raw["entries"][0], ["p", "d", "yes", []]]}).encode())
    with pytest.raises(MessageError) as err:
        decode_votes(json.dumps({**raw, "timestamp": "now"}).encode())
    assert err.value.field == "timestamp"
    with pytest.raises(MessageError, match="unknown fields"):
        decode_votes(json.dumps({**raw, "extra": 1}).encode())


def test_a_held_proposal_is_reused_only_when_the_commit_carries_exactly_it():
    proposals, batches, decisions = _decided(2)
    held = {p.id: p for p in proposals}
    payload = encode_commits([(p, d, batches[:3]) for p, d in zip(proposals, decisions, strict=True)])
    assert all(p is held[p.id] for p, _, _ in verified_commits(payload, CONFIG, KEYS, held))
    body = json.loads(payload)
    stats = body["commits"][1]["proposal"]["data"]["stats"]  # an update_pattern proposal
    assert stats["n"] == 150 and isinstance(stats["n"], int)
    stats["n"] = 150.0  # == 150 in Python, yet another canonical body and digest
    with pytest.raises(MessageError, match="not for proposal"):
        verified_commits(json.dumps(body).encode(), CONFIG, KEYS, held)
