"""The coordinator's state machine and the audit trail — pure, clock injected.

Transports (in-process for backtests, NATS live) feed it proposals and votes and call
``tick(now)``; it answers with final decisions and audit events. Deciding twice is
impossible: once a proposal is decided, later votes are audited and ignored.
"""

from __future__ import annotations

from typing import NamedTuple

from coinswarm.errors import ConfigError, MessageError
from coinswarm.quorum.limits import as_time, brief
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.tally import PENDING, TIMEOUT, Ballot, Decision, QuorumConfig, new_named_tuple, signed_by_member
from coinswarm.quorum.votes import ManagerVote, VoteBatch, batch_problem, split_verdicts, vote_problem


class AuditEvent(NamedTuple):
    """One line of the audit trail (a named tuple: the trail grows by several per proposal)."""

    time: int
    kind: str
    proposal_id: str
    actor: str
    detail: dict


class Coordinator:
    """Collects votes per proposal and decides when a quorum (or the deadline) arrives."""

    def __init__(self, config: QuorumConfig, keys: dict[str, bytes], name: str = "coordinator") -> None:
        check_quorum(config, keys)
        self.config = config
        self.keys = keys
        self.name = name
        self.open: dict[str, Ballot] = {}
        self.decided: dict[str, Decision] = {}
        self.audit: list[AuditEvent] = []

    def propose(self, proposal: Proposal, now: int, coordinator: str | None = None) -> None:
        """Open a proposal for voting (a repeat of an open or decided id is audited, not reopened).

        ``coordinator`` names the manager whose turn it is, for the decision's record
        (default: :func:`~coinswarm.quorum.tally.coordinator_for` the proposal's id).
        Raises :class:`MessageError` if ``proposal`` is not a :class:`Proposal` and
        :class:`ConfigError` for a bad ``now`` or ``coordinator``."""
        if not isinstance(proposal, Proposal):
            raise MessageError(f"the coordinator takes Proposal objects, got {type(proposal).__name__}",
                               field="proposal")
        now = as_time(now)
        if coordinator is not None and coordinator not in self.config.managers:
            raise ConfigError(f"coordinator must be one of the managers {self.config.managers}, "
                              f"got {brief(coordinator)}")
        if proposal.id in self.open or proposal.id in self.decided:
            self._log(now, "duplicate_proposal", proposal.id, proposal.submitter, {})
            return
        self.open[proposal.id] = Ballot(proposal, self.config, self.keys, coordinator)
        self._log(now, "proposal", proposal.id, proposal.submitter, {"kind": proposal.kind, "digest": proposal.digest})

    def vote(self, vote: ManagerVote, now: int) -> Decision | None:
        """Record a vote; returns the decision when this vote completes a quorum.

        Anything that is not a well-formed :class:`ManagerVote` is discarded and audited
        (``discard``, reason ``malformed vote: …``); it never raises for the vote's sake."""
        now = as_time(now)
        problem = vote_problem(vote)
        if problem is not None:
            self._junk(now, vote, problem)
            return None
        ballot = self._ballot(vote.proposal_id, vote.manager, vote.approve, now)
        if ballot is None:
            return None
        ballot.add(vote)
        return self._settle(ballot, now)

    def vote_entry(self, batch: VoteBatch, index: int, now: int) -> Decision | None:
        """Record entry ``index`` of a signed batch, like one :meth:`vote` (the batch's
        signature is checked once however many of its entries are recorded). The vote
        itself is audited once per batch, by :meth:`audit_batch`. A malformed batch or index
        is discarded and audited."""
        now = as_time(now)
        problem = batch_problem(batch)
        if problem is None and not (type(index) is int and 0 <= index < len(batch.entries)):
            problem = f"entry index {brief(index)} outside the batch's {len(batch.entries)} entries"
        if problem is not None:
            self._junk(now, batch, problem)
            return None
        proposal_id, _, approve, _ = batch.entries[index]
        ballot = self._ballot(proposal_id, batch.manager, approve, now, audited=True)
        if ballot is None:
            return None
        ballot.add_entry(batch, index)
        return self._settle(ballot, now)

    def _ballot(self, proposal_id: str, manager: str, approve: bool, now: int,
                audited: bool = False) -> Ballot | None:
        """Audit a vote (unless ``audited``); the open ballot it belongs to, or None (discarded and audited)."""
        if not audited:
            self._log(now, "vote", proposal_id, manager, {"approve": approve})
        if proposal_id in self.decided:
            self._log(now, "discard", proposal_id, manager, {"reason": "already decided"})
            return None
        ballot = self.open.get(proposal_id)
        if ballot is None:
            self._log(now, "discard", proposal_id, manager, {"reason": "unknown proposal"})
        return ballot

    def vote_batch(self, batch: VoteBatch, now: int) -> list[Decision]:
        """Record a signed batch of verdicts (one HMAC for all); returns the decisions it completed.

        The audit gets one ``vote_batch`` event listing every entry. A forged batch is
        discarded whole; each entry then meets the same rules as a single :meth:`vote`. A
        malformed batch (not a :class:`VoteBatch`, fields of the wrong type) is discarded and
        audited before any field is read."""
        now = as_time(now)
        problem = batch_problem(batch)
        if problem is not None:
            self._junk(now, batch, problem)
            return []
        self.audit_batch(batch, now)
        if not signed_by_member(batch, self.config, self.keys):
            self._log(now, "discard", "", batch.manager, {"reason": "forged batch: unknown manager or bad signature"})
            return []
        decisions, decided, unknown = [], [], []
        manager, timestamp, open_ballots = batch.manager, batch.timestamp, self.open
        for proposal_id, digest, approve, _ in batch.entries:
            ballot = open_ballots.get(proposal_id)
            if ballot is None:
                (decided if proposal_id in self.decided else unknown).append(proposal_id)
                continue
            ballot.add_verified(manager, proposal_id, digest, approve, timestamp)
            status = ballot.status(now)
            if status != PENDING:
                decisions.append(self._settle(ballot, now, status))
        for reason, ids in (("already decided", decided), ("unknown proposal", unknown)):
            if ids:  # one event per batch and reason, listing every entry it threw away
                self._log(now, "discard", ids[0], batch.manager, {"reason": reason, "proposals": tuple(ids)})
        return decisions

    def audit_batch(self, batch: VoteBatch, now: int) -> None:
        """One ``vote_batch`` audit event listing every verdict of ``batch`` (filed under its
        first proposal: the one that names the frame's coordinator); a malformed batch is
        audited as a discard."""
        now = as_time(now)
        problem = batch_problem(batch)
        if problem is not None:
            self._junk(now, batch, problem)
            return
        first = batch.entries[0][0] if batch.entries else ""
        approved, rejected = split_verdicts(batch.entries)
        self._log(now, "vote_batch", first, batch.manager,
                  {"approve": approved, "reject": rejected, "signature": batch.signature})

    def expire(self, proposal_id: str, now: int) -> Decision | None:
        """Close an open proposal as ``timeout`` whether or not its window opened: for a
        caller that knows no more votes can come (the in-process quorum, once every manager
        had its turn). None if it is not open."""
        now = as_time(now)
        ballot = self.open.get(proposal_id) if isinstance(proposal_id, str) else None
        if ballot is None:
            return None
        status = ballot.status(now)
        return self._settle(ballot, now, TIMEOUT if status == PENDING else status)

    def withdraw(self, proposal_id: str, now: int, reason: str) -> bool:
        """Stop tallying an open proposal another coordinator settled (no decision here; audited)."""
        now = as_time(now)
        if not isinstance(proposal_id, str):
            return False
        if self.open.pop(proposal_id, None) is None:
            return False
        self._log(now, "withdrawn", proposal_id, self.name, {"reason": reason})
        return True

    def tick(self, now: int) -> list[Decision]:
        """Close proposals whose deadline passed (status ``timeout``: nothing is applied).

        A ballot's window opens only when ``f + 1`` managers have voted on it (see
        :class:`~coinswarm.quorum.tally.Ballot`); until then it stays open, however long."""
        now = as_time(now)
        closed = []
        for ballot in list(self.open.values()):
            deadline = ballot.deadline
            if deadline is not None and now > deadline:
                decision = self._settle(ballot, now)
                if decision is not None:
                    closed.append(decision)
        return closed

    def forget(self, before: int) -> int:
        """Drop decisions made before ``before`` and audit events older than it (bounded memory
        for a long-running node; the store keeps the durable record). Returns decisions dropped."""
        before = as_time(before, "before")
        old = []
        for pid, decision in self.decided.items():  # insertion order = decision order
            if (decision.decided_at or 0) >= before:
                break
            old.append(pid)
        for pid in old:
            del self.decided[pid]
        keep = 0
        while keep < len(self.audit) and self.audit[keep].time < before:
            keep += 1
        if keep:
            del self.audit[:keep]
        return len(old)

    def _settle(self, ballot: Ballot, now: int, status: str | None = None) -> Decision | None:
        """Close ``ballot`` if it is decided or timed out (pass its ``status`` if known)."""
        status = status or ballot.status(now)
        if status == PENDING:
            return None
        decision = ballot.decide(now, status)
        proposal = ballot.proposal
        del self.open[proposal.id]
        self.decided[proposal.id] = decision
        for manager, reason in decision.discarded:
            self._log(now, "discard", proposal.id, manager, {"reason": reason})
        kind = "timeout" if decision.status == TIMEOUT else "decision"
        self._log(now, kind, proposal.id, self.name, {"status": decision.status, "approvals": decision.approvals,
                                                      "rejections": decision.rejections})
        return decision

    def _junk(self, now: int, junk: object, problem: str) -> None:
        """Audit something that reached the vote intake but is no well-formed vote."""
        actor = getattr(junk, "manager", "")
        actor = actor[:64] if isinstance(actor, str) else brief(actor)
        self._log(now, "discard", "", actor, {"reason": f"malformed vote: {problem}"})

    def _log(self, now: int, kind: str, proposal_id: str, actor: str, detail: dict) -> None:
        self.audit.append(new_named_tuple(AuditEvent, (now, kind, proposal_id, actor, detail)))


def check_quorum(config: QuorumConfig, keys: dict[str, bytes]) -> None:
    """:class:`ConfigError` unless ``config`` is a :class:`QuorumConfig` and ``keys`` a dict
    of manager name → non-empty bytes."""
    if not isinstance(config, QuorumConfig):
        raise ConfigError(f"config must be a QuorumConfig, got {type(config).__name__}")
    if not isinstance(keys, dict):
        raise ConfigError(f"keys must be a dict of manager name → bytes key, got {type(keys).__name__}")
    for name, key in keys.items():
        if not (isinstance(name, str) and isinstance(key, bytes) and key):
            raise ConfigError(f"keys: {brief(name)} must map a manager name to non-empty bytes, "
                              f"got {type(key).__name__}")
