"""CcxtBroker on Coinbase Advanced Trade with the sandbox switch: the requests it builds are the
recorded ones (datasets/ccxt_static), signed private v3 requests go to api-sandbox.coinbase.com,
public market data and the clock stay on api.coinbase.com, and the recorded v3 balance reply
parses into the runner's records. No network: the exchange's ``fetch`` answers from the fixtures."""

from __future__ import annotations

import asyncio
import json

import pytest

from coinswarm.live.ccxt_broker import COINBASE_LIVE, COINBASE_SANDBOX, ApiKeys, CcxtBroker
from coinswarm.live.protocols import Balance, OrderIntent, OrderStatus, Side
from tests.helpers.ccxt_static import Recorder, case, coinbase_markets, fixture

pytestmark = pytest.mark.timeout(60)
TIME = {"data": {"iso": "2023-11-14T22:13:20Z", "epoch": 1700000000}}


def broker(sandbox: bool, replies: list[tuple[str, object]]) -> tuple[CcxtBroker, Recorder]:
    b = CcxtBroker("coinbase", keys=ApiKeys("dummy-coinbase-key", "dummy-coinbase-secret"), sandbox=sandbox)
    b._ex.set_markets(coinbase_markets((("ADA", "USDT"), ("DOGE", "USDT"), ("BTC", "USDT"))))
    rec = Recorder(replies)
    b._ex.fetch = rec
    return b, rec


def on(host: str, recorded_url: str) -> str:
    assert recorded_url.startswith(COINBASE_LIVE + "/")
    return host + recorded_url[len(COINBASE_LIVE):]


@pytest.mark.parametrize("sandbox", [True, False])
def test_orders_and_balances_go_to_the_sandbox_market_data_does_not(sandbox):
    req = fixture("ccxt_request_coinbase.json")
    limit_buy = case(req, "createOrder", "spot limit buy")
    fetch_order = case(req, "fetchOrder", "fetch order")
    cancel = case(req, "cancelOrder", "cancel order")
    balance_v3 = case(req, "fetchBalance", "fetch spot balance v3")
    balance_v2 = case(req, "fetchBalance", "Fetch spot Balance")
    ohlcv = case(req, "fetchOHLCV", "with since and limit")
    resp = fixture("ccxt_response_coinbase.json")
    v3_balance = case(resp, "fetchBalance", "v3 balance")
    v2_balance = case(resp, "fetchBalance", "v2 balance")
    closed = case(resp, "fetchClosedOrders", "Spot closed order")["httpResponse"]["orders"][0]
    venue_id = fetch_order["input"][0]
    ack = {"success": True, "success_response": {"order_id": "o-1", "product_id": "ADA-USDT", "side": "BUY",
                                                 "client_order_id": "cs-ada-1"}}
    historical = {"order": {**closed, "order_id": venue_id, "product_id": "DOGE-USDT", "status": "OPEN",
                            "client_order_id": "cs-doge"}}
    b, rec = broker(sandbox, [("/orders/historical/", historical),
                              ("/orders/batch_cancel", {"results": [{"success": True, "order_id": venue_id}]}),
                              ("/brokerage/orders", ack), ("/v2/time", TIME), ("/candles", {"candles": []}),
                              ("/api/v3/brokerage/accounts", v3_balance["httpResponse"]),
                              ("/v2/accounts", v2_balance["httpResponse"])])

    async def scenario():
        sent = await b.submit(OrderIntent("cs-ada-1", "ADA/USDT", Side.BUY, 4, 0, "s", price=0.2))
        b._venue_ids["cs-doge"] = venue_id
        status = await b.order_status("cs-doge", "DOGE/USDT")
        await b.cancel("cs-doge", "DOGE/USDT")
        balances = await b.balances()
        now = await b.server_time_ms()
        await b.candles("BTC/USDT", "1m", 1678012344389, 20)
        await b.close()
        return sent, status, balances, now

    sent, status, balances, now = asyncio.run(scenario())
    host = COINBASE_SANDBOX if sandbox else COINBASE_LIVE
    urls = [(m, u) for m, u, _ in rec.requests]
    posts = [(u, json.loads(body)) for m, u, body in rec.requests if m == "POST"]
    assert posts[0] == (on(host, limit_buy["url"]), {**json.loads(limit_buy["output"]), "client_order_id": "cs-ada-1"})
    assert posts[1] == (on(host, cancel["url"]), json.loads(cancel["output"]))
    assert ("GET", on(host, fetch_order["url"])) in urls
    balance_url = on(COINBASE_SANDBOX, balance_v3["url"]) if sandbox else balance_v2["url"].replace("100", "250")
    assert ("GET", balance_url) in urls
    # public: the clock and the candles stay on production (the sandbox serves no market data)
    assert ("GET", f"{COINBASE_LIVE}/v2/time") in urls
    candles = next(u for _, u in urls if "/candles" in u)
    assert candles.startswith(COINBASE_LIVE + "/") and candles.split("?")[1] == ohlcv["url"].split("?")[1]
    assert now == 1_700_000_000_000
    assert sent.client_order_id == "cs-ada-1" and sent.status is OrderStatus.OPEN
    assert status.client_order_id == "cs-doge" and status.status is OrderStatus.OPEN
    parsed = (v3_balance if sandbox else v2_balance)["parsedResponse"]
    assert balances == {a: Balance(a, parsed["free"][a], parsed["total"][a]) for a in parsed["total"]}
    assert all("dummy-coinbase-secret" not in f"{u}{body}" for _, u, body in rec.requests)


def test_a_fake_venue_url_wins_over_the_sandbox_host():
    b = CcxtBroker("coinbase", keys=ApiKeys("k", "s"), sandbox=True, api_url="http://127.0.0.1:9")
    request = b._ex.sign("brokerage/orders", ["v3", "private"], "POST", {"product_id": "ADA-USDT"})
    assert request["url"] == "http://127.0.0.1:9/api/v3/brokerage/orders"
    asyncio.run(b.close())
