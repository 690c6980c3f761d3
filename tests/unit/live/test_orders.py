"""The order state machine, the write-ahead submit path and start-up reconciliation.

These are unit tests of the *reconciliation logic*: the venue is :class:`ScriptedBroker`, an
in-memory double implementing the :class:`~coinswarm.live.protocols.Broker` protocol whose
replies the test scripts (timeouts after acceptance, "does not exist" for a while, duplicate
and out-of-order fill reports, foreign orders). The real venue (ccxt against the fake venue
on loopback) is tested elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import StaticPool

from coinswarm.errors import MalformedReplyError, OrderRejectedError, OrderUnknownError, RateLimitedError
from coinswarm.live.ledger import Ledger, LiveBase
from coinswarm.live.orders import (
    TRANSITIONS,
    OrderStateError,
    check_transition,
    reconcile,
    submit,
)
from coinswarm.live.protocols import (
    Balance,
    Broker,
    Fill,
    OrderIntent,
    OrderStatus,
    Side,
    VenueOrder,
    client_order_id,
)

S = OrderStatus
SYMBOL = "BTC/USDT"
T0 = 1_700_000_000_000
GRACE = 60_000


class ScriptedBroker:
    """An in-memory venue: orders, fills, BTC/USDT balances, and scripted misbehaviour."""

    name = "scripted"

    def __init__(self, btc: float = 0.0, usdt: float = 100_000.0) -> None:
        self.orders: dict[str, VenueOrder] = {}
        self.fill_reports: list[Fill] = []
        self.balance = {"BTC": btc, "USDT": usdt}
        self.submits: list[str] = []
        # cid -> accept | fill | reject | timeout_after_accept | timeout | ratelimit
        self.behaviour: dict[str, str] = {}
        self.hidden: set[str] = set()  # order_status says "does not exist" for these
        self.status_error: set[str] = set()
        self.during_submit = None  # callback(cid) run inside submit (checks write-ahead)
        self._fill_ids = itertools.count(1)
        self._venue_ids = itertools.count(1000)

    async def submit(self, intent: OrderIntent) -> VenueOrder:
        self.submits.append(intent.client_order_id)
        if self.during_submit is not None:
            self.during_submit(intent.client_order_id)
        how = self.behaviour.get(intent.client_order_id, "accept")
        if how == "reject":
            raise OrderRejectedError("insufficient balance", venue=self.name, client_order_id=intent.client_order_id)
        if how == "timeout":
            raise OrderUnknownError("timed out", venue=self.name, client_order_id=intent.client_order_id)
        if how == "ratelimit":
            raise RateLimitedError("429", retry_after=1.0, venue=self.name)
        order = VenueOrder(intent.client_order_id, str(next(self._venue_ids)), intent.symbol, intent.side, intent.qty,
                           0.0, None, S.OPEN, T0)
        self.orders[intent.client_order_id] = order
        if how in ("fill", "timeout_after_accept"):
            self.execute(intent.client_order_id, intent.qty, 50_000.0)
        if how == "timeout_after_accept":
            raise OrderUnknownError("timed out after acceptance", venue=self.name)
        return self.orders[intent.client_order_id]

    def execute(self, cid: str, qty: float, price: float, fill_id: str | None = None, time_ms: int = T0) -> Fill:
        """The venue fills ``qty`` of ``cid`` (balances move, a fill report appears)."""
        order = self.orders[cid]
        fill = Fill(fill_id or f"t{next(self._fill_ids)}", cid, order.symbol, order.side, qty, price, 0.0, "USDT",
                    time_ms)
        self.fill_reports.append(fill)
        sign = 1.0 if order.side is Side.BUY else -1.0
        self.balance["BTC"] += sign * qty
        self.balance["USDT"] -= sign * qty * price
        filled = order.filled_qty + qty
        self.orders[cid] = VenueOrder(cid, order.venue_order_id, order.symbol, order.side, order.qty, filled, price,
                                      S.FILLED if filled >= order.qty - 1e-12 else S.OPEN, time_ms)
        return fill

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        order = self.orders[client_order_id]
        self.orders[client_order_id] = VenueOrder(order.client_order_id, order.venue_order_id, symbol, order.side,
                                                  order.qty, order.filled_qty, order.avg_price, S.CANCELED, T0)
        return self.orders[client_order_id]

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        if client_order_id in self.status_error:
            raise MalformedReplyError("no 'status' field", venue=self.name, client_order_id=client_order_id)
        if client_order_id in self.hidden:
            return None
        return self.orders.get(client_order_id)

    async def open_orders(self, symbols) -> list[VenueOrder]:
        return [o for o in self.orders.values() if o.status is S.OPEN and o.symbol in symbols
                and o.client_order_id not in self.hidden]

    async def fills_since(self, symbols, since_ms: int) -> list[Fill]:
        return [f for f in self.fill_reports if f.symbol in symbols and f.time_ms >= since_ms]

    async def balances(self) -> dict[str, Balance]:
        return {k: Balance(k, v, v) for k, v in self.balance.items()}

    async def server_time_ms(self) -> int:
        return T0


def memory_ledger() -> Ledger:
    """A ledger in one in-memory SQLite connection (schema from the models: the migrations are
    tested against the models in test_ledger.py)."""
    ledger = Ledger("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    LiveBase.metadata.create_all(ledger.engine)
    return ledger


def intent(seq: int = 0, side: Side = Side.BUY, qty: float = 0.5, bar_time: int = T0) -> OrderIntent:
    return OrderIntent(client_order_id("sma", SYMBOL, bar_time, seq), SYMBOL, side, qty, bar_time, "sma")


def run(coro):
    return asyncio.run(coro)


# -- the state machine --------------------------------------------------------------------
def test_every_pair_of_statuses_is_legal_exactly_as_the_table_says():
    for old, new in itertools.product(S, S):
        if old is new or new in TRANSITIONS[old]:
            check_transition("x", old, new)
        else:
            with pytest.raises(OrderStateError, match=f"{old.value} → {new.value}"):
                check_transition("x", old, new)
    assert all(not TRANSITIONS[s] for s in S if s.final)
    assert S.NEW not in TRANSITIONS[S.UNKNOWN] and S.SENT not in TRANSITIONS[S.UNKNOWN]


def test_an_illegal_transition_in_the_ledger_raises_and_changes_nothing(ledger):
    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, S.SENT, T0)
    ledger.transition(order.client_order_id, S.UNKNOWN, T0 + 1, reason="timeout")
    before = ledger.order(order.client_order_id)
    with pytest.raises(OrderStateError, match="unknown → sent"):
        ledger.transition(order.client_order_id, S.SENT, T0 + 2)
    assert ledger.order(order.client_order_id) == before


# -- write-ahead submit -------------------------------------------------------------------
def test_the_order_is_stored_and_marked_sent_before_the_request_leaves(ledger):
    broker, seen = ScriptedBroker(), []
    broker.during_submit = lambda cid: seen.append(ledger.order(cid).status)
    stored = run(submit(ledger, broker, intent(), T0))
    assert seen == [S.SENT] and stored.status is S.OPEN and stored.venue_order_id == "1000"


def test_a_resubmitted_intent_is_never_sent_twice(ledger):
    broker = ScriptedBroker()
    run(submit(ledger, broker, intent(), T0))
    again = run(submit(ledger, broker, intent(), T0 + 5))
    assert broker.submits == [intent().client_order_id] and again.status is S.OPEN


@pytest.mark.parametrize("how, status", [("reject", S.REJECTED), ("timeout", S.UNKNOWN),
                                         ("timeout_after_accept", S.UNKNOWN), ("ratelimit", S.UNKNOWN)])
def test_submit_outcomes(ledger, how, status):
    broker = ScriptedBroker()
    broker.behaviour[intent().client_order_id] = how
    stored = run(submit(ledger, broker, intent(), T0))
    assert stored.status is status and len(broker.submits) == 1


def test_an_unexpected_exception_leaves_the_order_unknown_and_propagates(ledger):
    broker = ScriptedBroker()

    def boom(cid):
        raise ConnectionResetError("peer reset")

    broker.during_submit = boom
    with pytest.raises(ConnectionResetError):
        run(submit(ledger, broker, intent(), T0))
    assert ledger.order(intent().client_order_id).status is S.UNKNOWN


# -- reconciliation -------------------------------------------------------------------------
def test_a_timed_out_submit_that_the_venue_filled_is_resolved_without_a_resubmit(ledger):
    broker = ScriptedBroker()
    broker.behaviour[intent().client_order_id] = "timeout_after_accept"
    run(submit(ledger, broker, intent(), T0))
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 1000, GRACE))
    order = ledger.order(intent().client_order_id)
    assert order.status is S.FILLED and order.filled_qty == 0.5 and report.fills_applied == 1
    assert broker.submits == [intent().client_order_id] and report.settled
    assert ledger.positions()[SYMBOL].qty == 0.5 and not report.halted


def test_does_not_exist_within_the_grace_stays_in_flight_then_resolves_by_trade_history(ledger):
    broker = ScriptedBroker()
    cid = intent().client_order_id
    broker.behaviour[cid] = "timeout"
    run(submit(ledger, broker, intent(), T0))
    early = run(reconcile(ledger, broker, [SYMBOL], T0 + GRACE - 1, GRACE))
    assert early.pending == [cid] and ledger.order(cid).status is S.UNKNOWN and not early.settled
    late = run(reconcile(ledger, broker, [SYMBOL], T0 + GRACE, GRACE))
    assert ledger.order(cid).status is S.REJECTED and late.resolved == {cid: "rejected"} and late.settled
    assert broker.submits == [cid]


def test_an_order_hidden_by_the_venue_but_in_its_trade_history_is_filled(ledger):
    broker = ScriptedBroker()
    cid = intent().client_order_id
    broker.behaviour[cid] = "timeout_after_accept"
    run(submit(ledger, broker, intent(), T0))
    broker.hidden.add(cid)  # "does not exist" (Binance lag), but the trade is reported
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 2 * GRACE, GRACE))
    assert ledger.order(cid).status is S.FILLED and report.fills_applied == 1 and not report.halted


def test_a_partly_filled_order_that_vanished_after_the_grace_is_canceled(ledger):
    broker = ScriptedBroker()
    cid = intent().client_order_id
    run(submit(ledger, broker, intent(), T0))
    broker.execute(cid, 0.2, 50_000.0)
    broker.hidden.add(cid)
    run(reconcile(ledger, broker, [SYMBOL], T0 + GRACE, GRACE))
    order = ledger.order(cid)
    assert order.status is S.CANCELED and order.filled_qty == pytest.approx(0.2) and "0.2 of 0.5" in order.reason


def test_an_open_order_is_confirmed_and_a_sent_one_found_open(ledger):
    broker = ScriptedBroker()
    first, second = intent(0), intent(1)
    run(submit(ledger, broker, first, T0))
    ledger.record_new(second, T0)
    ledger.transition(second.client_order_id, S.SENT, T0)  # crashed right after sending
    run(broker.submit(second))
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 10, GRACE))
    assert report.resolved == {first.client_order_id: "open", second.client_order_id: "open"}
    assert ledger.order(second.client_order_id).venue_order_id == "1001" and len(broker.submits) == 2


def test_a_sent_order_that_never_left_is_kept_then_rejected_never_resent(ledger):
    broker = ScriptedBroker()
    order = intent()
    ledger.record_new(order, T0)
    ledger.transition(order.client_order_id, S.SENT, T0)  # crashed between SENT and the request
    run(reconcile(ledger, broker, [SYMBOL], T0 + 1, GRACE))
    assert ledger.order(order.client_order_id).status is S.UNKNOWN
    run(reconcile(ledger, broker, [SYMBOL], T0 + GRACE + 1, GRACE))
    assert ledger.order(order.client_order_id).status is S.REJECTED and broker.submits == []


def test_new_orders_are_sent_while_fresh_and_dropped_when_stale_or_vetoed(ledger):
    broker = ScriptedBroker()
    fresh, stale, vetoed = intent(0), intent(1, bar_time=T0 - 3_600_000), intent(2)
    ledger.record_new(stale, T0 - 3_600_000)
    ledger.record_new(fresh, T0)
    ledger.record_new(vetoed, T0)
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 500, GRACE, new_max_age_ms=60_000,
                           may_send=lambda o: o.client_order_id != vetoed.client_order_id))
    assert report.sent == [fresh.client_order_id] and broker.submits == [fresh.client_order_id]
    assert sorted(report.dropped) == sorted([stale.client_order_id, vetoed.client_order_id])
    assert ledger.order(stale.client_order_id).status is S.CANCELED
    assert "too old" in ledger.order(stale.client_order_id).reason
    assert "vetoed" in ledger.order(vetoed.client_order_id).reason


def test_a_stored_halt_lets_only_a_never_sent_reduction_through(ledger):
    broker = ScriptedBroker(btc=1.0)
    run(reconcile(ledger, broker, [SYMBOL], T0, GRACE))
    run(submit(ledger, broker, intent(0), T0))
    broker.execute(intent(0).client_order_id, 0.5, 50_000.0)
    ledger.halt("manual", "ops", T0)
    grow, cut = intent(1, Side.BUY, 0.1), intent(2, Side.SELL, 0.2)
    ledger.record_new(grow, T0)
    ledger.record_new(cut, T0)
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 1, GRACE, new_max_age_ms=10**9))
    assert report.sent == [cut.client_order_id] and report.dropped == [grow.client_order_id]
    assert "halted" in ledger.order(grow.client_order_id).reason and not report.halted


def test_a_venue_error_leaves_the_order_unresolved_and_in_flight(ledger):
    broker = ScriptedBroker()
    cid = intent().client_order_id
    broker.behaviour[cid] = "timeout"
    run(submit(ledger, broker, intent(), T0))
    broker.status_error.add(cid)
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 10 * GRACE, GRACE))
    assert "MalformedReplyError" in report.unresolved[cid] and ledger.order(cid).status is S.UNKNOWN
    assert not report.settled and not report.halted


def test_the_first_reconcile_adopts_the_untraded_balance_then_an_unexplained_change_halts(ledger):
    broker = ScriptedBroker(btc=1.25)
    report = run(reconcile(ledger, broker, [SYMBOL], T0, GRACE))
    assert report.adopted == {"BTC": 1.25} and not report.halted
    run(submit(ledger, broker, intent(), T0))
    broker.execute(intent().client_order_id, 0.5, 50_000.0)
    assert run(reconcile(ledger, broker, [SYMBOL], T0 + 1, GRACE)).settled
    broker.balance["BTC"] -= 0.3  # someone sold 0.3 BTC by hand
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 2, GRACE))
    assert report.halted and "BTC" in report.unexplained[0] and "-0.3" in report.unexplained[0]
    state = ledger.kill_state()
    assert state.halted and state.reason == "reconcile" and "unexplained position difference" in state.detail


def test_a_foreign_fill_and_an_unknown_open_order_fail_closed(ledger):
    broker = ScriptedBroker()
    run(reconcile(ledger, broker, [SYMBOL], T0, GRACE))
    stranger = intent(7)
    run(broker.submit(stranger))  # placed by someone else on this account
    broker.execute(stranger.client_order_id, 0.1, 50_000.0)
    run(broker.submit(intent(8)))
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 1, GRACE))
    text = " | ".join(report.unexplained)
    assert report.halted and "unknown to the ledger" in text and "does not know" in text
    assert ledger.fills() == []


def test_a_venue_status_that_contradicts_the_ledger_fails_closed(ledger):
    broker = ScriptedBroker()
    run(submit(ledger, broker, intent(), T0))  # OPEN in the ledger
    cid = intent().client_order_id
    order = broker.orders[cid]
    broker.orders[cid] = VenueOrder(cid, order.venue_order_id, SYMBOL, Side.BUY, 0.5, 0.0, None, S.REJECTED, T0)
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 1, GRACE))
    assert report.halted and "open → rejected" in report.unexplained[0]
    assert ledger.order(cid).status is S.OPEN


def test_a_halted_reconcile_drops_new_orders_instead_of_sending_them(ledger):
    broker = ScriptedBroker(btc=1.0)
    run(reconcile(ledger, broker, [SYMBOL], T0, GRACE))
    broker.balance["BTC"] = 2.0
    ledger.record_new(intent(), T0)
    report = run(reconcile(ledger, broker, [SYMBOL], T0 + 1, GRACE, new_max_age_ms=10**9))
    assert report.halted and report.dropped == [intent().client_order_id] and broker.submits == []


def test_the_scripted_broker_implements_the_protocol():
    assert isinstance(ScriptedBroker(), Broker)


# -- duplicate and out-of-order fill reports (Hypothesis) ---------------------------------
fill_spec = st.tuples(st.integers(0, 3), st.integers(1, 64), st.integers(1, 4000), st.integers(0, 16),
                      st.integers(0, 10_000))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(fill_spec, min_size=1, max_size=25), repeats=st.lists(st.integers(0, 24), max_size=30),
       seed=st.integers(0, 2**32 - 1), batches=st.integers(1, 4))
def test_duplicate_and_out_of_order_fills_give_the_deduplicated_truth(specs, repeats, seed, batches):
    """Fills of four orders arrive shuffled, repeated and spread over several reconciles; the
    ledger's position, cost, cash and PnL equal those of the unique fills. Quantities and prices
    are dyadic (k/64, m/4) so every sum is exact and the comparison can be ``==``."""
    ledger, broker = memory_ledger(), ScriptedBroker()
    ledger.deposit("USDT", 1_000_000.0)
    intents = [intent(k, Side.BUY if k % 2 == 0 else Side.SELL, qty=1000.0) for k in range(4)]
    for order in intents:
        run(submit(ledger, broker, order, T0))
    unique = [Fill(f"f{n}", intents[o].client_order_id, SYMBOL, intents[o].side, q / 64, p / 4, fee / 16, "USDT",
                   T0 + t) for n, (o, q, p, fee, t) in enumerate(specs)]
    reports = unique + [unique[r % len(unique)] for r in repeats]
    random.Random(seed).shuffle(reports)
    size = -(-len(reports) // batches)
    for b in range(batches):
        broker.fill_reports = reports[b * size:(b + 1) * size] + reports[:b]  # more repeats across batches
        run(reconcile(ledger, broker, [SYMBOL], T0 + b, GRACE))
    sign = {Side.BUY: 1.0, Side.SELL: -1.0}
    qty = sum(sign[f.side] * f.qty for f in unique)
    cost = sum(sign[f.side] * f.qty * f.price + f.fee for f in unique)
    position = ledger.positions()[SYMBOL]
    assert (position.qty, position.cost) == (qty, cost)
    assert ledger.cash()["USDT"] == 1_000_000.0 - cost
    assert position.pnl(123.25) == qty * 123.25 - cost
    assert sorted(f.fill_id for f in ledger.fills()) == sorted(f.fill_id for f in unique)
    for order in intents:
        mine = [f.qty for f in unique if f.client_order_id == order.client_order_id]
        assert ledger.order(order.client_order_id).filled_qty == sum(mine)
    ledger.close()
