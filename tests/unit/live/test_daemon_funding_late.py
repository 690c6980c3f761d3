"""``coinswarm live run`` on the fake Binance (real spot and perpetual candles and funding) while
the venue publishes every funding settlement 90 minutes late — after the 1h bar that charges it
has closed. The daemon waits for each one, holds the bar (``funding_late``), and ends with the
orders, fills and funding cash flows of a ``live replay`` of the same bars, across a stop while a
bar is held and a restart (the old book stopped the daemon with a DataError at the first late
settlement)."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from coinswarm.live.config import load_config
from coinswarm.live.daemon import run_paper
from coinswarm.live.ledger import Ledger
from tests.unit.live.test_daemon import (
    DAY,
    PERP,
    VENUE_SYMBOLS,
    _assert_replay_booked,
    _bars,
    _orders,
    _replayed,
)

DELAY_MS = 90 * 60_000  # each settlement published 1.5 h after its time
BAR_BY_BAR = int(pd.Timestamp("2021-03-19T00:00", tz="UTC").value // 1_000_000)
STOP_AT = int(pd.Timestamp("2021-03-20T01:05", tz="UTC").value // 1_000_000)  # inside a hold
END = "2021-03-21"


async def _late_runs(config, bars: int):
    """``run_paper`` on the fake Binance publishing funding late: the venue's clock starts at
    2021-03-01 00:30; each wait moves it a day on (a day's backfill, the settlements long published)
    until 2021-03-19, then exactly as long as asked (the feed: to the next close; the funding book:
    its polls), so each settlement's bar closes before it is published. The first run is stopped
    (SIGTERM's event) while the bar of 2021-03-20 00:00 is held, the second resumes it to ``bars``
    in all. Returns both runners and the fundingRate/premiumIndex request counts."""
    from coinswarm.adapters.fake_venue import FakeVenue

    async with FakeVenue(VENUE_SYMBOLS, start="2021-03-01T00:30", data_start="2020-12-01",
                         data_end="2021-04-15") as venue:
        venue.script(funding_delay_ms=DELAY_MS)
        stop = asyncio.Event()

        async def sleep(seconds: float) -> None:
            ms = max(int(seconds * 1000), 1)
            venue.advance(ms if venue.clock.now_ms() >= BAR_BY_BAR else max(ms, DAY))
            if STOP_AT <= venue.clock.now_ms() < STOP_AT + 60_000:
                stop.set()

        runners = (await _stop_then_resume(venue, config, sleep, stop, lambda done: bars - done, 420))[0::2]
        return runners, venue.count("GET", "/fapi/v1/fundingRate"), venue.count("GET", "/fapi/v1/premiumIndex")


@pytest.mark.timeout(600)
def test_the_daemon_waits_for_late_funding_and_ends_as_a_replay(tmp_path):
    db = f"sqlite:///{tmp_path / 'live.db'}"
    config = _config(db, wait_s=120)
    (first, second), requests, announcements = asyncio.run(_late_runs(config, _bars("2021-03-01", END)))
    # 2021-03-19 … 21: every settlement held its bar (3 a day); the stop gave the fourth up undecided, the
    # restart held it again
    assert (first.funding.held, second.funding.held) == (4, 6)
    assert pd.Timestamp(first.last_time, unit="ms", tz="UTC") == pd.Timestamp("2021-03-19T23:00", tz="UTC")
    assert second.funding.waited_s >= 5 * (DELAY_MS - 3_600_000) / 1000  # the resumed one: from 01:05
    # polls bounded: per held bar wait_s / poll_s quiet ones then one per retry_s until published (30 min
    # after the close), one a bar otherwise, and the day-long backfills before; the next settlement asked
    # about about once per settlement
    assert requests < 10 * (120 // 5 + 1800 // 60 + 1) + 72 + 200 and announcements < 100
    ledger = Ledger(db)
    try:
        last = max(ledger.last_bars().values())
        assert ledger.bars_processed() == _bars("2021-03-01", END)  # none twice, none lost across the stop
        flows = ledger.cash_flows(kind="funding")
        fills = ledger.fills()
    finally:
        ledger.close()
    assert pd.Timestamp(last, unit="ms", tz="UTC") == pd.Timestamp(f"{END}T23:00", tz="UTC")
    late = [f for f in flows if f.time_ms >= BAR_BY_BAR]
    assert len(late) == 9 and all(f.amount != 0 for f in late)  # the perp is held through the late ones
    replayed, checkpoint = _replayed(tmp_path, END)
    assert checkpoint["time"] == last
    assert _orders(db, last) == _orders(replayed, last) and any(f.symbol == PERP for f in fills)
    _assert_replay_booked(replayed, flows, fills, last)


@pytest.mark.timeout(300)
def test_a_stop_while_the_warm_up_waits_for_funding_leaves_a_fresh_run(tmp_path):
    """Started at 01:05, 65 minutes after a settlement published 90 minutes late: the last warm-up
    bar (00:00) needs it and waits; a stop then ends the daemon cleanly, its checkpoint still before
    any bar, and the next start warms up again, waits until 01:30 and trades on."""
    from coinswarm.adapters.fake_venue import FakeVenue

    db = f"sqlite:///{tmp_path / 'live.db'}"
    config = _config(db, wait_s=60)
    stop_at = int(pd.Timestamp("2021-03-01T01:10", tz="UTC").value // 1_000_000)

    async def runs():
        async with FakeVenue(VENUE_SYMBOLS, start="2021-03-01T01:05", data_start="2020-12-01",
                             data_end="2021-03-10") as venue:
            venue.script(funding_delay_ms=DELAY_MS)
            stop = asyncio.Event()

            async def sleep(seconds: float) -> None:
                venue.advance(max(int(seconds * 1000), 1))
                if venue.clock.now_ms() >= stop_at:
                    stop.set()

            runners = await _stop_then_resume(venue, config, sleep, stop, lambda done: len(VENUE_SYMBOLS), 120)
            return runners, venue.clock.now_ms()

    (first, stopped, second, resumed), now = asyncio.run(runs())
    assert first.funding.held == 1 and first.bars_processed == 0 and stopped["time"] == -1  # nothing decided
    assert second.funding.held == 1 and second.bars_processed == len(VENUE_SYMBOLS)
    assert pd.Timestamp(resumed["time"], unit="ms", tz="UTC") == pd.Timestamp("2021-03-01T01:00", tz="UTC")
    assert now >= int(pd.Timestamp("2021-03-01T02:00", tz="UTC").value // 1_000_000)


def _config(db: str, wait_s: int):
    """The portfolio committee's paper daemon on the fake venue's symbols, with a funding wait."""
    return load_config(None, env={"COINSWARM_DB_URL": db, "COINSWARM_SYMBOLS": ",".join(VENUE_SYMBOLS),
                                  "COINSWARM_STRATEGY": "portfolio", "COINSWARM_MAX_DRAWDOWN": "0.9",
                                  "COINSWARM_DAILY_LOSS": "0.9", "COINSWARM_FUNDING_WAIT_S": str(wait_s)})


async def _stop_then_resume(venue, config, sleep, stop, max_bars, bound_s: float) -> list:
    """``run_paper`` twice on ``venue``: first until ``stop`` is set, then to the end. ``max_bars(done)``
    is each run's bar budget given the bars the first processed. Returns, per run, its runner and the
    checkpoint it left."""
    from coinswarm.live.ccxt_broker import PUBLIC, CcxtBroker

    out, done = [], 0
    for run_stop in (stop, None):
        broker = CcxtBroker("binance", keys=PUBLIC, api_url=venue.url, min_interval_ms=1, perpetuals=True)
        await broker.start()
        try:
            runner = await asyncio.wait_for(run_paper(config, broker, max_bars=max_bars(done), sleep=sleep,
                                                      stop=run_stop), bound_s)
            done = runner.bars_processed
            ledger = Ledger(config.servers.db)
            try:
                out += [runner, ledger.get_meta("checkpoint")]
            finally:
                ledger.close()
        finally:
            await broker.close()
    return out
