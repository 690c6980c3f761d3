"""CcxtBroker end to end against the fake Binance venue on 127.0.0.1 (real candles, real ccxt,
dummy keys): every scripted fault gives its typed error or state, nothing is ever resubmitted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue, FakeVenueProcess
from coinswarm.errors import (
    ConfigError,
    MalformedReplyError,
    OrderRejectedError,
    OrderUnknownError,
    RateLimitedError,
    VenueError,
)
from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker, load_keys, order_from_ccxt
from coinswarm.live.protocols import Broker, OrderIntent, OrderStatus, Side, client_order_id

pytestmark = pytest.mark.timeout(120)
SYMBOLS = {"BTC/USDT": "binance:BTC/USDT:1h", "ETH/USDT": "binance:ETH/USDT:1h"}
HOUR = 3_600_000
KEYS = ApiKeys(DUMMY_KEY, DUMMY_SECRET)


@contextlib.asynccontextmanager
async def session(timeout_ms: int = 3000, balances: dict | None = None):
    async with FakeVenue(SYMBOLS, start="2024-03-01", data_start="2024-02-25", data_end="2024-03-05",
                         balances=balances or {"USDT": 10_000.0, "ETH": 2.0}) as venue:
        broker = CcxtBroker("binance", keys=KEYS, api_url=venue.url, timeout_ms=timeout_ms, min_interval_ms=1)
        await broker.start()
        try:
            yield venue, broker
        finally:
            await broker.close()


def intent(seq: int, side: Side = Side.BUY, qty: float = 0.01, price: float | None = None,
           symbol: str = "BTC/USDT") -> OrderIntent:
    bar = 1709251200000
    return OrderIntent(client_order_id("t", symbol, bar, seq), symbol, side, qty, bar, "t", price)


def catalog_open(symbol: str, time_ms: int) -> float:
    frame = cs.load_ohlcv(SYMBOLS[symbol], start="2024-02-29", end="2024-03-03")
    return float(frame["open"].to_numpy()[np.searchsorted(frame.index.as_unit("ms").asi8, time_ms)])


def run(coro):
    return asyncio.run(coro)


def test_is_a_broker_and_keeps_keys_out_of_repr():
    broker = CcxtBroker("binance", keys=KEYS, api_url="http://127.0.0.1:9")
    assert isinstance(broker, Broker)
    assert DUMMY_SECRET not in repr(broker) and DUMMY_KEY not in repr(KEYS) and DUMMY_SECRET not in str(KEYS)
    run(broker.close())


def test_market_order_life_fills_at_next_open_with_real_price():
    async def scenario():
        async with session() as (venue, broker):
            sent = await broker.submit(intent(0))
            assert (sent.status, sent.filled_qty) == (OrderStatus.OPEN, 0.0)
            assert sent.client_order_id == intent(0).client_order_id
            assert venue.state.by_client[("BTCUSDT", sent.client_order_id)] == int(sent.venue_order_id)
            venue.advance(HOUR)
            done = await broker.order_status(sent.client_order_id, "BTC/USDT")
            fills = await broker.fills_since(["BTC/USDT"], 0)
            bal = await broker.balances()
            return venue, sent, done, fills, bal

    venue, sent, done, fills, bal = run(scenario())
    px = catalog_open("BTC/USDT", 1709251200000 + HOUR)  # the bar after acceptance (2024-03-01 01:00)
    assert done.status is OrderStatus.FILLED and done.filled_qty == pytest.approx(0.01) and done.avg_price == px
    assert [(f.client_order_id, f.price, f.qty, f.side) for f in fills] == [(sent.client_order_id, px, 0.01, Side.BUY)]
    assert fills[0].fee == pytest.approx(0.01 * px * 0.001) and fills[0].fee_currency == "USDT"
    assert bal["BTC"].total == pytest.approx(0.01)
    assert bal["USDT"].total == pytest.approx(10_000 - 0.01 * px * 1.001)
    assert venue.count("POST", "/api/v3/order") == 1


@pytest.mark.parametrize("status", [429, 418])
def test_rate_limit_gives_retry_after_and_creates_nothing(status):
    async def scenario():
        async with session() as (venue, broker):
            venue.script(rate_limit=1, rate_limit_status=status, retry_after_s=7)
            with pytest.raises(RateLimitedError) as err:
                await broker.submit(intent(1))
            return venue, err.value

    venue, err = run(scenario())
    assert err.retry_after == 7.0 and err.client_order_id == intent(1).client_order_id
    assert venue.state.orders == {}


@pytest.mark.parametrize("mode", ["drop", "hang"])
def test_lost_reply_is_unknown_then_resolved_by_status(mode):
    async def scenario():
        async with session(timeout_ms=400) as (venue, broker):
            venue.script(lost_replies=1, lost_reply=mode, hang_s=1.5)
            with pytest.raises(OrderUnknownError) as err:
                await broker.submit(intent(2))
            found = await broker.order_status(intent(2).client_order_id, "BTC/USDT")
            return venue, err.value, found

    venue, err, found = run(scenario())
    assert "never resend" in str(err)
    assert found is not None and found.status is OrderStatus.OPEN and found.client_order_id == intent(2).client_order_id
    assert venue.count("POST", "/api/v3/order") == 1


def test_does_not_exist_for_a_while_then_found():
    async def scenario():
        async with session() as (venue, broker):
            venue.script(not_found_ms=90_000, lost_replies=1)
            with pytest.raises(OrderUnknownError):
                await broker.submit(intent(3))
            early = await broker.order_status(intent(3).client_order_id, "BTC/USDT")
            venue.advance(91_000)
            late = await broker.order_status(intent(3).client_order_id, "BTC/USDT")
            return venue, early, late

    venue, early, late = run(scenario())
    assert early is None and late is not None and late.venue_order_id is not None
    assert venue.count("POST", "/api/v3/order") == 1


def test_partial_fills_two_bars_two_prices():
    async def scenario():
        async with session() as (venue, broker):
            venue.script(partial_fills=[0.25, 0.75])
            sent = await broker.submit(intent(4, qty=0.02))
            venue.advance(HOUR)
            half = await broker.order_status(sent.client_order_id, "BTC/USDT")
            venue.advance(HOUR)
            done = await broker.order_status(sent.client_order_id, "BTC/USDT")
            return half, done, await broker.fills_since(["BTC/USDT"], 0)

    half, done, fills = run(scenario())
    p1, p2 = catalog_open("BTC/USDT", 1709251200000 + HOUR), catalog_open("BTC/USDT", 1709251200000 + 2 * HOUR)
    assert half.status is OrderStatus.OPEN and half.filled_qty == pytest.approx(0.005)
    assert done.status is OrderStatus.FILLED and done.avg_price == pytest.approx(0.25 * p1 + 0.75 * p2)
    assert [(f.qty, f.price) for f in fills] == [(pytest.approx(0.005), p1), (pytest.approx(0.015), p2)]


def test_insufficient_balance_is_a_rejection_and_changes_nothing():
    async def scenario():
        async with session() as (venue, broker):
            before = await broker.balances()
            with pytest.raises(OrderRejectedError) as err:
                await broker.submit(intent(5, qty=10.0))
            venue.script(reject_next=1, reject_code=-1013, reject_msg="Filter failure: LOT_SIZE")
            with pytest.raises(OrderRejectedError):
                await broker.submit(intent(6))
            return venue, before, await broker.balances(), err.value

    venue, before, after, err = run(scenario())
    assert "insufficient balance" in str(err).lower()
    assert before == after and venue.state.orders == {}


def test_duplicate_and_out_of_order_trade_reports_are_deduplicated():
    async def scenario():
        async with session() as (venue, broker):
            venue.script(partial_fills=[0.2, 0.3, 0.5])
            await broker.submit(intent(7, qty=0.03))
            await broker.submit(intent(8, side=Side.SELL, qty=0.5, symbol="ETH/USDT"))
            venue.advance(3 * HOUR)
            clean = await broker.fills_since(["BTC/USDT", "ETH/USDT"], 0)
            venue.script(duplicate_trades=True, shuffle_trades=True, seed=3)
            messy = await broker.fills_since(["BTC/USDT", "ETH/USDT"], 0)
            return clean, messy

    clean, messy = run(scenario())
    assert len(clean) == 6 and messy == clean
    assert [f.time_ms for f in clean] == sorted(f.time_ms for f in clean)


def test_limit_order_open_cancel_and_cancel_again():
    async def scenario():
        async with session() as (venue, broker):
            sent = await broker.submit(intent(9, price=1000.0))
            listed = await broker.open_orders(["BTC/USDT", "ETH/USDT"])
            gone = await broker.cancel(sent.client_order_id, "BTC/USDT")
            after = await broker.open_orders(["BTC/USDT"])
            with pytest.raises(OrderRejectedError):
                await broker.cancel(sent.client_order_id, "BTC/USDT")
            return sent, listed, gone, after, await broker.balances()

    sent, listed, gone, after, bal = run(scenario())
    assert [o.client_order_id for o in listed] == [sent.client_order_id]
    assert gone.status is OrderStatus.CANCELED and gone.client_order_id == sent.client_order_id and after == []
    assert bal["USDT"].free == pytest.approx(10_000.0)  # the lock is released


def test_ten_percent_lost_replies_resolved_without_a_resubmit():
    n = 80

    async def scenario():
        async with session(balances={"USDT": 1e9}) as (venue, broker):
            venue.script(lost_reply_rate=0.1, seed=11)
            unknown, known = [], []
            for i in range(n):
                try:
                    known.append(await broker.submit(intent(100 + i, qty=0.001)))
                except OrderUnknownError:
                    unknown.append(intent(100 + i).client_order_id)
            venue.advance(HOUR)
            resolved = [await broker.order_status(cid, "BTC/USDT") for cid in unknown]
            return venue, unknown, known, resolved

    venue, unknown, known, resolved = run(scenario())
    assert 3 <= len(unknown) <= 16 and len(unknown) + len(known) == n
    assert all(r is not None and r.status is OrderStatus.FILLED for r in resolved)
    assert [r.client_order_id for r in resolved] == unknown
    assert venue.count("POST", "/api/v3/order") == n and len(venue.state.orders) == n


def test_clock_offset_tracked_and_resynced_after_a_jump():
    async def scenario():
        async with session() as (venue, broker):
            offset = broker.clock_offset_ms
            venue.advance(3 * HOUR)
            with pytest.raises(OrderRejectedError, match="recvWindow"):
                await broker.submit(intent(20))  # refused for certain; never resent inside
            sent = await broker.submit(intent(20))  # the runner decides again: the offset was re-measured
            venue.advance(HOUR)
            status = await broker.order_status(sent.client_order_id, "BTC/USDT")  # resync + one retry
            return venue, offset, broker.clock_offset_ms, status

    venue, before, after, status = run(scenario())
    assert before < -600 * 86_400_000  # the venue lives in 2024
    assert after - before == pytest.approx(4 * HOUR, abs=5_000)
    assert status.status is OrderStatus.FILLED and venue.count("POST", "/api/v3/order") == 2


def test_malformed_reply_names_the_field():
    async def scenario():
        async with session() as (venue, broker):
            sent = await broker.submit(intent(21))
            real = venue.get_order
            venue.get_order = lambda params, now: {**real(params, now), "origQty": "lots"}
            with pytest.raises(MalformedReplyError, match="field 'origQty' is 'lots'"):
                await broker.order_status(sent.client_order_id, "BTC/USDT")
            venue.get_order = lambda params, now: {**real(params, now), "status": "WEIRD"}
            with pytest.raises(MalformedReplyError, match="'status'"):
                await broker.order_status(sent.client_order_id, "BTC/USDT")

    run(scenario())
    with pytest.raises(MalformedReplyError, match="'filled'"):
        order_from_ccxt({"clientOrderId": "a", "symbol": "BTC/USDT", "side": "buy", "amount": 1, "filled": 2,
                         "status": "open", "timestamp": 1}, "v")


def test_wrong_secret_is_refused_and_never_shown(caplog):
    async def scenario():
        async with FakeVenue(SYMBOLS, data_start="2024-02-25", data_end="2024-03-05") as venue:
            broker = CcxtBroker("binance", keys=ApiKeys(DUMMY_KEY, "not-the-secret-xyz"), api_url=venue.url,
                                min_interval_ms=1)
            try:
                await broker.start()
                with pytest.raises(OrderRejectedError) as err:
                    await broker.submit(intent(22))
                with pytest.raises(VenueError) as err2:
                    await broker.balances()
                return err.value, err2.value
            finally:
                await broker.close()

    with caplog.at_level(logging.DEBUG):
        errs = run(scenario())
    text = " ".join(str(e) for e in errs) + caplog.text
    assert "not-the-secret-xyz" not in text and DUMMY_KEY not in text


def test_keys_from_env_or_private_file(tmp_path):
    env = {"COINSWARM_BINANCE_API_KEY": "k1", "COINSWARM_BINANCE_SECRET": "s1"}
    assert load_keys("binance", env=env) == ApiKeys("k1", "s1", "env")
    with pytest.raises(ConfigError, match="COINSWARM_COINBASE_API_KEY"):
        load_keys("coinbase", env={})
    path = tmp_path / "keys.json"
    path.write_text('{"api_key": "k2", "secret": "s2"}')
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="0644") as err:
        load_keys("binance", env={}, path=path)
    assert "s2" not in str(err.value)
    os.chmod(path, 0o600)
    keys = load_keys("binance", env={"COINSWARM_BINANCE_KEY_FILE": str(path)})
    assert (keys.api_key, keys.secret) == ("k2", "s2") and "s2" not in repr(keys)
    path.write_text('{"key": "s3"}')
    with pytest.raises(ConfigError, match="api_key") as err:
        load_keys("binance", env={}, path=path)
    assert "s3" not in str(err.value)


def test_sandbox_switch_and_unknown_exchange():
    live = CcxtBroker("binance", keys=KEYS)
    test = CcxtBroker("binance", keys=KEYS, sandbox=True)
    assert "testnet" in test._ex.urls["api"]["private"] and "testnet" not in live._ex.urls["api"]["private"]
    assert test.name == "ccxt:binance:sandbox" and live._ex.enableRateLimit
    run(live.close())
    run(test.close())
    coinbase = CcxtBroker("coinbase", keys=KEYS, sandbox=True)  # the Advanced Trade sandbox (test_coinbase.py)
    assert coinbase.name == "ccxt:coinbase:sandbox" and coinbase._ex.options["fetchBalance"].startswith("v3")
    run(coinbase.close())
    with pytest.raises(ConfigError, match="kraken"):
        CcxtBroker("kraken", keys=KEYS)


def test_unreachable_venue_is_unknown_on_submit_and_venue_error_elsewhere():
    async def scenario():
        async with session(timeout_ms=500) as (venue, broker):
            await venue.__aexit__()  # the venue goes away after start-up
            with pytest.raises(OrderUnknownError):
                await broker.submit(intent(23))
            with pytest.raises(VenueError) as err:
                await broker.open_orders(["BTC/USDT"])
            assert not isinstance(err.value, OrderUnknownError)

    run(scenario())


@pytest.mark.timeout(180)
def test_fake_venue_as_subprocess():
    with FakeVenueProcess({"BTC/USDT": "binance:BTC/USDT:1h"}, faults={"not_found_ms": 5}) as url:
        async def scenario():
            broker = CcxtBroker("binance", keys=KEYS, api_url=url, min_interval_ms=1)
            try:
                await broker.start()
                return await broker.server_time_ms(), await broker.balances()
            finally:
                await broker.close()

        now, bal = run(scenario())
    assert now > 1709251200000 and bal["USDT"].free == 10_000.0


# ---- perpetuals' market data: candles and funding (the paper daemon's source) ----------------------
PERP_SYMBOLS = {"BTC/USDT": "binance:BTC/USDT:1h", "BTC/USDT:USDT": "binance-perp:BTC/USDT:1h"}
MARCH_2021 = 1614556800000  # 2021-03-01T00:00Z


@contextlib.asynccontextmanager
async def perp_session(perpetuals: bool = True):
    async with FakeVenue(PERP_SYMBOLS, start="2021-03-01T00:30", data_start="2021-02-01",
                         data_end="2021-03-31") as venue:
        broker = CcxtBroker("binance", keys=KEYS, api_url=venue.url, min_interval_ms=1, perpetuals=perpetuals)
        await broker.start()
        try:
            yield venue, broker
        finally:
            await broker.close()


def test_perpetual_candles_and_funding_are_the_catalogs_up_to_the_venues_clock():
    async def scenario():
        async with perp_session() as (venue, broker):
            assert broker.markets["BTC/USDT:USDT"]["swap"] and broker.markets["BTC/USDT:USDT"]["linear"]
            candles = await broker.candles("BTC/USDT:USDT", "1h", MARCH_2021 - 24 * HOUR, 24)
            early = await broker.funding("BTC/USDT:USDT", MARCH_2021 - 10 * 86_400_000, 1000)
            venue.advance(3 * 86_400_000)
            paged = await broker.funding("BTC/USDT:USDT", MARCH_2021, 4)
            announced = await broker.next_funding("BTC/USDT:USDT")  # the venue at 2021-03-04 00:30
            venue.script(funding_delay_ms=HOUR)  # published an hour late: 00:00 not yet at 00:30
            late = await broker.funding("BTC/USDT:USDT", MARCH_2021 + 2 * 86_400_000, 10)
            return candles, early, paged, venue.clock.now_ms(), announced, late

    candles, early, paged, now, announced, late = run(scenario())
    assert announced == MARCH_2021 + 3 * 86_400_000 + 8 * HOUR  # Binance's nextFundingTime: the next one due
    assert [t for t, _ in late] == [MARCH_2021 + 2 * 86_400_000 + k * 8 * HOUR for k in (0, 1, 2)]
    frame = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2021-02-28", end="2021-02-28")
    assert candles == [[int(t), *map(float, r)] for t, r in
                       zip(frame.index.as_unit("ms").asi8, frame[["open", "high", "low", "close", "volume"]].to_numpy(),
                           strict=True)]
    rates = cs.load_funding("binance-perp:BTC/USDT:funding")
    stamps = rates.index.as_unit("ms").asi8
    expected = [(int(t), float(r)) for t, r in zip(stamps, rates, strict=True)]
    assert early == [x for x in expected if MARCH_2021 - 10 * 86_400_000 <= x[0] <= MARCH_2021 + HOUR // 2]
    assert len(early) == 31 and early[-1][0] == MARCH_2021  # settled by 00:30; nothing later
    assert paged == [x for x in expected if x[0] >= MARCH_2021][:4] and paged[-1][0] <= now


def test_malformed_funding_is_a_typed_error_and_the_exchange_broker_stays_spot_only():
    async def bad():
        async with perp_session() as (venue, broker):
            venue.script(bad_funding=True)
            await broker.funding("BTC/USDT:USDT", MARCH_2021 - 86_400_000, 10)

    with pytest.raises(MalformedReplyError, match=r"'fundingRate' is 'not-a-rate'; expected a finite fraction"):
        run(bad())

    async def bad_premium():
        async with perp_session() as (venue, broker):
            venue.script(bad_premium=True)
            await broker.next_funding("BTC/USDT:USDT")

    with pytest.raises(MalformedReplyError, match=r"'nextFundingTime' is 'soon'; expected epoch milliseconds"):
        run(bad_premium())

    async def spot():
        async with perp_session(perpetuals=False) as (venue, broker):
            return set(broker.markets), venue.count("GET", "/fapi/v1/exchangeInfo")

    markets, futures_requests = run(spot())
    assert markets == {"BTC/USDT"} and futures_requests == 0
    with pytest.raises(ConfigError, match="perpetuals: coinbase has none here"):
        CcxtBroker("coinbase", keys=KEYS, perpetuals=True)
