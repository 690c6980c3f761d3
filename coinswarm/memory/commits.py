"""``mem.commit`` messages: groups of decisions, each with the signed votes behind it.

A coordinator publishes the decisions it reached together as **one** message::

    {"commits": [{"proposal": …, "decision": …, "votes": [i, …], "batches": [j, …]}, …],
     "votes": [signed vote, …], "batches": [signed vote batch, …]}

Each commit names its own proof — indices into the shared ``votes`` and ``batches`` —
so a batch that backs many decisions travels once, and a vote that arrived after one
decision cannot be read into it. Nobody trusts the coordinator: :func:`verified_commits`
re-tallies every decision from its proof (each batch's HMAC checked once) and refuses the
whole message unless each one comes out exactly as claimed.

The message id is ``commit-<16 hex of the payload's digest>-<first proposal id>``: a
retried message keeps its id (the server drops the copy) while a forged payload cannot
squat a genuine message's id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson

from coinswarm.errors import MessageError
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.tally import Decision, QuorumConfig, screened
from coinswarm.quorum.votes import ManagerVote, VoteBatch

Source = ManagerVote | VoteBatch
Commit = tuple[Proposal, Decision, list[Source]]  # a decision and the signed votes / batches behind it
MAX_GROUP = 4096  # commits per message; commit k of stream item s is stored with seq s * MAX_GROUP + k


def encode_commits(commits: list[Commit]) -> bytes:
    """One ``mem.commit`` payload for up to :data:`MAX_GROUP` decisions and their proofs."""
    if not 0 < len(commits) <= MAX_GROUP:
        raise ValueError(f"a commit message holds 1 to {MAX_GROUP} commits, not {len(commits)}")
    tables: dict[type, list[Source]] = {ManagerVote: [], VoteBatch: []}
    index: dict[int, int] = {}
    bodies = []
    for proposal, decision, proof in commits:
        refs: dict[type, list[int]] = {ManagerVote: [], VoteBatch: []}
        for source in proof:
            table = tables[type(source)]
            if id(source) not in index:
                index[id(source)] = len(table)
                table.append(source)
            if index[id(source)] not in refs[type(source)]:  # each source once per commit
                refs[type(source)].append(index[id(source)])
        bodies.append({"proposal": proposal.to_dict(), "decision": decision._asdict(),
                       "votes": refs[ManagerVote], "batches": refs[VoteBatch]})
    body = {"commits": bodies, "votes": [v.to_dict() for v in tables[ManagerVote]],
            "batches": [b.to_dict() for b in tables[VoteBatch]]}
    return orjson.dumps(body)


def encode_commit(proposal: Proposal, decision: Decision, votes: list[Source]) -> bytes:
    """A ``mem.commit`` payload for a single decision."""
    return encode_commits([(proposal, decision, votes)])


def decode_commits(payload: bytes, known: Mapping[str, Proposal] | None = None) -> list[Commit]:
    """Parse a ``mem.commit`` payload (typed :class:`MessageError` for malformed parts);
    nothing is verified here, see :func:`verified_commits`.

    A proposal equal, field for field, to one in ``known`` (by id) is that object: a node
    that holds the proposal skips validating and re-encoding it."""
    try:
        body = orjson.loads(payload)
        votes = [ManagerVote.from_dict(v) for v in body["votes"]]
        batches = [VoteBatch.from_dict(b) for b in body["batches"]]
        commits = []
        for item in body["commits"]:
            raw = item["decision"]
            decision = Decision(**{**raw, "approvals": tuple(raw["approvals"]), "rejections": tuple(raw["rejections"]),
                                   "discarded": tuple(tuple(d) for d in raw["discarded"])})
            proof = [votes[i] for i in item["votes"]] + [batches[j] for j in item["batches"]]
            commits.append((_proposal(item["proposal"], known), decision, proof))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MessageError(f"malformed commit ({exc})") from None
    if not commits:
        raise MessageError("a commit message without commits", field="commits")
    return commits


def _proposal(raw: dict, known: Mapping[str, Proposal] | None) -> Proposal:
    held = known.get(raw.get("id")) if known is not None and isinstance(raw, dict) else None
    if held is not None and _exact(held.to_dict()) == _exact(raw):
        return held
    return Proposal.from_dict(raw)


def _exact(value: dict) -> bytes:
    # JSON text tells 1 from 1.0 and true from 1, where == does not: a body that merely
    # compares equal could still hash to another digest
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def verified_commits(payload: bytes, config: QuorumConfig, keys: dict[str, bytes],
                     known: Mapping[str, Proposal] | None = None) -> list[Commit]:
    """:func:`decode_commits`, then re-tally each decision from its own signed proof:
    :class:`MessageError` unless every one makes exactly the decision it claims."""
    commits = decode_commits(payload, known)
    positions: dict[int, dict[str, list[int]]] = {}  # per batch: proposal id -> its entries
    for proposal, decision, proof in commits:
        if decision.proposal_id != proposal.id or decision.digest != proposal.digest:
            raise MessageError(f"decision {decision.proposal_id} is not for proposal {proposal.id}",
                               field="decision", message_id=proposal.id)
        votes, entries = [], []
        for source in proof:
            if isinstance(source, ManagerVote):
                votes.append(source)
                continue
            if id(source) not in positions:
                positions[id(source)] = _positions(source)
            entries += [(source, i) for i in positions[id(source)].get(proposal.id, ())]
        status = screened(proposal, votes, config, keys, entries).status(decision.decided_at or proposal.timestamp)
        if status != decision.status:
            raise MessageError(f"commit of {proposal.id} claims {decision.status}, its votes make {status}",
                               field="decision", message_id=proposal.id)
    return commits


def _positions(batch: VoteBatch) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, entry in enumerate(batch.entries):
        out.setdefault(entry[0], []).append(i)
    return out


def commit_msg_id(first_proposal_id: str, payload: bytes) -> str:
    """``commit-<16 hex of the payload's digest>-<first proposal id>``."""
    return f"commit-{hashlib.blake2b(payload, digest_size=8).hexdigest()}-{first_proposal_id}"


def commit_proposal_id(msg_id: str | None) -> str | None:
    """The first proposal id inside a :func:`commit_msg_id` (None for anything else)."""
    if not msg_id or not msg_id.startswith("commit-") or len(msg_id) < 25 or msg_id[23] != "-":
        return None
    return msg_id[24:]


def committed_ids(payload: bytes) -> list[str]:
    """The proposal ids a ``mem.commit`` payload decides (parsed, not verified: for watchers)."""
    try:
        return [item["proposal"]["id"] for item in orjson.loads(payload)["commits"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError(f"malformed commit ({exc})") from None
