"""The live Stepper driving the committee on real candles: it decides only on bars every symbol
has, reports the committee's regimes and weights, restores its state exactly from a record,
refuses a record of another run, and gives the backtester's targets for the voting agents."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coinswarm.agents.base import iter_bars
from coinswarm.errors import StateError
from coinswarm.live.stepper import Stepper
from coinswarm.regime.detector import TREND_LABELS, VOLATILITY_LABELS

SYMBOLS = ("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def frames(majors_1h):
    return {s: majors_1h[s].loc["2023-01-01":"2023-02-15"] for s in SYMBOLS}


def _rows(frames):
    return list(zip(*(iter_bars(frames[s]) for s in SYMBOLS), strict=True))


def test_the_committee_steps_on_common_bars_and_reports_regimes_and_weights(frames):
    stepper = Stepper("committee", SYMBOLS)
    assert stepper.regimes() == {} and stepper.weights() == {}, "nothing before the first step"
    rows = _rows(frames)
    skipped = stepper.decide([rows[0][0], None])
    assert np.isnan(skipped).all() and stepper.weights() == {}, "a bar missing for one symbol: no decision"
    decided = [stepper.decide(list(row)).copy() for row in rows]
    assert any(np.isfinite(t).any() for t in decided), "six weeks of hourly bars: the committee traded"
    regimes = stepper.regimes()
    assert set(regimes) == set(SYMBOLS)
    for label in regimes.values():
        vol, trend = label.split("/")
        assert vol in VOLATILITY_LABELS and trend in TREND_LABELS, label
    weights = stepper.weights()
    assert set(weights) == set(SYMBOLS)
    for row in weights.values():
        assert set(row) == set(stepper.strategy.agent_names)
        assert all(math.isfinite(w) for w in row.values())
    assert stepper.targets_for_backtest(frames) is None, "the committee's reference is its own backtest"


def test_a_record_restores_the_run_bit_for_bit_and_refuses_another_run(frames):
    rows = _rows(frames)
    cut = len(rows) // 2
    whole = Stepper("committee", SYMBOLS)
    expected = [whole.decide(list(r)).copy() for r in rows]
    first = Stepper("committee", SYMBOLS)
    for r in rows[:cut]:
        first.decide(list(r))
    record = first.to_record()
    resumed = Stepper("committee", SYMBOLS)
    resumed.load_record(record)
    got = [resumed.decide(list(r)).copy() for r in rows[cut:]]
    np.testing.assert_array_equal(np.array(got), np.array(expected[cut:]))
    with pytest.raises(StateError, match=r"stored strategy state is 'committee' on \['BTC/USDT', 'ETH/USDT'\]; "
                                         r"this run is 'trend'"):
        Stepper("trend", SYMBOLS).load_record(record)
    short = dict(record, states=record["states"][:1])
    trend = Stepper("trend", SYMBOLS)
    with pytest.raises(StateError, match="holds 1 states, expected 2"):
        trend.load_record(dict(short, name="trend"))


def test_a_voting_agent_decides_per_symbol_and_matches_its_backtest_targets(frames):
    stepper = Stepper("trend", SYMBOLS)
    rows = _rows(frames)
    votes = np.array([stepper.decide(list(r)).copy() for r in rows])
    reference = stepper.targets_for_backtest(frames)
    assert isinstance(reference, pd.DataFrame) and list(reference.columns) == list(SYMBOLS)
    np.testing.assert_array_equal(votes, reference.to_numpy())
    one = Stepper("trend", SYMBOLS[:1])
    assert isinstance(one.targets_for_backtest(frames), pd.Series)
    assert stepper.regimes() == {} and stepper.weights() == {}
