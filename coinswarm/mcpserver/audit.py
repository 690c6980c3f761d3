"""The MCP audit trail: one row per tool call or resource read — who, what (tool and
arguments), when, and the result (``ok`` or the error) — in the ``mcp_audit`` table of the
ledger database (its own metadata, created if absent; the live and memory Alembic
environments only manage their own ``live_*`` and memory tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from coinswarm.adapters.sql import open_database

MAX_TEXT = 2_000
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000")


class AuditBase(DeclarativeBase):
    """The MCP server's own table (a metadata of its own)."""


class AuditRow(AuditBase):
    """One audited call."""

    __tablename__ = "mcp_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    who: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    arguments: Mapped[str] = mapped_column(Text)
    ok: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[str] = mapped_column(Text)
    millis: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited call as read back."""

    id: int
    time_ms: int
    who: str
    action: str
    arguments: dict
    ok: bool
    result: str
    millis: int


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class AuditLog:
    """Writes and reads ``mcp_audit`` (one short transaction per call)."""

    def __init__(self, url: str) -> None:
        self.engine, self.sessions = open_database(url, "audit", SQLITE_PRAGMAS)
        AuditBase.metadata.create_all(self.engine, checkfirst=True)

    def record(self, time_ms: int, who: str, action: str, arguments: dict, ok: bool, result: str,
               millis: int) -> None:
        """Store one call (arguments as JSON, result text clipped to 2,000 characters)."""
        args = _clip(json.dumps(arguments, sort_keys=True, default=str))
        with self.sessions.begin() as s:
            s.add(AuditRow(time_ms=int(time_ms), who=_clip(who)[:200], action=action[:64], arguments=args,
                           ok=bool(ok), result=_clip(result), millis=int(millis)))

    def entries(self, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` calls (of one action if given), newest first."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(int(limit))
        if action is not None:
            query = query.where(AuditRow.action == action)
        with self.sessions() as s:
            return [AuditEntry(r.id, r.time_ms, r.who, r.action, json.loads(r.arguments), r.ok, r.result, r.millis)
                    for r in s.scalars(query)]

    def close(self) -> None:
        """Dispose of the pool."""
        self.engine.dispose()
