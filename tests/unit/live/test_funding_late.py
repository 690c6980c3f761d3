"""A settlement the venue publishes late (after the bar that charges it closed) is waited for,
then held on, never guessed, skipped or charged twice: the live book, walked bar by bar on
5-minute bars with a venue publishing each real BTC perpetual settlement late, answers as the
whole series does. The bar-level daemon test on the fake Binance is in test_daemon_funding_late."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError, DataError, FundingHeldError
from coinswarm.live.funding import FundingBook, LiveFundingBook

PERP = "BTC/USDT:USDT"
SYMBOLS = ("BTC/USDT", PERP)
MINUTE = 60_000
BAR = 5 * MINUTE


class Late:
    """Real settlements as a venue serves them: each published ``delay_ms`` after its time;
    ``next_funding`` announces the first settlement after the venue's clock (published or not)."""

    def __init__(self, rates, delay_ms: int) -> None:
        self.stamps, self.rates = rates.index.as_unit("ms").asi8, rates.to_numpy()
        self.delay_ms, self.now, self.asked = delay_ms, 0, 0

    async def funding(self, symbol: str, since_ms: int, limit: int) -> list[tuple[int, float]]:
        lo = int(np.searchsorted(self.stamps, since_ms))
        hi = min(int(np.searchsorted(self.stamps, self.now - self.delay_ms, side="right")), lo + limit)
        return [(int(self.stamps[k]), float(self.rates[k])) for k in range(lo, hi)]

    async def next_funding(self, symbol: str) -> int:
        self.asked += 1
        return int(self.stamps[int(np.searchsorted(self.stamps, self.now, side="right"))])

    async def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture(scope="module")
def rates():
    return cs.load_funding("binance-perp:BTC/USDT:funding").loc["2021-02-20":"2021-03-10"]


def _walk(live: LiveFundingBook, source: Late, whole: FundingBook, closes: range) -> None:
    """Refresh bar by bar as the daemon does (the venue's clock at each close + 1 s, or later after
    a wait) and check every bar's told and charged funding against the whole series."""

    async def walk():
        for close in closes:
            t = close - BAR
            source.now = max(source.now, close + 1000)
            await live.refresh(close)
            since = t if t > closes[0] - BAR else -(2 ** 62)
            assert live.settled(since, close) == whole.settled(since, close)
            a, b = live.due(t - BAR, t), whole.due(t - BAR, t)
            assert (a is None and b is None) or (a == b).all()

    asyncio.run(walk())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay_min,holds", [(7, 0), (40, 6)])
def test_a_late_settlement_is_waited_for_then_held_and_charged_once(rates, delay_min, holds):
    stamps = rates.index.as_unit("ms").asi8
    start = int(rates.index.get_loc(rates.loc["2021-03-01"].index[0]))
    first = int(stamps[start])  # 2021-03-01 00:00, a settlement
    source = Late(rates, delay_min * MINUTE)
    whole = FundingBook({PERP: rates[rates.index.as_unit("ms").asi8 >= first - 86_400_000]}, SYMBOLS)
    events: list[tuple[str, dict]] = []
    live = LiveFundingBook(source, SYMBOLS, wait_s=300, poll_s=10, retry_s=60, sleep=source.sleep)
    live.events = lambda name, fields: events.append((name, dict(fields)))
    live.start_at(first - 86_400_000)
    closes = range(first + BAR, first + 2 * 86_400_000 + BAR, BAR)  # two days: six settlements
    _walk(live, source, whole, closes)
    assert live.held == holds and [n for n, _ in events] == ["funding_late", "funding_resume"] * holds
    if holds:  # each held bar: the bar after a settlement, until the venue published it
        assert events[0][1]["due"] == [f"{PERP} at 2021-03-01T00:00:00+00:00"]
        assert events[0][1]["close"] == "2021-03-01T00:05:00+00:00" and events[1][1]["waited_s"] >= 40 * 60 - 5 * 60
    assert live.waited_s > 0 and source.asked <= 2 * 6 + 2  # the next settlement asked about once per settlement


