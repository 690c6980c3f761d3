"""WsFeed end to end: real ccxt pro ``watch_ohlcv`` against a fake Binance kline stream
(websockets, 127.0.0.1) and the fake REST venue serving real catalog candles. The stream sends
forming and closed candles, repeats one, drops the connection mid-stream and reorders closing
events; a 429 with Retry-After meets the backfill; the feed's local clock is 7 s behind the venue."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue
from coinswarm.adapters.fake_ws import FakeKlineStream
from coinswarm.errors import ConfigError
from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker
from coinswarm.live.protocols import Feed
from coinswarm.live.wsfeed import WsFeed, make_pro_exchange

pytestmark = pytest.mark.timeout(120)
H = 3_600_000
T0 = 1709251200000  # 2024-03-01T00:00Z
SOURCE = "binance:BTC/USDT:1h"


def catalog() -> dict[int, tuple]:
    frame = cs.load_ohlcv(SOURCE, start="2024-03-01", end="2024-03-01")
    times = frame.index.as_unit("ms").asi8
    rows = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    return {int(t): (int(t), *map(float, r)) for t, r in zip(times, rows, strict=True)}


async def until(predicate, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out waiting for the feed"
        await asyncio.sleep(0.02)


def test_closed_bars_only_with_gap_backfill_dedup_reorder_rate_limit_and_skew():
    real = catalog()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(min(seconds, 0.5))

    async def scenario():
        async with FakeVenue({"BTC/USDT": SOURCE}, start="2024-03-01T05:30", data_start="2024-02-28",
                             data_end="2024-03-03") as venue, FakeKlineStream() as ws:
            rest = CcxtBroker("binance", keys=ApiKeys(DUMMY_KEY, DUMMY_SECRET), api_url=venue.url, timeout_ms=3000,
                              min_interval_ms=1)
            await rest.start()
            pro = make_pro_exchange("binance", api_url=venue.url, ws_url=ws.url)
            feed = WsFeed(pro, rest, ["BTC/USDT"], "1h", after_ms=T0, settle_ms=1000, backoff_s=0.05,
                          max_bars=9, clock=lambda: venue.clock.now_ms() - 7000, sleep=sleep)
            assert isinstance(feed, Feed)
            got = []

            async def consume():
                async for bar in feed.closed_bars():
                    got.append(bar)

            task = asyncio.create_task(consume())
            try:
                send = ws.kline
                await ws.wait_subscribed("btcusdt@kline_1h")
                o5 = real[T0 + 5 * H][1]
                await send("BTCUSDT", "1h", H, (T0 + 5 * H, o5, o5, o5, o5, 0.0), False)  # forming 05:00
                await until(lambda: len(got) == 4)  # 01:00-04:00 backfilled by REST (resume after 00:00)
                await asyncio.sleep(0.2)
                assert len(got) == 4  # the forming 05:00 is never yielded
                venue.advance(30 * 60_000)  # 06:00: 05:00 closes
                await send("BTCUSDT", "1h", H, real[T0 + 5 * H], True)
                await send("BTCUSDT", "1h", H, (T0 + 6 * H, *[real[T0 + 6 * H][1]] * 4, 0.0), False)
                await send("BTCUSDT", "1h", H, real[T0 + 5 * H], True)  # a duplicate closing event
                await until(lambda: len(got) == 5)
                venue.script(rate_limit=1, retry_after_s=0.2)
                assert await ws.drop() == 1  # mid-stream; 06:00 and 07:00 close while disconnected
                venue.advance(2 * H)
                await until(lambda: len(got) == 7)
                await ws.wait_subscribed("btcusdt@kline_1h")  # ccxt reconnected and resubscribed
                venue.advance(2 * H)  # 10:00
                await send("BTCUSDT", "1h", H, real[T0 + 9 * H], True)  # reordered closing events
                await send("BTCUSDT", "1h", H, real[T0 + 8 * H], True)
                await send("BTCUSDT", "1h", H, (T0 + 10 * H, *[real[T0 + 10 * H][1]] * 4, 0.0), False)
                await asyncio.wait_for(task, 20)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await feed.close()
                await rest.close()
            return feed, got, ws.connections

    feed, got, connections = asyncio.run(scenario())
    assert [b.time for b in got] == [T0 + k * H for k in range(1, 10)]  # each once, in order, none forming
    for bar in got:
        assert (bar.time, bar.open, bar.high, bar.low, bar.close) == pytest.approx(real[bar.time][:5], rel=1e-12)
        assert bar.volume == pytest.approx(real[bar.time][5], rel=1e-8)
    assert connections == 2 and feed.reconnects >= 1
    assert feed.duplicates >= 1 and feed.from_stream >= 1 and feed.backfilled >= 6
    assert feed.rate_limited >= 1 and 0.2 in waits  # the 429's Retry-After was honoured
    assert abs(feed.offset_ms - 7000) < 100  # the venue's clock, not the local one
    assert 0 <= feed.lag_ms < 2 * H


def test_history_by_rest_and_bad_arguments():
    async def scenario():
        async with FakeVenue({"BTC/USDT": SOURCE}, start="2024-03-01T05:30", data_start="2024-02-28",
                             data_end="2024-03-03") as venue:
            rest = CcxtBroker("binance", keys=ApiKeys(DUMMY_KEY, DUMMY_SECRET), api_url=venue.url, min_interval_ms=1)
            await rest.start()
            pro = make_pro_exchange("binance", api_url=venue.url, ws_url="ws://127.0.0.1:9/ws")
            feed = WsFeed(pro, rest, ["BTC/USDT"], "1h", clock=venue.clock.now_ms)
            assert pro.enableRateLimit is True
            try:
                bars = await feed.history("BTC/USDT", T0 + 5 * H, 3)
                with pytest.raises(ConfigError):
                    await feed.history("ETH/USDT", T0, 3)
            finally:
                await feed.close()
                await rest.close()
            return bars

    bars = asyncio.run(scenario())
    assert [b.time for b in bars] == [T0 + 2 * H, T0 + 3 * H, T0 + 4 * H]
    real = catalog()
    assert np.allclose([b.close for b in bars], [real[b.time][4] for b in bars])
    for bad in ({"timeframe": "1M"}, {"symbols": []}, {"symbols": ["BTC/USDT", "BTC/USDT"]}):
        with pytest.raises(ConfigError):
            WsFeed(None, None, bad.get("symbols", ["BTC/USDT"]), bad.get("timeframe", "1h"))
    with pytest.raises(ConfigError, match="no exchange"):
        make_pro_exchange("nosuchvenue")
