"""The paper daemon warms the daily portfolio committee up on as many days of history as its
backtest needs, whatever the timeframe: never so many that it decides (and believes it holds a
book) during the warm-up, which trades nothing (real Binance candles, resampled to 4h)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import WARMUP_DAYS
from coinswarm.live.config import load_config
from coinswarm.live.daemon import run_paper
from coinswarm.live.stepper import Stepper
from tests.unit.live.test_daemon import Venue

H4 = 4 * 3_600_000


class Venue4h(Venue):
    """The catalog's 1h candles resampled to 4h (the same real prices on another timeframe)."""

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms
        self.frames = {}
        for symbol in ("BTC/USDT", "ETH/USDT"):
            frame = cs.resample_ohlcv(cs.load_ohlcv(f"binance:{symbol}:1h", start="2020-01-01", end="2021-03-31"), "4h")
            self.frames[symbol] = (frame.index.as_unit("ms").asi8,
                                   frame[["open", "high", "low", "close", "volume"]].to_numpy())


def test_the_daily_strategys_warm_up_is_days_in_bars_of_the_timeframe():
    stepper = Stepper("portfolio", ["BTC/USDT", "ETH/USDT"])
    assert stepper.warmup() == stepper.warmup(3_600_000) == WARMUP_DAYS * 24
    assert stepper.warmup(H4) == WARMUP_DAYS * 6 and stepper.warmup(900_000) == WARMUP_DAYS * 96
    assert Stepper("trend", ["BTC/USDT"]).warmup(H4) == Stepper("trend", ["BTC/USDT"]).warmup()


@pytest.mark.timeout(300)
def test_a_4h_paper_run_of_the_portfolio_committee_does_not_decide_during_its_warm_up(tmp_path):
    config = load_config(None, env={"COINSWARM_DB_URL": f"sqlite:///{tmp_path / 'run.db'}",
                                    "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT", "COINSWARM_STRATEGY": "portfolio",
                                    "COINSWARM_TIMEFRAME": "4h", "COINSWARM_MAX_DRAWDOWN": "0.9",
                                    "COINSWARM_DAILY_LOSS": "0.9"})
    start = cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-10", end="2021-01-10").index[0].value // 1_000_000
    venue = Venue4h(start + H4 + H4 // 2)  # one closed 4h bar after the warm-up, not a day's last
    runner = asyncio.run(run_paper(config, venue, max_bars=2, sleep=venue.sleep))
    state = runner.stepper.states[0]
    assert 0 < state.days <= WARMUP_DAYS  # 240 days of 4h bars before: it decided and "held" a book
    assert not np.any(state.held) and not np.any(runner.broker.positions())
