"""The O(1) building blocks against direct computations.

Inputs are synthetic on purpose (known distributions for quantile accuracy, exact
windows for rolling sums), except the trend ring's look-back, checked on real closes;
real-data behaviour is covered by the soundness suite.
"""

import math

import numpy as np
import pandas as pd
import pytest

from coinswarm._jit import NUMBA_DISABLED
from coinswarm.agents.trend import Trend, TrendParams, trend_init, trend_scores_nb
from coinswarm.kernels.steps import (
    EXP_FAST_LIMIT,
    P2_SIZE,
    _p2_place_nb,
    _p2_place_py,
    corwin_schultz_log_py,
    exp_nb,
    exp_py,
    hyst_step_py,
    p2_push_nb,
    p2_value_nb,
    pair_push_nb,
    pair_regression_nb,
    pair_size,
    roll_mean_std_nb,
    roll_push_nb,
    roll_size,
    roll_tstat_nb,
    tanh_nb,
)


def test_rolling_window_matches_pandas_and_does_not_drift():
    rng = np.random.default_rng(1)
    x = 1e4 + rng.normal(size=5000).cumsum()
    w = 37
    s = np.zeros(roll_size(w))
    means, stds = [], []
    for value in x:
        roll_push_nb(s, 0, w, value)
        m, sd = roll_mean_std_nb(s, 0)
        means.append(m)
        stds.append(sd)
    ref = pd.Series(x).rolling(w)
    np.testing.assert_allclose(means[w - 1:], ref.mean()[w - 1:], rtol=1e-12)
    np.testing.assert_allclose(stds[w - 1:], ref.std(ddof=0)[w - 1:], rtol=1e-6)


def test_trend_ring_looks_back_exactly_across_wraparounds(btc_1h):
    """Trend keeps ``slow + 1`` log closes in a ring: its horizons' z must be the log return over
    exactly h bars in units of σ√h, bar after bar, long after the ring has wrapped around."""
    p = TrendParams(fast=3, mid=5, slow=8, vol_halflife=4.0)
    s = np.zeros(Trend().state_size(p))
    trend_init(s, p)
    lc = np.log(btc_1h["close"].to_numpy()[:300])
    alpha, var = s[2], 0.0
    for t, value in enumerate(lc):
        z = trend_scores_nb(s, p, value)
        if t:
            r = value - lc[t - 1]
            var = r * r if t == 1 else var + alpha * (r * r - var)
        if t < p.slow:
            assert z == (0.0, 0.0, 0.0)
            continue
        expected = [(value - lc[t - h]) / np.sqrt(var) / np.sqrt(h) for h in (p.fast, p.mid, p.slow)]
        np.testing.assert_allclose(z, expected, rtol=1e-12)
    assert s[6] == p.slow + 1  # the ring holds slow + 1 closes


def test_tstat_is_mean_over_standard_error():
    s = np.zeros(roll_size(4))
    for v in (1.0, 2.0, 3.0, 4.0):
        roll_push_nb(s, 0, 4, v)
    sd = np.std([1, 2, 3, 4])
    assert roll_tstat_nb(s, 0) == pytest.approx(2.5 / (sd / 2.0))


def test_pair_regression_matches_polyfit():
    rng = np.random.default_rng(2)
    x = rng.normal(size=400).cumsum()
    y = 0.7 * x + 3.0 + rng.normal(scale=0.1, size=400)
    w = 150
    s = np.zeros(pair_size(w))
    for a, b in zip(x, y, strict=True):
        pair_push_nb(s, 0, w, a, b)
    alpha, beta, sd = pair_regression_nb(s, 0)
    slope, intercept = np.polyfit(x[-w:], y[-w:], 1)
    resid = y[-w:] - (intercept + slope * x[-w:])
    assert beta == pytest.approx(slope, rel=1e-9)
    assert alpha == pytest.approx(intercept, rel=1e-9)
    assert sd == pytest.approx(resid.std(), rel=1e-6)


@pytest.mark.parametrize("p", [0.1, 0.33, 0.5, 0.67, 0.9])
def test_p2_quantile_tracks_the_exact_quantile(p):
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=20_000)
    s = np.zeros(P2_SIZE)
    for v in x:
        p2_push_nb(s, 0, p, v)
    exact = np.quantile(x, p)
    assert p2_value_nb(s, 0) == pytest.approx(exact, rel=0.03)


