"""Cash flows that are not fills (funding, interest, borrow fees) in the live ledger, on
embedded SQLite and on the real PostgreSQL server: booked into cash in the checkpoint's one
transaction, idempotent by ``flow_id``, all or nothing, validated with typed errors, listed by
time, and the 0001 → 0002 migration of a database that already holds a run."""

from __future__ import annotations

import math

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from coinswarm.errors import CoinswarmError
from coinswarm.live import ledger_bulk as bulk
from coinswarm.live.ledger import (
    HEAD_REVISION,
    MIGRATIONS,
    VERSION_TABLE,
    CashFlowRow,
    Ledger,
    LedgerError,
    LiveBase,
    include_object,
)
from coinswarm.live.protocols import CASH_FLOW_KINDS, CashFlow, Fill, OrderIntent, Side, client_order_id

T0 = 1_700_000_000_000
HOUR = 3_600_000
SYMBOL = "BTC/USDT:USDT"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(url):
    ledger = Ledger(url)
    ledger.migrate()
    ledger.deposit("USDT", 10_000.0)
    yield ledger
    ledger.close()


def flow(kind: str, amount: float, time_ms: int = T0, currency: str = "USDT", flow_id: str | None = None) -> CashFlow:
    return CashFlow(flow_id or f"s:{kind}:{SYMBOL}:{time_ms}", currency, kind, amount, time_ms)


def sent_order(ledger: Ledger, seq: int = 0) -> OrderIntent:
    order = OrderIntent(client_order_id("s", SYMBOL, T0, seq), SYMBOL, Side.BUY, 0.5, T0, "s")
    bulk.record_sent_many(ledger, [order], T0)
    return order


def buy_fill(order: OrderIntent, fill_id: str = "f1") -> Fill:
    return Fill(fill_id, order.client_order_id, SYMBOL, Side.BUY, 0.5, 40_000.0, 8.0, "USDT", T0 + HOUR)


def flow_rows(ledger: Ledger) -> int:
    with ledger.sessions() as s:
        return s.scalar(select(func.count()).select_from(CashFlowRow))


# -- booking ---------------------------------------------------------------------------------
def test_the_checkpoint_books_flows_into_cash_with_its_fills(ledger):
    order = sent_order(ledger)
    flows = [flow("funding", -1.25), flow("interest", 0.375, T0 + HOUR), flow("borrow", -0.0625, T0 + HOUR),
             flow("funding", 2.5, T0 + 2 * HOUR, currency="USDC")]
    assert bulk.commit_bars(ledger, fills=[buy_fill(order)], flows=flows, bars=[(SYMBOL, T0, None)],
                            now_ms=T0 + 3 * HOUR) == 1
    usdt = 10_000.0 - 0.5 * 40_000.0 - 8.0
    for f in flows[:3]:
        usdt += f.amount
    assert ledger.cash() == {"USDT": usdt, "USDC": 2.5}
    assert ledger.cash_flows() == sorted(flows, key=lambda f: (f.time_ms, f.flow_id))
    assert ledger.bars_processed() == 1 and ledger.positions()[SYMBOL].qty == 0.5


def test_a_repeated_flow_id_changes_nothing(ledger):
    flows = [flow("funding", -1.25), flow("funding", 0.5, T0 + HOUR)]
    bulk.commit_bars(ledger, flows=[*flows, flows[0]], now_ms=T0)  # repeated inside one checkpoint too
    after = ledger.cash()
    assert after == {"USDT": 10_000.0 - 1.25 + 0.5}
    bulk.commit_bars(ledger, flows=flows, now_ms=T0 + HOUR)  # the checkpoint retried after a lost ack
    assert not ledger.book_flow(flows[1], T0 + 2 * HOUR)
    assert ledger.cash() == after and flow_rows(ledger) == 2
    with ledger.sessions() as s:
        assert set(s.scalars(select(CashFlowRow.recorded_ms))) == {T0}


def test_book_flow_books_one_flow(ledger):
    assert ledger.book_flow(flow("interest", 0.25), T0)
    assert ledger.book_flow(flow("borrow", -0.125, currency="BTC"), T0)
    assert ledger.cash() == {"USDT": 10_000.25, "BTC": -0.125}
    assert [f.kind for f in ledger.cash_flows()] == ["borrow", "interest"]  # same time: by id


