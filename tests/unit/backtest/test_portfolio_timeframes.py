"""The daily portfolio committee on daily bars: its warm-up is 60 days of bars of any length, it
decides exactly as on hourly bars, and assets on different timeframes are refused (real Binance data)."""

from __future__ import annotations

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import PortfolioCommittee
from coinswarm.strategies.base import warmup_bars

PAIRS = ("BTC/USDT", "ETH/USDT", "LTC/USDT")


@pytest.fixture(scope="module")
def hourly():
    return {p: cs.load_ohlcv(f"binance:{p}:1h", start="2020-01-01", end="2021-12-31") for p in PAIRS}


def test_daily_bars_give_the_hourly_decisions(hourly):
    daily = {p: cs.resample_ohlcv(frame, "1d") for p, frame in hourly.items()}
    on_hours = PortfolioCommittee().targets(hourly).dropna(how="all")
    on_days = PortfolioCommittee().targets(daily).dropna(how="all")
    assert len(on_days) > 100
    on_hours.index = on_hours.index.floor("D")  # the 23:00 bar closes the day the daily bar closes
    np.testing.assert_array_equal(on_hours.to_numpy(), on_days.loc[on_hours.index].to_numpy())


@pytest.mark.timeout(600)
def test_walk_forward_runs_the_default_on_daily_bars(hourly):
    daily = {p: cs.resample_ohlcv(frame, "1d") for p, frame in hourly.items()}
    report = cs.walk_forward(cs.Committee.default(), daily, None, train="365D", test="90D",
                             costs=cs.Costs(fee_bps=10))
    assert report.strategy == "portfolio" and len(report.folds) >= 3 and report.oos.metrics["n_trades"] > 0


def test_the_warm_up_is_sixty_days_of_bars_of_any_length():
    committee = PortfolioCommittee()
    assert [warmup_bars(committee, None, ms) for ms in (3_600_000, 14_400_000, 86_400_000)] == [1440, 360, 60]
    assert warmup_bars(committee, None, None) == committee.warmup() == 1440
    assert warmup_bars(cs.get_strategy("sma_cross"), cs.SmaCrossParams(fast=20, slow=100), 86_400_000) == \
        cs.get_strategy("sma_cross").warmup(cs.SmaCrossParams(fast=20, slow=100))


def test_too_little_daily_history_says_how_much_is_needed(hourly):
    daily = {p: cs.resample_ohlcv(frame, "1d").iloc[:50] for p, frame in hourly.items()}
    with pytest.raises(cs.ConfigError, match=r"60 bars \(60 days of 1d bars\).*has 50 bars"):
        cs.walk_forward(cs.Committee.default(), daily, None, train="20D", test="10D", costs=cs.Costs(fee_bps=10))


def test_assets_on_different_timeframes_are_refused(hourly):
    mixed = {"BTC/USDT": hourly["BTC/USDT"], "ETH/USDT": cs.resample_ohlcv(hourly["ETH/USDT"], "4h")}
    with pytest.raises(cs.ConfigError, match=r"BTC/USDT 1h, ETH/USDT 4h.*resample_ohlcv\(frame, '4h'\)"):
        cs.simulate(mixed, cs.get_strategy("buy_and_hold").targets(mixed, None))
    with pytest.raises(cs.ConfigError, match="differ in length"):
        cs.walk_forward(cs.Committee.default(), mixed, None, train="120D", test="30D", costs=cs.Costs(fee_bps=10))
    eth = hourly["ETH/USDT"]
    by_pandas = eth.resample("4h").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                        "volume": "sum"}).dropna()
    assert by_pandas.attrs.get("timeframe") == "1h"  # pandas keeps the stale attribute …
    with pytest.raises(cs.ConfigError, match="ETH/USDT 4h"):  # … the data's own step decides
        cs.simulate({"BTC/USDT": hourly["BTC/USDT"], "ETH/USDT": by_pandas},
                    cs.get_strategy("buy_and_hold").targets({"BTC/USDT": hourly["BTC/USDT"], "ETH/USDT": by_pandas},
                                                            None))
