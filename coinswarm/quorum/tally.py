"""Counting votes: Byzantine quorums, discarded votes, deterministic coordinators.

With ``n`` managers of which up to ``f`` may be Byzantine (``n ≥ 3f + 1``), a decision
needs ``2f + 1`` matching valid votes from distinct managers; two such quorums always
share an honest manager, so two conflicting decisions cannot both form. The seed's
unanimous mode (``n`` of ``n``, ``f = 0``) is :meth:`QuorumConfig.unanimous`.

A vote is discarded — and the reason recorded — when it is forged (unknown manager or bad
HMAC), for another proposal (id or digest differ), late (after the deadline), or a
duplicate. A manager that votes both ways is an equivocator: both its votes are dropped.
No quorum before the deadline means *no decision*; nothing is applied.

The ballot's window is opened by the votes themselves (see :class:`Ballot`): it opens when
``f + 1`` managers have voted — at the latest of their first votes' signed times, and never
before the proposal's timestamp — and closes ``timeout_ms`` later. A proposal that waited
in a durable stream while the managers were down is therefore judged when they return, not
timed out on arrival; a ballot whose window opened but gathered no quorum still times out
``timeout_ms`` after it opened; and until ``f + 1`` managers have voted there is no window to
close: such a ballot stays pending (a quorum that never returns leaves its proposals
undecided, never half-committed). The window depends only on the signed votes, so every
coordinator and every verifier holding the same votes computes the same deadline, whatever
order they arrived in.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from coinswarm.errors import ConfigError
from coinswarm.quorum.limits import brief, name_problem
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.votes import ManagerVote, VoteBatch

COMMITTED, REJECTED, PENDING, TIMEOUT = "committed", "rejected", "pending", "timeout"
MAX_TIMEOUT_MS = 365 * 86_400_000
NO_TIME = 1 << 63  # above every time (they are below 2**53)
STALE = -1  # a ballot's deadline not computed since its last vote (deadlines are positive)


@dataclass(frozen=True)
class QuorumConfig:
    """Managers, tolerated faults and the ballot's window: ``timeout_ms`` after it opens (when
    ``f + 1`` managers have voted, see :class:`Ballot`)."""

    managers: tuple[str, ...] = ("m1", "m2", "m3", "m4")
    f: int = 1
    timeout_ms: int = 5_000
    threshold: int | None = None

    def __post_init__(self) -> None:
        managers = self.managers
        if not isinstance(managers, list | tuple):
            raise ConfigError(f"QuorumConfig.managers must be a tuple of manager names, got {brief(managers)}")
        for m in managers:
            problem = name_problem(m)
            if problem:
                raise ConfigError(f"QuorumConfig.managers: name {brief(m)} {problem}")
        object.__setattr__(self, "managers", tuple(managers))
        n = len(managers)
        if len(set(managers)) != n:
            raise ConfigError(f"manager names must be distinct, got {self.managers}")
        for name in ("f", "timeout_ms", "threshold"):
            value = getattr(self, name)
            if not (type(value) is int or (name == "threshold" and value is None)):
                raise ConfigError(f"QuorumConfig.{name} must be an integer{' or None' if name == 'threshold' else ''}"
                                  f", got {brief(value)} ({type(value).__name__})")
        if self.f < 0 or n < 3 * self.f + 1:
            raise ConfigError(f"{n} managers cannot tolerate f={brief(self.f)} Byzantine ones (need n ≥ 3f + 1)")
        if self.threshold is not None and not (2 * self.f + 1 <= self.threshold <= n):
            raise ConfigError(f"threshold {brief(self.threshold)} must lie in [2f + 1, n] = [{2 * self.f + 1}, {n}]")
        if not 0 < self.timeout_ms <= MAX_TIMEOUT_MS:
            raise ConfigError(f"timeout_ms must lie in [1, {MAX_TIMEOUT_MS}] (one year), got {brief(self.timeout_ms)}")

    @classmethod
    def unanimous(cls, managers: tuple[str, ...] = ("m1", "m2", "m3"), timeout_ms: int = 5_000) -> QuorumConfig:
        """The seed's mode: every manager must agree (3 of 3 by default)."""
        return cls(managers=managers, f=0, timeout_ms=timeout_ms, threshold=len(managers))

    @property
    def quorum(self) -> int:
        """Matching votes needed for a decision."""
        return self.threshold if self.threshold is not None else 2 * self.f + 1


class Decision(NamedTuple):
    """The outcome of a tally, with every discarded vote and why (an immutable named tuple)."""

    proposal_id: str
    digest: str
    status: str
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    discarded: tuple[tuple[str, str], ...] = ()
    decided_at: int | None = None
    coordinator: str = ""

    @property
    def final(self) -> bool:
        """Committed or rejected (pending and timeout are not decisions)."""
        return self.status in (COMMITTED, REJECTED)


# builds a named tuple from a tuple of its fields with ``tuple.__new__`` directly: the named
# tuple's own ``__new__`` is a Python-level wrapper around it (hot: decisions, audit events)
new_named_tuple = tuple.__new__


