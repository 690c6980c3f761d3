"""Agents as strategies: parameters, registry, engine limits, input errors."""

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.agents.execution import orders_only
from coinswarm.strategies.base import engine_limits


@pytest.mark.parametrize("name", ["trend", "mean_reversion", "risk", "execution", "arbitrage", "carry", "committee"])
def test_every_agent_is_a_registered_strategy_with_a_valid_default_grid(name):
    strategy = cs.get_strategy(name)
    assert strategy.is_valid(strategy.Params())
    combos = cs.strategies.expand_grid(strategy, strategy.default_grid)
    assert len(combos) >= 2


def test_params_from_a_dict_are_coerced_and_checked(btc_1h):
    trend = cs.Trend()
    state = trend.init({"fast": "12"})
    assert state.params.fast == 12
    with pytest.raises(cs.ConfigError, match="invalid parameters"):
        trend.init({"fast": 500})
    with pytest.raises(cs.ConfigError, match="takes TrendParams"):
        trend.run(btc_1h.iloc[:10], cs.RiskParams())


def test_two_leg_agents_declare_shorts_and_need_two_frames(btc_1h):
    assert engine_limits(cs.get_strategy("arbitrage")) == (1.0, True)
    assert engine_limits(cs.get_strategy("trend")) == (1.0, False)
    with pytest.raises(cs.ConfigError, match="two legs"):
        cs.PairsArbitrage().run(btc_1h)
    with pytest.raises(cs.ConfigError, match="funding"):
        cs.FundingCarry().run({"a": btc_1h.iloc[:50], "b": btc_1h.iloc[:50]})


def test_carry_collects_funding_in_the_engine(btc_1h):
    spot = btc_1h.loc["2021"]
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2021", end="2021-12-31")
    prices = {"BTC/USDT": spot, "BTC/USDT:USDT": perp}
    carry = cs.FundingCarry()
    targets = carry.targets(prices)
    funding = cs.load_funding("binance-perp:BTC/USDT:funding")
    with_funding = cs.simulate(prices, targets, allow_short=True,
                               costs=cs.Costs(funding={"BTC/USDT:USDT": funding}))
    without = cs.simulate(prices, targets, allow_short=True)
    assert with_funding.metrics["funding_paid"] < 0, "the short perp leg must receive funding in 2021"
    assert with_funding.equity.iloc[-1] > without.equity.iloc[-1]


def test_agents_walk_forward_through_the_engine(btc_1h):
    prices = btc_1h.loc["2022":"2023"]
    for name in ("trend", "mean_reversion", "risk", "execution"):
        report = cs.walk_forward(name, prices, None, train="180D", test="90D")
        assert np.isfinite(report.oos_sharpe), name


def test_pairs_walk_forward_allows_the_short_leg(btc_1h):
    eth = cs.load_ohlcv("binance:ETH/USDT:1h", start="2022", end="2023")
    prices = {"ETH/USDT": eth, "BTC/USDT": btc_1h.loc["2022":"2023"]}
    report = cs.walk_forward("arbitrage", prices, {"entry": [2.0, 2.5]}, train="180D", test="90D")
    assert (report.oos.positions < 0).any().any(), "the hedge leg was never shorted"


def test_orders_only_sends_an_order_only_when_the_target_changes():
    """Hand-made targets: an unchanged target is NaN (no order), per column, and a NaN target
    stays NaN (it never equals the previous one)."""
    executed = np.array([[0.0, 1.0], [0.0, 0.5], [0.5, 0.5], [0.5, np.nan], [np.nan, np.nan], [0.0, 0.5]])
    nan = np.nan
    expected = np.array([[0.0, 1.0], [nan, 0.5], [0.5, nan], [nan, nan], [nan, nan], [0.0, 0.5]])
    assert np.array_equal(orders_only(executed), expected, equal_nan=True)
    assert np.array_equal(orders_only(executed[:, 0]), expected[:, 0], equal_nan=True)
    assert np.array_equal(orders_only(executed[:, ::-1]), expected[:, ::-1], equal_nan=True)  # a strided view
    assert orders_only(np.empty(0)).shape == (0,) and orders_only(np.empty((0, 2))).shape == (0, 2)
