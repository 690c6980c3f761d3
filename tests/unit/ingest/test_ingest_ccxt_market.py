"""ccxt market sources: recorded ccxt fixtures (datasets/ccxt_static) parsed into records, and a
local fake Binance (REST + WebSocket, real candles and trades) with rate limits, forming
candles, disconnects mid-stream, duplicated and out-of-order messages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coinswarm.adapters.fake_market import FakeMarketVenue
from coinswarm.adapters.fake_venue import CCXT_OPTIONS, exchange_info
from coinswarm.adapters.sources.base import SourceError
from coinswarm.adapters.sources.ccxt_market import (
    BookSource,
    CandleSource,
    CandleStream,
    CcxtMarket,
    FundingSource,
    TradeSource,
    TradeStream,
)
from coinswarm.data.catalog import data_roots

pytestmark = pytest.mark.timeout(90)


def data_file(sub: str, name: str) -> Path:
    for root in data_roots():
        if (Path(root) / sub / name).exists():
            return Path(root) / sub / name
    pytest.fail(f"{sub}/{name} not found under {data_roots()}")


def case(name: str, method: str, description: str) -> dict:
    data = json.loads(data_file("ccxt_static", name).read_text())
    return next(c for c in data["methods"][method] if c["description"] == description)


class Replies:
    """Stands in for ccxt's ``fetch``: answers by URL part, records the URLs."""

    def __init__(self, replies: list[tuple[str, object]]) -> None:
        self.replies, self.urls = replies, []

    async def __call__(self, url, method="GET", headers=None, body=None):
        self.urls.append(url)
        for part, reply in self.replies:
            if part in url:
                return json.loads(json.dumps(reply))
        raise AssertionError(f"no fixture for {url}")


def binance_market(replies) -> tuple[CcxtMarket, Replies]:
    import ccxt.pro as ccxtpro

    info = exchange_info([("BTC", "USDT")], 1)
    rec = Replies([("/exchangeInfo", info), ("/time", {"serverTime": 1_800_000_000_000}), *replies])
    ex = ccxtpro.binance({"options": dict(CCXT_OPTIONS)})
    ex.fetch = rec
    return CcxtMarket("binance", exchange_obj=ex), rec


def run(coro):
    return asyncio.run(coro)


def test_binance_recorded_trades_candles_book_become_records():
    tr = case("ccxt_response_binance.json", "fetchTrades", "public spot trades")
    oh = case("ccxt_response_binance.json", "fetchOHLCV", "Spot OHLCV with since and limit")
    ob = case("ccxt_response_binance.json", "fetchOrderBook", "spot orderbook")
    market, rec = binance_market([("/aggTrades", tr["httpResponse"]), ("/klines", oh["httpResponse"]),
                                  ("/depth", ob["httpResponse"])])

    async def scenario():
        t = await TradeSource(market, "BTCUSDT", limit=1000).fetch(1710327661000, 1710327662000, 5)
        c = await CandleSource(market, "BTC-USDT", "1h").fetch(1706628191000, 1706641200000, 5)
        b = await BookSource(market, "btc/usdt", depth=2).fetch(0, 0, 5)
        await market.close()
        return t, c, b

    t, c, b = run(scenario())
    want = tr["parsedResponse"][0]
    assert [(r.key, r.time_ms, r.values["trade_id"], r.values["price"], r.values["amount"], r.values["side"])
            for r in t.records] == [("BTC/USDT", want["timestamp"], want["id"], want["price"], want["amount"],
                                     want["side"])]
    assert [[r.time_ms, *(r.values[k] for k in ("open", "high", "low", "close", "volume"))] for r in c.records] == \
        [row for row in oh["parsedResponse"] if row[0] < 1706641200000]
    assert b.records[0].values["bids"] == ob["parsedResponse"]["bids"] and b.records[0].key == "BTC/USDT"
    assert any("startTime=1710327661000" in u and "endTime=" in u for u in rec.urls)  # the 1 h window


