"""The paper broker's venue side on real candles: each bar's previewed fills become intents, only
those intents are accepted, execution adopts the kernel's state, and the Broker queries
(status, open orders, fills, balances, time) tell the truth at every step."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from coinswarm.errors import ConfigError, OrderRejectedError
from coinswarm.live.paper import PaperBroker, fill_id_of, intents_of, split_pair
from coinswarm.live.protocols import OrderStatus, Side

SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def bars(majors_1h):
    frames = [majors_1h[s].loc["2022-03-01":"2022-03-02"] for s in SYMBOLS]
    times = frames[0].index.asi8 // 1_000_000
    opens = np.stack([f["open"].to_numpy() for f in frames], 1)
    return times, opens, np.stack([f["close"].to_numpy() for f in frames], 1)


def run(coro):
    return asyncio.run(coro)


def test_split_pair_and_one_quote_currency():
    assert split_pair("BTC/USDT") == ("BTC", "USDT") and split_pair("BTC/USDT:USDT") == ("BTC", "USDT")
    with pytest.raises(ConfigError, match=r"one cash account: .* quote currencies \['BTC', 'USDT'\]"):
        PaperBroker(["ETH/BTC", "BTC/USDT"])


def test_a_bar_cycle_from_preview_to_booked_fills(bars):
    times, opens, closes = bars
    booked = []
    broker = PaperBroker(SYMBOLS, init_cash=10_000.0, fee=0.001, fills_of=lambda syms, since: [
        f for f in booked if f.symbol in syms and f.time_ms >= since], clock=lambda: 42)
    target = np.array([0.5, 0.3])
    assert len(broker.preview(times[0], opens[0], closes[0], target, day_end=False)) == 0, "nothing decided yet"
    broker.adopt()
    fills = broker.preview(times[1], opens[1], closes[1], target, day_end=False)
    intents = intents_of(fills, SYMBOLS, "trend", int(times[0]))
    assert sorted((i.symbol, i.side) for i in intents) == [("BTC/USDT", Side.BUY), ("ETH/USDT", Side.BUY)]
    broker.expect(intents)
    with pytest.raises(OrderRejectedError, match="were not submitted before execution"):
        broker.execute(intents, fills)
    wrong = dataclasses.replace(intents[0], qty=intents[0].qty * 2)
    with pytest.raises(OrderRejectedError, match="is not what the kernel executes at this bar"):
        run(broker.submit(wrong))
    first = next(i for i in intents if i.symbol == "BTC/USDT")
    assert run(broker.order_status(first.client_order_id, first.symbol)) is None, "not yet accepted"
    for intent in intents:
        assert run(broker.submit(intent)).status is OrderStatus.OPEN
    assert run(broker.order_status(first.client_order_id, first.symbol)).status is OrderStatus.OPEN
    assert {o.client_order_id for o in run(broker.open_orders(["BTC/USDT"]))} == {first.client_order_id}
    with pytest.raises(OrderRejectedError, match="is a market order; nothing to cancel"):
        run(broker.cancel(first.client_order_id, first.symbol))
    cash_before = broker.cash
    done = broker.execute(intents, fills)
    booked.extend(done)
    assert [f.fill_id for f in done] == [fill_id_of(i.client_order_id) for i in intents]
    assert all(f.fee_currency == "USDT" and f.price > 0 and f.fee > 0 for f in done)
    assert broker.cash == pytest.approx(cash_before - sum(f.qty * f.price + f.fee for f in done), rel=1e-12)
    by_symbol = {f.symbol: f for f in done}
    np.testing.assert_allclose(broker.positions(), [by_symbol[s].qty for s in SYMBOLS], rtol=1e-12)
    status = run(broker.order_status(first.client_order_id, first.symbol))
    assert status.status is OrderStatus.FILLED and status.filled_qty == by_symbol["BTC/USDT"].qty
    assert run(broker.open_orders(list(SYMBOLS))) == []
    assert run(broker.fills_since(["ETH/USDT"], 0)) == [by_symbol["ETH/USDT"]]
    balances = run(broker.balances())
    assert balances["USDT"].total == broker.cash and balances["BTC"].total == by_symbol["BTC/USDT"].qty
    assert run(broker.server_time_ms()) == 42
    equity = broker.equity
    assert equity == pytest.approx(broker.cash + float(broker.positions() @ closes[1]), rel=1e-12)


def test_state_round_trips_and_withdrawn_targets_make_no_order(bars):
    times, opens, closes = bars
    broker = PaperBroker(SYMBOLS)
    broker.preview(times[0], opens[0], closes[0], np.array([0.4, 0.4]), day_end=False)
    broker.adopt()
    saved = broker.to_bytes()
    broker.withdraw_pending([1])
    fills = broker.preview(times[1], opens[1], closes[1], np.array([0.4, 0.4]), day_end=False)
    assert [int(r["asset"]) for r in fills] == [0], "ETH's pending target withdrawn: only BTC trades"
    restored = PaperBroker(SYMBOLS)
    restored.load(saved)
    again = restored.preview(times[1], opens[1], closes[1], np.array([0.4, 0.4]), day_end=False)
    assert sorted(int(r["asset"]) for r in again) == [0, 1]
    with pytest.raises(ConfigError, match="another number of symbols"):
        PaperBroker(["BTC/USDT"]).load(saved)
    idle = PaperBroker(SYMBOLS)
    idle.adopt()  # nothing previewed: a no-op
    assert idle.cash == 10_000.0 and run(idle.fills_since(list(SYMBOLS), 0)) == []
    assert run(idle.order_status("nope", "BTC/USDT")) is None


def test_financing_rates_the_ledger_cannot_book_are_refused():
    for kwargs in ({"credit": -1e-4}, {"credit": float("nan")}, {"borrow": np.array([-1e-4])},
                   {"borrow": np.array([1e-4, 1e-4])}):
        with pytest.raises(ConfigError, match="must be finite daily rates ≥ 0"):
            PaperBroker(["BTC/USDT"], **kwargs)
    assert PaperBroker(["BTC/USDT"], credit=1e-4, borrow=np.array([2e-4])).credit == 1e-4
