"""Pieces shared by the speed benchmarks (``from benchmarks.kernel_path import …``): the committee's
compiled loop + the portfolio kernel on one symbol's arrays, and the bars-per-second line."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

import coinswarm as cs
from coinswarm.agents.base import ohlcv_matrices
from coinswarm.agents.execution import orders_only
from coinswarm.backtest.engine import day_end_mask, financing_days
from coinswarm.committee.kernel import committee_run
from coinswarm.kernels.portfolio import simulate_nb


def report(benchmark, label: str, bars: int) -> None:
    """Print the median time of ``benchmark`` per run and per bar."""
    median = benchmark.stats.stats.median
    print(f"\n{label}: {median * 1e3:.2f} ms for {bars:,} bars = {bars / median / 1e6:.2f} M bars/s "
          f"({median / bars * 1e9:.0f} ns/bar)")


def committee_kernel(frame: pd.DataFrame, record_fills: bool) -> Callable[[], tuple]:
    """A zero-argument run of the default committee's compiled loop + the portfolio kernel on ``frame``
    (as BTC/USDT), arrays in and out; ``record_fills`` is the kernel's own flag."""
    committee = cs.Committee.default()
    time_ms, o, h, low, c, _ = ohlcv_matrices({"BTC/USDT": frame})
    kernel_params = committee._kernel_params(committee.Params(), ("BTC/USDT",))
    day_end = day_end_mask(frame.index)
    days = financing_days(frame.index)
    funding = np.zeros_like(c)

    def run():
        state = committee.init(["BTC/USDT"])
        target = committee_run(state.arrays, *kernel_params, 2, time_ms, np.log(h), np.log(low), np.log(c), c)[0]
        return simulate_nb(o, c, orders_only(target), funding, day_end, days, 0.001, 0.0, 10_000.0, True, 1.0,
                           False, record_fills, 0.0, np.zeros(c.shape[1]))

    return run
