"""The statistics' degenerate inputs: too few or constant returns give NaN (or the documented
neutral value), never a crash or a misleading number; bad arguments are ConfigErrors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinswarm.errors import ConfigError
from coinswarm.stats import (
    annualized_sharpe,
    autocorrelations,
    expected_max_sharpe,
    lo_adjusted_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_moments,
)


def test_moments_of_too_few_or_constant_returns():
    sharpe, skew, kurt, n = sample_moments(np.array([0.01, np.nan, 0.02]))
    assert math.isnan(sharpe) and math.isnan(skew) and math.isnan(kurt) and n == 2, "NaN rows dropped, then < 3"
    sharpe, skew, kurt, n = sample_moments(np.full(10, 0.5))  # exactly constant: std is exactly 0
    assert math.isnan(sharpe) and (skew, kurt, n) == (0.0, 3.0, 10)


def test_a_constant_series_has_no_sharpe_even_with_round_off():
    assert math.isnan(sample_moments(np.full(10, 0.001))[0])
    assert math.isnan(lo_adjusted_sharpe(np.full(30, 0.01)))
    assert math.isnan(annualized_sharpe(np.full(30, -0.04 / 365)))  # a book that never trades, in excess of cash
    small = np.full(30, 0.001) + np.arange(30) * 1e-9  # tiny but real variation keeps its Sharpe
    assert math.isfinite(sample_moments(small)[0]) and math.isfinite(annualized_sharpe(small))


def test_psr_is_nan_without_an_estimate_or_with_a_negative_variance():
    assert math.isnan(probabilistic_sharpe_ratio(math.nan, 100))
    assert math.isnan(probabilistic_sharpe_ratio(0.1, 1))
    assert math.isnan(probabilistic_sharpe_ratio(1.0, 100, skew=5.0, kurtosis=3.0)), "1 − 5·1 + 0.5 < 0"
    assert probabilistic_sharpe_ratio(0.0, 100) == pytest.approx(0.5)


def test_expected_max_sharpe_needs_a_trial():
    with pytest.raises(ConfigError, match="n_trials must be ≥ 1"):
        expected_max_sharpe(0, 0.1)
    assert expected_max_sharpe(1, 0.5) == 0.0 and expected_max_sharpe(50, 0.0) == 0.0
    assert expected_max_sharpe(100, 0.01) > expected_max_sharpe(10, 0.01) > 0.0


def test_pbo_refuses_odd_splits_and_too_few_periods():
    rng = np.random.default_rng(1)
    m = rng.normal(0, 0.01, (40, 5))
    assert math.isnan(probability_of_backtest_overfitting(m[:, :1])), "one trial: nothing to choose from"
    assert math.isnan(probability_of_backtest_overfitting(m[:, 0]))
    for bad in (3, 0):
        with pytest.raises(ConfigError, match="n_splits must be an even number ≥ 2"):
            probability_of_backtest_overfitting(m, n_splits=bad)
    with pytest.raises(ConfigError, match="10 periods are too few for 8 splits"):
        probability_of_backtest_overfitting(m[:10], n_splits=8)
    sampled = probability_of_backtest_overfitting(m, n_splits=8, max_combinations=10, seed=3)
    assert 0.0 <= sampled <= 1.0
    assert sampled == probability_of_backtest_overfitting(m, n_splits=8, max_combinations=10, seed=3)


def test_autocorrelations_of_short_or_constant_series_are_zero():
    assert autocorrelations(np.array([0.1, 0.2, 0.3]), 5).tolist() == [0.0] * 5
    assert autocorrelations(np.full(50, 0.01), 3).tolist() == [0.0] * 3
    assert autocorrelations(np.array([np.nan] * 5), 2).tolist() == [0.0] * 2
    alternating = np.tile([0.01, -0.01], 50)
    assert autocorrelations(alternating, 2)[0] == pytest.approx(-0.99, abs=0.01)


def test_lo_sharpe_is_nan_without_a_sharpe_or_with_a_non_positive_denominator():
    assert math.isnan(lo_adjusted_sharpe(np.full(30, 0.5)))
    assert math.isnan(lo_adjusted_sharpe(np.array([0.01, 0.02])))
    anti = np.tile([0.03, -0.01], 100)
    assert lo_adjusted_sharpe(anti, periods=365) > lo_adjusted_sharpe(np.sort(anti), periods=365)
