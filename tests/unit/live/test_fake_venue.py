"""The fake Binance venue itself, spoken to over raw HTTP on 127.0.0.1: real candles, the forming
candle, signatures, the fill rules, faults and the control endpoints."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from urllib.parse import urlencode

import aiohttp
import pytest

import coinswarm as cs
from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue, Faults
from coinswarm.errors import ConfigError

pytestmark = pytest.mark.timeout(60)
HOUR = 3_600_000
T0 = 1709251200000


def venue(**kw) -> FakeVenue:
    return FakeVenue({"BTC/USDT": "binance:BTC/USDT:1h"}, start="2024-03-01T00:30", data_start="2024-02-28",
                     data_end="2024-03-03", **kw)


async def call(v: FakeVenue, method: str, path: str, params: dict | None = None, *, signed: bool = False,
               secret: str = DUMMY_SECRET, key: str = DUMMY_KEY, stamp: int | None = None):
    params = dict(params or {})
    headers = {}
    if signed:
        params["timestamp"] = v.clock.now_ms() if stamp is None else stamp
        query = urlencode(params)
        params["signature"] = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        headers["X-MBX-APIKEY"] = key
    async with aiohttp.ClientSession() as s, s.request(method, v.url + path, params=params, headers=headers,
                                                       timeout=aiohttp.ClientTimeout(total=10)) as r:
        return r.status, await r.json(), dict(r.headers)


def test_klines_are_the_catalog_and_the_forming_candle_is_marked():
    async def scenario():
        async with venue() as v:
            return await call(v, "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h", "limit": 3})

    status, rows, _ = asyncio.run(scenario())
    frame = cs.load_ohlcv("binance:BTC/USDT:1h", start="2024-02-29T22:00", end="2024-02-29T23:00")
    assert status == 200 and [r[0] for r in rows] == [T0 - 2 * HOUR, T0 - HOUR, T0]
    for row, (_, bar) in zip(rows[:2], frame.iterrows(), strict=True):
        assert [float(x) for x in row[1:6]] == list(bar[["open", "high", "low", "close", "volume"]])
    assert rows[2][1] == rows[2][2] == rows[2][3] == rows[2][4] and float(rows[2][5]) == 0.0  # forming


@pytest.mark.parametrize(("kw", "code"), [({"secret": "wrong"}, -1022), ({"key": "other"}, -2015),
                                          ({"stamp": 1}, -1021)])
def test_signed_requests_are_checked(kw, code):
    async def scenario():
        async with venue() as v:
            return await call(v, "GET", "/api/v3/account", signed=True, **kw), v

    (status, body, _), v = asyncio.run(scenario())
    assert status in (400, 401) and body["code"] == code


def test_limit_order_fills_at_the_limit_or_better_and_cancel_releases_the_lock():
    async def scenario():
        async with venue() as v:
            base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
            await call(v, "POST", "/api/v3/order", {**base, "price": "1000", "newClientOrderId": "far"}, signed=True)
            await call(v, "POST", "/api/v3/order", {**base, "price": "70000", "newClientOrderId": "near"}, signed=True)
            locked = v.state.balances["USDT"][1]
            v.advance(2 * HOUR)  # the 01:00 bar has closed
            _, near, _ = await call(v, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "near"},
                                    signed=True)
            _, gone, _ = await call(v, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "far"},
                                    signed=True)
            return v, locked, near, gone

    v, locked, near, gone = asyncio.run(scenario())
    one = cs.load_ohlcv("binance:BTC/USDT:1h", start="2024-03-01T01:00", end="2024-03-01T01:00")
    bar_open = float(one["open"].iloc[0])
    assert locked == pytest.approx(0.01 * 71000 * 1.001)
    assert near["status"] == "FILLED" and float(near["cummulativeQuoteQty"]) == pytest.approx(0.01 * bar_open)
    assert gone["status"] == "CANCELED" and v.state.balances["USDT"][1] == pytest.approx(0.0, abs=1e-9)
    assert v.state.balances["USDT"][0] == pytest.approx(10_000 - 0.01 * bar_open * 1.001)


def test_faults_control_endpoints_and_validation():
    async def scenario():
        async with venue() as v:
            async with aiohttp.ClientSession() as s:
                await s.post(v.url + "/_venue/faults", json={"rate_limit": 1, "retry_after_s": 9})
                async with s.get(v.url + "/api/v3/time") as r:
                    limited = (r.status, float(r.headers.get("Retry-After")))
                before = v.clock.now_ms()
                async with s.post(v.url + "/_venue/advance", json={"ms": HOUR}) as r:
                    stats = await r.json()
                async with s.get(v.url + "/api/v3/nothing") as r:
                    missing = r.status
            return limited, before, stats, missing

    limited, before, stats, missing = asyncio.run(scenario())
    assert limited == (429, 9.0) and missing == 404
    assert stats["now_ms"] - before >= HOUR and stats["requests"]["GET /api/v3/time"] == 1
    faults = Faults()
    for bad in ({"nope": 1}, {"partial_fills": [0.5, 0.4]}, {"lost_reply": "sometimes"}):
        with pytest.raises(ConfigError):
            faults.update(bad)
    assert faults == Faults()  # unchanged after each error


def test_a_hanging_reply_is_bounded():
    async def scenario():
        async with venue() as v:
            v.script(lost_replies=1, lost_reply="hang", hang_s=0.5)
            t = time.monotonic()
            with pytest.raises(aiohttp.ClientError):
                await call(v, "POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                        "quantity": "0.01", "newClientOrderId": "h"}, signed=True)
            return v, time.monotonic() - t

    v, waited = asyncio.run(scenario())
    assert waited < 5 and ("BTCUSDT", "h") in v.state.by_client  # accepted, reply lost


def test_perpetuals_serve_funding_up_to_the_clock_and_bad_ones_are_refused():
    async def scenario():
        async with FakeVenue({"BTC/USDT:USDT": "binance-perp:BTC/USDT:1h"}, start="2021-03-01T00:30",
                             data_start="2021-02-27", data_end="2021-03-02") as v:
            latest = await call(v, "GET", "/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": 3})
            unknown = await call(v, "GET", "/fapi/v1/fundingRate", {"symbol": "ETHUSDT"})
            spot = await call(v, "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1h"})
            return latest, unknown, spot

    (status, rows, _), unknown, spot = asyncio.run(scenario())
    rates = cs.load_funding("binance-perp:BTC/USDT:funding").loc[:"2021-03-01T00:00"].iloc[-3:]
    assert status == 200 and [(r["fundingTime"], float(r["fundingRate"])) for r in rows] == \
        list(zip(rates.index.as_unit("ms").asi8.tolist(), rates.tolist(), strict=True))
    assert unknown[:2] == (400, {"code": -1121, "msg": "Invalid symbol 'ETHUSDT'."})
    assert spot[0] == 400  # a perpetual is not a spot market
    with pytest.raises(ConfigError, match="expected a USDT-M perpetual"):
        FakeVenue({"BTC/USDT:USDT": "binance:BTC/USDT:1h"})
