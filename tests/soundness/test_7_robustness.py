"""7. Robustness: NaN, broken bars, unsorted or duplicate timestamps, gaps, zero volume and
spikes are handled explicitly — a typed error naming the row, a warning, or documented
behaviour — never silently."""

import warnings

import numpy as np
import pytest
from components import SINGLE_AGENTS

import coinswarm as cs
from coinswarm.agents import GapWarning, reset_gap_warnings
from coinswarm.errors import (
    DuplicateTimestampError,
    GapError,
    InconsistentBarError,
    MissingValueError,
    NegativeVolumeError,
    NonPositivePriceError,
    UnsortedTimestampError,
)
from coinswarm.regime import RegimeDetector, regimes

RUNNERS = {name: (lambda p, n=name, **kw: cs.get_strategy(n).run(p, **kw)) for name in SINGLE_AGENTS}
RUNNERS["regime"] = lambda p, **kw: regimes(p, **kw)
RUNNERS["committee"] = lambda p, **kw: cs.Committee.default().run(p, **kw)


@pytest.fixture
def clean(inputs):
    return inputs["single"].iloc[:3000].copy()


@pytest.mark.parametrize("name", RUNNERS)
def test_nan_close_raises_with_row(name, clean):
    bad = clean.copy()
    bad.iloc[1234, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(MissingValueError) as info:
        RUNNERS[name](bad, gaps="ignore")
    assert info.value.row == 1234 and info.value.column == "close"


@pytest.mark.parametrize("name", RUNNERS)
def test_broken_bars_raise_typed_errors(name, clean):
    bad = clean.copy()
    bad.iloc[10, bad.columns.get_loc("high")] = bad["low"].iloc[10] * 0.5
    with pytest.raises(InconsistentBarError):
        RUNNERS[name](bad, gaps="ignore")
    bad = clean.copy()
    bad.iloc[20, bad.columns.get_loc("low")] = 0.0
    with pytest.raises(NonPositivePriceError):
        RUNNERS[name](bad, gaps="ignore")


@pytest.mark.parametrize("name", RUNNERS)
def test_unsorted_and_duplicate_timestamps_raise(name, clean):
    with pytest.raises(UnsortedTimestampError):
        RUNNERS[name](clean.iloc[[0, 2, 1, 3]], gaps="ignore")
    with pytest.raises(DuplicateTimestampError):
        RUNNERS[name](clean.iloc[[0, 1, 1, 2]], gaps="ignore")


@pytest.mark.parametrize("name", RUNNERS)
def test_gaps_warn_by_default_raise_on_request_and_pass_when_ignored(name, clean):
    gappy = clean.drop(clean.index[100:110])
    reset_gap_warnings()
    with pytest.warns(GapWarning, match="10 missing"):
        RUNNERS[name](gappy)
    with warnings.catch_warnings():  # once per dataset, not on every call over the same candles
        warnings.simplefilter("error", GapWarning)
        RUNNERS[name](gappy)
    reset_gap_warnings()
    with pytest.warns(GapWarning, match="reported once per dataset"):
        RUNNERS[name](gappy)
    with pytest.warns(GapWarning, match="9 missing"):  # another dataset warns on its own
        RUNNERS[name](clean.drop(clean.index[100:109]))
    with pytest.raises(GapError):
        RUNNERS[name](gappy, gaps="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RUNNERS[name](gappy, gaps="ignore")


@pytest.mark.parametrize("name", RUNNERS)
def test_zero_volume_is_valid_and_changes_nothing(name, clean):
    quiet = clean.copy()
    quiet["volume"] = 0.0
    a = RUNNERS[name](clean, gaps="ignore").to_numpy()
    b = RUNNERS[name](quiet, gaps="ignore").to_numpy()
    assert (a == b).all()


def test_a_price_spike_keeps_outputs_finite_and_makes_risk_cut_exposure(clean):
    spiky = clean.copy()
    k = 2000
    for column in ("high", "close"):
        spiky.iloc[k, spiky.columns.get_loc(column)] *= 10.0
    for name in RUNNERS:
        out = RUNNERS[name](spiky, gaps="ignore").select_dtypes("number").to_numpy()
        assert np.isfinite(out).all(), f"{name} produced NaN/inf after a spike"
    before = cs.Risk().run(clean, gaps="ignore")["vote"].iloc[k + 1:k + 48].mean()
    after = cs.Risk().run(spiky, gaps="ignore")["vote"].iloc[k + 1:k + 48].mean()
    assert after < 0.5 * before


def test_committee_update_rejects_misaligned_bars(clean):
    committee = cs.Committee.default()
    state = committee.init(["BTC/USDT", "ETH/USDT"])
    bar = next(cs.agents.iter_bars(clean))
    with pytest.raises(cs.ConfigError, match="one bar per symbol"):
        committee.update(state, [bar])
    with pytest.raises(cs.ConfigError, match="share a timestamp"):
        committee.update(state, [bar, bar._replace(time=bar.time + 3_600_000)])


BROKEN_BARS = [  # (what is wrong, the field it is in, the error)
    ({"close": np.nan}, "close", MissingValueError),
    ({"high": np.inf}, "high", MissingValueError),
    ({"low": 0.0}, "low", NonPositivePriceError),
    ({"high": 1.0}, "high", InconsistentBarError),  # below low
    ({"volume": -1.0}, "volume", NegativeVolumeError),
    ({"open": "n/a"}, "open", MissingValueError),
]
LIVE = {name: (lambda n=name: (cs.get_strategy(n), cs.get_strategy(n).init())) for name in SINGLE_AGENTS}
LIVE["regime"] = lambda: (RegimeDetector(), RegimeDetector().init())
LIVE["committee"] = lambda: (cs.Committee.default(), cs.Committee.default().init(["BTC/USDT"]))


def _update(name, component, state, bar):
    """The daemon's path: ``step`` (``update`` is ``step(...)[1]``)."""
    return component.step(state, [bar] if name == "committee" else bar)[1]


def _state_arrays(name, state) -> list[np.ndarray]:
    return [np.array(a, copy=True) for a in state.arrays] + [state.clock.copy()]


@pytest.mark.parametrize("name", LIVE)
def test_live_update_refuses_a_broken_bar_and_changes_nothing(name, clean):
    """The daemon's path (``update`` per bar) validates like the backtest path: a typed error
    naming the field, the state untouched, and the next good bar as if the bad one never came."""
    bars = list(cs.agents.iter_bars(clean.iloc[:1200]))
    component, state = LIVE[name]()
    twin_component, twin = LIVE[name]()
    for bar in bars[:-1]:
        _update(name, component, state, bar)
        _update(name, twin_component, twin, bar)
    for change, field, error in BROKEN_BARS:
        before = _state_arrays(name, state)
        with pytest.raises(error) as info:
            _update(name, component, state, bars[-1]._replace(**change))
        assert info.value.column == field
        after = _state_arrays(name, state)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after, strict=True))
    got, want = _update(name, component, state, bars[-1]), _update(name, twin_component, twin, bars[-1])
    assert np.array_equal(_numbers(got), _numbers(want), equal_nan=True)


