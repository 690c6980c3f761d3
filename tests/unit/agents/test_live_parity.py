"""The live path (``update`` once per closed bar, from Python) gives exactly what the
compiled history loop (``run``) gives — for every agent, the regime detector and the
committee, on real data."""

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.agents import iter_bars
from coinswarm.agents.arbitrage import known_funding
from coinswarm.regime import RegimeDetector, regimes


@pytest.fixture(scope="module")
def btc(btc_1h):
    return btc_1h.loc["2023-01-01":"2023-06-30"]


@pytest.fixture(scope="module")
def eth_btc(btc):
    eth = cs.load_ohlcv("binance:ETH/USDT:1h", start="2023-01-01", end="2023-06-30")
    return cs.align({"ETH/USDT": eth, "BTC/USDT": btc}, how="inner")


@pytest.mark.parametrize("name", ["trend", "mean_reversion", "risk", "execution"])
def test_agent_update_matches_run(name, btc):
    agent = cs.get_strategy(name)
    expected = agent.run(btc, gaps="ignore").to_numpy()
    state = agent.init()
    live = np.array([tuple(agent.update(state, bar)) for bar in iter_bars(btc)])
    assert np.array_equal(live, expected)


def test_regime_update_matches_regimes(btc):
    frame = regimes(btc, gaps="ignore")
    detector = RegimeDetector()
    state = detector.init()
    labels = [detector.update(state, bar) for bar in iter_bars(btc)]
    assert [lab.regime for lab in labels] == frame["regime"].tolist()
    assert np.array_equal([lab.spread for lab in labels], frame["spread"].to_numpy())
    assert [lab.session for lab in labels] == frame["session"].cat.codes.tolist()


def test_pairs_update_matches_run(eth_btc):
    agent = cs.PairsArbitrage()
    expected = agent.run(eth_btc).to_numpy()
    state = agent.init()
    closes = zip(eth_btc["ETH/USDT"]["close"], eth_btc["BTC/USDT"]["close"], strict=True)
    live = np.array([agent.update(state, c) for c in closes])
    assert np.array_equal(live[:, [0, 1, 2, 2]], expected)


def test_carry_update_matches_run(btc):
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2023-01-01", end="2023-06-30")
    prices = cs.align({"BTC/USDT": btc, "BTC/USDT:USDT": perp}, how="inner")
    agent = cs.FundingCarry()
    expected = agent.run(prices).to_numpy()
    rates = known_funding(prices["BTC/USDT"].index, agent.rates(perp))
    state = agent.init()
    live = np.array([agent.update(state, r) for r in rates])
    assert np.array_equal(live[:, [0, 1, 2, 2]], expected)
    assert (live[:, 0] > 0).any(), "carry never traded in H1 2023"


@pytest.mark.parametrize("pair", [False, True])
def test_committee_update_matches_run(pair, btc, eth_btc):
    committee = cs.Committee.default(pair=("ETH/USDT", "BTC/USDT") if pair else None)
    prices = eth_btc if pair else {"BTC/USDT": btc}
    table = committee.run(prices, gaps="ignore")
    state = committee.init(list(prices))
    feeds = [iter_bars(prices[s]) for s in prices]
    targets, weights = [], []
    for bars in zip(*feeds, strict=True):
        out = committee.update(state, list(bars))
        targets.append(out.target.copy())
        weights.append(out.weights.copy())
    targets, weights = np.array(targets), np.array(weights)
    for j, symbol in enumerate(prices):
        part = table[symbol]
        assert np.array_equal(targets[:, j], part["target"].to_numpy())
        for a, agent in enumerate(committee.agent_names):
            assert np.array_equal(weights[:, j, a], part[f"w_{agent}"].to_numpy())
