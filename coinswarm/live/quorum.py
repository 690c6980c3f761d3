"""The quorum over a bus: manager nodes, the rotating coordinator role, and the applier.

Flow: a proposer appends a proposal to the ``mem.propose`` stream (``Nats-Msg-Id`` = its
id). Every :class:`QuorumNode` (one manager each) evaluates it with the pure rules and
appends a signed vote to the ``mem.vote`` stream (its msg id includes the signature, so a
forger cannot squat an honest manager's id; durable, so votes survive a server restart).
The node :func:`coordinator_for` names tallies at once and appends ``{proposal, decision,
votes}`` to ``mem.commit``; the others keep the votes and tally only if it stays silent
(failover), under ``Nats-Msg-Id = commit-<payload digest>-<id>`` (a retried commit is dropped
by the server; a forged one cannot squat the id; the store's primary key makes any other
repeat, such as a backup's copy, a no-op). Nodes stand down only for a commit whose signed
votes they re-tallied. The
:class:`Applier` re-checks the quorum from the signed votes — it trusts no coordinator —
and applies the commit to the store, whose primary key makes a redelivery a no-op. A
deadline without a quorum is audited as ``timeout`` and nothing is committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable

from coinswarm.errors import MessageError
from coinswarm.live.batching import GroupWriter
from coinswarm.quorum.coordinator import AuditEvent, Coordinator
from coinswarm.quorum.manager import Context, Manager
from coinswarm.quorum.memory import Behaviour, honest
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.tally import Decision, QuorumConfig, coordinator_for, tally
from coinswarm.quorum.votes import Vote

Clock = Callable[[], int]
Commit = tuple[Proposal, Decision, list[Vote]]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch (the live runner's clock; the pure core never reads it)."""
    return int(time.time() * 1000)


async def submit(bus, proposal: Proposal) -> bool:
    """Append a proposal to ``mem.propose``; False when the stream already had its id."""
    return await bus.stream_publish("mem.propose", proposal.encode(), msg_id=proposal.id)


def encode_commit(proposal: Proposal, decision: Decision, votes: list[Vote]) -> bytes:
    """The ``mem.commit`` payload: the proposal, the decision and the signed votes behind it."""
    decision_fields = {"proposal_id": decision.proposal_id, "digest": decision.digest, "status": decision.status,
                       "approvals": list(decision.approvals), "rejections": list(decision.rejections),
                       "discarded": [list(d) for d in decision.discarded], "decided_at": decision.decided_at,
                       "coordinator": decision.coordinator}
    body = {"proposal": proposal.to_dict(), "decision": decision_fields, "votes": [v.to_dict() for v in votes]}
    return json.dumps(body, separators=(",", ":")).encode()


def verified_commit(payload: bytes, config: QuorumConfig, keys: dict[str, bytes]) -> Commit:
    """:func:`decode_commit`, then re-tally its signed votes: :class:`MessageError` unless they
    make exactly the decision the commit claims (no coordinator is trusted)."""
    proposal, decision, votes = decode_commit(payload)
    check = tally(proposal, votes, config, keys, decision.decided_at or proposal.timestamp)
    if check.status != decision.status:
        raise MessageError(f"commit of {proposal.id} claims {decision.status}, its votes make {check.status}",
                           field="decision", message_id=proposal.id)
    return proposal, decision, votes


def commit_msg_id(proposal_id: str, payload: bytes) -> str:
    """``commit-<16 hex of the payload's digest>-<proposal id>``: a redelivered commit keeps its
    id (the server drops the copy), while a forged payload cannot squat a genuine commit's id."""
    return f"commit-{hashlib.blake2b(payload, digest_size=8).hexdigest()}-{proposal_id}"


def commit_proposal_id(msg_id: str | None) -> str | None:
    """The proposal id inside a :func:`commit_msg_id` (None for anything else)."""
    if not msg_id or not msg_id.startswith("commit-") or len(msg_id) < 25 or msg_id[23] != "-":
        return None
    return msg_id[24:]


