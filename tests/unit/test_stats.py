import math

import numpy as np
import pytest
from scipy import stats as sps

from coinswarm.stats import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_moments,
)


def test_dsr_reproduces_bailey_lopez_de_prado_2014_example():
    # Paper's numerical example: N=100 trials, V[SR]=1/2 (annualised), SR=2.5 annualised,
    # T=1250 daily observations, skew -3, kurtosis 10 -> SR0 = 0.1132 (daily), DSR = 0.9004.
    sr, variance = 2.5 / math.sqrt(250), 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=1e-4)
    assert deflated_sharpe_ratio(sr, 1250, 100, variance, -3, 10) == pytest.approx(0.9004, abs=1e-4)


def test_psr_matches_independent_formula_and_limits():
    sr, n, skew, kurt = 0.08, 500, -0.5, 6.0
    z = sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
    assert probabilistic_sharpe_ratio(sr, n, skew, kurt) == pytest.approx(sps.norm.cdf(z))
    assert probabilistic_sharpe_ratio(0.0, 1000) == pytest.approx(0.5)
    assert probabilistic_sharpe_ratio(0.2, 1000) > 0.99


def test_one_trial_has_no_deflation():
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert deflated_sharpe_ratio(0.1, 400, 1, 0.01) == probabilistic_sharpe_ratio(0.1, 400)


def test_sample_moments_gaussian():
    # synthetic: a known-shape Gaussian sample to check the moment estimators
    r = np.random.default_rng(3).normal(0.001, 0.01, 200_000)
    sharpe, skew, kurt, n = sample_moments(r)
    assert n == 200_000 and sharpe == pytest.approx(0.1, abs=0.01)
    assert abs(skew) < 0.05 and kurt == pytest.approx(3.0, abs=0.1)


def test_pbo_noise_is_about_half_and_skill_is_zero():
    # synthetic: pure-noise trials vs one trial with a real edge
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 0.01, (2000, 50))
    assert 0.3 < probability_of_backtest_overfitting(noise) < 0.7
    noise[:, 11] += 0.004
    assert probability_of_backtest_overfitting(noise) == 0.0
