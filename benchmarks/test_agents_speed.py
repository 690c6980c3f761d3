"""Issue #3 benchmarks: agents, regimes and the committee — per-bar latency and throughput.

* **Live path**: one ``update`` call from Python per closed bar (what the daemon pays).
* **Compiled path**: each component's history loop over Binance BTC/USDT 1h 2017-08 →
  2024-12 (64,524 real bars), reported as bars per second on one core.
* **Full committee**: five agents + regimes + weights + risk + execution + the engine's
  simulation, arrays in and out (kernel level) and through the pandas face.
* **Committee walk-forward** on the six Binance 1h pairs 2018–2024 (default grid).

Run: ``pytest benchmarks/test_agents_speed.py --benchmark-only -s``
"""

from __future__ import annotations

import pytest

import coinswarm as cs
from benchmarks.kernel_path import committee_kernel, report
from coinswarm.agents import iter_bars
from coinswarm.agents.base import ohlcv_arrays
from coinswarm.regime import RegimeDetector
from coinswarm.regime.detector import regime_history

PAIRS = ("BTC", "ETH", "LTC", "SOL", "XRP", "ADA")
AGENTS = ("trend", "mean_reversion", "risk", "execution")


@pytest.fixture(scope="module")
def btc():
    return cs.load_ohlcv("binance:BTC/USDT:1h")


def _again(update, state, bar, previous_time: int):
    """``update(state, bar)`` with the bar clock set back to the previous bar, so the same bar
    can be taken on every round (an update refuses a bar that is not newer than the last)."""
    state.clock[0] = previous_time
    return update(state, bar)


@pytest.mark.parametrize("name", AGENTS)
def test_agent_update_latency(benchmark, btc, name):
    agent = cs.get_strategy(name)
    state = agent.init()
    bars = list(iter_bars(btc.iloc[:2000]))
    for bar in bars[:-1]:
        agent.update(state, bar)
    benchmark(_again, agent.update, state, bars[-1], bars[-2].time)
    print(f"\n{name}.update from Python: {benchmark.stats.stats.median * 1e6:.2f} µs per bar")


def test_committee_update_latency(benchmark, btc):
    committee = cs.Committee.default()
    state = committee.init(["BTC/USDT"])
    bars = list(iter_bars(btc.iloc[:2000]))
    for bar in bars[:-1]:
        committee.update(state, [bar])
    benchmark(_again, committee.update, state, [bars[-1]], bars[-2].time)
    print(f"\ncommittee.update from Python: {benchmark.stats.stats.median * 1e6:.2f} µs per bar")


@pytest.mark.parametrize("name", AGENTS)
def test_agent_compiled_throughput(benchmark, btc, name):
    agent = cs.get_strategy(name)
    arrays = ohlcv_arrays(btc)

    def run():
        state = agent.init()
        return agent._run(state.values, state.params, arrays)

    run()
    benchmark(run)
    report(benchmark, f"{name} compiled loop", len(btc))


def test_regime_compiled_throughput(benchmark, btc):
    time_ms, _, h, low, c, _ = ohlcv_arrays(btc)

    def run():
        state = RegimeDetector().init()
        return regime_history(state.values, state.params, time_ms, h, low, c)

    run()
    benchmark(run)
    report(benchmark, "regime detector compiled loop", len(btc))


def test_full_committee_pipeline_kernel(benchmark, btc):
    """Regimes + trend + mean reversion + Hedge weights + risk + execution + simulation."""
    run = committee_kernel(btc, record_fills=False)
    run()
    benchmark(run)
    report(benchmark, "full committee + simulation (kernel level)", len(btc))


def test_full_committee_pipeline_pandas(benchmark, btc):
    committee = cs.Committee.default()
    committee.backtest(btc)
    benchmark.pedantic(committee.backtest, args=(btc,), rounds=5, iterations=1)
    report(benchmark, "Committee.backtest (validation, frames, attribution)", len(btc))


def test_committee_walk_forward_six_pairs(benchmark):
    data = {p: cs.load_ohlcv(f"binance:{p}/USDT:1h", start="2018", end="2024") for p in PAIRS}
    grid = cs.get_strategy("committee").default_grid
    cs.walk_forward("committee", data["BTC"].iloc[:20_000], grid)  # compile

    def run():
        return {p: cs.walk_forward("committee", frame, grid) for p, frame in data.items()}

    reports = benchmark.pedantic(run, rounds=3, iterations=1)
    folds = sum(len(r.folds) for r in reports.values())
    print(f"\ncommittee walk-forward, six pairs, {len(cs.strategies.expand_grid(cs.get_strategy('committee'), grid))} "
          f"combos, {folds} folds: {benchmark.stats.stats.median:.2f} s")
