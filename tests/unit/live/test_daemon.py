"""``coinswarm live run`` (paper) on an exchange-like candle source serving real Binance candles
with its own clock: warm-up from REST history, only closed candles acted on, resume after a
stop without re-processing a bar."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.live.config import load_config
from coinswarm.live.daemon import run_paper
from coinswarm.live.ledger import Ledger

HOUR = 3_600_000


class Venue:
    """Candles of the catalog up to the venue's clock (the forming one included, as ccxt does)."""

    name = "fake"

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms
        self.frames = {}
        for symbol in ("BTC/USDT", "ETH/USDT"):
            frame = cs.load_ohlcv(f"binance:{symbol}:1h", start="2020-11-01", end="2021-03-31")
            self.frames[symbol] = (frame.index.as_unit("ms").asi8,
                                   frame[["open", "high", "low", "close", "volume"]].to_numpy())

    async def server_time_ms(self) -> int:
        return self.now

    async def candles(self, symbol, timeframe, since_ms, limit):
        ts, rows = self.frames[symbol]
        i0 = int(np.searchsorted(ts, since_ms or 0))
        i1 = int(np.searchsorted(ts, self.now, "right"))
        return [[int(ts[i]), *map(float, rows[i])] for i in range(i0, min(i1, i0 + limit))]

    async def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


