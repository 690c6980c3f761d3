"""Excess returns, Lo's autocorrelation-adjusted Sharpe and the effective trial count."""

from __future__ import annotations

import math

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.stats import annualized_sharpe, effective_trials, excess_returns, lo_adjusted_sharpe


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
