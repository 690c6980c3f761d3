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

import pytest

import coinswarm as cs
from benchmarks.kernel_path import committee_kernel, report

ROUNDS = 30


@pytest.fixture(scope="module")
def btc():
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2017-08", end="2024-12")


def test_kernel_alone(benchmark, btc):
    """Committee loop + portfolio kernel on arrays (the ceiling of the public path)."""
    run = committee_kernel(btc, record_fills=True)
    run()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    report(benchmark, "kernel alone: committee loop + portfolio kernel", len(btc))


def test_public_run_and_simulate(benchmark, btc):
    """``Committee.run`` + ``cs.simulate``: what a user writes."""
    committee = cs.Committee.default()

    def run():
        return cs.simulate(btc, committee.targets(btc))

    run()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    report(benchmark, "public: Committee.targets (run) + cs.simulate", len(btc))


def test_public_backtest(benchmark, btc):
    committee = cs.Committee.default()
    committee.backtest(btc)
    benchmark.pedantic(committee.backtest, args=(btc,), rounds=ROUNDS, iterations=1, warmup_rounds=2)
    report(benchmark, "public: Committee.backtest (run, simulate; table and attribution on first read)", len(btc))


def test_public_backtest_and_attribution(benchmark, btc):
    """``Committee.backtest`` with its run table and PnL attribution read (all the work)."""
    committee = cs.Committee.default()

    def run():
        result = committee.backtest(btc)
        return result.attribution, result.committee

    run()
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    report(benchmark, "public: Committee.backtest + .attribution + .committee", len(btc))


def test_public_committee_run(benchmark, btc):
    committee = cs.Committee.default()
    committee.run(btc, gaps="ignore")
    benchmark.pedantic(committee.run, args=(btc,), kwargs={"gaps": "ignore"}, rounds=ROUNDS, iterations=1,
                       warmup_rounds=2)
    report(benchmark, "public: Committee.run alone", len(btc))


def test_public_simulate_alone(benchmark, btc):
    target = cs.Committee.default().targets(btc)
    cs.simulate(btc, target)
    benchmark.pedantic(cs.simulate, args=(btc, target), rounds=ROUNDS, iterations=1, warmup_rounds=2)
    report(benchmark, "public: cs.simulate alone (validated)", len(btc))