@pytest.mark.parametrize("again", [
    pytest.param(lambda f: CashFlow(f.flow_id, f.currency, f.kind, f.amount * 2, f.time_ms), id="amount"),
    pytest.param(lambda f: CashFlow(f.flow_id, "USDC", f.kind, f.amount, f.time_ms), id="currency"),
    pytest.param(lambda f: CashFlow(f.flow_id, f.currency, f.kind, f.amount, f.time_ms + 1), id="time"),
])
def test_one_flow_id_with_other_values_is_refused_not_lost(ledger, again):
    """Two flows sharing an id (e.g. two symbols' funding at one bar under an id without the
    symbol): the second must not vanish silently, in one checkpoint or in a later one."""
    first = flow("funding", -1.5)
    with pytest.raises(LedgerError, match="two flows share an id"):
        bulk.commit_bars(ledger, flows=[first, again(first)], now_ms=T0)
    assert flow_rows(ledger) == 0 and ledger.cash() == {"USDT": 10_000.0}
    bulk.commit_bars(ledger, flows=[first], now_ms=T0)
    with pytest.raises(LedgerError, match=f"cash flow '{first.flow_id}' is booked as"):
        bulk.commit_bars(ledger, flows=[again(first)], now_ms=T0 + 1)
    with pytest.raises(LedgerError, match="two flows share an id"):
        ledger.book_flow(again(first), T0 + 1)
    assert ledger.cash_flows() == [first] and ledger.cash() == {"USDT": 10_000.0 - 1.5}


# -- all or nothing --------------------------------------------------------------------------
def _unknown_order_fill(ledger):
    return {"fills": [Fill("f9", "cs-not-stored", SYMBOL, Side.BUY, 0.5, 40_000.0, 0.0, "USDT", T0)]}


def _bad_latency_after_the_flows(ledger):
    return {"bars": [(SYMBOL, T0, math.nan)]}  # raised inside the transaction, after the flows were written


def _bad_flow_beside_a_good_fill(ledger):
    return {"fills": [buy_fill(sent_order(ledger))], "flows": [flow("interest", math.inf, T0 + 5)]}


@pytest.mark.parametrize("bad", [_unknown_order_fill, _bad_latency_after_the_flows, _bad_flow_beside_a_good_fill])
def test_a_checkpoint_with_anything_bad_writes_nothing(ledger, bad):
    kwargs = bad(ledger)
    flows = [flow("funding", -3.0), *kwargs.pop("flows", [])]
    with pytest.raises(LedgerError):
        bulk.commit_bars(ledger, flows=flows, meta={"checkpoint": {"time": T0}}, now_ms=T0, **kwargs)
    assert ledger.cash() == {"USDT": 10_000.0}
    assert flow_rows(ledger) == 0 and ledger.fills() == [] and ledger.positions() == {}
    assert ledger.bars_processed() == 0 and ledger.get_meta("checkpoint") is None


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(("bad", "match"), [
    (CashFlow("x", "USDT", "rebate", 1.0, T0), r"cash flow x: kind 'rebate' is not one of funding, interest, borrow"),
    (CashFlow("x", "USDT", "funding", math.nan, T0), r"cash flow x: amount must be a finite number, got nan"),
    (CashFlow("x", "USDT", "funding", -math.inf, T0), r"cash flow x: amount must be a finite number, got -inf"),
    (CashFlow("x", "USDT", "funding", "1.0", T0), r"cash flow x: amount must be a finite number"),
    (CashFlow("", "USDT", "funding", 1.0, T0), r"flow_id must be 1-200 characters, got ''"),
    (CashFlow("x" * 201, "USDT", "funding", 1.0, T0), r"flow_id must be 1-200 characters"),
    (CashFlow("x", "USDT", "funding", 1.0, -1), r"cash flow x: time_ms must be a non-negative integer .*got -1"),
    (CashFlow("x", "USDT", "funding", 1.0, 1.5), r"time_ms must be a non-negative integer .*got 1.5"),
    (CashFlow("x", "USDT", "funding", 1.0, True), r"time_ms must be a non-negative integer .*got True"),
    (CashFlow("x", "", "funding", 1.0, T0), r"cash flow x: currency must be 1-16 characters"),
    (CashFlow("x", "USDT", "interest", -0.5, T0), r"cash flow x: interest credits cash, so its amount must be ≥ 0"),
    (CashFlow("x", "USDT", "borrow", 0.5, T0), r"cash flow x: borrow debits cash, so its amount must be ≤ 0"),
    (CashFlow("x", "USDT", "write_off", -0.5, T0), r"cash flow x: write_off credits cash, so its amount must be ≥ 0"),
    (("x", "USDT", "funding", 1.0, T0), r"expected a CashFlow, got tuple"),
])
def test_a_bad_flow_is_a_typed_error_naming_the_field(ledger, bad, match):
    for book in (lambda: bulk.commit_bars(ledger, flows=[bad], now_ms=T0), lambda: ledger.book_flow(bad, T0)):
        with pytest.raises(LedgerError, match=match) as caught:
            book()
        assert isinstance(caught.value, CoinswarmError)
    assert flow_rows(ledger) == 0 and ledger.cash() == {"USDT": 10_000.0}


