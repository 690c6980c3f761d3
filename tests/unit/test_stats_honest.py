"""Excess returns, Lo's autocorrelation-adjusted Sharpe, the effective trial count and the DSR's Sharpe
variance over cluster representatives."""

from __future__ import annotations

import math

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.stats import (
    annualized_sharpe,
    cluster_returns,
    deflated_sharpe_ratio,
    effective_trials,
    excess_returns,
    lo_adjusted_sharpe,
    sharpe_variance,
    trial_clusters,
)


def _returns(n=1500, seed=0):
    """A deterministic return-shaped series (statistics need only a shape, not a market)."""
    return np.random.default_rng(seed).normal(0.001, 0.02, n)


def test_excess_returns_subtract_the_daily_cash_rate():
    r = np.full(10, 0.001)
    out = excess_returns(r, 0.0365 * 0 + ((1.001 ** 365) - 1))
    np.testing.assert_allclose(out, 0.0, atol=1e-15)
    np.testing.assert_array_equal(excess_returns(r, 0.0), r)


@pytest.mark.parametrize("bad", [float("nan"), 2.0, -0.9, True, "4%"])
def test_bad_cash_rate_is_refused(bad):
    with pytest.raises(cs.ConfigError, match="cash_rate"):
        excess_returns(np.zeros(3), bad)


def test_lo_matches_naive_without_autocorrelation_and_shrinks_with_it():
    r = _returns()
    assert math.isclose(lo_adjusted_sharpe(r), annualized_sharpe(r), rel_tol=0.1)
    smooth = np.convolve(r, np.ones(5) / 5, mode="valid")  # positively autocorrelated
    assert lo_adjusted_sharpe(smooth) < 0.7 * annualized_sharpe(smooth)


def test_effective_trials_merges_near_copies():
    r = _returns()
    other = _returns(seed=1)
    noise = np.random.default_rng(2).normal(0, 0.002, r.size)
    matrix = np.column_stack([r, r + noise, r * 2, other])
    assert effective_trials(matrix) == 2
    assert effective_trials(matrix[:, :1]) == 1
    assert effective_trials(np.zeros((5, 0))) == 0


def _with_sharpe(sharpe, n=1000, seed=0, scale=0.01):
    """Synthetic daily returns whose per-day Sharpe is exactly ``sharpe`` (a property test of a
    statistic: only the shape matters, no market is implied)."""
    z = np.random.default_rng(seed).normal(0.0, 1.0, n)
    z = (z - z.mean()) / z.std(ddof=1)
    return scale * (z + sharpe)


def test_trial_clusters_label_every_trial_and_effective_trials_counts_them():
    r, other = _returns(), _returns(seed=1)
    noise = np.random.default_rng(2).normal(0, 0.002, r.size)
    labels = trial_clusters(np.column_stack([other, r, r + noise, r * 2]))
    assert labels.tolist() == [0, 1, 1, 1]  # numbered in order of first appearance
    assert trial_clusters(r[:, None]).tolist() == [0] and trial_clusters(np.zeros((5, 0))).size == 0
    with pytest.raises(cs.ConfigError, match="2-D"):
        trial_clusters(r)


def test_cluster_returns_average_members_by_inverse_variance_on_the_dates_each_has():
    a = np.array([0.01, -0.02, 0.03, np.nan, 0.00])
    b = np.array([0.02, -0.04, np.nan, 0.05, 0.01])
    c = np.array([0.01, 0.02, 0.03, 0.04, 0.06])
    rep = cluster_returns(np.column_stack([a, b, c]), np.array([0, 0, 1]))
    wa, wb = 1 / np.nanvar(a, ddof=1), 1 / np.nanvar(b, ddof=1)
    expected = [(wa * a[t] + wb * b[t]) / (wa + wb) for t in (0, 1, 4)]
    np.testing.assert_allclose(rep[[0, 1, 4], 0], expected)
    assert rep[2, 0] == pytest.approx(a[2]) and rep[3, 0] == pytest.approx(b[3])  # one member on the day
    np.testing.assert_allclose(rep[:, 1], c)
    flat = cluster_returns(np.column_stack([np.zeros(5), c]), np.array([0, 1]))
    assert np.isnan(flat[:, 0]).all()  # no spread, no weight: the cluster has no representative
    with pytest.raises(cs.ConfigError, match="one cluster per trial"):
        cluster_returns(np.column_stack([a, b]), np.array([0]))


def test_two_clusters_with_known_sharpes_give_their_variance():
    first, second = _with_sharpe(0.10, seed=3), _with_sharpe(0.02, seed=4)
    matrix = np.column_stack([first, 3.0 * first, second])  # a scaled copy: same Sharpe, one cluster
    labels = trial_clusters(matrix)
    assert labels.tolist() == [0, 0, 1]
    assert math.isclose(sharpe_variance(cluster_returns(matrix, labels)), (0.10 - 0.02) ** 2 / 2, rel_tol=1e-9)
    assert sharpe_variance(matrix) != pytest.approx((0.10 - 0.02) ** 2 / 2)  # every trial: another figure
    assert sharpe_variance(first[:, None]) == 0.0  # one Sharpe: no spread to estimate


def test_near_copies_leave_the_cluster_variance_and_the_dsr_where_the_trial_variance_would_raise_it():
    """The DSR flaw this guards against: k near-copies (ρ > 0.9) of a trial add no cluster, so they must
    leave V[SR] — hence every DSR — as it was; over every trial the variance shrinks and the DSR rises.
    Each copy is the trial plus zero-mean noise (its own Sharpe within noise of the trial's)."""
    trials = np.column_stack([_with_sharpe(s, seed=10 + i) for i, s in enumerate((0.12, 0.05, -0.02))])
    noise = np.random.default_rng(20).normal(0, 0.002, (len(trials), 6))
    grown = np.column_stack([trials, trials[:, [0]] + noise - noise.mean(axis=0)])
    assert np.corrcoef(grown.T)[0, 3:].min() > 0.9
    assert effective_trials(trials) == effective_trials(grown) == 3
    before, after = (sharpe_variance(cluster_returns(m, trial_clusters(m))) for m in (trials, grown))
    assert after == pytest.approx(before, rel=0.05)
    dsr = [deflated_sharpe_ratio(0.1, 1000, 3, v) for v in (before, after)]
    assert abs(dsr[1] - dsr[0]) < 0.01
    old = sharpe_variance(grown)  # the old V[SR], over every trial
    assert old < 0.75 * sharpe_variance(trials)
    assert deflated_sharpe_ratio(0.1, 1000, 3, old) > dsr[0] + 0.05