def _paper(tmp_path, strategy: str):
    """``(db, config, venue)``: a paper run of ``strategy`` on BTC and ETH, the venue's clock at 2021-01-10."""
    db = f"sqlite:///{tmp_path / 'run.db'}"
    config = load_config(None, env={"COINSWARM_DB_URL": db, "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT",
                                    "COINSWARM_STRATEGY": strategy, "COINSWARM_MAX_DRAWDOWN": "0.9",
                                    "COINSWARM_DAILY_LOSS": "0.9"})
    start = cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-10", end="2021-01-10").index[0]
    return db, config, Venue(int(start.value // 1_000_000) + HOUR // 2)


@pytest.mark.timeout(300)
def test_paper_run_warms_up_trades_closed_bars_and_resumes(tmp_path):
    db, config, venue = _paper(tmp_path, "trend")
    first = asyncio.run(run_paper(config, venue, max_bars=400, sleep=venue.sleep))
    assert first.stepper.states[0].time > 0
    ledger = Ledger(db)
    assert ledger.bars_processed() == 400
    last = ledger.last_bars()
    assert all(t + HOUR <= venue.now for t in last.values()), "the forming candle is never acted on"
    ledger.close()
    asyncio.run(run_paper(config, venue, max_bars=400, sleep=venue.sleep))
    ledger = Ledger(db)
    try:
        assert ledger.bars_processed() == 800
        assert all(ledger.last_bars()[s] == last[s] + 200 * HOUR for s in last)
        report = ledger.report()
        assert report["orders"] and all(o["status"] == "filled" for o in report["orders"])
        assert len({o["client_order_id"] for o in report["orders"]}) == len(report["orders"])
        assert not report["halted"]
    finally:
        ledger.close()


@pytest.mark.timeout(300)
def test_the_portfolio_committee_runs_live_deciding_at_each_days_last_bar(tmp_path):
    db, config, venue = _paper(tmp_path, "portfolio")
    for _ in range(2):  # a stop, then a restart that resumes from the checkpoint (no second warm-up)
        asyncio.run(run_paper(config, venue, max_bars=2 * 24 * 15, sleep=venue.sleep))
    ledger = Ledger(db)
    try:
        orders = ledger.report()["orders"]
        assert ledger.bars_processed() == 2 * 2 * 24 * 15
        assert len(orders) >= 2 and all(o["status"] == "filled" for o in orders)
        assert {(o["bar_time"] + HOUR) % 86_400_000 for o in orders} == {0}  # decided at a day's close
    finally:
        ledger.close()


# ---- perpetuals with live funding: the fake Binance (real spot, perpetual candles and funding) ----
PERP = "BTC/USDT:USDT"
VENUE_SYMBOLS = {"BTC/USDT": "binance:BTC/USDT:1h", "ETH/USDT": "binance:ETH/USDT:1h",
                 PERP: "binance-perp:BTC/USDT:1h"}
DAY = 86_400_000


async def _perp_runs(config, bars: tuple[int, ...]) -> tuple[int, list[dict]]:
    """``run_paper`` on the fake Binance through ccxt (perpetuals loaded), stopped after each of
    ``bars`` and restarted; the venue's clock starts at 2021-03-01 00:30 and each of the feed's
    waits moves it a day on (each poll backfills a day of bars). Returns the funding requests
    and the checkpoint after each run."""
    from coinswarm.adapters.fake_venue import FakeVenue
    from coinswarm.live.ccxt_broker import PUBLIC, CcxtBroker

    async with FakeVenue(VENUE_SYMBOLS, start="2021-03-01T00:30", data_start="2020-12-01",
                         data_end="2021-05-31") as venue:
        async def sleep(seconds: float) -> None:
            venue.advance(max(int(seconds * 1000), DAY))

        checkpoints = []

        for n in bars:
            broker = CcxtBroker("binance", keys=PUBLIC, api_url=venue.url, min_interval_ms=1, perpetuals=True)
            await broker.start()
            try:
                await run_paper(config, broker, max_bars=n, sleep=sleep)
            finally:
                await broker.close()
            ledger = Ledger(config.servers.db)
            checkpoints.append(ledger.get_meta("checkpoint"))
            ledger.close()
        return venue.count("GET", "/fapi/v1/fundingRate"), checkpoints


def _bars(start: str, end: str) -> int:
    """Bars of the venue's symbols with open time in ``start`` … ``end`` (whole days; the catalog has gaps)."""
    return sum(len(cs.load_ohlcv(source, start=start, end=end)) for source in VENUE_SYMBOLS.values())


def _replayed(tmp_path, end: str) -> tuple[str, dict]:
    """The same bars replayed from the daemon's first warm-up bar to ``end``: the ledger, its checkpoint."""
    from coinswarm.live.replay import ReplaySpec, replay

    spec = ReplaySpec(list(VENUE_SYMBOLS.values()), "portfolio", f"sqlite:///{tmp_path / f'replay-{end}.db'}",
                      start="2020-12-31", end=end, costs=cs.Costs(fee_bps=10))
    asyncio.run(replay(spec))
    ledger = Ledger(spec.db)
    try:
        return spec.db, ledger.get_meta("checkpoint")
    finally:
        ledger.close()


def _orders(db: str, upto_ms: int) -> list[tuple]:
    ledger = Ledger(db)
    try:
        return sorted((o.client_order_id, o.symbol, o.side.value, o.qty, o.status.value, o.bar_time)
                      for o in ledger.orders() if o.bar_time <= upto_ms)
    finally:
        ledger.close()


@pytest.mark.timeout(600)
def test_the_paper_daemon_trades_perpetuals_with_live_funding_as_a_replay_does(tmp_path):
    db = f"sqlite:///{tmp_path / 'live.db'}"
    config = load_config(None, env={"COINSWARM_DB_URL": db, "COINSWARM_SYMBOLS": ",".join(VENUE_SYMBOLS),
                                    "COINSWARM_STRATEGY": "portfolio", "COINSWARM_MAX_DRAWDOWN": "0.9",
                                    "COINSWARM_DAILY_LOSS": "0.9"})
    # stops after the first live day and after 2021-04-09, restarts, the end of 2021-05-14 (each run ends on
    # a whole time: max_bars cutting a time short would process it without the rest of its bars)
    bars = (_bars("2021-03-01", "2021-03-01"), _bars("2021-03-02", "2021-04-09"), _bars("2021-04-10", "2021-05-14"))
    requests, checkpoints = asyncio.run(_perp_runs(config, bars))
    ledger = Ledger(db)
    try:
        last = max(ledger.last_bars().values())
        assert ledger.bars_processed() == sum(bars)  # none twice across the restarts
        flows = ledger.cash_flows(kind="funding")
        orders = ledger.report()["orders"]
        fills = ledger.fills()
    finally:
        ledger.close()
    assert any(f.symbol == PERP for f in fills) and all(o["status"] == "filled" for o in orders)
    assert len(flows) > 20 and sum(f.amount for f in flows) > 0  # the short perp earned spring 2021's funding
    assert len({f.flow_id for f in flows}) == len(flows)
    assert requests < 200  # fetched as they settle, not once per bar of the backfill
    # the committee's state (with the funding it holds, told from the warm-up on) equals a replay's of the
    # same bars from the first warm-up bar, after the first day and at the end (the kernel's state differs
    # in its bar count only: the replay's kernel also stepped the warm-up bars)
    assert _replayed(tmp_path, "2021-03-01")[1]["strategy"] == checkpoints[0]["strategy"]
    replayed, checkpoint = _replayed(tmp_path, "2021-05-14")
    assert checkpoint["strategy"] == checkpoints[-1]["strategy"] and checkpoint["time"] == last
    # and so do the orders, the fills and the funding booked
    assert _orders(db, last) == _orders(replayed, last) and len(_orders(db, last)) > 5
    _assert_replay_booked(replayed, flows, fills, last)


def _assert_replay_booked(replayed: str, flows: list, fills: list, last: int) -> None:
    """The replay's ledger holds the same funding flows and fills up to ``last`` as the daemon booked."""
    ledger = Ledger(replayed)
    try:
        assert [(f.flow_id, f.amount, f.time_ms) for f in ledger.cash_flows(kind="funding") if f.time_ms <= last] \
            == [(f.flow_id, f.amount, f.time_ms) for f in flows]
        assert sorted((f.fill_id, f.qty, f.price, f.fee) for f in ledger.fills() if f.time_ms <= last) == \
            sorted((f.fill_id, f.qty, f.price, f.fee) for f in fills)
    finally:
        ledger.close()
