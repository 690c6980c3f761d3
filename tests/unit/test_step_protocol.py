"""The one step protocol (:mod:`coinswarm.agents.state`), component by component, on real data.

For every stateful part of the core — the four single-asset agents, the pair and carry trades,
the regime detector and the committee (one symbol, and two with the pair trade) — a loop of
``step`` gives exactly, bit for bit, what the compiled ``run`` over the same history gives,
also when the state is written to bytes and read back at several points on the way (what the
live runner does after every bar). A stale or damaged blob is refused with a typed error.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.agents import Bar, FundingBar, State, iter_bars, scan
from coinswarm.agents.arbitrage import funding_bars
from coinswarm.errors import (
    ConfigError,
    DuplicateTimestampError,
    MissingValueError,
    StaleStateError,
    StateError,
    UnsortedTimestampError,
)
from coinswarm.regime import RegimeDetector, regimes

SINGLE = ("trend", "mean_reversion", "risk", "execution")
COMPONENTS = (*SINGLE, "arbitrage", "carry", "regime", "committee", "committee_pair")
RESTORE_EVERY = 997  # bars between two writes and reads of the state (off the committee's 256-bar chunks)


@pytest.fixture(scope="module")
def data(btc_1h):
    btc = btc_1h.loc["2023-01-01":"2023-06-30"]
    eth = cs.load_ohlcv("binance:ETH/USDT:1h", start="2023-01-01", end="2023-06-30")
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2023-01-01", end="2023-06-30")
    return {"btc": btc, "pair": cs.align({"ETH/USDT": eth, "BTC/USDT": btc}, how="inner"),
            "carry": cs.align({"BTC/USDT": btc, "BTC/USDT:USDT": perp}, how="inner"), "perp": perp}


def case(name: str, data: dict):
    """``(component, fresh state, bars, expected (n, k) from run, output → row)``."""
    btc = data["btc"]
    if name in SINGLE:
        agent = cs.get_strategy(name)
        return agent, agent.init(), list(iter_bars(btc)), agent.run(btc, gaps="ignore").to_numpy(), np.array
    if name == "arbitrage":
        agent, legs = cs.PairsArbitrage(), data["pair"]
        bars = list(zip(iter_bars(legs["ETH/USDT"]), iter_bars(legs["BTC/USDT"]), strict=True))
        return agent, agent.init(), bars, agent.run(legs).to_numpy()[:, :3], np.array
    if name == "carry":
        agent, legs = cs.FundingCarry(), data["carry"]
        rates = agent.rates(data["perp"])
        bars = list(zip(iter_bars(legs["BTC/USDT"]), funding_bars(legs["BTC/USDT:USDT"], rates), strict=True))
        return agent, agent.init(), bars, agent.run(legs).to_numpy()[:, :3], np.array
    if name == "regime":
        frame = regimes(btc, gaps="ignore")
        codes = [frame[c].cat.codes.to_numpy() for c in ("volatility", "trend", "liquidity", "session")]
        expected = np.column_stack([*codes, frame[["realized_vol", "trend_t", "spread"]].to_numpy()])
        return RegimeDetector(), RegimeDetector().init(), list(iter_bars(btc)), expected, np.array
    pair = name == "committee_pair"
    committee = cs.Committee.default(pair=("ETH/USDT", "BTC/USDT") if pair else None)
    prices = data["pair"] if pair else {"BTC/USDT": btc}
    table = committee.run(prices, gaps="ignore")
    fields = ["target", "risked", "raw", *(f"w_{a}" for a in committee.agent_names)]
    expected = np.column_stack([table[s][f].to_numpy() for s in prices for f in fields] + [table.iloc[:, -1]])
    bars = list(zip(*(iter_bars(prices[s]) for s in prices), strict=True))

    def row(out):  # the same numbers in the same order as ``expected``
        per = [[out.target[j], out.risked[j], out.raw[j], *out.weights[j]] for j in range(len(prices))]
        return np.array([x for part in per for x in part] + [out.brake])

    return committee, committee.init(list(prices)), bars, expected, row


def stepped(component, state: State, bars: list, row, restore_every: int | None) -> tuple[State, np.ndarray]:
    """A loop of ``step`` (with a bytes round trip of the state every ``restore_every`` bars)."""
    rows = []
    for start in range(0, len(bars), restore_every or len(bars)):
        if start:
            state = State.from_bytes(state.to_bytes())
        state, outputs = scan(component.step, state, bars[start:start + (restore_every or len(bars))])
        rows.extend(row(out) for out in outputs)
    return state, np.array(rows)


def same_state(a: State, b: State) -> bool:
    return (a.params == b.params and a.symbols == b.symbols and a.layout == b.layout and a.time == b.time
            and all(np.array_equal(x, y) for x, y in zip(a.arrays, b.arrays, strict=True)))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", COMPONENTS)
def test_run_is_the_scan_of_step_also_across_a_restore(name, data):
    component, state, bars, expected, row = case(name, data)
    assert len(bars) > 4000
    whole, live = stepped(component, state.copy(), bars, row, None)
    assert np.array_equal(live, expected), f"{name}: a loop of step differs from run"
    restored, live = stepped(component, state, bars, row, RESTORE_EVERY)
    assert np.array_equal(live, expected), f"{name}: a loop of step with restores differs from run"
    assert same_state(restored, whole)
    last = bars[-1] if isinstance(bars[-1], Bar) else bars[-1][0]
    assert restored.time == last.time


def test_a_blob_carries_params_clock_and_symbols():
    committee = cs.Committee.default()
    state = committee.init(["BTC/USDT"], cs.CommitteeParams(learning_rate=0.3))
    back = State.from_bytes(state.to_bytes())
    assert back.params == cs.CommitteeParams(learning_rate=0.3) and type(back.params) is cs.CommitteeParams
    assert back.symbols == ("BTC/USDT",) and back.time == -1 and same_state(back, state)
    back.values[3][0, 0, 0] = 0.25  # fresh, writable arrays: the blob's reader owns them
    assert state.values[3][0, 0, 0] == 0.5


def test_a_stale_or_damaged_blob_is_refused_with_a_typed_error():
    agent = cs.Trend()
    blob = agent.init().to_bytes()
    stale = blob[:8] + struct.pack("<I", 999) + blob[12:]
    with pytest.raises(StaleStateError, match="format 999"):
        State.from_bytes(stale)
    damaged = bytearray(blob)
    damaged[-20] ^= 0xFF
    with pytest.raises(StateError, match="CRC"):
        State.from_bytes(bytes(damaged))
    for junk in (b"", b"not a state at all, just some bytes", "text", None):
        with pytest.raises(StateError):
            State.from_bytes(junk)


def _reseal(blob: bytes, header: dict) -> bytes:
    """``blob`` with another header and a valid CRC (what a bug or a hand could write)."""
    size = struct.unpack_from("<I", blob, 12)[0]
    text = json.dumps(header).encode()
    body = blob[:12] + struct.pack("<I", len(text)) + text + blob[16 + size:-4]
    return body + struct.pack("<I", zlib.crc32(body))


HEADER_EDITS = [
    lambda h: h["arrays"][0].__setitem__(0, "|O"),
    lambda h: h["arrays"][0].__setitem__(1, [-1]),
    lambda h: h["arrays"][0].__setitem__(1, [10**12]),
    lambda h: h["arrays"][0].__setitem__(1, [3]),
    lambda h: h["params"].__setitem__("type", "os:system"),
    lambda h: h["params"].__setitem__("type", "coinswarm.agents.trend:Trend"),
    lambda h: h["params"].__setitem__("type", "coinswarm.agents.trend:NoSuchParams"),
    lambda h: h["params"]["fields"].pop("fast"),
    lambda h: h["params"]["fields"].__setitem__("fast", [1, 2]),
    lambda h: h.pop("clock"),
    lambda h: h.__setitem__("tuple", True),
]


@pytest.mark.parametrize("edit", range(len(HEADER_EDITS)))
def test_a_resealed_blob_with_a_bad_header_is_refused_or_refused_by_step(edit, data):
    """A blob whose header lies (with a valid CRC) never reaches a kernel: ``from_bytes`` or
    ``step`` raise a :class:`StateError`, never anything else."""
    agent, state = cs.Trend(), cs.Trend().init()
    blob = state.to_bytes()
    size = struct.unpack_from("<I", blob, 12)[0]
    header = json.loads(blob[16:16 + size])
    HEADER_EDITS[edit](header)
    bar = next(iter_bars(data["btc"]))
    with pytest.raises(StateError):
        agent.step(State.from_bytes(_reseal(blob, header)), bar)


def test_a_state_whose_arrays_do_not_fit_its_params_is_refused(data):
    bar = next(iter_bars(data["btc"]))
    state = cs.Trend().init()
    with pytest.raises(StateError, match="do not fit"):
        cs.Trend().step(state._replace(params=cs.TrendParams(slow=2000)), bar)
    committee = cs.Committee.default()
    two = committee.init(["BTC/USDT", "ETH/USDT"])
    with pytest.raises(StateError, match="do not fit"):
        committee.step(two._replace(symbols=("BTC/USDT",)), [bar])


def test_a_state_of_another_component_or_configuration_is_refused(data):
    bar = next(iter_bars(data["btc"]))
    trend_state = cs.Trend().init()
    with pytest.raises(StaleStateError, match="layout 'trend-v1'"):
        cs.MeanReversion().step(trend_state, bar)
    narrow = cs.Execution(desired=cs.TrendParams(fast=12)).init()
    with pytest.raises(StaleStateError):
        cs.Execution().step(narrow, bar)
    state = cs.Committee.default().init(["BTC/USDT"])
    other = cs.Committee(cs.CommitteeConfig(vol_halflife=24.0))
    with pytest.raises(StaleStateError):
        other.step(state, [bar])
    with pytest.raises(StateError):
        cs.Trend().step((trend_state.params, trend_state.values), bar)
    old = trend_state._replace(layout="trend-v0")
    with pytest.raises(StaleStateError):
        cs.Trend().step(State.from_bytes(old.to_bytes()), bar)


@pytest.mark.parametrize("name", ["arbitrage", "carry"])
def test_two_leg_step_refuses_bad_bars_and_changes_nothing(name, data):
    component, state, bars, _, _ = case(name, data)
    for pair in bars[:300]:
        state, _ = component.step(state, pair)
    before = state.copy()
    first, second = bars[300]
    wrong = [(first, second._replace(close=np.nan)), (first._replace(time=first.time + 1), second),
             (first,), bars[299], bars[298]]
    if name == "carry":
        wrong += [(first, second._replace(funding_rate=np.inf)), (first, Bar(*second[:6]))]
    errors = (MissingValueError, ConfigError, ConfigError, DuplicateTimestampError, UnsortedTimestampError,
              MissingValueError, ConfigError)
    for bars_, error in zip(wrong, errors, strict=False):
        with pytest.raises(error):
            component.step(state, bars_)
        assert same_state(state, before)
    state, out = component.step(state, bars[300])
    assert len(out) == 3


def test_carry_steps_on_a_funding_bar_not_a_float(data):
    agent = cs.FundingCarry()
    with pytest.raises(ConfigError, match="FundingBar"):
        agent.step(agent.init(), (next(iter_bars(data["btc"])), 0.0001))
    assert FundingBar._fields[-1] == "funding_rate"
