"""Which database errors DbGuard retries, and its pause/resume bookkeeping (no server needed:
a SQLite ledger whose file is locked by another connection)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from coinswarm.live.dbretry import DbGuard, LedgerUnavailableError, db_call, is_unavailable


class PgError(Exception):
    def __init__(self, sqlstate):
        super().__init__("server closed the connection unexpectedly")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("error", "transient"), [
    (sa_exc.OperationalError("select 1", {}, sqlite3.OperationalError("database is locked")), True),
    (sa_exc.OperationalError("select 1", {}, sqlite3.OperationalError("no such table: live_orders")), False),
    (sa_exc.IntegrityError("insert", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), False),
    (sa_exc.OperationalError("select 1", {}, PgError("08006")), True),
    (sa_exc.OperationalError("select 1", {}, PgError("57P01")), True),
    (sa_exc.ProgrammingError("select 1", {}, PgError("42P01")), False),
    (sa_exc.DisconnectionError("gone"), True),
    (ValueError("x"), False),
])
def test_what_counts_as_unavailable(error, transient):
    assert is_unavailable(error) is transient


def test_locked_sqlite_pauses_then_resumes(tmp_path):
    from coinswarm.live.ledger import Ledger

    path = tmp_path / "l.db"
    ledger = Ledger(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    ledger.migrate()
    blocker = sqlite3.connect(path, timeout=0.05)
    blocker.execute("BEGIN EXCLUSIVE")
    events = []

    async def scenario():
        guard = DbGuard(backoff_s=0.02, max_wait_s=30, notify=lambda n, f: events.append(n))
        task = asyncio.create_task(guard.call(ledger.deposit, "USDT", 5.0))
        await asyncio.sleep(0.3)
        assert guard.paused and not task.done()
        blocker.rollback()
        await asyncio.wait_for(task, 10)
        return guard

    try:
        with pytest.raises(LedgerUnavailableError, match="deposit"):
            db_call(ledger.deposit, "USDT", 1.0)
        guard = asyncio.run(scenario())
        assert ledger.cash() == {"USDT": 5.0} and guard.pauses == 1 and events == ["db_pause", "db_resume"]
    finally:
        blocker.close()
        ledger.close()