def decode_commit(payload: bytes) -> tuple[Proposal, Decision, list[Vote]]:
    """Parse a ``mem.commit`` payload (typed errors for malformed parts)."""
    try:
        body = json.loads(payload)
        raw = body["decision"]
        decision = Decision(**{**raw, "approvals": tuple(raw["approvals"]), "rejections": tuple(raw["rejections"]),
                               "discarded": tuple(tuple(d) for d in raw["discarded"])})
        votes = [Vote.decode(json.dumps(v).encode()) for v in body["votes"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError(f"malformed commit ({exc})") from None
    return Proposal.from_dict(body["proposal"]), decision, votes


class QuorumNode:
    """One manager and its share of the coordinator role, on any bus.

    The node :func:`coordinator_for` names tallies a proposal's votes as they arrive and
    publishes the commit at once; the others (backups) keep the votes uncounted and, if no
    commit was seen after ``rank × failover_ms`` (rank = distance after the primary in the
    manager list), tally them and publish themselves — so a crashed coordinator delays its
    proposals but never blocks them, and a healthy cluster verifies each vote once per
    proposal rather than once per node.
    """

    def __init__(self, manager: Manager, config: QuorumConfig, keys: dict[str, bytes], bus, *,
                 context: Callable[[int], Context], clock: Clock = wall_clock_ms,
                 behaviour: Behaviour = honest, durable_prefix: str = "mgr", failover_ms: int = 500,
                 concurrency: int = 64, retention_ms: int | None = None,
                 audit_subject: str | None = "mem.audit") -> None:
        self.manager, self.config, self.bus, self.clock = manager, config, bus, clock
        self.context, self.behaviour, self.failover_ms = context, behaviour, failover_ms
        self.concurrency = concurrency
        self.retention_ms = retention_ms if retention_ms is not None else 10 * config.timeout_ms
        self._audit_sent = 0
        self._last_prune = 0
        self.audit_subject = audit_subject
        self.coordinator = Coordinator(config, keys, name=manager.name)
        self.votes: dict[str, list[Vote]] = {}
        self.proposals: dict[str, Proposal] = {}
        self.early: dict[str, list[Vote]] = {}
        self.early_seen: dict[str, int] = {}
        self.pending: dict[str, tuple[int, Proposal, Decision, list[Vote]]] = {}
        self.seen_commits: dict[str, int] = {}
        self.deferred: dict[str, list[Vote]] = {}  # a backup's votes, counted only if the primary stays silent
        self.escalate_at: dict[str, int] = {}
        self.durable = f"{durable_prefix}-{manager.name}"
        self.bad_messages = 0
        self.published = 0
        self._subs: list = []

    async def start(self) -> None:
        """Subscribe to votes and commits, then to the proposal stream (durable: resumes after restarts)."""
        self._subs.append(await self.bus.stream_subscribe("mem.vote", f"{self.durable}-votes", self.on_votes,
                                                          concurrency=self.concurrency, batch=True))
        self._subs.append(await self.bus.subscribe("mem.commit", self.on_commit_seen))
        self._subs.append(await self.bus.stream_subscribe("mem.propose", self.durable, self.on_proposals,
                                                          concurrency=self.concurrency, batch=True))

    async def stop(self) -> None:
        """Unsubscribe (the durable consumer keeps its position on the server)."""
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    def rank(self, proposal_id: str) -> int:
        """0 for the primary coordinator of ``proposal_id``, 1 for the first backup, …"""
        managers = self.config.managers
        primary = managers.index(coordinator_for(proposal_id, managers))
        return (managers.index(self.manager.name) - primary) % len(managers)

    async def on_proposal(self, msg) -> None:
        """Open the proposal, judge it and publish the vote(s)."""
        await self.on_proposals([msg])

    async def on_proposals(self, msgs: list) -> None:
        """Open, judge and vote on a delivered batch of proposals; the votes leave together."""
        votes: list[tuple[str, bytes]] = []
        commits: list[Commit] = []
        for msg in msgs:
            try:
                proposal = Proposal.decode(msg.data)
            except MessageError:
                self.bad_messages += 1
                continue
            now = self.clock()
            if self._is_new(proposal.id):
                self.proposals[proposal.id] = proposal
                self.coordinator.propose(proposal, now)
                rank = self.rank(proposal.id)
                if rank > 0:
                    self.escalate_at[proposal.id] = now + rank * self.failover_ms
                self.early_seen.pop(proposal.id, None)
                for vote in self.early.pop(proposal.id, []):
                    commits += self._count_or_defer(vote, now)
            for vote in self.behaviour(self.manager, proposal, self.context(now)):
                votes.append((f"vote-{vote.proposal_id}-{vote.manager}-{vote.signature[:16]}", vote.encode()))
        await self.bus.stream_publish_many("mem.vote", votes)
        await self._publish(commits)

    async def on_vote(self, msg) -> None:
        """Count a vote (votes that overtake their proposal wait in ``early``)."""
        await self.on_votes([msg])

    async def on_votes(self, msgs: list) -> None:
        """Count a delivered batch of votes; the commits they complete leave together."""
        commits: list[Commit] = []
        for msg in msgs:
            try:
                vote = Vote.decode(msg.data)
            except MessageError:
                self.bad_messages += 1
                continue
            if vote.proposal_id not in self.coordinator.open and vote.proposal_id not in self.coordinator.decided:
                self.early.setdefault(vote.proposal_id, []).append(vote)
                self.early_seen.setdefault(vote.proposal_id, self.clock())
                continue
            commits += self._count_or_defer(vote, self.clock())
        await self._publish(commits)

    def _is_new(self, proposal_id: str) -> bool:
        return (proposal_id not in self.proposals and proposal_id not in self.coordinator.decided
                and proposal_id not in self.seen_commits)

    def _count_or_defer(self, vote: Vote, now: int) -> list[Commit]:
        """The primary counts at once; a backup keeps the vote until the primary's time is up."""
        if vote.proposal_id in self.escalate_at:
            self.deferred.setdefault(vote.proposal_id, []).append(vote)
            return []
        return self._count(vote, now)

    def _escalate(self, now: int) -> None:
        """Backups whose primary stayed silent past ``rank × failover_ms`` tally what they kept;
        a decision they reach is published on this tick."""
        for pid in [pid for pid, when in self.escalate_at.items() if now >= when]:
            del self.escalate_at[pid]
            for vote in self.deferred.pop(pid, []):
                self._count(vote, now)
            if pid in self.pending:
                self.pending[pid] = (now, *self.pending[pid][1:])

    async def on_commit_seen(self, msg) -> None:
        """Another node committed: stand down (drop kept votes and any pending backup commit).

        Only for a commit whose signed votes really make its decision: a forged commit
        message cannot silence the backups (it is counted in ``bad_messages``)."""
        proposal_id = self._verified_commit(msg)
        if proposal_id is not None:
            now = self.clock()
            self.seen_commits[proposal_id] = now
            self.pending.pop(proposal_id, None)
            self.escalate_at.pop(proposal_id, None)
            self.deferred.pop(proposal_id, None)
            if self.coordinator.withdraw(proposal_id, now, "committed by another coordinator"):
                self.proposals.pop(proposal_id, None)
                self.votes.pop(proposal_id, None)

    def _verified_commit(self, msg) -> str | None:
        """The proposal id of a genuine commit message (re-tallied from its signed votes)."""
        proposal_id = commit_proposal_id(msg.msg_id)
        if proposal_id is None:
            return None
        if proposal_id in self.coordinator.decided:  # we decided it ourselves
            return proposal_id
        try:
            proposal, decision, _ = verified_commit(msg.data, self.config, self.coordinator.keys)
        except MessageError:
            self.bad_messages += 1
            return None
        if proposal.id != proposal_id or not decision.final:
            self.bad_messages += 1
            return None
        return proposal_id

    def _count(self, vote: Vote, now: int) -> list[Commit]:
        """Count ``vote``; returns the commit to publish now (primary) if it completed a quorum."""
        self.votes.setdefault(vote.proposal_id, []).append(vote)
        decision = self.coordinator.vote(vote, now)
        if decision is None:
            return []
        proposal = self.proposals.pop(decision.proposal_id)
        votes = self.votes.pop(decision.proposal_id)
        if not decision.final:  # timed out: audited by the coordinator, nothing to commit
            return []
        rank = self.rank(decision.proposal_id)
        if rank == 0:
            return [(proposal, decision, votes)]
        if decision.proposal_id not in self.seen_commits:
            self.pending[decision.proposal_id] = (now + rank * self.failover_ms, proposal, decision, votes)
        return []

    async def _publish(self, commits: list[Commit]) -> None:
        """Append commits to ``mem.commit`` (msg id ``commit-<proposal id>``), together."""
        if commits:
            payloads = [(p.id, encode_commit(p, d, v)) for p, d, v in commits]
            await self.bus.stream_publish_many("mem.commit", [(commit_msg_id(pid, data), data)
                                                              for pid, data in payloads])
            self.published += len(commits)

    async def tick(self) -> list[Decision]:
        """Publish backup commits that fell due; close proposals past their deadline."""
        now = self.clock()
        self._escalate(now)
        due = [pid for pid, (when, *_) in self.pending.items() if now >= when]
        await self._publish([self.pending.pop(pid)[1:] for pid in due])
        closed = self.coordinator.tick(now)
        for decision in closed:
            self.votes.pop(decision.proposal_id, None)
            self.proposals.pop(decision.proposal_id, None)
        await self._flush_audit()
        if now - self._last_prune >= self.retention_ms // 10:
            self._last_prune = now
            self._prune(now - self.retention_ms)
        return closed

    async def _flush_audit(self) -> None:
        """Publish, on ``mem.audit``, the not-yet-sent audit events of proposals this node is the
        primary coordinator of (the primary tallies them all; one copy is enough). The applier
        stores them."""
        if self.audit_subject is None:
            self._audit_sent = len(self.coordinator.audit)
            return
        fresh = self.coordinator.audit[self._audit_sent:]
        self._audit_sent += len(fresh)
        events = [e for e in fresh if self.rank(e.proposal_id) == 0]
        if events:
            payload = json.dumps([{"time": e.time, "kind": e.kind, "proposal_id": e.proposal_id, "actor": e.actor,
                                   "detail": e.detail} for e in events]).encode()
            await self.bus.publish(self.audit_subject, payload)

    def _prune(self, before: int) -> None:
        """Forget what is older than the retention window (memory stays bounded)."""
        kept = len(self.coordinator.audit)
        self.coordinator.forget(before)
        self._audit_sent -= kept - len(self.coordinator.audit)
        for table in (self.seen_commits, self.early_seen):
            for pid in [pid for pid, t in table.items() if t < before]:
                del table[pid]
                self.early.pop(pid, None)

    async def run_ticker(self, interval: float = 0.05) -> None:
        """Call :meth:`tick` forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(interval)
            await self.tick()


class Applier:
    """Applies ``mem.commit`` to the store after re-checking the quorum from the signed votes."""

    def __init__(self, store, config: QuorumConfig, keys: dict[str, bytes], bus, *, durable: str = "applier",
                 persist_audit: bool = True, concurrency: int = 256) -> None:
        self.store, self.config, self.keys, self.bus, self.durable = store, config, keys, bus, durable
        self.concurrency = concurrency
        self.persist_audit = persist_audit
        self._audit_sub = None
        self.applied = 0
        self.duplicates = 0
        self.refused = 0
        self.failed: list[tuple[str, str]] = []
        self.audited = 0
        self.changed = asyncio.Event()
        self.on_applied: Callable[[str], None] | None = None
        self._sub = None
        self._writer = GroupWriter(store.apply_commits)

    async def start(self) -> None:
        """Durable consumer of ``mem.commit``; audit events from ``mem.audit`` go to the store too.

        Commits are verified as they arrive and written by group commit: the ones that arrive
        while a transaction runs share the next one (:class:`~coinswarm.live.batching.GroupWriter`);
        a message is acked only after its transaction."""
        self._sub = await self.bus.stream_subscribe("mem.commit", self.durable, self.on_commits,
                                                    concurrency=self.concurrency, batch=True)
        if self.persist_audit:
            self._audit_sub = await self.bus.subscribe("mem.audit", self.on_audit)

    async def on_audit(self, msg) -> None:
        """Store a batch of audit events (malformed batches are counted, not stored)."""
        try:
            events = [AuditEvent(int(e["time"]), str(e["kind"]), str(e["proposal_id"]), str(e["actor"]),
                                 dict(e["detail"])) for e in json.loads(msg.data)]
        except (ValueError, KeyError, TypeError):
            self.refused += 1
            return
        await asyncio.to_thread(self.store.audit, events)
        self.audited += len(events)

    async def stop(self) -> None:
        """Unsubscribe."""
        for sub in (self._sub, self._audit_sub):
            if sub is not None:
                await sub.unsubscribe()

    async def on_commit(self, msg) -> None:
        """Verify and apply one commit (idempotent)."""
        await self.on_commits([msg])

    async def on_commits(self, msgs: list) -> None:
        """Verify a delivered batch of commits and apply them by group commit (idempotent)."""
        queued = []
        for msg in msgs:
            try:
                proposal, decision, _ = verified_commit(msg.data, self.config, self.keys)
            except MessageError:
                self.refused += 1
                continue
            queued.append((proposal, self._writer.enqueue((proposal, decision, msg.seq))))
        outcomes = await asyncio.gather(*(future for _, future in queued), return_exceptions=True)
        for (proposal, _), outcome in zip(queued, outcomes, strict=True):
            self._account(proposal, outcome)
        self.changed.set()

    def _account(self, proposal: Proposal, outcome) -> None:
        if isinstance(outcome, Exception):  # its transaction rolled back: record, move on (no endless redelivery)
            self.failed.append((proposal.id, f"{type(outcome).__name__}: {outcome}"))
        elif outcome:
            self.applied += 1
            if self.on_applied is not None:
                self.on_applied(proposal.id)
        else:
            self.duplicates += 1
