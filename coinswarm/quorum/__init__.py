"""Quorum-governed memory: proposals, deterministic managers, Byzantine-tolerant tally.

Everything here is pure (the caller passes the time), so the same rules decide inside a
backtest (:class:`LocalQuorum`) and live over NATS (:mod:`coinswarm.memory.nodes`).
"""

from coinswarm.quorum.coordinator import AuditEvent, Coordinator
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
from coinswarm.quorum.votes import Vote, VoteBatch, derive_keys

__all__ = [
    "COMMITTED",
    "KINDS",
    "PENDING",
    "REJECTED",
    "TIMEOUT",
    "AuditEvent",
    "Context",
    "Coordinator",
    "Decision",
    "LocalQuorum",
    "Manager",
    "MemoryBook",
    "MemoryView",
    "PatternStats",
    "Policy",
    "Proposal",
    "QuorumConfig",
    "Vote",
    "VoteBatch",
    "canonical",
    "coordinator_for",
    "derive_keys",
    "honest",
    "pattern_key",
    "tally",
]