def test_kinds_and_the_zero_and_numpy_amounts_that_are_valid(ledger):
    import numpy as np

    assert CASH_FLOW_KINDS == ("funding", "interest", "borrow", "write_off")
    ok = [CashFlow("a", "USDT", "interest", 0.0, T0), CashFlow("b", "USDT", "borrow", -0.0, 0),
          CashFlow("c", "USDT", "funding", np.float64(-0.5), np.int64(T0))]
    bulk.commit_bars(ledger, flows=ok, now_ms=T0)
    assert ledger.cash() == {"USDT": 9_999.5}
    stored = ledger.cash_flows()
    assert stored[-1] == CashFlow("c", "USDT", "funding", -0.5, T0) and type(stored[-1].time_ms) is int


# -- listing ---------------------------------------------------------------------------------
def test_cash_flows_come_by_time_then_id_and_filter_by_kind(ledger):
    flows = [flow("funding", -1.0, T0 + 2 * HOUR), flow("interest", 0.5, T0 + HOUR, flow_id="b"),
             flow("borrow", -0.25, T0 + HOUR, flow_id="a"), flow("funding", 2.0, T0)]
    bulk.commit_bars(ledger, flows=flows, now_ms=T0)
    assert ledger.cash_flows() == [flows[3], flows[2], flows[1], flows[0]]
    assert ledger.cash_flows("funding") == [flows[3], flows[0]]
    assert ledger.cash_flows("interest") == [flows[1]] and ledger.cash_flows("borrow") == [flows[2]]
    with pytest.raises(LedgerError, match="kind 'fees' is not one of funding, interest, borrow"):
        ledger.cash_flows("fees")


# -- migration -------------------------------------------------------------------------------
def _downgrade(ledger: Ledger, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ledger.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_a_0001_database_is_upgraded_in_place_with_its_rows(url):
    """A ledger written at 0001 (a deposit, an order, a fill) gains ``live_cash_flows`` when the
    new code opens and migrates it; nothing it held changes, and the schema is then exactly the
    models. The downgrade drops the table alone."""
    old = Ledger(url)
    old.migrate("0001")
    assert old.revision() == "0001" and "live_cash_flows" not in inspect(old.engine).get_table_names()
    old.deposit("USDT", 10_000.0)
    order = sent_order(old)
    bulk.commit_bars(old, fills=[buy_fill(order)], bars=[(SYMBOL, T0, 5.0)], now_ms=T0)
    before = old.report()
    old.close()

    new = Ledger(url)
    try:
        new.migrate()
        assert new.revision() == HEAD_REVISION == "0002"
        assert new.report() == before and new.cash_flows() == []
        with new.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE,
                                                                  "include_object": include_object})
            assert compare_metadata(context, LiveBase.metadata) == []
        assert new.book_flow(flow("funding", -2.0), T0 + HOUR)
        assert new.cash() == {"USDT": before["cash"]["USDT"] - 2.0}
        _downgrade(new, "0001")
        assert "live_cash_flows" not in inspect(new.engine).get_table_names() and new.report() == {
            **before, "cash": {"USDT": before["cash"]["USDT"] - 2.0}}
    finally:
        new.close()


def test_a_write_off_leaves_the_cash_at_exactly_zero_when_the_rest_is_rounding(ledger):
    """A bankrupt paper account: its deficit is written off; the ledger's sum of the same fills in
    another order may differ from the kernel's by rounding, which goes with the deficit (the
    kernel's cash is exactly 0). A residue beyond the tolerance is left for recovery to report."""
    bulk.commit_bars(ledger, flows=[CashFlow("loss", "USDT", "funding", -10_000.0 - 1234.5 - 3e-12, T0),
                                    CashFlow("w", "USDT", "write_off", 1234.5, T0)], now_ms=T0)
    assert ledger.cash() == {"USDT": 0.0} and ledger.cash_flows("write_off")[0].amount == 1234.5
    bulk.commit_bars(ledger, flows=[CashFlow("loss2", "USDT", "funding", -50.0, T0 + 1),
                                    CashFlow("w2", "USDT", "write_off", 49.0, T0 + 1)], now_ms=T0)
    assert ledger.cash() == {"USDT": -1.0}
