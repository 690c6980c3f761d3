"""The live ledger on a real PostgreSQL server: migrations (own version table, beside the memory
store's, concurrent start-up), the write-ahead order life, idempotent fills under concurrency,
exact float round trips, the outbox, the kill switch, the report and a restart."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from coinswarm.live.killswitch import KillState
from coinswarm.live.ledger import HEAD_REVISION, VERSION_TABLE, Ledger, LedgerError, LiveBase, include_object
from coinswarm.live.orders import OrderStateError
from coinswarm.live.protocols import Fill, OrderIntent, OrderStatus, Side, client_order_id

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def intent(seq: int = 0) -> OrderIntent:
    return OrderIntent(client_order_id("s", "BTC/USDT", T0, seq), "BTC/USDT", Side.BUY, 0.3, T0, "s")


def fill(fill_id: str, order: OrderIntent, qty: float, price: float) -> Fill:
    return Fill(fill_id, order.client_order_id, order.symbol, order.side, qty, price, 0.1, "USDT", T0)


def test_migrations_on_postgres_match_the_models_beside_the_memory_store(postgres_url):
    from coinswarm.memory import Store

    ledgers = [Ledger(postgres_url) for _ in range(3)]
    errors: list[BaseException] = []

    def migrate(ledger: Ledger) -> None:
        try:
            ledger.migrate()
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    store = Store(postgres_url)
    store.migrate()
    with ledgers[0].engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE,
                                                              "include_object": include_object})
        assert compare_metadata(context, LiveBase.metadata) == []
        assert context.get_current_revision() == HEAD_REVISION
    tables = set(inspect(ledgers[0].engine).get_table_names())
    assert {VERSION_TABLE, "alembic_version", "trades", "live_orders", "live_fills", "live_outbox"} <= tables
    store.close()
    for ledger in ledgers:
        ledger.close()


def test_the_order_life_fills_outbox_and_kill_switch_survive_a_restart(postgres_url):
    ledger = Ledger(postgres_url)
    ledger.migrate()
    ledger.claim("live", "binance-sandbox")
    order = intent()
    ledger.deposit("USDT", 10_000.0)
    assert ledger.record_new(order, T0) and not ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0 + 1)
    ledger.transition(order.client_order_id, OrderStatus.UNKNOWN, T0 + 2, reason="timeout")
    with pytest.raises(OrderStateError):
        ledger.transition(order.client_order_id, OrderStatus.SENT, T0 + 3)
    price = 0.1 + 0.2  # not exactly representable: must come back bit for bit (double precision)
    assert ledger.apply_fill(fill("a", order, 0.1, price), T0 + 4)
    assert ledger.apply_fill(fill("b", order, 0.2, 40_000.0), T0 + 5)
    assert not ledger.apply_fill(fill("a", order, 0.1, price), T0 + 6)
    ledger.save_kill_state(KillState(True, "drawdown", "equity 20% below peak", T0, 12_000.0, 19675, 11_000.0), T0)
    ledger.record_bar("BTC/USDT", T0, T0, latency_us=250.0)
    before = ledger.report()
    ledger.close()

    again = Ledger(postgres_url)
    again.migrate()
    with pytest.raises(LedgerError, match="needs its own database"):
        again.claim("paper", "paper")
    assert again.report() == before
    stored = again.order(order.client_order_id)
    assert stored.status is OrderStatus.FILLED and stored.filled_qty == pytest.approx(0.3)
    assert [f.price for f in again.fills()][0] == price
    assert again.kill_state().reason == "drawdown" and before["halted"] is True
    assert [m.msg_id for _, m in again.pending_outbox()] == [f"action:{order.client_order_id}", "trade:a", "trade:b"]
    again.close()


def test_the_same_fill_reported_concurrently_is_booked_once(postgres_url):
    ledger = Ledger(postgres_url, pool_size=8)
    ledger.migrate()
    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def report() -> None:
        barrier.wait(10)
        results.append(ledger.apply_fill(fill("dup", order, 0.3, 100.0), T0))

    threads = [threading.Thread(target=report) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == [False] * 5 + [True]
    assert ledger.positions()["BTC/USDT"].qty == pytest.approx(0.3) and len(ledger.fills()) == 1
    assert ledger.order(order.client_order_id).filled_qty == pytest.approx(0.3)
    ledger.close()


def test_a_checkpoint_replayed_after_a_lost_commit_ack_queues_its_heartbeat_once(postgres_url):
    """ON CONFLICT (msg_id) DO NOTHING on PostgreSQL: the same checkpoint transaction twice (its
    commit acknowledgement lost, the guard retried it) books one heartbeat, not an integrity error."""
    from sqlalchemy import func, select

    from coinswarm.live import ledger_bulk as bulk
    from coinswarm.live.ledger import OutboxRow
    from coinswarm.live.outbox import heartbeat_message

    ledger = Ledger(postgres_url)
    ledger.migrate()
    try:
        beat = heartbeat_message("r1", T0, bar_time=T0)
        for _ in range(2):
            bulk.commit_bars(ledger, bars=[("BTC/USDT", T0, 5.0)], events=[beat], now_ms=T0)
        ledger.enqueue([beat], T0)
        with ledger.sessions() as s:
            count = s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.msg_id == beat.msg_id))
        assert count == 1 and ledger.bars_processed() == 1
    finally:
        ledger.close()
