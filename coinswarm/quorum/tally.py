"""Counting votes: Byzantine quorums, discarded votes, deterministic coordinators.

With ``n`` managers of which up to ``f`` may be Byzantine (``n ≥ 3f + 1``), a decision
needs ``2f + 1`` matching valid votes from distinct managers; two such quorums always
share an honest manager, so two conflicting decisions cannot both form. The seed's
unanimous mode (``n`` of ``n``, ``f = 0``) is :meth:`QuorumConfig.unanimous`.

A vote is discarded — and the reason recorded — when it is forged (unknown manager or bad
HMAC), for another proposal (id or digest differ), late (after the deadline), or a
duplicate. A manager that votes both ways is an equivocator: both its votes are dropped.
No quorum before the deadline means *no decision*; nothing is applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from coinswarm.errors import ConfigError
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.votes import Vote

COMMITTED, REJECTED, PENDING, TIMEOUT = "committed", "rejected", "pending", "timeout"


@dataclass(frozen=True)
class QuorumConfig:
    """Managers, tolerated faults and the vote deadline (ms after the proposal's timestamp)."""

    managers: tuple[str, ...] = ("m1", "m2", "m3", "m4")
    f: int = 1
    timeout_ms: int = 5_000
    threshold: int | None = None

    def __post_init__(self) -> None:
        n = len(self.managers)
        if len(set(self.managers)) != n:
            raise ConfigError(f"manager names must be distinct, got {self.managers}")
        if self.f < 0 or n < 3 * self.f + 1:
            raise ConfigError(f"{n} managers cannot tolerate f={self.f} Byzantine ones (need n ≥ 3f + 1)")
        if self.threshold is not None and not (2 * self.f + 1 <= self.threshold <= n):
            raise ConfigError(f"threshold {self.threshold} must lie in [2f + 1, n] = [{2 * self.f + 1}, {n}]")
        if self.timeout_ms <= 0:
            raise ConfigError(f"timeout_ms must be positive, got {self.timeout_ms}")

    @classmethod
    def unanimous(cls, managers: tuple[str, ...] = ("m1", "m2", "m3"), timeout_ms: int = 5_000) -> QuorumConfig:
        """The seed's mode: every manager must agree (3 of 3 by default)."""
        return cls(managers=managers, f=0, timeout_ms=timeout_ms, threshold=len(managers))

    @property
    def quorum(self) -> int:
        """Matching votes needed for a decision."""
        return self.threshold if self.threshold is not None else 2 * self.f + 1


@dataclass(frozen=True)
class Decision:
    """The outcome of a tally, with every discarded vote and why."""

    proposal_id: str
    digest: str
    status: str
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    discarded: tuple[tuple[str, str], ...] = field(default=())
    decided_at: int | None = None
    coordinator: str = ""

    @property
    def final(self) -> bool:
        """Committed or rejected (pending and timeout are not decisions)."""
        return self.status in (COMMITTED, REJECTED)


def coordinator_for(proposal_id: str, managers: tuple[str, ...]) -> str:
    """The manager that coordinates ``proposal_id``: rotates deterministically by hash."""
    index = int.from_bytes(hashlib.sha256(proposal_id.encode()).digest()[:8], "big") % len(managers)
    return managers[index]


def screen_votes(proposal: Proposal, votes: list[Vote], keys: dict[str, bytes], deadline: int
                 ) -> tuple[dict[str, Vote], list[tuple[str, str]]]:
    """Valid votes by manager, and ``(manager, reason)`` for every vote thrown away."""
    valid: dict[str, Vote] = {}
    discarded: list[tuple[str, str]] = []
    equivocators: set[str] = set()
    for vote in votes:
        key = keys.get(vote.manager)
        if key is None or not vote.verify(key):
            discarded.append((vote.manager, "forged: unknown manager or bad signature"))
        elif vote.proposal_id != proposal.id or vote.digest != proposal.digest:
            discarded.append((vote.manager, "for another proposal (id or digest differ)"))
        elif vote.timestamp > deadline:
            discarded.append((vote.manager, f"late: {vote.timestamp} > deadline {deadline}"))
        elif vote.manager in valid:
            if valid[vote.manager].approve == vote.approve:
                discarded.append((vote.manager, "duplicate"))
            else:
                equivocators.add(vote.manager)
                discarded.append((vote.manager, "equivocation: voted both ways"))
        else:
            valid[vote.manager] = vote
    for manager in equivocators:
        del valid[manager]
    return valid, discarded


def tally(proposal: Proposal, votes: list[Vote], config: QuorumConfig, keys: dict[str, bytes], now: int) -> Decision:
    """Decide ``proposal`` from ``votes`` as of ``now`` (the caller's clock).

    Returns ``committed`` / ``rejected`` once a quorum of matching valid votes exists,
    ``timeout`` when the deadline passed without one, otherwise ``pending``.
    """
    deadline = proposal.timestamp + config.timeout_ms
    valid, discarded = screen_votes(proposal, votes, {m: keys[m] for m in config.managers if m in keys}, deadline)
    approvals = tuple(sorted(m for m, v in valid.items() if v.approve))
    rejections = tuple(sorted(m for m, v in valid.items() if not v.approve))
    if len(approvals) >= config.quorum:
        status = COMMITTED
    elif len(rejections) >= config.quorum:
        status = REJECTED
    elif now > deadline:
        status = TIMEOUT
    else:
        status = PENDING
    return Decision(proposal.id, proposal.digest, status, approvals, rejections, tuple(discarded),
                    now if status != PENDING else None, coordinator_for(proposal.id, config.managers))
