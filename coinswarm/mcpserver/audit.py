"""The MCP audit trail: one row per tool call — who, what (tool and arguments), when, and the
result (``ok`` or the error) — in the ``mcp_audit`` table of the ledger database (its own
metadata, created if absent; the live and memory Alembic environments only manage their own
``live_*`` and memory tables).

Calls that change something (orders, proposals) are written before the tool answers
(``durable=True``). Read-only calls are queued for a writer thread that stores them in
batches every ``FLUSH_S`` seconds, so a research call does not wait for a database commit (nor
wake a thread); :meth:`AuditLog.flush` (called by every read and by :meth:`AuditLog.close`)
stores the queue at once.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from coinswarm.adapters.sql import open_database

MAX_TEXT = 2_000
FLUSH_S = 0.2  # the writer stores queued rows this often
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
        self.pending: deque[dict] = deque()
        self.failed = 0  # rows the writer could not store (counted, never silently lost)
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.writer = threading.Thread(target=self._write_forever, name="mcp-audit", daemon=True)
        self.writer.start()

    def record(self, time_ms: int, who: str, action: str, arguments: dict, ok: bool, result: str,
               millis: int, *, durable: bool = False) -> None:
        """Store one call (arguments as JSON, result text clipped to 2,000 characters): now when
        ``durable``, else in the writer thread's next batch (at most ``FLUSH_S`` later)."""
        row = {"time_ms": int(time_ms), "who": _clip(who)[:200], "action": action[:64], "ok": bool(ok),
               "arguments": _clip(json.dumps(arguments, sort_keys=True, default=str)), "result": _clip(result),
               "millis": int(millis)}
        if durable:
            with self.lock:
                self._store([row])
        else:
            self.pending.append(row)  # no wake-up: the writer polls, so a call never waits for it

    def _store(self, rows: list[dict]) -> None:
        with self.engine.begin() as connection:
            connection.execute(AuditRow.__table__.insert(), rows)

    def flush(self) -> None:
        """Store every queued row now (one transaction)."""
        with self.lock:
            rows = []
            while self.pending:
                rows.append(self.pending.popleft())
            if rows:
                try:
                    self._store(rows)
                except Exception:  # a failing db must not kill the writer; the count says so
                    self.failed += len(rows)

    def _write_forever(self) -> None:
        while not self.stopping.wait(FLUSH_S):
            self.flush()
        self.flush()

    def entries(self, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` calls (of one action if given), newest first."""
        self.flush()
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(int(limit))
        if action is not None:
            query = query.where(AuditRow.action == action)
        with self.sessions() as s:
            return [AuditEntry(r.id, r.time_ms, r.who, r.action, json.loads(r.arguments), r.ok, r.result, r.millis)
                    for r in s.scalars(query)]

    def close(self) -> None:
        """Store what is queued, stop the writer, dispose of the pool."""
        self.stopping.set()
        self.writer.join(timeout=30)
        self.flush()
        self.engine.dispose()