def coordinator_for(proposal_id: str, managers: tuple[str, ...]) -> str:
    """The manager that coordinates ``proposal_id``: rotates deterministically by a CRC-32 of
    the id (cheap enough to need no cache; sequential ids spread evenly over the managers)."""
    return managers[zlib.crc32(proposal_id.encode()) % len(managers)]


FORGED = "forged: unknown manager or bad signature"


def signed_by_member(signed: ManagerVote | VoteBatch, config: QuorumConfig, keys: dict[str, bytes]) -> bool:
    """Whether ``signed`` comes from one of the quorum's managers, under that manager's key."""
    key = keys.get(signed.manager) if signed.manager in config.managers else None
    return key is not None and signed.verify(key)


class Ballot:
    """Votes on one proposal, screened one at a time (each signature is checked once).

    **The window.** What counts of a manager is its *first* signed vote on the proposal (the
    earliest ``timestamp`` among its votes for this id and digest, whatever the verdict). Once
    ``f + 1`` managers have voted, the window opens at the ``(f + 1)``-th earliest of those
    times — no earlier than some honest manager's first vote, since at most ``f`` of them are
    not — or at the proposal's timestamp if that is later, and the deadline is ``timeout_ms``
    after it (:attr:`deadline`; None until then). A vote signed after the deadline is late. So:

    * a proposal read from a stream long after it was published (the managers were down) is
      judged when they vote, not timed out on arrival;
    * a ballot with votes but no quorum times out ``timeout_ms`` after it opened;
    * up to ``f`` Byzantine managers can neither shut the window early (by back-dating their
      votes: ``f`` of them cannot make the ``(f + 1)``-th time) nor hold it open past the
      ``(f + 1)``-th honest vote (future-dated votes only ever count among the later ones);
    * the window never closes before ``proposal.timestamp + timeout_ms`` (the old, fixed
      deadline): every vote set that deadline accepted is accepted here too.

    The deadline is a function of the set of votes, not of their order, and so is the status:
    while the votes held lie within ``timeout_ms`` of one another (or of the proposal's
    timestamp) none can be late whatever the window, and they are counted as they come (the
    usual case); otherwise every vote held is screened again against the deadline they make
    together. Every coordinator and every verifier of a commit's proof reaches the same status
    from the same votes.
    """

    __slots__ = ("proposal", "config", "keys", "coordinator", "quorum", "valid", "approvals", "discarded",
                 "equivocators", "refused", "cast", "earliest", "latest", "window")

    def __init__(self, proposal: Proposal, config: QuorumConfig, keys: dict[str, bytes],
                 coordinator: str | None = None) -> None:
        self.proposal, self.config, self.keys, self.coordinator = proposal, config, keys, coordinator
        self.quorum = config.quorum  # matching votes needed (read on every vote)
        self.valid: dict[str, bool] = {}  # manager -> approve
        self.approvals = 0  # how many of ``valid`` approve
        self.discarded: list[tuple[str, str]] = []
        self.refused: tuple[tuple[str, str], ...] = ()  # forged or for another proposal: never re-screened
        self.equivocators: tuple[str, ...] = ()
        self.cast: list[tuple[str, bool, int]] = []  # every vote on this proposal: (manager, approve, time)
        self.earliest, self.latest = NO_TIME, -NO_TIME  # the earliest and latest time in ``cast``
        self.window: int | None = STALE  # the deadline, computed when asked for (STALE: not yet)

    @property
    def deadline(self) -> int | None:
        """When the window closes: ``timeout_ms`` after the ``(f + 1)``-th earliest first vote of
        a manager (or after the proposal's timestamp, if that is later); None until ``f + 1``
        managers have voted."""
        window = self.window
        if window == STALE:
            first: dict[str, int] = {}
            for manager, _, when in self.cast:
                if when < first.get(manager, NO_TIME):
                    first[manager] = when
            f = self.config.f
            if len(first) <= f:
                window = None
            else:
                anchor = sorted(first.values())[f]
                window = max(anchor, self.proposal.timestamp) + self.config.timeout_ms
            self.window = window
        return window

    def add(self, vote: ManagerVote) -> None:
        """Screen one signed vote: keep it, or record why it was thrown away."""
        if not signed_by_member(vote, self.config, self.keys):
            self._refuse(vote.manager, FORGED)
            return
        self.add_verified(vote.manager, vote.proposal_id, vote.digest, vote.approve, vote.timestamp)

    def add_entry(self, batch: VoteBatch, index: int) -> None:
        """Screen entry ``index`` of a signed batch (the batch's signature is checked once)."""
        if not signed_by_member(batch, self.config, self.keys):
            self._refuse(batch.manager, FORGED)
            return
        proposal_id, digest, approve, _ = batch.entries[index]
        self.add_verified(batch.manager, proposal_id, digest, approve, batch.timestamp)

    def _refuse(self, manager: str, reason: str) -> None:
        self.refused += ((manager, reason),)
        self.discarded.append((manager, reason))

    def add_verified(self, manager: str, proposal_id: str, digest: str, approve: bool, timestamp: int) -> None:
        """Screen a verdict whose signature the caller already checked (one entry of a
        :class:`~coinswarm.quorum.votes.VoteBatch`): the same rules as :meth:`add`."""
        proposal = self.proposal
        if proposal_id != proposal.id or digest != proposal.digest:
            self._refuse(manager, "for another proposal (id or digest differ)")
            return
        self.cast.append((manager, approve, timestamp))
        self.window = STALE
        earliest, latest = self.earliest, self.latest
        if timestamp < earliest:
            earliest = self.earliest = timestamp
        if timestamp > latest:
            latest = self.latest = timestamp
        timeout = self.config.timeout_ms
        # all within timeout_ms of the earliest (the window opens no earlier) or of the proposal's
        # timestamp (nor before that), no vote can be late whatever the window: the usual case
        if latest - earliest > timeout and latest > proposal.timestamp + timeout:
            self._recount()  # the window matters: screen every vote held against it
            return
        if manager not in self.valid and manager not in self.equivocators:  # the usual case
            self.valid[manager] = approve
            self.approvals += approve
            return
        self._screen(manager, approve, timestamp, None)

    def _recount(self) -> None:
        """Screen every vote held again, against the deadline they make together (so the
        outcome is a function of the set of votes, not of their order)."""
        deadline = self.deadline
        self.valid, self.approvals, self.equivocators = {}, 0, ()
        self.discarded = list(self.refused)
        for manager, approve, when in self.cast:
            self._screen(manager, approve, when, deadline)

    def _screen(self, manager: str, approve: bool, timestamp: int, deadline: int | None) -> None:
        reason = self._problem(manager, approve, timestamp, deadline)
        if reason is None:
            self.valid[manager] = approve
            self.approvals += approve
        else:
            self.discarded.append((manager, reason))

    def _problem(self, manager: str, approve: bool, timestamp: int, deadline: int | None) -> str | None:
        if deadline is not None and timestamp > deadline:
            return f"late: {timestamp} > deadline {deadline}"
        if manager in self.equivocators:
            return "equivocation: voted both ways"
        previous = self.valid.get(manager)
        if previous is None:
            return None
        if previous == approve:
            return "duplicate"
        del self.valid[manager]
        self.approvals -= previous
        self.equivocators += (manager,)
        return "equivocation: voted both ways"

    def status(self, now: int) -> str:
        """``committed`` / ``rejected`` on a quorum, ``timeout`` past the deadline (once the
        window opened), else ``pending``."""
        quorum = self.quorum
        if self.approvals >= quorum:
            return COMMITTED
        if len(self.valid) - self.approvals >= quorum:
            return REJECTED
        if now <= self.earliest + self.config.timeout_ms or now <= self.proposal.timestamp + self.config.timeout_ms:
            return PENDING  # no window can have closed yet (no votes: earliest is NO_TIME)
        deadline = self.deadline
        return TIMEOUT if deadline is not None and now > deadline else PENDING

    def decide(self, now: int, status: str | None = None) -> Decision:
        """The :class:`Decision` as of ``now`` (see :meth:`status`; pass ``status`` if known)."""
        status = status or self.status(now)
        valid = self.valid
        if self.approvals == len(valid):  # unanimous so far (the common case): no split needed
            approvals, rejections = tuple(sorted(valid)), ()
        else:
            approvals = tuple(sorted([m for m, approve in valid.items() if approve]))
            rejections = tuple(sorted([m for m, approve in valid.items() if not approve]))
        proposal = self.proposal
        coordinator = self.coordinator or coordinator_for(proposal.id, self.config.managers)
        return new_named_tuple(Decision, (proposal.id, proposal.digest, status, approvals, rejections,
                                          tuple(self.discarded), now if status != PENDING else None, coordinator))


def tally(proposal: Proposal, votes: list[ManagerVote], config: QuorumConfig, keys: dict[str, bytes], now: int,
          entries: Sequence[tuple[VoteBatch, int]] = ()) -> Decision:
    """Decide ``proposal`` from ``votes`` and batch ``entries`` (``(batch, index)`` pairs)
    as of ``now`` (the caller's clock).

    Returns ``committed`` / ``rejected`` once a quorum of matching valid votes exists,
    ``timeout`` when the deadline passed without one, otherwise ``pending``.
    """
    return screened(proposal, votes, config, keys, entries).decide(now)


def screened(proposal: Proposal, votes: list[ManagerVote], config: QuorumConfig, keys: dict[str, bytes],
             entries: Sequence[tuple[VoteBatch, int]] = ()) -> Ballot:
    """A :class:`Ballot` holding ``votes`` and batch ``entries``, each screened (see :func:`tally`)."""
    ballot = Ballot(proposal, config, keys)
    for batch, index in entries:
        ballot.add_entry(batch, index)
    for vote in votes:
        ballot.add(vote)
    return ballot
