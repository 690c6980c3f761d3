"""The ledger with its PostgreSQL server stopped for 10 s: writes fail with the typed
LedgerUnavailableError and leave nothing half-written; DbGuard pauses the writer and records
the fill once the server is back, exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest

from coinswarm.adapters.servers import free_port, start_postgres
from coinswarm.live.dbretry import DbGuard, LedgerUnavailableError, db_call
from coinswarm.live.ledger import Ledger
from coinswarm.live.protocols import Fill, OrderIntent, OrderStatus, Side, client_order_id
from tests.helpers.live import fast_stop

pytestmark = pytest.mark.integration
T0 = 1_709_251_200_000


@pytest.mark.timeout(240)
def test_postgres_down_ten_seconds(server_dir):
    port = free_port()
    server = start_postgres(server_dir, port)
    ledger = Ledger(server.url, pool_pre_ping=True, connect_args={"connect_timeout": 3})
    ledger.migrate()
    intent = OrderIntent(client_order_id("s", "BTC/USDT", T0, 0), "BTC/USDT", Side.BUY, 0.5, T0, "s")
    fill = Fill("t1", intent.client_order_id, "BTC/USDT", Side.BUY, 0.5, 60000.0, 3.0, "USDT", T0 + 1)
    events: list[tuple[str, dict]] = []
    try:
        ledger.deposit("USDT", 100_000.0)
        assert ledger.record_new(intent, T0)
        ledger.transition(intent.client_order_id, OrderStatus.SENT, T0)
        fast_stop(server)

        with pytest.raises(LedgerUnavailableError, match="unavailable during apply_fill"):
            db_call(ledger.apply_fill, fill, T0 + 2)
        with pytest.raises(LedgerUnavailableError):
            db_call(ledger.positions)

        async def scenario():
            guard = DbGuard(max_wait_s=120, backoff_s=0.1, max_backoff_s=0.5,
                            notify=lambda name, fields: events.append((name, dict(fields))))
            writer = asyncio.create_task(guard.call(ledger.apply_fill, fill, T0 + 2))
            down_since = time.monotonic()
            while time.monotonic() - down_since < 10:  # down for 10 s: the writer waits
                await asyncio.sleep(0.25)
                assert not writer.done() and guard.paused
            restarted = await asyncio.to_thread(start_postgres, server_dir, port)
            applied = await asyncio.wait_for(writer, 60)
            return restarted, applied, guard

        server, applied, guard = asyncio.run(scenario())
        assert applied is True and not guard.paused and guard.pauses == 1 and guard.paused_s >= 10
        assert [name for name, _ in events] == ["db_pause", "db_resume"]
        assert events[1][1]["attempts"] > 2
        # recorded exactly once, with its order, position, cash and outbox message
        assert ledger.fills() == [fill]
        assert ledger.apply_fill(fill, T0 + 3) is False
        order = ledger.order(intent.client_order_id)
        assert order.status is OrderStatus.FILLED and order.filled_qty == 0.5
        position = ledger.positions()["BTC/USDT"]
        assert position.qty == 0.5 and position.cost == 0.5 * 60000.0 + 3.0
        assert ledger.cash()["USDT"] == 100_000.0 - 30_003.0
        assert [m.msg_id for _, m in ledger.pending_outbox()] == [f"action:{intent.client_order_id}", "trade:t1"]
    finally:
        ledger.close()
        server.stop()


@pytest.mark.timeout(120)
def test_guard_gives_up_after_max_wait_and_passes_other_errors(tmp_path):
    from coinswarm.live.ledger import LedgerError

    port = free_port()  # nothing listens: connection refused at once
    ledger = Ledger(f"postgresql+psycopg://cs:dummy-pg-pass-3@127.0.0.1:{port}/x", connect_args={"connect_timeout": 2})

    async def scenario():
        guard = DbGuard(max_wait_s=0.5, backoff_s=0.05)
        with pytest.raises(LedgerUnavailableError, match="gave up") as gave_up:
            await guard.call(ledger.positions)
        assert "dummy-pg-pass-3" not in str(gave_up.value)
        sqlite = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
        sqlite.migrate()
        with pytest.raises(LedgerError):  # a refused write is not retried
            await guard.call(sqlite.transition, "nope", OrderStatus.SENT, T0)
        sqlite.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        ledger.close()
