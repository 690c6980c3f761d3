"""Learned sleeve weights of the portfolio committee: causal, scored net of costs, typed parameters;
each sleeve's net contribution adds up to the committee's PnL (real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.contribution import sleeve_contributions
from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams
from coinswarm.committee.sleeves import SLEEVES, funding_income, rebalance_shadow, score_day
from coinswarm.params import make_params
from tests.helpers.committee import step_orders

LEARN = PortfolioParams(learn=True, learn_halflife=30.0)  # a short memory: the gates move inside a year


@pytest.fixture(scope="module")
def market(pairs_2021_22):
    """BTC, ETH spot + the BTC perpetual, 2021-06 → 2022-12 (real: a bull top and a bear), aligned, and its funding."""
    prices, funding = pairs_2021_22
    return cs.align(prices), funding


@pytest.fixture(scope="module")
def learned(market):
    prices, funding = market
    committee = PortfolioCommittee(funding, params=LEARN)
    return committee, committee.targets(prices), committee.sleeve_weights(prices)


def test_the_gates_move_on_real_data(learned):
    _, targets, weights = learned
    gates = weights["gate"].dropna()
    assert set(np.unique(gates.to_numpy())) <= {0.0, 1.0}
    assert (gates["trend"] == 0).any() and (gates["trend"] == 1).any()  # trend is switched off and on again
    off = weights.index[(weights[("gate", "trend")] == 0).to_numpy()]
    # an asset only the trend sleeve trades is sold when the sleeve is off (a carry leg may keep a trend
    # remainder inside its no-trade band)
    assert len(off) and (weights.loc[off, ("trend", "ETH/USDT")].to_numpy() == 0).all()
    assert np.isfinite(targets.to_numpy()).any()


def test_a_decision_does_not_depend_on_later_data(market, learned):
    prices, funding = market
    committee, targets, weights = learned
    cut = pd.Timestamp("2022-06-15", tz="UTC")
    rng = np.random.default_rng(7)
    changed = {}
    for symbol, frame in prices.items():
        frame = frame.copy()
        later = frame.index >= cut
        shock = np.exp(np.cumsum(rng.normal(0, 0.03, later.sum())))
        frame.loc[later, ["open", "high", "low", "close"]] = frame.loc[later, ["open", "high", "low", "close"]].mul(
            shock, axis=0)
        changed[symbol] = frame
    fund = {k: v.where(v.index < cut, -v.abs() * 5) for k, v in funding.items()}  # later funding changes too
    other = PortfolioCommittee(fund, params=LEARN)
    before = targets.index < cut
    np.testing.assert_array_equal(other.targets(changed).to_numpy()[before], targets.to_numpy()[before])
    np.testing.assert_array_equal(other.sleeve_weights(changed).to_numpy()[before], weights.to_numpy()[before])
    assert not np.array_equal(other.targets(changed).to_numpy(), targets.to_numpy(), equal_nan=True)


def test_live_steps_equal_history_with_learning(market, learned):
    prices, _ = market
    committee, targets, _ = learned
    np.testing.assert_array_equal(step_orders(committee, prices), targets.to_numpy())


def test_without_learning_the_gates_do_nothing(market):
    prices, funding = market
    plain = PortfolioCommittee(funding).targets(prices)
    never = PortfolioCommittee(funding, params=PortfolioParams(learn=True, learn_halflife=3650.0)).targets(prices)
    np.testing.assert_array_equal(plain.to_numpy(), never.to_numpy())  # never scored long enough to gate
    gates = PortfolioCommittee(funding).sleeve_weights(prices)["gate"].dropna()
    assert (gates.to_numpy() == 1).all()


def _state(m=2, perp=False):
    symbols = ("BTC/USDT", "BTC/USDT:USDT") if perp else tuple(f"X{i}/USDT" for i in range(m))
    committee = PortfolioCommittee({"BTC/USDT:USDT": pd.Series(
        [0.001] * 6, index=pd.date_range("2024-01-01", periods=6, freq="8h", tz="UTC"))} if perp else None)
    return committee.init(symbols, PortfolioParams(learn=True, learn_halflife=5.0))


def test_a_sleeve_that_loses_net_of_costs_gets_no_weight_and_comes_back():
    state, p = _state(), PortfolioParams(learn=True, learn_halflife=5.0)
    rebalance_shadow(state, 0, np.array([0.5, 0.0]), np.array([True, False]), p)
    assert state.pending_cost[0] == pytest.approx(0.5 * 10e-4)
    day = 86_400_000
    for k in range(5):
        score_day(state, np.array([-0.01, 0.0]), (k + 1) * day, p)
    assert state.gate[0] == 0.0 and state.score[0] < 0 and state.gate[1] == 1.0  # carry (flat) keeps its weight
    for k in range(5, 40):
        score_day(state, np.array([0.01, 0.0]), (k + 1) * day, p)
    assert state.gate[0] == 1.0 and state.score[0] > 0


def test_costs_alone_can_switch_a_sleeve_off():
    state, p = _state(), PortfolioParams(learn=True, learn_halflife=5.0, cost_bps=100.0)
    for k in range(10):  # flips 0.5 ↔ 0.4 every day on a flat market: it only pays costs
        rebalance_shadow(state, 0, np.array([0.5 if k % 2 else 0.4, 0.0]), np.array([True, True]), p)
        score_day(state, np.zeros(2), (k + 1) * 86_400_000, p)
    assert state.gate[0] == 0.0


def test_a_short_perp_earns_positive_funding():
    state = _state(perp=True)
    start = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
    income = funding_income(state, np.array([0.4, -0.4]), start - 1, start + 86_400_000)
    assert income == pytest.approx(0.4 * 0.001 * 3)  # three settlements in the day
    assert funding_income(state, np.array([0.4, 0.4]), start - 1, start + 86_400_000) < 0


@pytest.mark.parametrize("values", [{"learn_halflife": 0}, {"learn_halflife": 1e5}, {"cost_bps": -1},
                                    {"cost_bps": float("nan")}, {"learn": "often"}, {"learn_halflife": "long"}])
def test_bad_learning_parameters_are_typed(values):
    with pytest.raises(cs.ConfigError):
        make_params(PortfolioCommittee(), values)


def test_bad_learning_parameters_in_the_constructor_and_dicts():
    with pytest.raises(cs.ConfigError, match="learn_halflife"):
        PortfolioCommittee(params=PortfolioParams(learn=True, learn_halflife=0.5))
    with pytest.raises(cs.ConfigError, match="cost_bps"):
        PortfolioCommittee(params=PortfolioParams(cost_bps=2000.0))
    with pytest.raises(cs.ConfigError, match="no parameter"):
        PortfolioCommittee()._params({"lern": True})
    assert PortfolioCommittee()._params({"learn": True}).learn is True
    assert make_params(PortfolioCommittee(), {"learn": "true", "learn_halflife": "90"}).learn_halflife == 90.0


@pytest.mark.timeout(300)
def test_net_contributions_add_up_to_the_committee_pnl(market):
    prices, funding = market
    costs = cs.Costs(fee_bps=10, funding=funding)
    committee = PortfolioCommittee(funding, params=LEARN)
    targets = committee.targets(prices)
    result = cs.simulate(prices, targets, costs=costs, max_leverage=2.0, allow_short=True)
    out = sleeve_contributions(result, committee.sleeve_weights(prices), costs, SLEEVES)
    total = float(result.equity.iloc[-1] - 10_000.0)
    assert abs(out["unattributed"]) < 1e-6 * 10_000
    assert out["trend"]["net_pnl"] + out["carry"]["net_pnl"] == pytest.approx(total, abs=1e-6)
    assert out["carry"]["funding"] > 0 and out["trend"]["funding"] == 0  # only the carry holds perps
    fees = float(result.fills["fee"].sum())
    assert out["trend"]["fees"] + out["carry"]["fees"] == pytest.approx(fees, rel=1e-9)
    assert 0 < out["trend"]["days_on"] < 1