def test_coinbase_exchange_recorded_trades_and_candles():
    import ccxt.pro as ccxtpro

    tr = case("ccxt_response_coinbaseexchange.json", "fetchTrades", "public spot trades")
    oh = case("ccxt_response_coinbaseexchange.json", "fetchOHLCV", "public spot ohlcv")
    ex = ccxtpro.coinbaseexchange()
    ex.set_markets([{"id": "BTC-USDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "baseId": "BTC",
                     "quoteId": "USDT", "type": "spot", "spot": True, "active": True, "contract": False,
                     "precision": {"amount": 1e-8, "price": 1e-8}, "limits": {}, "info": {}}])
    ex.fetch = Replies([("/trades", tr["httpResponse"]), ("/candles", oh["httpResponse"]),
                        ("/time", {"iso": "2024-03-13T12:00:00Z", "epoch": 1710331260})])
    market = CcxtMarket("coinbaseexchange", exchange_obj=ex)

    async def scenario():
        t = await TradeSource(market, "BTC-USDT").fetch(0, 2**62, 5)
        c = await CandleSource(market, "BTC-USDT", "1h").fetch(1710327600000, 1710331200000, 5)
        await market.close()
        return t, c

    t, c = run(scenario())
    want = tr["parsedResponse"][0]
    assert [(r.values["trade_id"], r.time_ms, r.values["price"], r.values["side"]) for r in t.records] == [
        (want["id"], want["timestamp"], want["price"], want["side"])]
    assert [r.time_ms for r in c.records] == [row[0] for row in oh["parsedResponse"]]
    assert c.records[0].values["close"] == oh["parsedResponse"][0][4]


def test_funding_pages_real_rates():
    rates = pd.read_csv(data_file("ohlcv", "binance_futures_BTCUSDT_funding_rate.csv.gz")).head(25)

    class Venue:
        calls: list = []

        async def fetch_funding_rate_history(self, symbol, since, limit):
            self.calls.append((symbol, since, limit))
            rows = rates[rates.timestamp >= since].head(limit)
            return [{"symbol": symbol, "timestamp": int(r.timestamp), "fundingRate": float(r.funding_rate)}
                    for r in rows.itertuples()]

        async def close(self):
            pass

    venue = Venue()
    src = FundingSource(CcxtMarket("binanceusdm", exchange_obj=venue), "BTCUSDT", limit=10)
    batch = run(src.fetch(int(rates.timestamp[0]), 2**62, 0))
    assert src.key == "BTC/USDT:USDT" and len(venue.calls) == 3
    assert [r.values["rate"] for r in batch.records] == rates.funding_rate.tolist()


# ---- the fake venue -----------------------------------------------------------------------------
TICKS = "binance_BTCUSDT_trades_2021-01-08T0000.csv.gz"


def venue(**kw) -> FakeMarketVenue:
    return FakeMarketVenue({"BTC/USDT": "binance:BTC/USDT:1m"}, trades={"BTC/USDT": str(data_file("ticks", TICKS))},
                           bbo={"BTC/USDT": str(data_file("ticks", "binance_BTCUSDT_bbo_2021-01-08T0000.csv.gz"))},
                           start="2024-04-03T00:00:30", data_start="2024-04-02", data_end="2024-04-04", **kw)


def test_rate_limit_backs_off_with_retry_after_and_never_hammers():
    async def scenario():
        async with venue() as v:
            market = CcxtMarket("binance", api_url=v.url, options=dict(CCXT_OPTIONS))
            await market.venue_now("t")
            v.script(rate_limit=5, rate_limit_status=418, retry_after_s=2.5)
            before = sum(v.requests.values())
            with pytest.raises(SourceError) as err:
                await CandleSource(market, "BTCUSDT", "1m").fetch(0, 2**62, 0)
            after = sum(v.requests.values())
            await market.close()
            return err.value, after - before

    err, requests = run(scenario())
    assert err.retry_after_s == 2.5 and "rate limited" in str(err) and requests == 1


def test_rest_candles_leave_out_the_forming_candle_and_match_the_catalog():
    import coinswarm as cs

    async def scenario():
        async with venue() as v:
            market = CcxtMarket("binance", api_url=v.url, options=dict(CCXT_OPTIONS))
            now = await market.venue_now("t")
            batch = await CandleSource(market, "BTC/USDT", "1m").fetch(now - 3_600_000, now + 600_000, 0)
            await market.close()
            return now, batch

    now, batch = run(scenario())
    times = [r.time_ms for r in batch.records]
    assert times and max(times) + 60_000 <= now and len(times) == 60  # the forming minute is not there
    ref = cs.load_ohlcv("binance:BTC/USDT:1m", start="2024-04-02", end="2024-04-04")
    ref = ref[ref.index.as_unit("ms").asi8 >= times[0]].head(len(times))
    assert [r.values["close"] for r in batch.records] == ref["close"].tolist()


