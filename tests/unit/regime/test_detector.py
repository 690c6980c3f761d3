"""Regime detector: labels, hysteresis, sessions, versions (real BTC 1h unless noted)."""

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.regime import RegimeParams, regimes, version_id
from coinswarm.regime.detector import session_of_py


@pytest.fixture(scope="module")
def labels(btc_1h):
    return regimes(btc_1h, gaps="ignore")


def _run_lengths(series: pd.Series) -> np.ndarray:
    change = series.ne(series.shift()).cumsum()
    return series.groupby(change).size().to_numpy()


@pytest.mark.parametrize("column", ["volatility", "trend", "liquidity"])
def test_hysteresis_keeps_labels_from_flickering(labels, column):
    runs = _run_lengths(labels[column])
    confirm = RegimeParams().confirm
    # every label but the first and last lasts at least the confirmation span
    assert (runs[1:-1] >= confirm).all()
    raw_flips = len(runs)
    assert raw_flips < len(labels) / confirm


def test_every_label_occurs_on_real_data(labels):
    for column, values in (("volatility", {"low", "normal", "high"}), ("trend", {"down", "range", "up"}),
                           ("liquidity", {"liquid", "normal", "illiquid"}), ("session", {"asia", "europe", "us"})):
        assert set(labels[column].unique()) == values


def test_high_volatility_label_marks_higher_realised_vol(labels):
    by_label = labels.groupby("volatility", observed=True)["realized_vol"].median()
    assert by_label["low"] < by_label["normal"] < by_label["high"]


def test_trend_label_follows_the_t_statistic(labels):
    up = labels[labels["trend"] == "up"]["trend_t"]
    down = labels[labels["trend"] == "down"]["trend_t"]
    assert up.median() > RegimeParams().trend_t and down.median() < -RegimeParams().trend_t


@pytest.mark.parametrize("hour,session", [(0, 0), (6, 0), (7, 1), (12, 1), (13, 2), (21, 2), (22, 0), (23, 0)])
def test_sessions_by_utc_hour(hour, session):
    assert session_of_py(1_700_000_000_000 // 86_400_000 * 86_400_000 + hour * 3_600_000) == session


def test_version_changes_with_parameters():
    assert version_id(RegimeParams()) == version_id(RegimeParams())
    assert version_id(RegimeParams()) != version_id(RegimeParams(confirm=3))
    assert version_id(RegimeParams()).startswith("regime-v1-")


def test_bad_parameters_raise(btc_1h):
    with pytest.raises(cs.ConfigError, match="quantile"):
        regimes(btc_1h.iloc[:100], RegimeParams(low_quantile=0.8, high_quantile=0.2), gaps="ignore")
    with pytest.raises(cs.ConfigError, match="windows"):
        regimes(btc_1h.iloc[:100], RegimeParams(vol_window=1), gaps="ignore")
