"""SQLAlchemy 2 models of coinswarm's memory (SQLite embedded, PostgreSQL in production).

The schema is created by Alembic migrations (``coinswarm/memory/migrations``), never by
``create_all`` outside tests; a test checks the migrated schema equals these models.
ORM classes end in ``Row`` where a core name would clash (``AuditRow`` is the stored
``coinswarm.quorum.AuditEvent``). ``Trade`` has no writer yet: the live runner will fill it.
"""

from __future__ import annotations

import warnings
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base; every table lives in one metadata."""


class Trade(Base):
    """A fill, with the time of the data that triggered it."""

    __tablename__ = "trades"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[int] = mapped_column(BigInteger, index=True)
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    strategy: Mapped[str] = mapped_column(String(64))
    data_time: Mapped[int] = mapped_column(BigInteger)


class Pattern(Base):
    """Statistics of one (regime, signal bucket); ``enabled`` changes only through a decision."""

    __tablename__ = "patterns"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    mean: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
    win_rate: Mapped[float] = mapped_column(Float)
    p05: Mapped[float] = mapped_column(Float)
    p95: Mapped[float] = mapped_column(Float)
    mean_slippage_bps: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_update: Mapped[int] = mapped_column(BigInteger)


class Episode(Base):
    """A remembered market state (embedding), the action taken and its outcome."""

    __tablename__ = "episodes"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    data_time: Mapped[int] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[float] = mapped_column(Float)
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class ProposalRow(Base):
    """Every proposal received (the canonical body is kept to replay memory)."""

    __tablename__ = "proposals"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    submitter: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    data_time: Mapped[int] = mapped_column(BigInteger, index=True)
    digest: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)


class QuorumVote(Base):
    """Every vote seen, valid or discarded (with why)."""

    __tablename__ = "quorum_votes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[str] = mapped_column(String(128), index=True)
    manager: Mapped[str] = mapped_column(String(64))
    approve: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list] = mapped_column(JSON)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(64))


class DecisionRow(Base):
    """The one decision per proposal; its primary key makes applying a commit idempotent."""

    __tablename__ = "decisions"
    proposal_id: Mapped[str] = mapped_column(String(128), ForeignKey("proposals.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    approvals: Mapped[list] = mapped_column(JSON)
    rejections: Mapped[list] = mapped_column(JSON)
    decided_at: Mapped[int] = mapped_column(BigInteger)
    coordinator: Mapped[str] = mapped_column(String(64))


class AuditRow(Base):
    """The audit trail: proposals, votes, discards, decisions, applications (one row per
    :class:`coinswarm.quorum.AuditEvent`)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    proposal_id: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON)


class PlannerWeights(Base):
    """Committed planner weights, newest last."""

    __tablename__ = "planner_weights"
    proposal_id: Mapped[str] = mapped_column(String(128), ForeignKey("proposals.id"), primary_key=True)
    data_time: Mapped[int] = mapped_column(BigInteger)
    weights: Mapped[dict] = mapped_column(JSON)


Index("ix_audit_proposal", AuditRow.proposal_id)


def __getattr__(name: str) -> Any:
    if name == "AuditEvent":  # the old name, which the quorum's AuditEvent (one audit record) also has
        warnings.warn("coinswarm.memory.models.AuditEvent is deprecated: use AuditRow", DeprecationWarning,
                      stacklevel=2)
        return AuditRow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
