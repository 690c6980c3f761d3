"""The live ledger on embedded SQLite: migrations, write-ahead rows, idempotent fills, one
transaction per change, mode separation, bars, latency, equity, kill-switch state, report."""

from __future__ import annotations

import math

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from coinswarm.errors import CoinswarmError
from coinswarm.live.killswitch import KillState
from coinswarm.live.ledger import (
    HEAD_REVISION,
    VERSION_TABLE,
    Ledger,
    LedgerError,
    LiveBase,
    OutboxRow,
    include_object,
    split_symbol,
)
from coinswarm.live.orders import OrderStateError
from coinswarm.live.outbox import OutboxMessage
from coinswarm.live.protocols import Fill, OrderIntent, OrderStatus, Side, client_order_id

T0 = 1_700_000_000_000
SYMBOL = "BTC/USDT"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'live.db'}"


@pytest.fixture
def ledger(url):
    ledger = Ledger(url)
    ledger.migrate()
    yield ledger
    ledger.close()


def intent(seq=0, side=Side.BUY, qty=1.0, symbol=SYMBOL) -> OrderIntent:
    return OrderIntent(client_order_id("s", symbol, T0, seq), symbol, side, qty, T0, "s")


def fill(fill_id, order, qty, price, fee=0.0, fee_currency="USDT", time_ms=T0) -> Fill:
    return Fill(fill_id, order.client_order_id, order.symbol, order.side, qty, price, fee, fee_currency, time_ms)


def outbox(ledger) -> list[str]:
    with ledger.sessions() as s:
        return list(s.scalars(select(OutboxRow.msg_id).order_by(OutboxRow.id)))


# -- schema ---------------------------------------------------------------------------------
def test_the_migrated_schema_equals_the_models_and_has_its_own_version_table(ledger):
    ledger.migrate()  # idempotent
    with ledger.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE,
                                                              "include_object": include_object})
        assert compare_metadata(context, LiveBase.metadata) == []
        assert context.get_current_revision() == HEAD_REVISION
    tables = set(inspect(ledger.engine).get_table_names())
    assert VERSION_TABLE in tables and "alembic_version" not in tables
    assert all(t.startswith("live_") for t in tables - {VERSION_TABLE})


def test_the_ledger_and_the_memory_store_share_a_database_without_colliding(url):
    from coinswarm.memory import Store

    store, ledger = Store(url), Ledger(url)
    store.migrate()
    ledger.migrate()
    store.migrate()
    tables = set(inspect(ledger.engine).get_table_names())
    assert {"alembic_version", VERSION_TABLE, "trades", "live_orders"} <= tables
    store.close()
    ledger.close()


def test_a_bad_url_is_a_config_error():
    with pytest.raises(CoinswarmError, match="ledger URL"):
        Ledger("paper.db")


# -- orders ---------------------------------------------------------------------------------
def test_record_new_is_write_ahead_idempotent_and_reports_the_action(ledger):
    order = intent()
    assert ledger.record_new(order, T0)
    stored = ledger.order(order.client_order_id)
    assert stored.status is OrderStatus.NEW and stored.sent_ms is None and stored.intent() == order
    assert not ledger.record_new(order, T0 + 1)  # the same bar decided again: nothing new
    assert outbox(ledger) == [f"action:{order.client_order_id}"]
    assert ledger.in_flight() == [stored]


@pytest.mark.parametrize("bad, match", [
    (OrderIntent("", SYMBOL, Side.BUY, 1.0, T0, "s"), "client_order_id"),
    (OrderIntent("x", "BTCUSDT", Side.BUY, 1.0, T0, "s"), "BASE/QUOTE"),
    (OrderIntent("x", SYMBOL, Side.BUY, 0.0, T0, "s"), "qty must be a positive"),
    (OrderIntent("x", SYMBOL, Side.BUY, math.nan, T0, "s"), "qty"),
    (OrderIntent("x", SYMBOL, Side.BUY, 1.0, T0, "s", price=-1.0), "price"),
])
def test_a_bad_intent_is_refused_and_nothing_is_written(ledger, bad, match):
    with pytest.raises(LedgerError, match=match):
        ledger.record_new(bad, T0)
    assert ledger.orders() == [] and outbox(ledger) == []


def test_transitions_stamp_the_send_time_and_keep_the_venue_id(ledger):
    order = intent()
    ledger.record_new(order, T0)
    sent = ledger.transition(order.client_order_id, OrderStatus.SENT, T0 + 5)
    assert sent.sent_ms == T0 + 5
    opened = ledger.transition(order.client_order_id, OrderStatus.OPEN, T0 + 9, venue_order_id="v1")
    assert (opened.status, opened.venue_order_id, opened.updated_ms, opened.sent_ms) == (OrderStatus.OPEN, "v1",
                                                                                         T0 + 9, T0 + 5)
    with pytest.raises(OrderStateError):
        ledger.transition(order.client_order_id, OrderStatus.NEW, T0 + 10)
    with pytest.raises(LedgerError, match="not in the ledger"):
        ledger.transition("nope", OrderStatus.SENT, T0)


