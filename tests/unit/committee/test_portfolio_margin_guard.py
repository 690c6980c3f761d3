"""The carry sleeve's margin guard: a short perp that rose half its liquidation distance is rebalanced."""

from __future__ import annotations

import math

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.backtest.liquidation import liquidation_threshold
from coinswarm.committee.portfolio import (
    MAINTENANCE,
    PortfolioCommittee,
    PortfolioParams,
    _margin_guard,
    _reset_margin,
    _trade_mask,
    guard_threshold,
)
from coinswarm.errors import ConfigError

PAIRS = [(0, 1)]  # spot 0, perp 1


def test_default_threshold_is_half_the_liquidation_distance():
    p = PortfolioParams()
    assert guard_threshold(p) == pytest.approx(0.5 * liquidation_threshold(p.margin, MAINTENANCE))
    assert guard_threshold(p) == pytest.approx(0.2463, abs=1e-4)
    assert guard_threshold(p._replace(carry_guard=0.0)) == math.inf


@pytest.mark.parametrize("bad", [{"carry_guard": 1.0}, {"carry_guard": -0.1}, {"carry_guard": float("nan")},
                                 {"carry_guard": 0.5, "margin": 0.0}, {"carry_guard": 0.5, "margin": MAINTENANCE}])
def test_bad_guard_is_refused(bad):
    with pytest.raises(ConfigError, match="carry_guard|finite"):
        PortfolioCommittee(params=PortfolioParams(**bad))


def test_zero_margin_is_valid_with_the_guard_off():
    assert PortfolioCommittee().is_valid(PortfolioParams(margin=0.0, carry_guard=0.0))


def test_guard_forces_both_legs_inside_the_band():
    p = PortfolioParams()
    held, target = np.array([0.40, -0.40]), np.array([0.36, -0.36])  # 10 % apart: inside the 25 % band
    sets = np.array([100.0])
    assert not _trade_mask(held, target, p, PAIRS).any()
    calm = _margin_guard(sets, held, np.array([120.0, 120.0]), PAIRS, p)  # +20 % < 24.6 %
    assert not calm.any()
    force = _margin_guard(sets, held, np.array([130.0, 130.0]), PAIRS, p)  # +30 %: both legs
    assert force.tolist() == [True, True]
    assert _trade_mask(held, target, p, PAIRS, force).all()
    assert not _margin_guard(sets, held, np.array([130.0, 130.0]), PAIRS, p._replace(carry_guard=0.0)).any()
    assert not _margin_guard(sets, np.array([0.4, 0.0]), np.array([130.0, 130.0]), PAIRS, p).any()  # no short


def test_margin_is_reset_at_a_trade_and_cleared_on_exit():
    sets = np.array([100.0])
    _reset_margin(sets, np.array([True, True]), np.array([0.3, -0.3]), np.array([131.0, 130.0]), PAIRS)
    assert sets[0] == 130.0  # the perp's close at the decision
    _reset_margin(sets, np.array([False, False]), np.array([0.3, -0.3]), np.array([150.0, 150.0]), PAIRS)
    assert sets[0] == 130.0  # no trade: the margin stays where it was set
    _reset_margin(sets, np.array([True, True]), np.zeros(2), np.array([140.0, 140.0]), PAIRS)
    assert np.isnan(sets[0])


@pytest.fixture(scope="module")
def btc_2021(pairs_2021):
    """BTC spot + perpetual over 2021 (real; BTC rose from 29k to 64k by April) and the perp's funding."""
    prices, funding = pairs_2021
    return cs.align({s: prices[s] for s in ("BTC/USDT", "BTC/USDT:USDT")}), funding


def _worst_rise(prices, funding, params) -> tuple[float, int]:
    """The largest perp rise since the margin was set seen at any decision (after its orders), and the trades."""
    committee = PortfolioCommittee(funding, params=params)
    state = committee.init(tuple(prices))
    closes = np.column_stack([f["close"].to_numpy() for f in prices.values()])
    stamps = next(iter(prices.values())).index.as_unit("ms").asi8
    worst, trades = 0.0, 0
    for t in range(len(stamps)):
        _, orders = committee.step(state, int(stamps[t]), closes[t])
        if orders is None:
            continue
        trades += int(np.isfinite(orders[1]))
        if state.held[1] < 0 and np.isfinite(state.margin_set[0, 0]):
            worst = max(worst, state.history[1, -1] / state.margin_set[0, 0] - 1.0)
    return worst, trades


def test_guard_keeps_every_decision_inside_its_threshold(btc_2021):
    prices, funding = btc_2021
    p = PortfolioParams(trend=False)
    worst, trades = _worst_rise(prices, funding, p)
    worst_off, trades_off = _worst_rise(prices, funding, p._replace(carry_guard=0.0))
    assert worst <= guard_threshold(p) + 1e-12
    assert worst_off > guard_threshold(p)  # without it the band let the short run (the audit's finding)
    assert trades > trades_off
