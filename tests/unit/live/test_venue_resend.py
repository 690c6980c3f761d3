"""The hourly committee on an exchange (:mod:`coinswarm.live.venue`) against the fake Binance venue on
127.0.0.1 (real Binance BTC/USDT 1h candles, March 2024): its target is NaN ("hold") while it equals
the last executed one, so an order the venue refused, canceled or filled only in part used to be
never sent again and the venue's book stayed off the committee's target until the committee changed
its mind. The runner now re-sends the last executed target (client-id sequence 1) at the next bar,
capped at what the failed order left unfilled; with no failures the orders are exactly the same."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from coinswarm.live import faults
from coinswarm.live.ledger import Ledger
from coinswarm.live.protocols import OrderStatus, Side, client_order_id
from coinswarm.live.venue import VenueRunner, run_venue
from tests.helpers.live import HOUR, SYMBOL, Crash, book, broker_of, crash_at, make_config, make_venue

pytestmark = pytest.mark.timeout(300)

BARS = 40  # the committee's first order is at 2024-03-02 00:00, the 24th bar after its warm-up
STRATEGY = "committee"
RESEND_SEQ = 1  # the client-id sequence of a re-sent target (coinswarm.live.venue.RESEND_SEQ)


def _weight(venue) -> tuple[float, float]:
    """The venue's BTC holding (free + locked) and the USDT total."""
    btc = sum(venue.state.balances.get("BTC", [0.0, 0.0]))
    return btc, sum(venue.state.balances.get("USDT", [0.0, 0.0]))


def _run(tmp_path, monkeypatch, bars: int = BARS, after_advance=None, crash: tuple[str, int] | None = None,
         **script) -> tuple:
    """Run the committee for ``bars`` bars with ``script`` faults; ``after_advance(venue)`` runs each
    time the venue clock moves. Returns (db, per bar: (bar time, the committee's last executed target
    before deciding it, the BTC weight the venue holds at its close)) and the venue."""
    db = f"sqlite:///{tmp_path / 'venue.db'}"
    seen: list = []
    held: dict = {}
    process = VenueRunner.process

    async def spy(self, t, group):  # observes only: what was decided before t and what the venue holds at t's close
        btc, usdt = _weight(held["venue"])
        close = group[SYMBOL].close
        seen.append((t, float(self.stepper.last[0]), btc * close / (usdt + btc * close)))
        return await process(self, t, group)

    monkeypatch.setattr(VenueRunner, "process", spy)
    if crash is not None:
        monkeypatch.setattr(faults, "point", crash_at(*crash))

    async def go(venue):
        async def sleep(seconds: float) -> None:  # the feed waits for the next close: move the venue clock
            venue.advance(max(int(seconds * 1000), 1))
            if after_advance is not None:
                after_advance(venue)

        config = make_config(venue, db, strategy=STRATEGY)
        async with broker_of(venue) as broker:
            return await asyncio.wait_for(run_venue(config, broker=broker, max_bars=bars, sleep=sleep), 240)

    async def scenario():
        async with make_venue() as venue:
            held["venue"] = venue
            venue.script(**script)
            try:
                await go(venue)
            except Crash:
                monkeypatch.setattr(faults, "point", lambda name: None)
                await go(venue)  # start-up is recovery: the bars since the checkpoint are decided again
            return venue

    venue = asyncio.run(scenario())
    return db, seen, venue


def _orders(db: str) -> list:
    ledger = Ledger(db)
    try:
        return ledger.orders()
    finally:
        ledger.close()


def _on_target_after(seen: list, bar_time: int, tol: float = 0.01) -> None:
    """From the bar after ``bar_time`` (its order filled at that bar's open) the venue holds the
    committee's target, within ``tol`` of equity (price moves over an hour, fees)."""
    after = [(t, last, w) for t, last, w in seen if t > bar_time]
    assert after, "the run ended before the re-sent order filled"
    t, last, w = after[0]
    assert last > 0.05 and abs(w - last) <= tol, (t, last, w)


def test_a_refused_buy_is_sent_again_at_the_next_bar_and_reaches_the_target(tmp_path, monkeypatch):
    """Regression: the venue refuses the committee's first buy. The committee's next targets equal it
    (NaN: hold), so the buy was never sent again and the venue held 0 BTC while the committee targeted
    ~50 %; now it is re-sent at the next bar with a new client id and fills."""
    db, seen, venue = _run(tmp_path, monkeypatch, reject_next=1)
    orders = _orders(db)
    refused = orders[0]
    assert refused.status is OrderStatus.REJECTED and refused.side is Side.BUY
    again = orders[1]
    assert again.bar_time == refused.bar_time + HOUR, [(o.bar_time, o.status.value) for o in orders]
    assert again.client_order_id == client_order_id(STRATEGY, SYMBOL, again.bar_time, RESEND_SEQ)
    assert again.side is Side.BUY and again.status is OrderStatus.FILLED
    assert again.qty <= refused.qty  # never more than the strategy asked
    _on_target_after(seen, again.bar_time)
    assert all(o.client_order_id == client_order_id(STRATEGY, SYMBOL, o.bar_time, 0) for o in orders[2:])
    assert venue.count("POST", "/api/v3/order") == len(orders)


def cancel_partials(venue) -> None:
    """The venue cancels an order once it is partly filled (as an expiry would); only the first order
    is split (the faults give later ones a single fill)."""
    for order in list(venue.state.orders.values()):
        if order.status == "PARTIALLY_FILLED":
            venue.cancel_order({"symbol": order.symbol, "orderId": str(order.order_id)}, venue.clock.now_ms())
    if venue.state.orders:
        venue.script(partial_fills=[1.0])


