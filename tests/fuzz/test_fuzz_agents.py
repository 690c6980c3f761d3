"""Fuzz: the step protocol alone — every agent, the regime detector and the committee fed one
bar at a time, with parameters, bars and saved states corrupted one way at a time.

Each case ends in a valid output (votes in [-1, 1], confidences in [0, 1], finite) or a
:class:`~coinswarm.errors.CoinswarmError` subclass — never another exception, never a hang —
and a refused bar or state leaves the state byte for byte as it was. Bars are real Binance
BTC/USDT and ETH/USDT 1h candles (perpetual funding from the bundled history for the carry
trade); only the corruption is synthetic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coinswarm as cs
from coinswarm.agents import Execution, FundingCarry, MeanReversion, PairsArbitrage, Risk, Trend
from coinswarm.agents.arbitrage import FundingBar
from coinswarm.agents.base import Bar
from coinswarm.agents.state import State
from coinswarm.errors import CoinswarmError
from coinswarm.regime.detector import RegimeDetector
from tests.fuzz.budget import DEADLINE_MS, examples, seen

SETTINGS = dict(deadline=DEADLINE_MS, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# the module's first test compiles every step kernel (minutes on a loaded 2-core machine)
pytestmark = pytest.mark.timeout(900)
SINGLE = (Trend(), MeanReversion(), Risk(), Execution(), RegimeDetector())
N_BARS = 120
_BARS: dict[str, list[Bar]] = {}


def bars(symbol: str = "BTC") -> list[Bar]:
    """The first :data:`N_BARS` real 1h candles of March 2022 as :class:`Bar` s."""
    if symbol not in _BARS:
        frame = cs.load_ohlcv(f"binance:{symbol}/USDT:1h", start="2022-03-01", end="2022-03-10")
        times = frame.index.as_unit("ms").asi8
        _BARS[symbol] = [Bar(int(t), *map(float, row)) for t, row in
                         zip(times[:N_BARS], frame[["open", "high", "low", "close", "volume"]].to_numpy()[:N_BARS],
                             strict=True)]
    return _BARS[symbol]


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Compile every step kernel before the per-case deadline applies."""
    for agent in SINGLE:
        state = agent.init()
        for bar in bars()[:3]:
            agent.step(state, bar)
    committee = cs.Committee.default()
    state = committee.init(["BTC"])
    committee.step(state, [bars()[0]])
    for two_leg, second in ((PairsArbitrage(), bars("ETH")[0]), (FundingCarry(), FundingBar(*bars()[0], 0.0001))):
        two_leg.step(two_leg.init(), (bars()[0], second))


CORRUPTIONS = {
    "nan": lambda b, f: b._replace(**{f: math.nan}),
    "inf": lambda b, f: b._replace(**{f: math.inf}),
    "negative": lambda b, f: b._replace(**{f: -abs(getattr(b, f)) - 1.0}),
    "zero": lambda b, f: b._replace(**{f: 0.0}),
    "string": lambda b, f: b._replace(**{f: "12.5"}),
    "none": lambda b, f: b._replace(**{f: None}),
    "bool": lambda b, f: b._replace(**{f: True}),
    "huge": lambda b, f: b._replace(**{f: 1e308}),
    "high_below_low": lambda b, f: b._replace(high=b.low * 0.5),
    "same_time": lambda b, f: b,  # applied after the bar itself: a replayed bar
    "older": lambda b, f: b._replace(time=b.time - 7_200_000),
}
FIELDS = ("open", "high", "low", "close", "volume", "time")


def _valid_output(out) -> None:
    values = [float(x) for x in np.ravel(np.asarray(out, dtype=object)) if isinstance(x, int | float | np.number)]
    assert all(math.isfinite(v) for v in values), f"non-finite output {out}"


def _feed(step, state: State, sequence, corrupt_at: int, make_bad) -> None:
    """Step through ``sequence``; at ``corrupt_at`` send the corrupted bar, which must either be
    refused with a CoinswarmError and leave the state's bytes unchanged, or be valid."""
    for i, good in enumerate(sequence):
        if i == corrupt_at:
            bad = make_bad(sequence[i - 1] if i else good, good)
            before = state.to_bytes()
            try:
                _, out = step(state, bad)
            except CoinswarmError:
                assert state.to_bytes() == before, "a refused bar changed the state"
            else:
                _valid_output(out)
            continue
        _, out = step(state, good)
        _valid_output(out)


