"""The quorum over a bus: manager nodes, the rotating coordinator role, and the applier.

Flow: a proposer appends proposals to the ``mem.propose`` stream (``Nats-Msg-Id`` = the
proposal id; under load the bus packs them into frames, see :mod:`coinswarm.adapters.framing`).
Every :class:`QuorumNode` (one manager each) judges a delivered frame with the pure rules
into **one** signed :class:`~coinswarm.quorum.votes.VoteBatch` for all of it (a manager
with a custom behaviour casts single votes). Every node sees the same frames, so the
coordinator role rotates per frame — :func:`coordinator_for` its first proposal, which is
per proposal when proposals arrive one at a time — and every voter knows who it is: the
vote goes to that node alone, on ``mem.vote.<coordinator>`` (the coordinator counts its
own without a message; every node also keeps its own vote). Votes are plain messages, not
stream entries: no store, no acks, one hop. A voter sends its vote again, to **every**
node on ``mem.vote``, while the proposal stays open where it sits — ``resend_ms`` after
sending, the interval doubling, and at once after a reconnect: so what a dropped connection
lost arrives after all, and if the coordinator stays silent the backups hold the votes
when their turn comes. A repeat is screened like any vote (a duplicate changes nothing).
The coordinator tallies at once and appends the decisions it reached together, with their
signed proofs, as one message to the ``mem.commit`` stream (:mod:`coinswarm.memory.commits`);
the others keep what votes reach them uncounted and tally only if it stays silent
(failover). Nodes stand down only for commits whose proofs they re-tallied.
The :class:`Applier` re-checks every decision from its proof — it trusts no coordinator —
and applies it to the store, whose primary key makes a redelivery a no-op. A deadline
without a quorum is audited as ``timeout`` and nothing is committed; the deadline is
``timeout_ms`` after the ballot's window opened, when ``f + 1`` managers had voted — so
proposals that waited in the stream while the managers were down are decided when they
return (:class:`~coinswarm.quorum.tally.Ballot`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from coinswarm.adapters.batching import GroupWriter, stop_task
from coinswarm.errors import MessageError
from coinswarm.memory.commits import (
    MAX_GROUP,
    Commit,
    Source,
    commit_msg_id,
    commit_proposal_id,
    encode_commits,
    verified_commits,
)
from coinswarm.quorum.coordinator import AuditEvent, Coordinator
from coinswarm.quorum.manager import Context, Manager
from coinswarm.quorum.memory import Behaviour, honest
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.tally import Decision, QuorumConfig, coordinator_for
from coinswarm.quorum.votes import ManagerVote, VoteBatch, decode_votes

Clock = Callable[[], int]
POLL_BURST = 1024  # stream messages an applier in poll mode reads at once
VOTE_SUBJECT = "mem.vote"  # re-sent votes, to every node
Ref = tuple[Source, int]  # a single vote (index -1) or entry ``index`` of a batch


def vote_subject(manager: str) -> str:
    """Where votes on the frames ``manager`` coordinates go first: ``mem.vote.<manager>``."""
    return f"{VOTE_SUBJECT}.{manager}"


def wall_clock_ms() -> int:
    """Milliseconds since the epoch (the live runner's clock; the pure core never reads it)."""
    return int(time.time() * 1000)


async def submit(bus, proposal: Proposal) -> bool:
    """Append a proposal to ``mem.propose``; False when the stream already had its id."""
    return await bus.stream_publish("mem.propose", proposal.encode(), msg_id=proposal.id)


@dataclass(slots=True)
class _SentVotes:
    """One vote message this node published: its bytes, the proposals it votes on, and when
    it goes out again if they are still open."""

    data: bytes
    proposal_ids: tuple[str, ...]
    due: int
    interval: int


def _ref_proposal_id(ref: Ref) -> str:
    source, index = ref
    return source.proposal_id if index < 0 else source.entries[index][0]


def _refs(source: Source) -> list[Ref]:
    return [(source, -1)] if isinstance(source, ManagerVote) else [(source, i) for i in range(len(source.entries))]


class QuorumNode:
    """One manager and its share of the coordinator role, on any bus.

    The node :func:`coordinator_for` names (per frame) tallies the votes as they arrive
    and publishes the commits at once; the others (backups) keep the votes uncounted and,
    if no commit was seen after ``rank × failover_ms`` (rank = distance after the primary in
    the manager list), tally them and publish themselves — so a crashed coordinator delays
    its proposals but never blocks them, and a healthy cluster checks each signature once
    per proposal rather than once per node. A primary that is slow rather than dead (a
    vote or commit of its was seen within ``failover_ms``) keeps its proposals until shortly
    before their deadline, so a loaded cluster does not commit everything twice. A node
    sends its votes to the frame's coordinator, and again to every node while their
    proposals stay open here: every ``resend_ms`` (default ``failover_ms``, doubling each
    time) and at once after the bus reconnects.
    """

    def __init__(self, manager: Manager, config: QuorumConfig, keys: dict[str, bytes], bus, *,
                 context: Callable[[int], Context], clock: Clock = wall_clock_ms,
                 behaviour: Behaviour = honest, durable_prefix: str = "mgr", failover_ms: int = 500,
                 concurrency: int = 64, retention_ms: int | None = None,
                 audit_subject: str | None = "mem.audit", resend_ms: int | None = None) -> None:
        self.manager, self.config, self.bus, self.clock = manager, config, bus, clock
        self.context, self.behaviour, self.failover_ms = context, behaviour, failover_ms
        self.concurrency = concurrency
        self.retention_ms = retention_ms if retention_ms is not None else 10 * config.timeout_ms
        self.resend_ms = resend_ms if resend_ms is not None else failover_ms
        self.sent: dict[str, _SentVotes] = {}  # this node's vote messages, kept for re-sending
        self.resent = 0
        self._reconnects = getattr(bus, "reconnects", 0)
        self._audit_sent = 0
        self._last_prune = 0
        self.audit_subject = audit_subject
        self.coordinator = Coordinator(config, keys, name=manager.name)
        self.proofs: dict[str, list[Source]] = {}  # the signed votes / batches counted per proposal
        self.proposals: dict[str, Proposal] = {}
        self.ranks: dict[str, tuple[int, int]] = {}  # proposal id -> (rank of this node, time opened)
        self.early: dict[str, list[Ref]] = {}
        self.early_seen: dict[str, int] = {}
        self.seen_commits: dict[str, int] = {}
        self.own_commits: dict[str, int] = {}  # msg ids this node published, with when
        self.deferred: dict[str, list[Ref]] = {}  # a backup's votes, counted only if the primary stays silent
        self.escalate_at: dict[str, int] = {}
        self.last_heard: dict[str, int] = {}  # manager -> when a vote or commit of theirs was last seen
        self.durable = f"{durable_prefix}-{manager.name}"
        self.bad_messages = 0
        self.published = 0
        self.taken_over = 0  # proposals this backup tallied because their primary stayed silent
        self.failed_reads = 0  # commit polls that raised (the server away, say); retried each tick
        self.last_read_error = ""
        self._subs: list = []
        self.stopping = False  # set by stop(): run_ticker ends even if a cancel is swallowed

    async def start(self) -> None:
        """Subscribe to votes (this node's and the re-sent ones), start reading commits, then
        subscribe to the proposal stream (durable: resumes after restarts)."""
        self._subs.append(await self.bus.subscribe(vote_subject(self.manager.name), self.on_vote))
        self._subs.append(await self.bus.subscribe(VOTE_SUBJECT, self.on_vote))
        await self.poll_commits()
        self._subs.append(await self.bus.stream_subscribe("mem.propose", self.durable, self.on_proposals,
                                                          concurrency=self.concurrency, batch=True))

    async def stop(self) -> None:
        """Stop ticking and unsubscribe (the durable consumer keeps its position on the server)."""
        self.stopping = True
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):  # a connection already closed has nothing to unsubscribe
                await sub.unsubscribe()

    def rank(self, proposal_id: str) -> int:
        """0 if this node coordinates ``proposal_id``, 1 if it is the first backup, …
        (by the frame the proposal arrived in; by its own id if it never arrived here)."""
        known = self.ranks.get(proposal_id)
        return known[0] if known is not None else self._rank_after(coordinator_for(proposal_id,
                                                                                   self.config.managers))

    def _rank_after(self, primary: str) -> int:
        managers = self.config.managers
        return (managers.index(self.manager.name) - managers.index(primary)) % len(managers)

    async def on_proposal(self, msg) -> None:
        """Open the proposal, judge it and publish the vote."""
        await self.on_proposals([msg])

    async def on_proposals(self, msgs: list) -> None:
        """Open and judge a delivered frame of proposals; one signed batch votes on all of it.

        Each proposal is judged with the time the stream received it (``msg.received_ms``,
        JetStream's metadata timestamp) in its context: its age is judged at its arrival on
        the bus, so a backlog read after the managers were down is not refused as stale, and
        every manager reaches the same verdict (see :class:`~coinswarm.quorum.manager.Context`)."""
        proposals, received = [], []
        for msg in msgs:
            try:
                proposals.append(Proposal.decode(msg.data))
            except MessageError:
                self.bad_messages += 1
                continue
            received.append(msg.received_ms)
        if not proposals:
            return
        now = self.clock()
        primary = coordinator_for(proposals[0].id, self.config.managers)  # the frame's coordinator
        commits: list[Commit] = []
        for proposal in proposals:
            if self._is_new(proposal.id):
                commits += self._open(proposal, now, primary)
        commits += await self._send_votes(proposals, self._contexts(now, received), primary)
        await self._publish(commits)

    def _contexts(self, now: int, received: list[int | None]) -> list[Context]:
        """The context of each proposal: :attr:`context` at ``now`` with the proposal's receive
        time (one object per distinct time — a frame's proposals share theirs)."""
        base = self.context(now)
        by_time: dict[int | None, Context] = {None: base}
        for when in received:
            if when not in by_time:
                by_time[when] = dataclasses.replace(base, received=when)
        return [by_time[when] for when in received]

    def _open(self, proposal: Proposal, now: int, primary: str) -> list[Commit]:
        """Start tallying ``proposal`` (coordinated by ``primary``); count votes that came early."""
        rank = self._rank_after(primary)
        self.proposals[proposal.id] = proposal
        self.ranks[proposal.id] = (rank, now)
        self.coordinator.propose(proposal, now, coordinator=primary)
        if rank > 0:
            self.escalate_at[proposal.id] = now + rank * self.failover_ms
        self.early_seen.pop(proposal.id, None)
        commits: list[Commit] = []
        for ref in self.early.pop(proposal.id, []):
            commits += self._count_or_defer(ref, now)
        return commits

    def _votes(self, proposals: list[Proposal], contexts: list[Context]) -> list[tuple[str, Source]]:
        """``(msg id, vote)`` of this node's votes (each proposal judged in its own context):
        one batch when honest, else what the behaviour casts."""
        if self.behaviour is honest:
            reasons = [self.manager.reasons(p, c) for p, c in zip(proposals, contexts, strict=True)]
            batch = self.manager.sign_batch(proposals, reasons, contexts[0].now)
            return [(f"votes-{batch.manager}-{batch.signature[:32]}", batch)]
        return [(f"vote-{v.proposal_id}-{v.manager}-{v.signature[:16]}", v)
                for p, c in zip(proposals, contexts, strict=True) for v in self.behaviour(self.manager, p, c)]

    async def _send_votes(self, proposals: list[Proposal], contexts: list[Context], primary: str) -> list[Commit]:
        """Keep this node's votes on a frame (for itself and for :meth:`_resend_votes`) and send
        them to the frame's coordinator ``primary``; returns the commits its own votes complete."""
        ids = tuple(p.id for p in proposals)
        now = contexts[0].now
        commits: list[Commit] = []
        for msg_id, source in self._votes(proposals, contexts):
            data = source.encode()
            sent = self.sent[msg_id] = _SentVotes(data, ids, now + self.resend_ms, self.resend_ms)
            commits += self._receive(source, now)
            if primary != self.manager.name and not await self._publish_vote(vote_subject(primary), data):
                sent.due = now  # not handed to the connection: next tick tries again
        return commits

    async def _resend_votes(self, now: int) -> None:
        """Publish again, to every node, the votes this node cast on proposals it still sees
        open: all of them after a reconnect (messages in flight when a connection drops are
        lost), otherwise each ``resend_ms`` after it last went out, the interval doubling. A
        vote message whose proposals are all settled here is forgotten."""
        reconnects = getattr(self.bus, "reconnects", 0)
        reconnected, self._reconnects = reconnects != self._reconnects, reconnects
        for msg_id, sent in list(self.sent.items()):
            if not any(pid in self.proposals for pid in sent.proposal_ids):
                del self.sent[msg_id]
            elif reconnected or now >= sent.due:
                sent.interval *= 2
                sent.due = now + sent.interval
                self.resent += 1
                await self._publish_vote(VOTE_SUBJECT, sent.data)

    async def _publish_vote(self, subject: str, data: bytes) -> bool:
        try:
            await self.bus.publish(subject, data)
        except Exception:  # noqa: BLE001  (connection closed or its buffer full: re-sent later)
            return False
        return True

    async def on_vote(self, msg) -> None:
        """Count a vote message (votes that overtake their proposal wait in ``early``)."""
        await self.on_votes([msg])

    async def on_votes(self, msgs: list) -> None:
        """Count delivered votes and batches; the commits they complete leave together."""
        commits: list[Commit] = []
        for msg in msgs:
            try:
                source = decode_votes(msg.data)
            except MessageError:
                self.bad_messages += 1
                continue
            commits += self._receive(source, self.clock())
        await self._publish(commits)

    def _receive(self, source: Source, now: int) -> list[Commit]:
        """Count a vote or batch, or keep it (early: before its proposal; a backup's: until
        the primary's time is up); returns the commits it completes here."""
        self.last_heard[source.manager] = now  # a hint of life, see _primary_alive
        if isinstance(source, VoteBatch):
            self.coordinator.audit_batch(source, now)
        commits: list[Commit] = []
        for ref in _refs(source):
            pid = _ref_proposal_id(ref)
            if pid not in self.coordinator.open and pid not in self.coordinator.decided:
                self.early.setdefault(pid, []).append(ref)
                self.early_seen.setdefault(pid, now)
                continue
            commits += self._count_or_defer(ref, now)
        return commits

    def _is_new(self, proposal_id: str) -> bool:
        return (proposal_id not in self.proposals and proposal_id not in self.coordinator.decided
                and proposal_id not in self.seen_commits)

    def _count_or_defer(self, ref: Ref, now: int) -> list[Commit]:
        """The primary counts at once; a backup keeps the vote until the primary's time is up."""
        pid = _ref_proposal_id(ref)
        if pid in self.escalate_at:
            self.deferred.setdefault(pid, []).append(ref)
            return []
        return self._count(ref, now)

    def _escalate(self, now: int) -> list[Commit]:
        """Backups whose primary stayed silent past ``rank × failover_ms`` tally what they kept
        (and count what reaches them from now on); returns the commits that completes."""
        commits: list[Commit] = []
        for pid in [pid for pid, when in self.escalate_at.items() if now >= when]:
            proposal = self.proposals.get(pid)
            if proposal is not None and self._primary_alive(pid, proposal.timestamp, now):
                self.escalate_at[pid] = now + self.failover_ms  # slow, not dead: look again later
                continue
            del self.escalate_at[pid]
            self.taken_over += 1
            for ref in self.deferred.pop(pid, []):
                commits += self._count(ref, now)
        return commits

    def _primary_alive(self, pid: str, timestamp: int, now: int) -> bool:
        """Whether a backup should still wait for ``pid``'s primary: the primary was heard from
        (a vote or a verified commit of its) less than ``failover_ms`` before the latest
        message from anyone — it is slow, not dead; measuring against the latest message
        rather than the clock keeps a backup whose own queue runs late from taking for dead
        a primary whose messages merely wait in that queue — and the proposal's deadline is
        still more than ``(n - rank) × failover_ms`` away (then the backups take over, one
        after another, whatever the primary does, while their votes still count). A vote is
        a hint, not verified: a forger can at most make the backups wait that long.

        The deadline is estimated, not tallied (a backup holds its votes uncounted): the
        ballot's window opens when the managers vote (see :class:`~coinswarm.quorum.tally.Ballot`),
        which is about when this node opened the proposal — every node reads the same stream —
        so ``timeout_ms`` after the later of the proposal's timestamp and that time. After an
        outage the backlog is read when the managers return, and so are its windows opened."""
        rank = self.rank(pid)
        managers = self.config.managers
        heard = self.last_heard.get(managers[(managers.index(self.manager.name) - rank) % len(managers)])
        opened = self.ranks[pid][1] if pid in self.ranks else timestamp
        cap = max(timestamp, opened) + self.config.timeout_ms - (len(self.config.managers) - rank) * self.failover_ms
        return heard is not None and max(self.last_heard.values()) - heard < self.failover_ms and now < cap

    async def poll_commits(self) -> None:
        """Read the commits published since the last poll (one burst, see
        :meth:`~coinswarm.adapters.bus.NatsBus.stream_poll`) and stand down for them. Each tick
        does this first: a backup needs to know of a commit only before its turn to take
        over, ``failover_ms`` away, so it learns of them in batches rather than being woken
        for every one. A failed poll (the server is away) is retried on the next tick."""
        try:
            messages = await self.bus.stream_poll("mem.commit", f"{self.durable}-commits")
        except Exception as exc:  # noqa: BLE001  (disconnected, reconnecting, no responders)
            self.failed_reads += 1
            self.last_read_error = f"{type(exc).__name__}: {exc}"
            return
        for msg in messages:
            self.on_commit_seen(msg)

    def on_commit_seen(self, msg) -> None:
        """Commits were published: stand down for each (drop kept votes, stop any takeover).

        Only for commits whose signed proofs really make their decisions: a forged commit
        message cannot silence the backups (it is counted in ``bad_messages``)."""
        now = self.clock()
        for proposal_id, coordinator in self._verified_commit_ids(msg):
            self.last_heard[coordinator] = now
            self.seen_commits[proposal_id] = now
            self.escalate_at.pop(proposal_id, None)
            self.deferred.pop(proposal_id, None)
            if self.coordinator.withdraw(proposal_id, now, "committed by another coordinator"):
                self.proposals.pop(proposal_id, None)
                self.proofs.pop(proposal_id, None)

    def _verified_commit_ids(self, msg) -> list[tuple[str, str]]:
        """``(proposal id, coordinator)`` of each decision of a genuine commit message
        (re-tallied from its proofs)."""
        if commit_proposal_id(msg.msg_id) is None or msg.msg_id in self.own_commits:
            return []  # not a commit, or this node's own message
        try:
            commits = verified_commits(msg.data, self.config, self.coordinator.keys, self.proposals)
        except MessageError:
            self.bad_messages += 1
            return []
        if commit_proposal_id(msg.msg_id) != commits[0][0].id or not all(d.final for _, d, _ in commits):
            self.bad_messages += 1
            return []
        return [(proposal.id, decision.coordinator) for proposal, decision, _ in commits]

    def _count(self, ref: Ref, now: int) -> list[Commit]:
        """Count one vote (as the primary, or as a backup that took over); returns the commit
        to publish now if it completed a quorum."""
        source, index = ref
        pid = _ref_proposal_id(ref)
        self.proofs.setdefault(pid, []).append(source)
        decision = (self.coordinator.vote(source, now) if index < 0
                    else self.coordinator.vote_entry(source, index, now))
        if decision is None:
            return []
        proposal = self.proposals.pop(pid)
        proof = self.proofs.pop(pid)
        if not decision.final or pid in self.seen_commits:  # timed out (audited), or committed by another
            return []
        return [(proposal, decision, proof)]

    async def _publish(self, commits: list[Commit]) -> None:
        """Append commits to ``mem.commit``, together: one message per :data:`MAX_GROUP`, fewer
        if the bus caps a message's size (``bus.max_payload``) — a group too large is halved."""
        limit = getattr(self.bus, "max_payload", None)
        items = []
        for start in range(0, len(commits), MAX_GROUP):
            items += self._commit_messages(commits[start:start + MAX_GROUP], limit)
        if items:
            await self.bus.stream_publish_many("mem.commit", items)
            self.published += len(commits)

    def _commit_messages(self, group: list[Commit], limit: int | None) -> list[tuple[str, bytes]]:
        """``(msg id, payload)`` of ``group`` in as few messages as fit ``limit`` bytes (with
        a 1 KB margin for headers); a single commit above it is left to the bus to refuse."""
        payload = encode_commits(group)
        if limit is not None and len(payload) > limit - 1024 and len(group) > 1:
            half = len(group) // 2
            return self._commit_messages(group[:half], limit) + self._commit_messages(group[half:], limit)
        msg_id = commit_msg_id(group[0][0].id, payload)
        self.own_commits[msg_id] = self.clock()
        return [(msg_id, payload)]

    async def tick(self) -> list[Decision]:
        """Take over from silent primaries, send open votes again, close proposals past their deadline."""
        await self.poll_commits()
        now = self.clock()
        await self._publish(self._escalate(now))
        await self._resend_votes(now)
        closed = self.coordinator.tick(now)
        for decision in closed:
            self.proofs.pop(decision.proposal_id, None)
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
            payload = orjson.dumps([{"time": e.time, "kind": e.kind, "proposal_id": e.proposal_id, "actor": e.actor,
                                   "detail": e.detail} for e in events])
            await self.bus.publish(self.audit_subject, payload)

    def _prune(self, before: int) -> None:
        """Forget what is older than the retention window (memory stays bounded)."""
        kept = len(self.coordinator.audit)
        self.coordinator.forget(before)
        self._audit_sent -= kept - len(self.coordinator.audit)
        for table in (self.seen_commits, self.early_seen, self.own_commits):
            for key in [key for key, t in table.items() if t < before]:
                del table[key]
                self.early.pop(key, None)
        for pid in [pid for pid, (_, t) in self.ranks.items() if t < before and pid not in self.proposals]:
            del self.ranks[pid]

    async def run_ticker(self, interval: float = 0.05) -> None:
        """Call :meth:`tick` until :meth:`stop` (or a cancel of the task)."""
        while not self.stopping:
            await asyncio.sleep(interval)
            if not self.stopping:
                await self.tick()