# -- fills ----------------------------------------------------------------------------------
def test_fills_move_position_cash_and_order_and_a_repeat_changes_nothing(ledger):
    order = intent(qty=1.0)
    ledger.deposit("USDT", 100_000.0)
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)
    assert ledger.apply_fill(fill("a", order, 0.25, 40_000.0, fee=10.0), T0 + 1)
    assert ledger.order(order.client_order_id).status is OrderStatus.OPEN
    assert ledger.apply_fill(fill("b", order, 0.75, 40_400.0, fee=0.00075, fee_currency="BTC"), T0 + 2)
    snapshot = (ledger.positions(), ledger.cash(), ledger.order(order.client_order_id), outbox(ledger))
    assert not ledger.apply_fill(fill("b", order, 0.75, 40_400.0, fee=0.00075, fee_currency="BTC"), T0 + 3)
    assert (ledger.positions(), ledger.cash(), ledger.order(order.client_order_id), outbox(ledger)) == snapshot
    stored = ledger.order(order.client_order_id)
    assert stored.status is OrderStatus.FILLED and stored.filled_qty == 1.0
    assert stored.avg_price == pytest.approx((0.25 * 40_000 + 0.75 * 40_400) / 1.0)
    position = ledger.positions()[SYMBOL]
    assert position.qty == pytest.approx(1.0 - 0.00075)  # the BTC fee came out of the position
    assert position.cost == pytest.approx(0.25 * 40_000 + 10.0 + 0.75 * 40_400)
    assert ledger.cash()["USDT"] == pytest.approx(100_000.0 - position.cost)
    assert outbox(ledger) == [f"action:{order.client_order_id}", "trade:a", "trade:b"]
    assert ledger.last_fill_time() == T0


def test_a_third_currency_fee_is_recorded_but_books_nothing(ledger):
    order = intent(side=Side.BUY, qty=1.0)
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)
    ledger.apply_fill(fill("bnb", order, 1.0, 100.0, fee=0.01, fee_currency="BNB"), T0)
    assert ledger.positions()[SYMBOL].cost == 100.0 and ledger.fills()[0].fee_currency == "BNB"


def test_a_bad_fill_is_refused_and_nothing_is_written(ledger):
    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)
    wrong_side = Fill("x", order.client_order_id, SYMBOL, Side.SELL, 1.0, 1.0, 0.0, "USDT", T0)
    for bad, match in [(fill("x", intent(9), 1.0, 1.0), "not in the ledger"), (wrong_side, "does not match"),
                       (fill("x", order, -1.0, 1.0), "qty"), (fill("x", order, 1.0, math.inf), "price")]:
        with pytest.raises(LedgerError, match=match):
            ledger.apply_fill(bad, T0)
    assert ledger.fills() == [] and ledger.positions() == {} and ledger.cash() == {}


def test_a_fill_and_its_messages_are_one_transaction(ledger, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    import coinswarm.live.ledger as ledger_module

    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)

    def refuse(s, events, now_ms):  # the outbox write fails inside the fill's transaction
        raise IntegrityError("insert into live_outbox", {}, Exception("refused"))

    monkeypatch.setattr(ledger_module, "_enqueue", refuse)
    assert not ledger.apply_fill(fill("a", order, 1.0, 10.0), T0)
    monkeypatch.undo()
    assert ledger.fills() == [] and ledger.positions() == {}
    assert ledger.order(order.client_order_id).filled_qty == 0.0
    assert outbox(ledger) == [f"action:{order.client_order_id}"]


def test_a_message_id_already_queued_is_skipped_not_an_error(ledger):
    """Insert-or-ignore on msg_id: a repeated id (a write retried after a lost commit ack) is one row."""
    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)
    again = OutboxMessage("agent.action", f"action:{order.client_order_id}", b"{}")  # id already in the outbox
    assert ledger.apply_fill(fill("a", order, 1.0, 10.0), T0, events=[again])
    ledger.enqueue([again, again], T0)
    assert ledger.positions()[SYMBOL].qty == 1.0
    assert outbox(ledger) == [again.msg_id, "trade:a"]


def test_a_late_fill_on_a_final_order_counts_and_is_noted(ledger):
    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, OrderStatus.SENT, T0)
    ledger.transition(order.client_order_id, OrderStatus.EXPIRED, T0)
    ledger.apply_fill(fill("late", order, 0.5, 10.0), T0)
    stored = ledger.order(order.client_order_id)
    assert stored.status is OrderStatus.EXPIRED and "fill late after expired" in stored.reason
    assert ledger.positions()[SYMBOL].qty == 0.5


