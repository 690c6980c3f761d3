"""Fuzz WsFeed's stream handling: closing and forming kline events of real candles, reordered,
repeated, lost, with dropped connections, a malformed closing event now and then, and 429s on the
REST backfill. Each case ends with exactly the closed bars (by the venue's clock) in order, each
once, with the venue's values, and never a forming candle — or with a DataError (the malformed
event), never another exception and never a hang.

The exchange is an in-memory ccxt pro stand-in that feeds the feed's kline-handler hook, the REST
source an in-memory venue over the same real candles (no sockets: the socket path is
tests/unit/live/test_wsfeed.py)."""

from __future__ import annotations

import asyncio

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coinswarm as cs
from coinswarm.adapters.fake_ws import FakeKlineStream
from coinswarm.errors import CoinswarmError, DataError, RateLimitedError
from coinswarm.live.wsfeed import WsFeed
from tests.fuzz.budget import DEADLINE_MS, examples, seen

pytestmark = pytest.mark.timeout(600)
H = 3_600_000
_FRAME = cs.load_ohlcv("binance:BTC/USDT:1h", start="2024-03-01", end="2024-03-01")
REAL = {int(t): (int(t), *map(float, r)) for t, r in zip(_FRAME.index.as_unit("ms").asi8,
                                                          _FRAME[["open", "high", "low", "close", "volume"]].to_numpy(),
                                                          strict=True)}
T0 = min(REAL)
N = 12
STREAMED: list[int] = []  # bars each case took from closing events (the stream path is exercised)


class Venue:
    """The venue's clock and its REST candles (forming candle: open only, as the fake venue serves it)."""

    name = "mem"

    def __init__(self, rate_limits: list[bool]) -> None:
        self.now, self.rate_limits = T0, list(rate_limits)

    async def server_time_ms(self) -> int:
        return self.now

    async def candles(self, symbol, timeframe, since, limit):
        if self.rate_limits and self.rate_limits.pop(0):
            raise RateLimitedError("429", retry_after=0.0)
        rows = []
        for t in sorted(REAL):
            if t >= since and t <= self.now and len(rows) < limit:
                o = REAL[t][1]
                rows.append(list(REAL[t]) if t + H <= self.now else [t, o, o, o, o, 0.0])
        return rows


class Exchange:
    """ccxt pro's surface that WsFeed uses, driven by a script of events."""

    id, timeframes = "mem", {"1h": "1h"}

    def __init__(self, script, venue: Venue) -> None:
        self.script, self.venue = list(script), venue

    def safe_symbol(self, market_id, *args):
        return {"BTCUSDT": "BTC/USDT"}.get(market_id, market_id)

    def handle_ohlcv(self, client, message):  # ccxt's handler: the feed wraps it
        return None

    async def watch_ohlcv(self, symbol, timeframe):
        for _ in range(20):  # let the feed handle what came before, as a network's latency would
            await asyncio.sleep(0)
        if not self.script:
            await asyncio.Event().wait()  # nothing more: the stream stays quiet
        kind, k = self.script.pop(0)
        if kind == "drop":
            raise ccxt.NetworkError("connection closed by remote server, closing code 1006")
        t = T0 + k * H
        if kind == "close":
            self.venue.now = max(self.venue.now, t + H)
            row = REAL[t]
        elif kind == "bad":
            self.venue.now = max(self.venue.now, t + H)
            row = (t, REAL[t][1], REAL[t][3] * 0.5, REAL[t][2] * 2, REAL[t][4], REAL[t][5])  # high < low
        else:
            self.venue.now = max(self.venue.now, t)
            row = (t, *[REAL[t][1]] * 4, 0.0)
        self.handle_ohlcv(None, FakeKlineStream.kline_event("btcusdt", "1h", H, row, kind != "form"))
        return [list(row)]

    async def close(self):
        return None


@st.composite
def scripts(draw):
    events = []
    for k in range(draw(st.integers(1, N))):
        if draw(st.booleans()):
            events.append(("form", k))
        if draw(st.integers(0, 9)) > 0:  # a closing event is lost one time in ten
            events.append(("close", k))
    for _ in range(draw(st.integers(0, 4))):  # reorder: swap neighbours
        if len(events) > 1:
            i = draw(st.integers(0, len(events) - 2))
            events[i], events[i + 1] = events[i + 1], events[i]
    for _ in range(draw(st.integers(0, 3))):  # repeat an event later
        if events:
            events.insert(draw(st.integers(0, len(events))), events[draw(st.integers(0, len(events) - 1))])
    for _ in range(draw(st.integers(0, 2))):
        events.insert(draw(st.integers(0, len(events))), ("drop", 0))
    if draw(st.integers(0, 9)) == 0 and events:
        k = max(k for kind, k in events if kind != "drop")
        events.insert(draw(st.integers(0, len(events))), ("bad", k))
    return events or [("form", 0)]


async def run_case(script, rate_limits):
    venue = Venue(rate_limits)
    exchange = Exchange(script, venue)

    async def sleep(seconds):
        await asyncio.sleep(0)

    # the bars closed once the whole script has played (closing and forming events move the clock)
    final_now = T0
    for kind, k in script:
        if kind != "drop":
            final_now = max(final_now, T0 + k * H + (0 if kind == "form" else H))
    expected = [t for t in sorted(REAL) if t + H <= final_now]
    feed = WsFeed(exchange, venue, ["BTC/USDT"], "1h", after_ms=T0 - H, settle_ms=0, backoff_s=0.0,
                  max_bars=len(expected), clock=lambda: venue.now, sleep=sleep)
    got = []
    if expected:
        async for bar in feed.closed_bars():
            assert bar.time + H <= venue.now  # never a forming candle
            got.append(bar)
    STREAMED.append(feed.from_stream)
    return expected, got, {"from_stream": feed.from_stream, "backfilled": feed.backfilled}


@settings(max_examples=examples(60), deadline=DEADLINE_MS, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts(), rate_limits=st.lists(st.booleans(), max_size=4))
def test_stream_faults_give_the_closed_bars_once_in_order(script, rate_limits):
    seen("wsfeed")
    try:
        expected, got, feed_stats = asyncio.run(asyncio.wait_for(run_case(script, rate_limits), 4.0))
    except DataError:
        assert any(kind == "bad" for kind, _ in script)  # only the malformed closing event may raise
        return
    except CoinswarmError as exc:  # any other typed refusal is a finding too
        pytest.fail(f"unexpected {type(exc).__name__}: {exc}")
    assert [b.time for b in got] == expected
    assert feed_stats["from_stream"] + feed_stats["backfilled"] == len(got)
    for bar in got:
        assert (bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume) == REAL[bar.time]


def test_the_fuzz_took_bars_from_the_stream_not_only_from_rest():
    if not STREAMED:  # run on its own: drive the fuzz cases first
        test_stream_faults_give_the_closed_bars_once_in_order()
    assert sum(STREAMED) > len(STREAMED)  # on average more than one bar per case came from closing events
