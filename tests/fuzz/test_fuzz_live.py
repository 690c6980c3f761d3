"""Fuzz the live runner's bar input: any candle a feed could hand it (NaN, ±inf, negative or
inconsistent prices, old, repeated or future times, unknown symbols) is processed or refused
with a typed :class:`~coinswarm.errors.CoinswarmError` — never another exception — and a
refused bar changes nothing (strategy state, kernel state, last bar, pending group)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.errors import CoinswarmError
from coinswarm.live.protocols import ClosedBar
from coinswarm.live.replay import ReplaySpec, build, replay
from tests.fuzz.budget import DEADLINE_MS, examples, seen

HOUR = 3_600_000
prices = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(1.0, 1e5),
                   st.sampled_from([0.0, -1.0, 30000.0]))


@pytest.mark.timeout(600)
def test_fuzz_runner_bars(tmp_path):
    spec = ReplaySpec(["binance:BTC/USDT:1h"], "trend", f"sqlite:///{tmp_path / 'fuzz.db'}",
                      start="2021-01-01", end="2021-01-05")
    asyncio.run(replay(spec))
    runner, _ = build(spec)

    @settings(max_examples=examples(300), deadline=DEADLINE_MS, suppress_health_check=list(HealthCheck))
    @given(symbol=st.sampled_from(["BTC/USDT", "ETH/USDT"]), dt=st.integers(-3, 3),
           o=prices, h=prices, low=prices, c=prices, v=st.one_of(prices, st.just(1.0)))
    def case(symbol, dt, o, h, low, c, v):
        seen("live")
        bar = ClosedBar(symbol, runner.last_time + dt * HOUR, o, h, low, c, v)
        before = (runner.last_time, runner.stepper.to_record(), runner.broker.to_bytes(), dict(runner._group))
        try:
            asyncio.run(runner.on_bar(bar))
        except CoinswarmError:
            after = (runner.last_time, runner.stepper.to_record(), runner.broker.to_bytes(), dict(runner._group))
            assert after == before

    try:
        case()
    finally:
        runner.ledger.close()