def test_a_partial_fill_then_a_cancel_is_completed_at_the_next_bar(tmp_path, monkeypatch):
    """Regression: the first buy fills half, then the venue cancels the rest. The remainder is bought
    at the next bar (capped at what was left unfilled), and the venue's book reaches the target."""
    db, seen, _ = _run(tmp_path, monkeypatch, after_advance=cancel_partials, partial_fills=[0.5, 0.5])
    orders = _orders(db)
    first, rest = orders[0], orders[1]
    assert first.status is OrderStatus.CANCELED and 0 < first.filled_qty < first.qty
    assert rest.bar_time == first.bar_time + HOUR, [(o.bar_time, o.status.value) for o in orders]
    assert rest.client_order_id == client_order_id(STRATEGY, SYMBOL, rest.bar_time, RESEND_SEQ)
    assert rest.side is Side.BUY and rest.status is OrderStatus.FILLED
    assert rest.qty <= first.qty - first.filled_qty + 1e-12
    _on_target_after(seen, rest.bar_time)


def test_with_no_failures_the_orders_are_exactly_those_without_resending(tmp_path, monkeypatch):
    """Every order fills: nothing is re-sent, and the orders (ids, sides, quantities, bars) are those of
    the runner with re-sending switched off — the hold-quantity semantics of the backtest, no drift trades."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    db, _, _ = _run(tmp_path / "a", monkeypatch, bars=120)
    monkeypatch.setattr(VenueRunner, "_unfinished", lambda self, target, in_flight: {}, raising=False)
    plain, _, _ = _run(tmp_path / "b", monkeypatch, bars=120)
    orders, plain_orders = book(db)[0], book(plain)[0]
    assert len(orders) >= 8 and orders == plain_orders
    assert all(o.status is OrderStatus.FILLED for o in _orders(db))
    assert all(o.client_order_id == client_order_id(STRATEGY, SYMBOL, o.bar_time, 0) for o in _orders(db))


@pytest.mark.parametrize(("point", "k"), [("after_new", 2), ("after_sent", 2), ("after_ack", 1)])
def test_a_crash_while_re_sending_never_sends_it_twice(tmp_path, monkeypatch, point, k):
    """The venue refuses the first buy; the daemon dies at ``point`` of the re-sent order's submit and
    restarts (the refused order passes ``after_new``/``after_sent`` too, not ``after_ack``; start-up is
    recovery, the bar is decided again from the ledger): the re-sent order reaches the venue at
    most once per client id, and the book still reaches the target."""
    (tmp_path / point).mkdir()
    db, seen, venue = _run(tmp_path / point, monkeypatch, crash=(point, k), reject_next=1)
    orders = _orders(db)
    resent = [o for o in orders if o.client_order_id == client_order_id(STRATEGY, SYMBOL, o.bar_time, RESEND_SEQ)]
    at_venue = [o.client_id for o in venue.state.orders.values()]
    assert len(at_venue) == len(set(at_venue)), "an order reached the venue twice"
    assert resent and resent[0].bar_time == orders[0].bar_time + HOUR
    filled = [o for o in resent if o.status is OrderStatus.FILLED]
    assert len(filled) == 1, [dataclasses.astuple(o)[:7] for o in resent]
    _on_target_after(seen, filled[0].bar_time)
    ledger = Ledger(db)
    try:
        position = ledger.positions()[SYMBOL].qty
    finally:
        ledger.close()
    assert abs(position - _weight(venue)[0]) < 1e-9


@pytest.mark.parametrize(("cap", "expected"), [
    (None, ("buy", 0.1, 0)),  # the strategy's own order: the whole change
    (0.04, ("buy", 0.04, RESEND_SEQ)),  # a re-send: at most what the failed order left
    (1.0, ("buy", 0.1, RESEND_SEQ)),  # ... and never past the target
    (-0.04, None),  # a failed sell is not completed by buying (the book moved the other way)
    (0.0005, None),  # what is left is under the market's minimum: nothing, this bar and later
])
def test_a_re_send_is_sized_as_usual_and_capped_at_what_was_left(tmp_path, cap, expected):
    """Sizing of a re-send (synthetic numbers: equity 10,000 USDT, BTC at 50,000, target 0.5 → 0.1 BTC)."""
    from types import SimpleNamespace

    from coinswarm.live.config import RiskLimits
    from coinswarm.live.killswitch import KillState
    from coinswarm.live.protocols import Balance
    from coinswarm.live.stepper import Stepper
    from coinswarm.live.venue import VenueSettings

    market = {"precision": {"amount": 0.0001}, "limits": {"amount": {"min": 0.001}, "cost": {"min": 10.0}}}
    ledger = Ledger(f"sqlite:///{tmp_path}/sizing.db")
    try:
        runner = VenueRunner(ledger, Stepper(STRATEGY, [SYMBOL]), SimpleNamespace(markets={SYMBOL: market}),
                             VenueSettings(STRATEGY, HOUR, HOUR, RiskLimits(max_position=10.0, max_order_notional=1e6),
                                           buy_headroom=0.0), "binance")
        t = 1_709_337_600_000
        intents = runner._intents(t, np.array([0.5]), {SYMBOL: 50_000.0}, {"USDT": Balance("USDT", 1e4, 1e4)}, 1e4,
                                  {}, [], KillState(), None if cap is None else {SYMBOL: cap})
    finally:
        ledger.close()
    got = [(i.side.value, round(i.qty, 8), i.client_order_id) for i in intents]
    want = [] if expected is None else [(expected[0], expected[1], client_order_id(STRATEGY, SYMBOL, t, expected[2]))]
    assert got == want
