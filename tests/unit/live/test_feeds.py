"""Feeds: ReplayFeed over real catalog/CSV candles with an injected clock, CcxtFeed polling the
fake venue (real candles) with a sleep that advances the venue's clock — nothing waits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.adapters.fake_venue import FakeVenue
from coinswarm.errors import ConfigError, DataError, InconsistentBarError, MissingValueError, OffGridTimestampError
from coinswarm.live.ccxt_broker import PUBLIC, CcxtBroker
from coinswarm.live.feeds import CcxtFeed, ReplayFeed, bar_from_row, check_closed_bar
from coinswarm.live.protocols import ClosedBar, Feed

pytestmark = pytest.mark.timeout(120)
HOUR = 3_600_000
BTC, ETH = "binance:BTC/USDT:1h", "binance:ETH/USDT:1h"
T0 = 1709251200000  # 2024-03-01T00:00Z


def catalog(source: str, start_ms: int, stop_ms: int) -> list[tuple]:
    """Real candles with open time in [start_ms, stop_ms)."""
    frame = cs.load_ohlcv(source, start="2024-02-01", end="2024-03-31")
    ts = frame.index.as_unit("ms").asi8
    rows = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    return [(int(t), *map(float, r)) for t, r in zip(ts, rows, strict=True) if start_ms <= t < stop_ms]


def as_tuple(bar: ClosedBar) -> tuple:
    return (bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume)


async def collect(feed, n: int | None = None) -> list[ClosedBar]:
    out = []
    async for bar in feed.closed_bars():
        out.append(bar)
        if n is not None and len(out) >= n:
            break
    return out


class FakeTime:
    """An injected monotonic clock whose sleep only moves the clock."""

    def __init__(self) -> None:
        self.now, self.slept = 100.0, []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


# ---- ReplayFeed ---------------------------------------------------------------------------------
def test_replay_aligns_symbols_and_equals_the_catalog():
    feed = ReplayFeed([BTC, ETH], start="2024-03-01", end="2024-03-02")  # end inclusive, as cs.load_ohlcv
    assert isinstance(feed, Feed)
    bars = asyncio.run(collect(feed))
    assert len(bars) == 96 and [b.symbol for b in bars[:4]] == ["BTC/USDT", "ETH/USDT"] * 2
    assert [b.time for b in bars] == sorted(b.time for b in bars)
    assert [as_tuple(b) for b in bars if b.symbol == "ETH/USDT"] == catalog(ETH, T0, T0 + 48 * HOUR)


def test_replay_speed_paces_with_the_injected_clock_and_max_never_sleeps():
    fake = FakeTime()
    feed = ReplayFeed({"BTC/USDT": BTC}, start="2024-03-01", end="2024-03-01T23:00", speed=3600,
                      clock=fake.clock, sleep=fake.sleep)
    bars = asyncio.run(collect(feed))
    assert len(bars) == 24 and sum(fake.slept) == pytest.approx(23.0)  # one 1h bar per second
    fast = FakeTime()
    asyncio.run(collect(ReplayFeed([BTC], start="2024-03-01", end="2024-03-01", clock=fast.clock, sleep=fast.sleep)))
    assert fast.slept == []
    with pytest.raises(ConfigError, match="speed"):
        ReplayFeed([BTC], speed=0)


def test_replay_resume_history_and_csv(tmp_path, btc_csv_path):
    feed = ReplayFeed({"BTC/USDT": str(btc_csv_path)}, start="2024-03-01", end="2024-03-01", after_ms=T0 + 9 * HOUR)
    bars = asyncio.run(collect(feed))
    assert bars[0].time == T0 + 10 * HOUR and len(bars) == 14
    warm = asyncio.run(feed.history("BTC/USDT", T0, 50))
    assert len(warm) == 50 and warm[-1].time == T0 - HOUR
    assert [as_tuple(b) for b in warm] == catalog(BTC, T0 - 50 * HOUR, T0)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n1709251200000,10,9,11,10,1\n1709254800000,10,11,9,10,1\n")
    with pytest.raises(DataError):
        ReplayFeed([str(bad)])
    with pytest.raises(ConfigError, match="not replayed"):
        asyncio.run(feed.history("ETH/USDT", T0, 5))


# ---- bar checks -----------------------------------------------------------------------------------
def test_bad_candles_raise_typed_data_errors():
    good = [T0, 10.0, 11.0, 9.0, 10.5, 3.0]
    assert as_tuple(bar_from_row(good, "X/Y", HOUR, "v")) == tuple(good)
    cases = [([T0, 10.0, 9.0, 11.0, 10.0, 1.0], InconsistentBarError),
             ([T0, float("nan"), 11.0, 9.0, 10.0, 1.0], MissingValueError),
             ([T0, "10", 11.0, 9.0, 10.0, 1.0], MissingValueError),
             ([T0 + 1, 10.0, 11.0, 9.0, 10.0, 1.0], OffGridTimestampError),
             ([T0, 10.0, 11.0, 9.0], MissingValueError),
             ([T0, -1.0, 11.0, -2.0, 10.0, 1.0], DataError),
             ([T0, 10.0, 11.0, 9.0, 10.0, -1.0], DataError)]
    for row, error in cases:
        with pytest.raises(error) as err:
            bar_from_row(row, "X/Y", HOUR, "venue:X/Y:1h")
        assert "venue:X/Y:1h" in str(err.value)
    with pytest.raises(MissingValueError):
        check_closed_bar(ClosedBar("X/Y", T0, 1.0, math.inf, 1.0, 1.0, 1.0))


# ---- CcxtFeed against the fake venue --------------------------------------------------------------
@contextlib.asynccontextmanager
async def venue_feed(**feed_kw):
    async with FakeVenue({"BTC/USDT": BTC, "ETH/USDT": ETH}, start="2024-03-01T00:30", data_start="2024-02-20",
                         data_end="2024-03-10") as venue:
        broker = CcxtBroker("binance", keys=PUBLIC, api_url=venue.url, min_interval_ms=1)
        slept = []

        async def sleep(s: float) -> None:  # waiting = moving the venue's clock
            slept.append(s)
            venue.advance(int(s * 1000))

        feed = CcxtFeed(broker, ["BTC/USDT", "ETH/USDT"], "1h", sleep=sleep, limit=5, **feed_kw)
        try:
            yield venue, feed, slept
        finally:
            await broker.close()


def test_ccxt_feed_yields_closed_bars_only_equal_to_the_catalog():
    async def scenario():
        async with venue_feed(max_bars=12) as (venue, feed, _):
            bars = await collect(feed)
            return bars, venue.clock.now_ms()

    bars, now = asyncio.run(scenario())
    assert all(b.time + HOUR <= now for b in bars)  # never the forming candle
    btc = [as_tuple(b) for b in bars if b.symbol == "BTC/USDT"]
    assert btc == catalog(BTC, T0 - HOUR, T0 + 5 * HOUR)  # starts at the last closed bar
    assert [b.symbol for b in bars[:2]] == ["BTC/USDT", "ETH/USDT"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_ccxt_feed_backfills_an_outage_without_holes_or_duplicates():
    said, logger = _Lines(), logging.getLogger("coinswarm.live.feeds")
    level = logger.level
    logger.addHandler(said)
    logger.setLevel(logging.WARNING)  # whatever an earlier test configured above it

    async def scenario():
        async with venue_feed(max_bars=30, backoff_s=3600.0, max_backoff_s=3600.0) as (venue, feed, slept):
            first = await collect(feed, 2)
            venue.script(klines_down=4)  # 4 failed polls, each backing off an hour
            feed.max_bars = 28
            rest = await collect(feed)
            return first + rest, feed

    try:
        bars, feed = asyncio.run(scenario())
    finally:
        logger.removeHandler(said)
        logger.setLevel(level)
    btc = [b.time for b in bars if b.symbol == "BTC/USDT"]
    assert btc == list(range(btc[0], btc[0] + HOUR * len(btc), HOUR)) and len(set(btc)) == len(btc)
    assert feed.reconnects == 4
    failed = [m for m in said.lines if "failed" in m]
    assert len(failed) == 4 and all("retrying in 3600.0 s" in m for m in failed)  # every failure is said
    eth = [as_tuple(b) for b in bars if b.symbol == "ETH/USDT"]
    assert eth == catalog(ETH, eth[0][0], eth[0][0] + HOUR * len(eth))


def test_ccxt_feed_waits_out_rate_limits_with_retry_after():
    async def scenario():
        async with venue_feed(max_bars=4) as (venue, feed, slept):
            venue.script(rate_limit=2, retry_after_s=30)
            bars = await collect(feed)
            return bars, slept, feed

    bars, slept, feed = asyncio.run(scenario())
    assert len(bars) == 4 and slept[:2] == [30.0, 30.0] and feed.rate_limited == 2


def test_ccxt_feed_refuses_a_malformed_candle():
    async def scenario():
        async with venue_feed(max_bars=4) as (venue, feed, _):
            venue.script(bad_kline=True)
            await collect(feed)

    with pytest.raises(InconsistentBarError, match="BTC/USDT"):
        asyncio.run(scenario())


def test_ccxt_feed_history_for_warm_up():
    async def scenario():
        async with venue_feed() as (venue, feed, _):
            return await feed.history("ETH/USDT", T0, 12)

    warm = asyncio.run(scenario())
    assert [as_tuple(b) for b in warm] == catalog(ETH, T0 - 12 * HOUR, T0)
    assert np.all(np.diff([b.time for b in warm]) == HOUR)
    with pytest.raises(ConfigError):
        CcxtFeed(None, ["X/Y"], "1M")


class PagedCandles:
    """A :class:`~coinswarm.live.feeds.CandleSource` over real candles that records the pages
    asked for: it serves candles up to its clock, the forming one included (as a venue does)."""

    name = "paged"

    def __init__(self, now_ms: int) -> None:
        self.now, self.asked = now_ms, []
        self.rows = [list(r) for r in catalog(BTC, T0 - 2 * HOUR, now_ms + 1)]

    async def candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list:
        self.asked.append(since_ms)
        return [r for r in self.rows if r[0] >= since_ms][:limit]

    async def server_time_ms(self) -> int:
        return self.now


def test_both_feeds_page_rest_history_alike_but_the_stream_feed_never_asks_for_a_forming_bar():
    """Pins the REST paging both feeds share (:func:`coinswarm.live.feeds.rest_closed`): pages of
    ``limit`` from ``since`` until a short page; only closed bars, each once. CcxtFeed also asks
    for the page that starts at the forming bar; WsFeed (``skip_open_pages``) does not."""
    from coinswarm.live.wsfeed import WsFeed

    now = T0 + 3 * HOUR + HOUR // 2  # the bar at T0 + 3h is forming
    polled, streamed = PagedCandles(now), PagedCandles(now)
    ccxt_bars = asyncio.run(CcxtFeed(polled, ["BTC/USDT"], "1h", limit=2).history("BTC/USDT", T0 + 3 * HOUR, 3))
    ws = WsFeed(None, streamed, ["BTC/USDT"], "1h", limit=2, clock=lambda: now)
    ws_bars = asyncio.run(ws.history("BTC/USDT", T0 + 3 * HOUR, 3))
    assert [as_tuple(b) for b in ccxt_bars] == [as_tuple(b) for b in ws_bars] == catalog(BTC, T0, T0 + 3 * HOUR)
    assert polled.asked == [T0, T0 + 2 * HOUR, T0 + 3 * HOUR]
    assert streamed.asked == [T0, T0 + 2 * HOUR]
