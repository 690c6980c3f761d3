"""The portfolio committee: one step for history and live, relative bands, typed errors (real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import (
    AlignmentError,
    InsufficientHistoryError,
    MissingFundingError,
    PortfolioCommittee,
    PortfolioParams,
    _banded_orders,
)
from tests.helpers.committee import step_orders


def test_live_steps_equal_history(pairs_2021):
    prices, funding = pairs_2021
    committee = PortfolioCommittee(funding)
    history = committee.targets(prices)
    cut = {s: f.iloc[: 24 * 120] for s, f in cs.align(prices).items()}  # NaN: a bar the asset lacks
    live = step_orders(committee, cut)
    np.testing.assert_array_equal(live, history.to_numpy()[: len(live)])
    assert np.isfinite(live).any()  # it traded inside 120 days (60 days of warm-up)


def test_decisions_are_causal(pairs_2021):
    prices, funding = pairs_2021
    committee = PortfolioCommittee(funding)
    full = committee.targets(prices)
    short = committee.targets({s: f.iloc[: 24 * 200] for s, f in cs.align(prices).items()})
    np.testing.assert_array_equal(full.to_numpy()[: 24 * 200], short.to_numpy())


def test_decides_once_a_day_at_the_last_hour(pairs_2021):
    prices, funding = pairs_2021
    orders = PortfolioCommittee(funding).targets(prices)
    traded = orders.index[orders.notna().any(axis=1)]
    assert len(traded) > 5 and set(traded.hour) == {23}


def test_carry_legs_are_hedged(pairs_2021):
    prices, funding = pairs_2021
    orders = PortfolioCommittee(funding, params=PortfolioParams(trend=False)).targets(prices)
    legs = orders[["BTC/USDT", "BTC/USDT:USDT"]].dropna()
    assert len(legs) > 0 and (legs["BTC/USDT"] > 0).any()
    np.testing.assert_allclose(legs["BTC/USDT"], -legs["BTC/USDT:USDT"])
    assert (legs["BTC/USDT"] * 1.5 <= 1.0 + 1e-12).all()  # spot + 0.5 margin per unit within capital


def test_band_is_relative_to_the_position():
    committee = PortfolioCommittee()
    state = committee.init(tuple(f"X{i}/USDT" for i in range(10)))
    target = np.full(10, 0.03)  # a small per-asset weight with ten assets still trades
    orders = _banded_orders(state, target, PortfolioParams())
    assert np.isfinite(orders).all()
    again = _banded_orders(state, target * 1.1, PortfolioParams())  # +10 % < 25 % band: no trade
    assert np.isnan(again).all()
    out = _banded_orders(state, np.zeros(10), PortfolioParams())  # exits always trade
    assert (out == 0).all()


def test_perp_without_funding_is_a_typed_error(pairs_2021):
    prices, _ = pairs_2021
    with pytest.raises(MissingFundingError, match="funding"):
        PortfolioCommittee().targets(prices)


def test_walk_forward_default_committee_without_funding_is_typed(pairs_2021):
    prices, _ = pairs_2021
    with pytest.raises(MissingFundingError):
        cs.walk_forward(cs.Committee.default(), prices, None, train="120D", test="30D", costs=cs.Costs(fee_bps=10))


def test_mixed_bar_lengths_are_misaligned(pairs_2021):
    prices, funding = pairs_2021
    daily = cs.resample_ohlcv(prices["ETH/USDT"], "1d")
    with pytest.raises(AlignmentError, match="bar lengths"):
        PortfolioCommittee(funding).targets({"BTC/USDT": prices["BTC/USDT"], "ETH/USDT": daily})


def test_disjoint_assets_are_misaligned(pairs_2021):
    prices, _ = pairs_2021
    early = prices["BTC/USDT"].iloc[:100]
    late = prices["ETH/USDT"].iloc[200:400]
    with pytest.raises(AlignmentError, match="share no bar"):
        PortfolioCommittee().targets({"BTC/USDT": early, "ETH/USDT": late})


def test_too_little_history_is_typed(pairs_2021):
    prices, funding = pairs_2021
    with pytest.raises(InsufficientHistoryError, match="warm-up"):
        PortfolioCommittee(funding).targets({s: f.iloc[:500] for s, f in prices.items()})


def test_bad_params_are_refused():
    with pytest.raises(cs.ConfigError):
        PortfolioCommittee(params=PortfolioParams(target_vol=-1.0))
    with pytest.raises(cs.ConfigError):
        PortfolioCommittee(params=PortfolioParams(trend=False, carry=False))


def test_default_committee_resolves_by_universe(pairs_2021):
    prices, funding = pairs_2021
    committee = cs.Committee.default()
    assert committee.for_universe(prices["BTC/USDT"]) is committee
    assert committee.for_universe({"BTC/USDT": prices["BTC/USDT"]}) is committee
    resolved = committee.for_universe(prices, cs.Costs(funding=funding))
    assert isinstance(resolved, PortfolioCommittee) and resolved.name == "portfolio"
    assert cs.Committee.default(pair=("ETH/USDT", "BTC/USDT")).for_universe(prices) is not resolved
    assert cs.get_strategy("committee_hourly").name == "committee"


def test_baselines_registered(pairs_2021):
    prices, _ = pairs_2021
    spot = {s: f for s, f in prices.items() if ":" not in s}
    bh = cs.get_strategy("buy_and_hold").targets(prices)
    first = bh.dropna(how="all")
    assert len(first) == 1 and first.iloc[0].tolist() == [0.5, 0.5, 0.0]
    lo = cs.get_strategy("trend_portfolio").targets(spot)
    assert (lo.fillna(0) >= 0).all().all() and lo.notna().any().any()
    assert isinstance(cs.get_strategy("trend_portfolio_ls").targets(spot), pd.DataFrame)
