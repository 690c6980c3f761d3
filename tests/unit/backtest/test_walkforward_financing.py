"""A walk-forward on a financed book (``Costs(cash_rate=…)``) measures Sharpe in excess of at
least the rate idle cash earns: by default that rate, never below it (interest is not an edge)."""

from __future__ import annotations

import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError

GRID = {"fast": [10], "slow": [50]}


@pytest.fixture(scope="module")
def btc():
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-01", end="2021-12-31")


def test_the_excess_return_hurdle_defaults_to_the_rate_idle_cash_earns(btc):
    financed = cs.walk_forward("sma_cross", btc, GRID, train="90D", test="60D",
                               costs=cs.Costs(fee_bps=10, cash_rate=0.04))
    assert financed.stats["cash_rate"] == 0.04
    assert financed.oos.metrics["interest_earned"] > 0
    plain = cs.walk_forward("sma_cross", btc, GRID, train="90D", test="60D", costs=cs.Costs(fee_bps=10),
                            cash_rate=0.04)
    assert financed.stats["days"] == plain.stats["days"]
    assert financed.stats["sharpe_excess"] > plain.stats["sharpe_excess"]  # same trades, idle cash now earns
    assert financed.oos.metrics["n_trades"] == plain.oos.metrics["n_trades"]


def test_a_hurdle_below_the_credited_rate_is_refused_before_any_work(btc):
    with pytest.raises(ConfigError, match=r"cash_rate 0.01 is below the 0.04 idle cash earns"):
        cs.walk_forward("sma_cross", btc, GRID, train="90D", test="60D", costs=cs.Costs(cash_rate=0.04),
                        cash_rate=0.01)