# -- mode -----------------------------------------------------------------------------------
def test_a_live_run_refuses_a_paper_database_and_vice_versa(url, tmp_path):
    ledger = Ledger(url)
    ledger.migrate()
    ledger.claim("paper", "paper")
    ledger.claim("paper", "paper")  # the same run resumes
    with pytest.raises(LedgerError, match="holds paper history"):
        ledger.claim("live", "binance")
    live = Ledger(f"sqlite:///{tmp_path / 'live2.db'}")
    live.migrate()
    live.claim("live", "binance")
    for mode, venue in [("paper", "paper"), ("replay", "paper"), ("live", "binance-sandbox")]:
        with pytest.raises(LedgerError, match="needs its own database"):
            live.claim(mode, venue)
    with pytest.raises(LedgerError, match="mode 'demo'"):
        live.claim("demo", "x")
    assert live.mode() == {"mode": "live", "venue": "binance"}
    ledger.close()
    live.close()


def test_a_live_run_refuses_a_database_with_orders_but_no_mode(ledger):
    ledger.record_new(intent(), T0)
    with pytest.raises(LedgerError, match="fresh db"):
        ledger.claim("live", "binance")


# -- bars, latency, equity, kill switch, report, restart -----------------------------------
def test_bars_are_counted_once_and_latency_percentiles_reported(ledger):
    for k in range(100):
        assert ledger.record_bar(SYMBOL, T0 + k * 3_600_000, T0, latency_us=float(k + 1))
    assert not ledger.record_bar(SYMBOL, T0, T0, latency_us=1e9)  # a replayed bar is not counted
    ledger.record_bar("ETH/USDT", T0, T0)
    assert ledger.bars_processed() == 101
    assert ledger.last_bars() == {SYMBOL: T0 + 99 * 3_600_000, "ETH/USDT": T0}
    assert ledger.decision_latency_us() == {"p50": pytest.approx(50.5), "p99": pytest.approx(99.01)}


def test_everything_survives_a_restart(url):
    first = Ledger(url)
    first.migrate()
    first.claim("replay", "paper")
    order = intent()
    first.record_new(order, T0)
    first.transition(order.client_order_id, OrderStatus.SENT, T0)
    first.apply_fill(fill("a", order, 1.0, 10.0), T0)
    first.record_equity(T0, 1000.0, 990.0)
    first.record_bar(SYMBOL, T0, T0, 12.0)
    first.save_kill_state(KillState(True, "manual", "by hand", T0, 1000.0, 19675, 1000.0), T0)
    before = first.report()
    first.close()
    second = Ledger(url)
    second.migrate()
    assert second.report() == before
    assert second.kill_state() == KillState(True, "manual", "by hand", T0, 1000.0, 19675, 1000.0)
    second.close()


def test_the_report_has_the_documented_keys(ledger):
    order = intent()
    ledger.record_new(order, T0)
    report = ledger.report(marks={SYMBOL: 10.0})
    assert {"orders", "fills", "positions", "cash", "equity", "bars_processed", "decision_latency_us",
            "halted"} <= set(report)
    assert set(report["orders"][0]) >= {"client_order_id", "symbol", "side", "qty", "price", "status", "bar_time"}
    assert report["orders"][0]["status"] == "new" and report["halted"] is False


def test_halt_keeps_the_first_reason(ledger):
    ledger.halt("reconcile", "BTC differs", T0)
    state = ledger.halt("manual", "later", T0 + 1)
    assert (state.reason, state.detail, state.since_ms) == ("reconcile", "BTC differs", T0)


def test_split_symbol():
    assert split_symbol("BTC/USDT") == ("BTC", "USDT") and split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    with pytest.raises(LedgerError):
        split_symbol("/USDT")


def test_bars_in_one_transaction_and_a_bar_with_its_heartbeat(ledger):
    from coinswarm.live.outbox import heartbeat_message

    assert ledger.record_bars([(SYMBOL, T0, 5.0), (SYMBOL, T0 + 1, None), (SYMBOL, T0, 7.0)], T0) == 2
    assert ledger.record_bar(SYMBOL, T0 + 2, T0, 9.0, events=[heartbeat_message("r", T0)])
    assert not ledger.record_bar(SYMBOL, T0 + 2, T0, 9.0, events=[heartbeat_message("r", T0 + 1)])
    assert ledger.bars_processed() == 3 and outbox(ledger) == ["heartbeat:r:" + str(T0)]
    assert ledger.decision_latency_us()["p50"] == 7.0
    with pytest.raises(LedgerError, match="latency_us"):
        ledger.record_bar(SYMBOL, T0 + 3, T0, latency_us=math.nan)
    assert ledger.last_bars() == {SYMBOL: T0 + 2}


def test_head_revision_is_alembics_head_and_a_migrated_db_starts_without_alembic(tmp_path):
    """:data:`HEAD_REVISION` is the newest migration (a new one must move it); a database already
    there is recognised by its version table and started without importing Alembic."""
    import subprocess
    import sys

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from coinswarm.live.ledger import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]
    url = f"sqlite:///{tmp_path}/l.db"
    ledger = Ledger(url)
    try:
        assert ledger.revision() is None
        ledger.migrate()
        assert ledger.revision() == HEAD_REVISION
    finally:
        ledger.close()
    code = ("import sys; from coinswarm.live.ledger import Ledger; l = Ledger(sys.argv[1]); l.migrate(); "
            "l.orders(); l.close(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stderr