def _numbers(output) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(field, dtype=np.float64)) for field in output])


def test_two_leg_updates_refuse_what_is_not_a_price_or_a_rate():
    pairs, carry = cs.get_strategy("arbitrage"), cs.get_strategy("carry")
    for closes in [(np.nan, 1.0), (1.0, 0.0), (1.0, -3.0), ("x", 1.0), (1.0, np.inf)]:
        with pytest.raises(NonPositivePriceError):
            pairs.update(pairs.init(), closes)
    for rate in [np.nan, np.inf, None]:
        with pytest.raises(MissingValueError):
            carry.update(carry.init(), rate)
    assert carry.update(carry.init(), -0.0001) is not None, "a negative funding rate is a rate"


@pytest.mark.parametrize("name", LIVE)
def test_live_update_refuses_a_replayed_or_older_bar_and_changes_nothing(name, clean):
    """A feed that replays a closed bar (a reconnect) or delivers one late must not count it again."""
    bars = list(cs.agents.iter_bars(clean.iloc[:1200]))
    component, state = LIVE[name]()
    for bar in bars[:-1]:
        _update(name, component, state, bar)
    before = _state_arrays(name, state)
    with pytest.raises(DuplicateTimestampError, match="not after the last bar"):
        _update(name, component, state, bars[-2])
    with pytest.raises(UnsortedTimestampError):
        _update(name, component, state, bars[-3])
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, _state_arrays(name, state), strict=True))
    _update(name, component, state, bars[-1])  # the next bar is taken as usual
