"""The runner's funding book charges what the engine charges, bar by bar, and tells the strategy
what it reads (real BTC perpetual bars and funding, with their gaps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.engine import funding_matrix
from coinswarm.errors import ConfigError
from coinswarm.live.funding import FundingBook

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