@pytest.mark.timeout(60)
def test_a_held_bar_is_given_up_on_a_stop_and_taken_again(rates):
    stamps = rates.index.as_unit("ms").asi8
    settlement = int(stamps[int(np.searchsorted(stamps, int(rates.loc["2021-03-01"].index[0].value // 10**6)))])
    source = Late(rates, 30 * MINUTE)
    live = LiveFundingBook(source, SYMBOLS, wait_s=60, poll_s=10, retry_s=60, sleep=source.sleep)
    live.start_at(settlement - 86_400_000)
    source.now = settlement - 1000
    asyncio.run(live.refresh(settlement))  # the bar before the settlement: announced, not yet needed
    live.stop = asyncio.Event()
    live.stop.set()
    source.now = settlement + BAR + 1000
    with pytest.raises(FundingHeldError, match=r"closing at 2021-03-01T00:05:00\+00:00 waits for funding "
                                               r"BTC/USDT:USDT at 2021-03-01T00:00:00\+00:00"):
        asyncio.run(live.refresh(settlement + BAR))
    assert live.horizon_ms == settlement and live.due(settlement - BAR, settlement) is None
    live.stop = None  # resumed: the bar is taken again and charged the settlement once published
    asyncio.run(live.refresh(settlement + BAR))
    assert live.horizon_ms == settlement + BAR and source.now >= settlement + 30 * MINUTE
    assert live.due(settlement - BAR, settlement)[1] == float(rates.iloc[int(np.searchsorted(stamps, settlement))])


@pytest.mark.timeout(60)
def test_malformed_announcements_and_settings_are_refused(rates):
    stamps = rates.index.as_unit("ms").asi8

    class Bad(Late):
        answer: object = "soon"

        async def next_funding(self, symbol):
            return self.answer

    source = Bad(rates, 0)
    source.now = int(stamps[-1])
    live = LiveFundingBook(source, SYMBOLS, sleep=source.sleep)
    live.start_at(int(stamps[-5]))
    with pytest.raises(DataError, match=r"'fundingTimestamp' 'soon' is not epoch milliseconds"):
        asyncio.run(live.refresh(int(stamps[-1])))
    source.answer = int(stamps[-5]) - 1  # not after the held settlements: a lagging answer, asked again
    asyncio.run(live.refresh(int(stamps[-1])))
    live.next_ms.clear()
    live.horizon_ms, source.answer = int(stamps[-1]) + 7_200_000, int(stamps[-1]) + 3_600_000
    with pytest.raises(DataError, match="is before the book's horizon"):
        asyncio.run(live.refresh(int(stamps[-1]) + 10_800_000))
    for bad in ({"wait_s": -1}, {"poll_s": 0}, {"retry_s": float("nan")}, {"wait_s": True}):
        with pytest.raises(ConfigError, match="expected finite seconds"):
            LiveFundingBook(source, SYMBOLS, **bad)


@pytest.mark.timeout(60)
def test_a_settlement_not_yet_published_at_a_fresh_start_is_known_due(rates):
    """The daemon starts 3 minutes after a settlement the venue publishes 20 minutes late: the
    venue announces the one after it, two of the held series' intervals after the last held, so
    the book knows the one between is due (warm-up refreshes on history first, the venue's clock
    still, then live bars)."""
    stamps = rates.index.as_unit("ms").asi8
    settlement = int(stamps[int(np.searchsorted(stamps, int(rates.loc["2021-03-01"].index[1].value // 10**6)))])
    source = Late(rates, 20 * MINUTE)
    source.now = settlement + 3 * MINUTE
    live = LiveFundingBook(source, SYMBOLS, wait_s=60, poll_s=10, retry_s=60, sleep=source.sleep)
    live.start_at(settlement - 10 * 86_400_000)
    whole = FundingBook({PERP: rates[rates.index.as_unit("ms").asi8 >= settlement - 10 * 86_400_000]}, SYMBOLS)
    _walk(live, source, whole, range(settlement - 86_400_000 + BAR, settlement + 6 * BAR, BAR))
    assert live.held == 1 and source.now >= settlement + 20 * MINUTE
