"""Orders through MCP: paper fills at the last close with the fee model, every limit refusing
the whole order (state unchanged), the kill switch, idempotent tags, resting limit orders and
cancels, 20 concurrent requests, and live mode with a fake broker."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client

import coinswarm as cs
from coinswarm.errors import OrderUnknownError
from coinswarm.live.ledger import Ledger
from coinswarm.live.protocols import OrderStatus, VenueOrder
from coinswarm.mcpserver.config import ServerConfig
from coinswarm.mcpserver.orders import OrderDesk, OrderRefused, OrderRequest

BTC = "binance:BTC/USDT:1h"


def last_close(name: str = BTC) -> float:
    return float(cs.load_ohlcv(name)["close"].iloc[-1])


def call(app, name, arguments):
    async def main():
        async with Client(app.server) as client:
            return await client.call_tool(name, arguments)

    return asyncio.run(main())


def order(app, **arguments):
    return call(app, "place_order", {"symbol": "BTC/USDT", "side": "buy", **arguments})


def snapshot(app) -> tuple:
    report = app.ledger.report()
    return report["orders"], report["fills"], report["positions"], report["cash"]


def test_a_paper_market_order_fills_at_the_last_close_with_slippage_and_fee(app):
    close = last_close()
    got = order(app, qty=0.002).structured_content
    price = close * (1 + 5 / 1e4)
    assert got["status"] == "filled" and got["avg_price"] == pytest.approx(price)
    assert got["mark"] == pytest.approx(close)
    fill = app.ledger.fills()[0]
    assert fill.fee == pytest.approx(0.002 * price * 10 / 1e4) and fill.fee_currency == "USDT"
    assert app.ledger.cash()["USDT"] == pytest.approx(10_000.0 - 0.002 * price - fill.fee)
    assert app.ledger.order(got["client_order_id"]).strategy == "mcp"


@pytest.mark.parametrize("arguments, words", [
    ({"symbol": "DOGE/USDT"}, "not on the allowlist"),
    ({"qty": 0.02}, "max_order_notional"),  # ≈ 1,870 USDT > 1,000
    ({"qty": 0.01, "price": 200_000.0}, "max_order_notional"),  # judged at the limit price
    ({"side": "sell", "qty": 0.001}, "NOT-A-LIMIT"),  # a short within limits passes (see below)
])
def test_an_order_beyond_a_limit_is_refused_whole(app, arguments, words):
    before = snapshot(app)
    result = order(app, **{"qty": 0.001, **arguments})
    if words == "NOT-A-LIMIT":
        assert not result.is_error
        return
    assert result.is_error and words in result.content[0].text
    assert snapshot(app) == before, "a refused order must write nothing"
    assert app.audit.entries()[0].ok is False


def test_max_position_counts_the_position_already_held(make_app, make_limits):
    app = make_app(limits=make_limits(max_position=0.005, max_daily_notional=1e6))
    assert not order(app, qty=0.004).is_error
    before = snapshot(app)
    refused = order(app, qty=0.002)
    assert refused.is_error and "max_position" in refused.content[0].text
    assert snapshot(app) == before
    assert not order(app, side="sell", qty=0.004).is_error  # a reduction always passes


def test_a_paper_buy_must_be_paid_for(make_app, make_limits):
    app = make_app(limits=make_limits(max_position=10.0, max_order_notional=1e9, max_daily_notional=1e9))
    assert app.ledger.cash() == {"USDT": 10_000.0}
    before = snapshot(app)
    refused = order(app, qty=0.2)  # ≈ 18,700 USDT
    assert refused.is_error and "paper account holds 10000 USDT" in refused.content[0].text
    assert snapshot(app) == before
    assert not order(app, symbol="btc-usdt", qty=0.1).is_error  # BTC-USDT names BTC/USDT


def test_the_daily_budget_refuses_the_order_that_would_exceed_it(make_app, clock, make_limits):
    app = make_app(limits=make_limits(max_position=1.0, max_daily_notional=2_500.0))
    for _ in range(2):
        assert not order(app, qty=0.01).is_error  # ≈ 936 each
    before = snapshot(app)
    refused = order(app, qty=0.01)
    assert refused.is_error and "max_daily_notional" in refused.content[0].text
    assert snapshot(app) == before
    clock.now += 86_400_000  # the next UTC day has a fresh budget
    assert not order(app, qty=0.01).is_error


def test_while_halted_only_reductions_pass(app, clock):
    assert not order(app, qty=0.003).is_error
    app.ledger.halt("manual", "test halt", clock())
    before = snapshot(app)
    grow = order(app, qty=0.001)
    assert grow.is_error and "kill switch is halted" in grow.content[0].text
    assert snapshot(app) == before
    reduce = order(app, side="sell", qty=0.002)
    assert not reduce.is_error and reduce.structured_content["status"] == "filled"
    assert app.ledger.positions()["BTC/USDT"].qty == pytest.approx(0.001)


def test_a_repeated_tag_returns_the_first_order_and_writes_nothing(app):
    first = order(app, qty=0.001, tag="idea-42").structured_content
    again = order(app, qty=0.001, tag="idea-42").structured_content
    assert again["duplicate"] and not again["accepted"]
    assert again["client_order_id"] == first["client_order_id"] and len(app.ledger.orders()) == 1


def test_a_paper_limit_order_away_from_the_market_is_refused(app):
    before = snapshot(app)
    refused = order(app, qty=0.001, price=1_000.0)
    assert refused.is_error and "not marketable" in refused.content[0].text
    assert snapshot(app) == before
    unknown = call(app, "cancel_order", {"client_order_id": "cs-nope"})
    assert unknown.is_error and "no order" in unknown.content[0].text
    filled = order(app, qty=0.001).structured_content
    again = call(app, "cancel_order", {"client_order_id": filled["client_order_id"]})
    assert again.is_error and "already filled" in again.content[0].text


def test_a_marketable_limit_order_fills_no_worse_than_its_limit(app):
    close = last_close()
    got = order(app, qty=0.001, price=close * 1.0001).structured_content
    assert got["status"] == "filled" and got["avg_price"] <= close * 1.0001


def test_twenty_concurrent_requests_all_answer_and_limits_hold(make_app, make_limits):
    limits = make_limits
    app = make_app(limits=limits(max_position=1.0, max_daily_notional=2_000.0))

    async def main():
        async with Client(app.server) as client:
            orders = [client.call_tool("place_order", {"symbol": "BTC/USDT", "side": "buy", "qty": 0.001})
                      for _ in range(10)]
            regimes = [client.call_tool("get_regime", {"data": BTC}) for _ in range(10)]
            return await asyncio.gather(*orders, *regimes)

    results = asyncio.run(main())
    assert len(results) == 20 and not any(r.is_error for r in results[10:])
    accepted = [r for r in results[:10] if not r.is_error]
    # ≈ 94 USDT each: all ten fit 2,000; now squeeze the budget and race again
    assert len(accepted) == 10 and len(app.ledger.orders()) == 10
    tight = make_app(limits=limits(max_position=1.0, max_daily_notional=300.0), db=app.config.db)

    async def race():
        async with Client(tight.server) as client:
            return await asyncio.gather(*[client.call_tool("place_order", {"symbol": "ETH/USDT", "side": "buy",
                                                                           "qty": 0.02}) for _ in range(20)])

    raced = asyncio.run(race())
    assert sum(not r.is_error for r in raced) == 0, "the day already holds ≈ 940 USDT of MCP orders"


def test_concurrent_orders_never_pass_the_daily_budget_together(make_app, make_limits):
    app = make_app(limits=make_limits(max_position=10.0, max_daily_notional=1_000.0))
    notional = 0.001 * last_close()

    async def race():
        async with Client(app.server) as client:
            return await asyncio.gather(*[client.call_tool("place_order", {"symbol": "BTC/USDT", "side": "buy",
                                                                           "qty": 0.001}) for _ in range(20)])

    results = asyncio.run(race())
    fit = int(1_000.0 // (notional * (1 + 5 / 1e4)))
    assert sum(not r.is_error for r in results) == fit
    assert app.desk.day_notional(app.clock()) <= 1_000.0


class FakeBroker:
    """A live venue that acknowledges (or times out on) every order."""

    name = "fake-live"

    def __init__(self, fail: bool = False) -> None:
        self.sent, self.canceled, self.fail = [], [], fail

    async def submit(self, intent):
        if self.fail:
            raise OrderUnknownError("timeout")
        self.sent.append(intent)
        return VenueOrder(intent.client_order_id, "v1", intent.symbol, intent.side, intent.qty, 0.0, None,
                          OrderStatus.OPEN, 0)

    async def cancel(self, client_order_id, symbol):
        self.canceled.append(client_order_id)

    async def close(self):
        self.closed = True


def test_live_orders_go_to_the_broker_after_the_same_checks(make_app, tmp_path):
    broker = FakeBroker()
    app = make_app(live=True, broker=broker, db=f"sqlite:///{tmp_path / 'live.db'}")
    got = order(app, qty=0.001).structured_content
    assert got["mode"] == "live" and got["status"] == "open" and [i.qty for i in broker.sent] == [0.001]
    assert order(app, qty=0.05).is_error and len(broker.sent) == 1  # over the limit: never sent
    assert call(app, "cancel_order", {"client_order_id": got["client_order_id"]}).structured_content["status"] \
        == "canceled"
    assert broker.canceled == [got["client_order_id"]]
    resting = order(app, qty=0.001, price=1_000.0).structured_content  # live limit orders may rest
    assert resting["status"] == "open" and broker.sent[-1].price == 1_000.0
    asyncio.run(app.aclose())
    assert broker.closed


def test_a_live_submit_with_unknown_outcome_is_stored_unknown(make_app, tmp_path):
    app = make_app(live=True, broker=FakeBroker(fail=True), db=f"sqlite:///{tmp_path / 'live.db'}")
    result = order(app, qty=0.001)
    assert result.is_error and "timeout" in result.content[0].text
    assert "untrusted" in result.content[0].text  # the venue's words are marked as data
    assert [o.status for o in app.ledger.orders()] == [OrderStatus.UNKNOWN]


def test_paper_and_live_never_share_a_ledger(db, clock, make_app):
    make_app()  # claims the db for paper
    ledger = Ledger(db)
    try:
        with pytest.raises(OrderRefused, match="paper"):
            OrderDesk(ledger, ServerConfig(db=db, live=True), lambda s: (0, 1.0), clock, broker=FakeBroker())
        with pytest.raises(OrderRefused, match="broker"):
            OrderDesk(ledger, ServerConfig(db=db, live=True), lambda s: (0, 1.0), clock)
    finally:
        ledger.close()


@pytest.mark.parametrize("request_, words", [
    (OrderRequest("BTC/USDT", "hold", 1.0), "side"),
    (OrderRequest("BTC/USDT", "buy", float("nan")), "qty"),
    (OrderRequest("BTC/USDT", "buy", 0.001, price=-1.0), "price"),
    (OrderRequest("BTC/USDT", "buy", 0.001, tag="x" * 65), "tag"),
])
def test_the_desk_refuses_malformed_requests(app, request_, words):
    with pytest.raises(OrderRefused, match=words):
        app.desk.place(request_)
    assert app.ledger.orders() == []


def test_a_paper_order_placed_through_mcp_shows_up_in_coinswarm_live_report(app, db, capsys):
    """Issue 20's done-means: the order an assistant placed is in ``coinswarm live report --json``."""
    import json

    from coinswarm.cli.main import main

    got = order(app, qty=0.002).structured_content
    app.ledger.close()
    capsys.readouterr()
    assert main(["live", "report", "--db", db, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [o["client_order_id"] for o in report["orders"]] == [got["client_order_id"]]
    assert report["orders"][0]["status"] == "filled" and report["fills"][0]["qty"] == pytest.approx(0.002)
    assert report["positions"]["BTC/USDT"]["qty"] == pytest.approx(0.002)
