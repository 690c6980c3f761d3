"""Quorum-governed memory: proposals, deterministic managers, Byzantine-tolerant tally.

Everything here is pure (the caller passes the time), so the same rules decide inside a
backtest (:class:`LocalQuorum`) and live over NATS (:mod:`coinswarm.memory.nodes`).
"""

from typing import Any

from coinswarm.quorum.coordinator import AuditEvent, Coordinator
from coinswarm.quorum.limits import LIMITS, MAX_DEPTH, KindLimits, as_time
from coinswarm.quorum.manager import Context, Manager, Policy
from coinswarm.quorum.memory import LocalQuorum, MemoryBook, MemoryView, honest
from coinswarm.quorum.patterns import PatternStats, pattern_key
from coinswarm.quorum.proposals import KINDS, Proposal, canonical
from coinswarm.quorum.tally import (
    COMMITTED,
    PENDING,
    REJECTED,
    TIMEOUT,
    Decision,
    QuorumConfig,
    coordinator_for,
    tally,
)
from coinswarm.quorum.votes import ManagerVote, VoteBatch, derive_keys

__all__ = [
    "COMMITTED",
    "KINDS",
    "LIMITS",
    "MAX_DEPTH",
    "PENDING",
    "REJECTED",
    "TIMEOUT",
    "AuditEvent",
    "Context",
    "Coordinator",
    "Decision",
    "KindLimits",
    "LocalQuorum",
    "Manager",
    "ManagerVote",
    "MemoryBook",
    "MemoryView",
    "PatternStats",
    "Policy",
    "Proposal",
    "QuorumConfig",
    "VoteBatch",
    "as_time",
    "canonical",
    "coordinator_for",
    "derive_keys",
    "honest",
    "pattern_key",
    "tally",
]


def __getattr__(name: str) -> Any:
    if name == "Vote":  # the old name of ManagerVote (coinswarm.agents.Vote is the agents' vote)
        from coinswarm.quorum import votes

        return votes.__getattr__("Vote")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
