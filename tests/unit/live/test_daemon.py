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
