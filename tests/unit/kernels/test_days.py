"""The kernel's financing day rule (:func:`coinswarm.kernels.days.finance_days`): a UTC day is
financed at the first bar whose close reaches its end — each day's last bar on whole days, every
day ended meanwhile after a gap, nothing for a day the series ends in. Real BTC/USDT 1h bar times
(their shape is the point: the prices are not used)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.engine import day_end_mask, financing_days
from coinswarm.errors import ConfigError
from coinswarm.kernels.days import DAY_MS, days_financed, finance_days
from coinswarm.kernels.portfolio import portfolio_init, portfolio_step, portfolio_view

HOUR = 3_600_000


@pytest.fixture(scope="module")
def index():
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-01", end="2021-03-31").index


def test_on_whole_days_without_gaps_it_is_each_days_last_bar(index):
    days = financing_days(index)
    assert (days == day_end_mask(index)).all() and days.sum() == 31 + 28 + 31


def test_a_gap_finances_every_day_ended_meanwhile_and_a_mid_day_end_nothing(index):
    kept = index[(index < pd.Timestamp("2021-01-15", tz="UTC")) | (index >= pd.Timestamp("2021-01-17 05:00", tz="UTC"))]
    kept = kept[kept <= pd.Timestamp("2021-03-30 15:00", tz="UTC")]
    days = financing_days(kept)
    first_after = int(np.flatnonzero(kept >= pd.Timestamp("2021-01-17", tz="UTC"))[0])
    assert days[first_after] == 2  # 2021-01-15 and 01-16, at the close of 01-17 05:00
    assert days[-1] == 0 and day_end_mask(kept)[-1]  # the old rule financed the final bar, mid-day
    assert days.sum() == 31 + 28 + 29  # every day ended before the last close, once


def test_the_daemons_form_agrees_bar_by_bar(index):
    opens = index.as_unit("ms").asi8[::7]  # irregular gaps of 7 h
    days = finance_days(opens, HOUR)
    assert [days_financed(None if k == 0 else int(opens[k - 1]), int(t), HOUR) for k, t in enumerate(opens)] \
        == days.tolist()
    assert finance_days([0], DAY_MS).tolist() == [1] and finance_days([], HOUR).tolist() == []


def test_the_kernel_finances_one_day_per_day_passed():
    daily = 0.001
    state = portfolio_init(1, 10_000.0)
    portfolio_step(state, [100.0], [100.0], [np.nan], days=3, fee=0.0, credit=daily)
    cash = 10_000.0
    for _ in range(3):  # each day on the cash the previous days left
        cash += cash * daily
    assert portfolio_view(state)["cash"] == cash
    state = portfolio_init(1, 10_000.0)
    portfolio_step(state, [100.0], [100.0], [np.nan], day_end=True, fee=0.0, credit=daily)  # days default: 1
    assert portfolio_view(state)["cash"] == 10_000.0 + 10_000.0 * daily


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_a_bad_days_is_a_typed_error(bad):
    with pytest.raises(ConfigError, match="days .* must be an integer ≥ 0"):
        portfolio_step(portfolio_init(1, 1.0), [1.0], [1.0], [np.nan], days=bad)
