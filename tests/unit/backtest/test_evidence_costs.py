"""The agents' evidence gives the carry legs the run's costs with the perpetual's funding added:
slippage and financing are kept, not rebuilt from the fee alone."""

from __future__ import annotations

import pytest

import coinswarm as cs
from coinswarm.backtest.evidence import _inputs


@pytest.mark.timeout(300)
def test_the_carry_legs_keep_every_cost_of_the_run():
    start, end = "2021-01-01", "2021-03-31"
    prices = {p: cs.load_ohlcv(f"binance:{p}/USDT:1h", start=start, end=end) for p in ("BTC", "ETH")}
    costs = cs.Costs(fee_bps=7, slippage_bps=2, cash_rate=0.04, borrow_rate=0.1)
    market, legs, job = _inputs("ETH", "carry", prices, costs, start, end)
    assert market == "ETH spot/perp" and set(legs) == {"ETH/USDT", "ETH/USDT:USDT"}
    assert (job.fee_bps, job.slippage_bps, job.cash_rate, job.borrow_rate) == (7, 2, 0.04, 0.1)
    assert list(job.funding) == ["ETH/USDT:USDT"] and len(job.funding["ETH/USDT:USDT"]) > 0
    assert costs.funding is None  # the run's costs are not changed
