"""The runner's funding book charges what the engine charges, bar by bar, and tells the strategy
what it reads (real BTC perpetual bars and funding, with their gaps); the live book, fetching
settlements as they happen, answers as the whole series does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.engine import funding_matrix
from coinswarm.errors import ConfigError, DataError, StateError
from coinswarm.live.funding import FundingBook, LiveFundingBook

PERP = "BTC/USDT:USDT"
SYMBOLS = ("BTC/USDT", PERP)


@pytest.fixture(scope="module")
def real():
    bars = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2020-01-01", end="2020-12-31")
    rates = cs.load_funding("binance-perp:BTC/USDT:funding")
    return bars.index[::3], rates  # every third bar: settlements fall between bars too


def test_due_rows_equal_the_engines_funding_matrix(real):
    index, rates = real
    book = FundingBook({PERP: rates}, SYMBOLS)
    expected = funding_matrix(cs.Costs(funding={PERP: rates}), index, list(SYMBOLS))
    stamps = index.as_unit("ms").asi8
    rows = [book.due(int(stamps[t - 1]), int(stamps[t])) for t in range(1, len(stamps))]
    got = np.array([np.zeros(2) if r is None else r for r in rows])
    np.testing.assert_array_equal(got, expected[1:])
    assert (got[:, 1] != 0).sum() > 300 and not got[:, 0].any()


def test_settled_covers_each_settlement_once_before_its_close(real):
    index, rates = real
    book = FundingBook({PERP: rates}, SYMBOLS)
    stamps, bar = index.as_unit("ms").asi8, 3 * 3_600_000
    told = []
    for t in range(len(stamps)):
        since = int(stamps[t - 1]) + bar if t else -(2 ** 62)
        told += book.settled(since, int(stamps[t]) + bar)
        assert all(when < stamps[t] + bar for _, when, _ in told)
    times = [when for _, when, _ in told]
    assert times == sorted(set(times))  # each once, in order
    inside = rates.loc[: index[-1] + pd.Timedelta(hours=3) - pd.Timedelta(milliseconds=1)]
    assert times == list(inside.index.as_unit("ms").asi8) and [r for *_, r in told] == list(inside)


def test_bad_books_are_refused():
    rates = cs.load_funding("binance-perp:BTC/USDT:funding").iloc[:10]
    with pytest.raises(ConfigError, match=r"perpetual\(s\) \['BTC/USDT:USDT'\] have no funding"):
        FundingBook({}, SYMBOLS)
    with pytest.raises(ConfigError, match="does not trade"):
        FundingBook({PERP: rates, "ETH/USDT:USDT": rates}, SYMBOLS)
    with pytest.raises(ConfigError, match=r"\|rate\| < 1"):
        FundingBook({PERP: rates * 1e4}, SYMBOLS)


# ---- the live book: settlements fetched as they happen ---------------------------------------------
class Source:
    """Real settlements served as a venue serves them: from ``since_ms``, at most ``limit``, only those
    at or before its clock ``now``."""

    def __init__(self, rates) -> None:
        self.stamps, self.rates = rates.index.as_unit("ms").asi8, rates.to_numpy()
        self.now, self.calls = 0, 0

    async def funding(self, symbol: str, since_ms: int, limit: int) -> list[tuple[int, float]]:
        self.calls += 1
        lo = int(np.searchsorted(self.stamps, since_ms))
        hi = min(int(np.searchsorted(self.stamps, self.now, side="right")), lo + limit)
        return [(int(self.stamps[k]), float(self.rates[k])) for k in range(lo, hi)]


def test_a_live_book_refreshed_bar_by_bar_answers_as_the_whole_series(real):
    import asyncio

    index, rates = real
    stamps, bar = index.as_unit("ms").asi8, 3 * 3_600_000
    start = int(stamps[0]) - 40 * 86_400_000
    whole = FundingBook({PERP: rates[rates.index.as_unit("ms").asi8 >= start]}, SYMBOLS)  # the series from start
    source = Source(rates)
    live = LiveFundingBook(source, SYMBOLS, limit=5)  # pages of 5: a backfill pages
    live.start_at(start)

    async def walk():
        for t in range(len(stamps)):
            source.now = int(stamps[t]) + bar + (0 if t % 50 else 10 * bar)  # now and then the venue is ahead
            await live.refresh(int(stamps[t]) + bar)
            since = int(stamps[t - 1]) + bar if t else -(2 ** 62)
            assert live.settled(since, int(stamps[t]) + bar) == whole.settled(since, int(stamps[t]) + bar)
            if t:
                a, b = live.due(int(stamps[t - 1]), int(stamps[t])), whole.due(int(stamps[t - 1]), int(stamps[t]))
                assert (a is None and b is None) or (a == b).all()

    asyncio.run(walk())
    assert source.calls < len(stamps)  # a symbol whose settlements reach the close is not asked again


def test_a_live_book_takes_settlements_once_in_order_and_refuses_conflicts():
    import asyncio

    rates = cs.load_funding("binance-perp:BTC/USDT:funding").iloc[:20]
    t = rates.index.as_unit("ms").asi8
    live = LiveFundingBook(Source(rates), SYMBOLS)
    with pytest.raises(StateError, match="start_at"):
        asyncio.run(live.refresh(int(t[5])))
    live.start_at(int(t[0]))
    assert live.append(PERP, int(t[1]), 0.0001) and not live.append(PERP, int(t[1]), 0.0001)  # a repeat: ignored
    with pytest.raises(DataError, match="conflicts with the book: 0.0001 is held at that time"):
        live.append(PERP, int(t[1]), 0.0002)
    with pytest.raises(DataError, match="settlements up to .* are held"):
        live.append(PERP, int(t[0]), 0.0001)  # older than the last held, never held
    with pytest.raises(DataError, match=r"\|rate\| < 1"):
        live.append(PERP, int(t[2]), float("nan"))
    with pytest.raises(ConfigError, match="not a perpetual of this run"):
        live.append("BTC/USDT", int(t[2]), 0.0001)
    live.horizon_ms = int(t[5])  # refreshed up to t[5]: a settlement before it comes too late
    with pytest.raises(DataError, match="the bars before it were decided without it"):
        live.append(PERP, int(t[3]), 0.0001)
    with pytest.raises(StateError, match="already refreshed"):
        live.start_at(int(t[0]))
    with pytest.raises(ConfigError, match="has no funding feed"):
        LiveFundingBook(object(), SYMBOLS)
    with pytest.raises(ConfigError, match="limit 0: settlements per request"):
        LiveFundingBook(Source(rates), SYMBOLS, limit=0)


def test_a_venue_that_ignores_the_start_time_is_refused():
    import asyncio

    class Stuck(Source):
        async def funding(self, symbol, since_ms, limit):
            return await super().funding(symbol, 0, limit)  # always the first page

    rates = cs.load_funding("binance-perp:BTC/USDT:funding").iloc[:20]
    source = Stuck(rates)
    source.now = 2 ** 62
    live = LiveFundingBook(source, SYMBOLS, limit=5)
    live.start_at(0)
    with pytest.raises(DataError, match="held nothing new"):
        asyncio.run(live.refresh(2 ** 61))


def test_a_funding_outage_waits_with_the_feeds_back_off():
    import asyncio

    from coinswarm.errors import RateLimitedError, VenueError
    from coinswarm.live.feeds import CcxtFeed

    class Flaky(Source):
        def __init__(self, rates) -> None:
            super().__init__(rates)
            self.failures = [VenueError("funding: venue unreachable"), RateLimitedError("429", retry_after=7.0)]

        async def funding(self, symbol, since_ms, limit):
            if self.failures:
                raise self.failures.pop(0)
            return await super().funding(symbol, since_ms, limit)

    rates = cs.load_funding("binance-perp:BTC/USDT:funding").iloc[:30]
    source, slept = Flaky(rates), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    feed = CcxtFeed(source, list(SYMBOLS), "1h", sleep=sleep, backoff_s=2.0)
    live = LiveFundingBook(source, SYMBOLS, call=feed.guarded)
    source.now = int(rates.index[-1].value // 1_000_000)
    live.start_at(0)
    asyncio.run(live.refresh(source.now + 1))
    assert slept == [2.0, 7.0] and feed.reconnects == 1 and feed.rate_limited == 1
    assert [when for _, when, _ in live.settled(0, source.now + 1)] == list(rates.index.as_unit("ms").asi8)
