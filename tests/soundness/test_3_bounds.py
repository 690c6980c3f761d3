"""3. Bounded outputs: votes in [-1, 1], confidence in [0, 1], weights sum to 1 and stay
above the floor, labels are valid codes, nothing is NaN after warm-up."""

import numpy as np
import pytest
from components import SINGLE_AGENTS, TWO_LEG

import coinswarm as cs
from coinswarm.regime import regimes


@pytest.mark.parametrize("name", SINGLE_AGENTS)
def test_single_agent_votes_and_confidence_are_bounded(name, inputs):
    out = cs.get_strategy(name).run(inputs["single"], gaps="ignore")
    assert not out.isna().any().any()
    assert out["vote"].between(-1, 1).all()
    assert out["confidence"].between(0, 1).all()
    warm = cs.get_strategy(name).warmup()
    assert (out["vote"].iloc[warm:] != 0).any(), f"{name} never votes after warm-up"


@pytest.mark.parametrize("name", TWO_LEG)
def test_two_leg_votes_are_bounded(name, inputs):
    kind = "pair" if name == "arbitrage" else "carry"
    out = cs.get_strategy(name).run(inputs[kind])
    votes = out.xs("vote", axis=1, level=1)
    conf = out.xs("confidence", axis=1, level=1)
    assert not out.isna().any().any()
    assert ((votes >= -1) & (votes <= 1)).all().all() and ((conf >= 0) & (conf <= 1)).all().all()
    assert (votes.abs().sum(axis=1) <= 1 + 1e-12).all(), "gross of the two legs exceeds 1"
    assert (votes.abs().sum(axis=1) > 0).any()


def test_regime_labels_are_valid_codes(inputs):
    frame = regimes(inputs["single"], gaps="ignore")
    for column in ("volatility", "trend", "liquidity", "session"):
        assert not frame[column].isna().any()
    assert frame["regime"].between(0, 8).all()
    assert np.isfinite(frame[["realized_vol", "trend_t", "spread"]].to_numpy()).all()
    assert (frame["spread"] >= 0).all()
    assert frame["version"].nunique() == 1


@pytest.mark.parametrize("pair", [None, ("ETH/USDT", "BTC/USDT")])
def test_committee_weights_sum_to_one_and_targets_are_bounded(pair, inputs):
    committee = cs.Committee.default(pair=pair)
    prices = inputs["pair"] if pair else inputs["single"]
    table = committee.run(prices, gaps="ignore")
    assert not table.isna().any().any()
    symbols = list(prices) if pair else [None]
    floor = cs.CommitteeParams().weight_floor
    for symbol in symbols:
        part = table[symbol] if symbol else table
        weights = part[[f"w_{a}" for a in committee.agent_names]].to_numpy()
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert (weights >= floor - 1e-15).all()
        for column in ("target", "risked", "raw"):
            assert part[column].between(-1, 1).all()
    gross = sum((table[s] if s else table)["risked"].abs() for s in symbols)
    assert (gross <= cs.RiskParams().max_leverage + 1e-12).all()