def _bad_bar(kind: str, field: str):
    def make(previous: Bar, good: Bar):
        if kind == "same_time":
            return previous
        return CORRUPTIONS[kind](good, field)
    return make


@settings(max_examples=examples(600), **SETTINGS)
@given(agent=st.sampled_from(SINGLE), kind=st.sampled_from(sorted(CORRUPTIONS)), field=st.sampled_from(FIELDS),
       at=st.integers(1, 40))
def test_single_agent_bad_bar(agent, kind, field, at):
    seen("agents")
    _feed(agent.step, agent.init(), bars()[:at + 5], at, _bad_bar(kind, field))


@settings(max_examples=examples(300), **SETTINGS)
@given(kind=st.sampled_from(sorted(CORRUPTIONS)), field=st.sampled_from(FIELDS), at=st.integers(1, 30),
       leg=st.integers(0, 1))
def test_committee_bad_bar(kind, field, at, leg):
    seen("agents")
    committee = cs.Committee.default()
    state = committee.init(["BTC", "ETH"])
    pairs = list(zip(bars()[:at + 3], bars("ETH")[:at + 3], strict=True))

    def make(previous, good):
        bad = list(good)
        bad[leg] = _bad_bar(kind, field)(previous[leg], good[leg])
        return bad
    _feed(lambda s, b: committee.step(s, list(b)), state, pairs, at, make)


@settings(max_examples=examples(300), **SETTINGS)
@given(carry=st.booleans(), kind=st.sampled_from(sorted(CORRUPTIONS)), field=st.sampled_from(FIELDS),
       at=st.integers(1, 30), leg=st.integers(0, 1),
       rate=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(1e-4)))
def test_two_leg_bad_bar(carry, kind, field, at, leg, rate):
    seen("agents")
    agent = FundingCarry() if carry else PairsArbitrage()
    second = [FundingBar(*b, 1e-4) for b in bars()] if carry else bars("ETH")
    pairs = list(zip(bars()[:at + 3], second[:at + 3], strict=True))

    def make(previous, good):
        bad = list(good)
        bad[leg] = _bad_bar(kind, field)(previous[leg], good[leg])
        if carry and leg == 1 and kind == "bool":
            bad[1] = bad[1]._replace(funding_rate=rate)
        return tuple(bad)
    _feed(agent.step, agent.init(), pairs, at, make)


PARAM_VALUES = st.one_of(st.integers(-10, 10_000), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                         st.none(), st.text(max_size=3))


@settings(max_examples=examples(600), **SETTINGS)
@given(agent=st.sampled_from((*SINGLE, PairsArbitrage(), FundingCarry())), data=st.data())
def test_params_valid_or_refused(agent, data):
    """Any parameter value: a working agent (finite outputs over real bars) or a ConfigError."""
    seen("agents")
    defaults = agent.Params()
    field = data.draw(st.sampled_from(defaults._fields))
    value = data.draw(PARAM_VALUES)
    as_dict = data.draw(st.booleans())
    try:
        params = {field: value} if as_dict else defaults._replace(**{field: value})
        state = agent.init(params)
    except CoinswarmError:
        return
    if isinstance(agent, PairsArbitrage | FundingCarry):
        second = [FundingBar(*b, 1e-4) for b in bars()] if isinstance(agent, FundingCarry) else bars("ETH")
        for pair in zip(bars()[:30], second[:30], strict=True):
            _valid_output(agent.step(state, pair)[1])
        return
    for bar in bars()[:30]:
        _valid_output(agent.step(state, bar)[1])


@settings(max_examples=examples(400), **SETTINGS)
@given(agent=st.sampled_from(SINGLE), at=st.integers(0, 10_000), byte=st.integers(0, 255), cut=st.booleans())
def test_restored_state_valid_or_refused(agent, at, byte, cut):
    """A saved state with one byte changed, or cut short: refused (StaleStateError and kin) or,
    if it still parses, a state the agent steps on without a foreign exception."""
    seen("agents")
    state = agent.init()
    for bar in bars()[:20]:
        agent.step(state, bar)
    blob = bytearray(state.to_bytes())
    at %= len(blob)
    if cut:
        blob = blob[:at]
    else:
        blob[at] = byte
    try:
        restored = State.from_bytes(bytes(blob))
        for bar in bars()[20:25]:
            agent.step(restored, bar)
    except CoinswarmError:
        return