def collect(stream, seconds: float):
    out: list = []

    async def consume():
        async for b in stream.stream():
            out.extend(b.records)

    async def go():
        task = asyncio.create_task(consume())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return out, go


def test_ws_trades_survive_drops_duplicates_and_reordering():
    async def scenario():
        async with venue(speed=4.0) as v:
            market = CcxtMarket("binance", api_url=v.url, ws_url=v.ws_url, options=dict(CCXT_OPTIONS))
            stream = TradeStream(market, "BTCUSDT")
            records, consume = collect(stream, 10.0)
            v.stream_faults.update({"duplicate": True, "swap": True, "drop_after": 40})

            async def calm_down():  # the faults stop for the last 4 s: the last drop gets refilled too
                await asyncio.sleep(6.0)
                v.stream_faults.update({"swap": False, "drop_after": 0})

            await asyncio.gather(consume(), calm_down())
            await market.close()
            return records, stream.health(), v.ws_sent

    records, health, sent = run(scenario())
    ids = [int(r.values["trade_id"]) for r in records]
    assert len(ids) == len(set(ids)) > 100  # each trade once, although every message came twice
    assert sorted(ids) == list(range(min(ids), max(ids) + 1))  # drops refilled by REST: no hole
    assert health.reconnects >= 2 and sent >= 2 * 40  # every message twice, dropped after 40 sends
    assert ids != sorted(ids)  # swapped on the wire: yielded as they came, all there
    assert abs(health.lag_ms) < 60_000  # measured on the venue's clock


def test_ws_candles_only_closed_ones_with_final_values():
    import coinswarm as cs

    async def scenario():
        async with venue(speed=60.0) as v:  # a minute a second
            market = CcxtMarket("binance", api_url=v.url, ws_url=v.ws_url, options=dict(CCXT_OPTIONS))
            stream = CandleStream(market, "BTC/USDT", "1m")
            records, consume = collect(stream, 4.5)
            await consume()
            now = v.clock.now_ms()
            await market.close()
            return records, now

    records, now = run(scenario())
    ref = cs.load_ohlcv("binance:BTC/USDT:1m", start="2024-04-02", end="2024-04-04")
    ref = dict(zip(ref.index.as_unit("ms").asi8.tolist(), ref["volume"].tolist(), strict=True))
    assert len(records) >= 2 and all(r.time_ms + 60_000 <= now for r in records)
    assert all(r.values["volume"] == ref[r.time_ms] for r in records)  # never the forming zero-volume bar
    assert len({r.time_ms for r in records}) == len(records)
    assert np.all(np.diff([r.time_ms for r in records]) == 60_000)


def test_coinbase_advanced_requests_match_the_recorded_ones():
    """Coinbase Advanced Trade: the trades and candles requests our sources make (symbol given as
    BTC-USDT) carry the recorded query (start in seconds, limit / end)."""
    import ccxt.pro as ccxtpro

    want_trades = case("ccxt_request_coinbase.json", "fetchTrades", "with since, limit and until")["url"]
    want_ohlcv = case("ccxt_request_coinbase.json", "fetchOHLCV", "with since and limit")["url"]
    ex = ccxtpro.coinbase()
    ex.set_markets([{"id": "BTC-USDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "baseId": "BTC",
                     "quoteId": "USDT", "type": "spot", "spot": True, "active": True, "contract": False,
                     "precision": {"amount": 1e-8, "price": 1e-8}, "limits": {}, "info": {}}])
    rec = Replies([("/ticker", {"trades": []}), ("/candles", {"candles": []}),
                   ("/time", {"data": {"iso": "2023-03-05T11:00:00Z", "epoch": 1678014000}})])
    ex.fetch = rec
    market = CcxtMarket("coinbase", exchange_obj=ex)

    async def scenario():
        await TradeSource(market, "BTC-USDT", limit=15).fetch(1678012344389, 1678012744389, 0)
        await CandleSource(market, "BTC-USDT", "1m", limit=20).fetch(1678012344389, 1678013544389, 0)
        await market.close()

    run(scenario())
    trades = next(u for u in rec.urls if "/ticker" in u)
    candles = next(u for u in rec.urls if "/candles" in u)
    assert trades.split("?")[0].replace("/market/", "/") == want_trades.split("?")[0]
    assert "start=1678012344" in trades and "limit=15" in trades and "end=1678012744" in trades
    assert candles.split("?")[0].replace("/market/", "/") == want_ohlcv.split("?")[0]
    assert "granularity=ONE_MINUTE" in candles and "start=1678012320" in candles