class Applier:
    """Applies ``mem.commit`` to the store after re-checking each decision from its signed proof."""

    def __init__(self, store, config: QuorumConfig, keys: dict[str, bytes], bus, *, durable: str = "applier",
                 persist_audit: bool = True, concurrency: int = 256, linger_ms: float = 0.0,
                 poll_ms: float | None = None) -> None:
        self.store, self.config, self.keys, self.bus, self.durable = store, config, keys, bus, durable
        self.concurrency, self.poll_ms = concurrency, poll_ms
        self._poller: asyncio.Task | None = None
        self.stopping = False  # set by stop(): the poller ends even if a cancel is swallowed
        self.failed_reads = 0  # polls that raised (server away, or a consumer the server refuses)
        self.last_read_error = ""
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
        self._writer = GroupWriter(store.apply_commits, linger=linger_ms / 1000)
        self._audit_writer = GroupWriter(self._store_audit, linger=linger_ms / 1000)

    async def start(self) -> None:
        """Durable consumer of ``mem.commit``; audit events from ``mem.audit`` go to the store too.

        Commits are verified as they arrive and written by group commit: the ones that arrive
        while a transaction runs share the next one (:class:`~coinswarm.adapters.batching.GroupWriter`),
        and with ``linger_ms`` an idle applier waits that long for more before it starts one
        (commits are durable in the stream already; this trades how soon they show in the store
        for fewer transactions). Audit batches are grouped the same way. A message is acked only
        after its transaction.

        With ``poll_ms`` the applier reads the stream in bursts instead (``bus.stream_poll``,
        acked): everything stored since its last read, verified and written together, acked
        after the write; when a read finds less than a full burst it sleeps ``poll_ms``. One
        wake-up per burst rather than per commit: much less CPU for a store at most
        ``poll_ms`` behind the stream. Its reader is the durable ``<durable>-pull`` (a pushed
        consumer cannot become a pulled one under the same name)."""
        if self.poll_ms is None:
            self._sub = await self.bus.stream_subscribe("mem.commit", self.durable, self.on_commits,
                                                        concurrency=self.concurrency, batch=True)
        else:
            self._poller = asyncio.create_task(self._poll_forever())
        if self.persist_audit:
            self._audit_sub = await self.bus.subscribe("mem.audit", self.on_audit)

    async def on_audit(self, msg) -> None:
        """Store a batch of audit events (malformed batches are counted, not stored)."""
        try:
            events = [AuditEvent(int(e["time"]), str(e["kind"]), str(e["proposal_id"]), str(e["actor"]),
                                 dict(e["detail"])) for e in orjson.loads(msg.data)]
        except (ValueError, KeyError, TypeError):
            self.refused += 1
            return
        self.audited += await self._audit_writer.submit(events)

    def _store_audit(self, batches: list[list[AuditEvent]]) -> list[int]:
        """One transaction for several messages' audit events (in a worker thread)."""
        self.store.audit([event for events in batches for event in events])
        return [len(events) for events in batches]

    async def _poll_forever(self) -> None:
        """Read, apply and acknowledge bursts of commits until :meth:`stop` (see :meth:`start`)."""
        while not self.stopping:
            try:
                messages = await self.bus.stream_poll("mem.commit", f"{self.durable}-pull", max_messages=POLL_BURST,
                                                      acked=True)
            except Exception as exc:  # noqa: BLE001  (disconnected or reconnecting: read again later)
                self.failed_reads += 1
                self.last_read_error = f"{type(exc).__name__}: {exc}"
                messages = []
            if messages and not self.stopping:  # stopping: unacked, so the burst comes again
                await self.on_commits(messages)  # every outcome is accounted for, then acknowledged
                await self._ack(messages[-1])
            if len(messages) < POLL_BURST and not self.stopping:
                await asyncio.sleep(self.poll_ms / 1000)

    async def _ack(self, message) -> None:
        try:
            await self.bus.stream_ack(message)
        except Exception as exc:  # noqa: BLE001  (disconnected: the burst comes again, the store ignores it)
            self.failed_reads += 1
            self.last_read_error = f"{type(exc).__name__}: {exc}"

    async def stop(self, timeout: float = 10.0) -> bool:
        """Stop reading and unsubscribe, within about ``timeout`` seconds (a burst cut short is
        not acknowledged: it comes again, and the store ignores what it already holds).

        Sets the stop flag, then cancels the poller (again, if a cancel was swallowed) and
        waits for it at most ``timeout`` seconds. False if it had not ended by then."""
        self.stopping = True
        ended = await stop_task(self._poller, timeout)
        subs, self._sub, self._audit_sub = (self._sub, self._audit_sub), None, None
        for sub in subs:
            if sub is not None:
                with contextlib.suppress(Exception):  # a connection already closed has nothing to unsubscribe
                    await sub.unsubscribe()
        return ended

    async def on_commit(self, msg) -> None:
        """Verify and apply one commit (idempotent)."""
        await self.on_commits([msg])

    async def on_commits(self, msgs: list) -> None:
        """Verify a delivered batch of commits and apply them by group commit (idempotent)."""
        queued = []
        for msg in msgs:
            try:
                commits = verified_commits(msg.data, self.config, self.keys)
            except MessageError:
                self.refused += 1
                continue
            for k, (proposal, decision, _) in enumerate(commits):
                seq = None if msg.seq is None else msg.seq * MAX_GROUP + k
                queued.append((proposal, self._writer.enqueue((proposal, decision, seq))))
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