def _place_by_search(s, o, x):
    """P²'s placement as Jain & Chlamtac state it: find ``x``'s cell, widen the outer markers
    if it falls outside them, add 1 to every marker position above the cell."""
    if x < s[o]:
        s[o], cell = x, 0
    elif x >= s[o + 4]:
        s[o + 4], cell = x, 3
    else:
        cell = 0
        while cell < 3 and x >= s[o + cell + 1]:
            cell += 1
    s[o + 5 + cell + 1:o + 10] += 1.0


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "numba"])
def test_p2_placement_without_a_branch_equals_the_cell_search(compiled):
    """Sorted markers (ties included) take the comparison path, NaN or unsorted ones the
    search: every case must place like the search."""
    place = _p2_place_nb if compiled else _p2_place_py
    rng = np.random.default_rng(11)
    values = np.array([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, np.inf, np.nan])
    for _ in range(3000):
        markers = rng.choice(values[1:7], 5)
        if rng.random() < 0.8:
            markers.sort()
        if rng.random() < 0.05:
            markers[rng.integers(5)] = np.nan
        s = np.concatenate([markers, np.arange(5.0), rng.random(6)])
        expected = s.copy()
        x = rng.choice(values)
        place(s, 0, x)
        _place_by_search(expected, 0, x)
        assert np.array_equal(s, expected, equal_nan=True), (markers, x)


def test_p2_is_nan_until_five_observations():
    s = np.zeros(P2_SIZE)
    for v in (3.0, 1.0, 2.0, 5.0):
        p2_push_nb(s, 0, 0.5, v)
        assert math.isnan(p2_value_nb(s, 0))
    p2_push_nb(s, 0, 0.5, 4.0)
    assert p2_value_nb(s, 0) == 3.0


def test_hysteresis_needs_confirmation():
    label, candidate, streak, seen = 1.0, 1.0, 0.0, []
    for raw in (2, 2, 1, 2, 2, 2, 2):
        label, candidate, streak = hyst_step_py(label, candidate, streak, raw, 3)
        seen.append(label)
    assert seen == [1, 1, 1, 1, 1, 2, 2]


def _corwin_schultz(h1, l1, h2, l2):
    return corwin_schultz_log_py(math.log(h1), math.log(l1), math.log(h2), math.log(l2))


def test_corwin_schultz_is_zero_for_flat_bars_and_grows_with_range():
    assert _corwin_schultz(100.0, 100.0, 100.0, 100.0) == 0.0
    narrow = _corwin_schultz(100.2, 99.8, 100.2, 99.8)
    wide = _corwin_schultz(101.0, 99.0, 101.0, 99.0)
    assert 0.0 < narrow < wide < 0.05


def test_inline_exp_is_within_one_ulp_of_libm_and_defers_beyond_its_range():
    rng = np.random.default_rng(3)
    ys = np.concatenate([rng.uniform(-EXP_FAST_LIMIT, EXP_FAST_LIMIT, 20_000), rng.uniform(-1e-3, 1e-3, 2_000),
                         [0.0, -0.0, EXP_FAST_LIMIT, -EXP_FAST_LIMIT, 1e-300, -1e-300]])
    for y in ys:
        got, ref = exp_nb(float(y)), math.exp(y)
        assert abs(got - ref) <= np.spacing(ref), (y, got, ref)
        assert exp_py(float(y)) == got  # the Python twin is bit-identical
    assert exp_nb(-700.0) == math.exp(-700.0) and exp_nb(300.0) == math.exp(300.0)
    assert math.isnan(exp_nb(float("nan")))


def test_tanh_matches_libm_and_is_exactly_one_in_the_tails():
    xs = np.random.default_rng(4).normal(0.0, 4.0, 20_000)
    assert max(abs(tanh_nb(float(x)) - math.tanh(x)) for x in xs) <= 4e-16
    assert tanh_nb(25.0) == 1.0 and tanh_nb(-25.0) == -1.0 and tanh_nb(0.0) == 0.0


@pytest.mark.skipif(NUMBA_DISABLED, reason="tests the compiled kernel (the Python twin refuses NaN)")
def test_compiled_tanh_of_nan_is_nan_not_a_crash():
    """A NaN reaching the branch-free exp (whose table index is then undefined) must give NaN;
    it read outside the table and crashed the process before."""
    import numba

    @numba.njit
    def tanh_all(xs):
        out = np.empty_like(xs)
        for i in range(xs.shape[0]):
            out[i] = tanh_nb(xs[i])
        return out

    out = tanh_all(np.array([np.nan, -np.nan, 0.5]))
    assert np.isnan(out[:2]).all() and out[2] == tanh_nb(0.5)
