"""Issue 16 item 4: the speed a user gets at the public API, side by side with the kernel alone.

On Binance BTC/USDT 1h 2017-08 → 2024-12 (64,524 real bars, one core):

* **kernel alone**: the committee's compiled loop + the portfolio kernel, arrays in and out
  (as in ``benchmarks/test_agents_speed.py``);
* **public path**: ``Committee.run`` + ``cs.simulate`` on the pandas frame (validation,
  targets, frames and ``Result`` included);
* ``Committee.backtest`` (validation, the committee's run, orders, simulate; the run table and the
  attribution are built on first read), and ``Committee.backtest(...).attribution`` (everything);
* ``cs.simulate`` alone on ready targets, and ``cs.simulate(..., validate=False)``.

Run: ``pytest benchmarks/test_public_speed.py --benchmark-only -s -p no:cacheprovider``
"""

from __future__ import annotations

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.agents.base import ohlcv_matrices
from coinswarm.agents.execution import orders_only
from coinswarm.backtest.engine import day_end_mask
from coinswarm.committee.kernel import committee_run
from coinswarm.kernels.portfolio import simulate_nb

ROUNDS = 30


@pytest.fixture(scope="module")
def btc():
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2017-08", end="2024-12")


def _report(benchmark, label: str, bars: int) -> None:
    median = benchmark.stats.stats.median
    print(f"\n{label}: {median * 1e3:.2f} ms for {bars:,} bars = {bars / median / 1e6:.2f} M bars/s "
          f"({median / bars * 1e9:.0f} ns/bar)")


def test_kernel_alone(benchmark, btc):
    """Committee loop + portfolio kernel on arrays (the ceiling of the public path)."""
    committee = cs.Committee.default()
    time_ms, o, h, low, c, _ = ohlcv_matrices({"BTC/USDT": btc})
    kernel_params = committee._kernel_params(committee.Params(), ("BTC/USDT",))
    day_end = day_end_mask(btc.index)
    funding = np.zeros_like(c)

    def run():
        state = committee.init(["BTC/USDT"])
        target = committee_run(state.arrays, *kernel_params, 2, time_ms, np.log(h), np.log(low), np.log(c), c)[0]
        return simulate_nb(o, c, orders_only(target), funding, day_end, 0.001, 0.0, 10_000.0, True, 1.0,
                           False, True, 0.0, np.zeros(c.shape[1]))

    run()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    _report(benchmark, "kernel alone: committee loop + portfolio kernel", len(btc))


def test_public_run_and_simulate(benchmark, btc):
    """``Committee.run`` + ``cs.simulate``: what a user writes."""
    committee = cs.Committee.default()

    def run():
        return cs.simulate(btc, committee.targets(btc))

    run()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    _report(benchmark, "public: Committee.targets (run) + cs.simulate", len(btc))


def test_public_backtest(benchmark, btc):
    committee = cs.Committee.default()
    committee.backtest(btc)
    benchmark.pedantic(committee.backtest, args=(btc,), rounds=ROUNDS, iterations=1, warmup_rounds=2)
    _report(benchmark, "public: Committee.backtest (run, simulate; table and attribution on first read)", len(btc))


def test_public_backtest_and_attribution(benchmark, btc):
    """``Committee.backtest`` with its run table and PnL attribution read (all the work)."""
    committee = cs.Committee.default()

    def run():
        result = committee.backtest(btc)
        return result.attribution, result.committee

    run()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    _report(benchmark, "public: Committee.backtest + .attribution + .committee", len(btc))


def test_public_committee_run(benchmark, btc):
    committee = cs.Committee.default()
    committee.run(btc, gaps="ignore")
    benchmark.pedantic(committee.run, args=(btc,), kwargs={"gaps": "ignore"}, rounds=ROUNDS, iterations=1,
                       warmup_rounds=2)
    _report(benchmark, "public: Committee.run alone", len(btc))


def test_public_simulate_alone(benchmark, btc):
    target = cs.Committee.default().targets(btc)
    cs.simulate(btc, target)
    benchmark.pedantic(cs.simulate, args=(btc, target), rounds=ROUNDS, iterations=1, warmup_rounds=2)
    _report(benchmark, "public: cs.simulate alone (validated)", len(btc))
