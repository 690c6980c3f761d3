"""The portfolio committee told what a venue actually holds (``step(…, holdings=…)``): its no-trade band
compares targets with the venue's book instead of its own last targets; without holdings, or with
none known (NaN), every decision is bit-identical to the backtest's (real Binance BTC and ETH, 2021)."""

from __future__ import annotations

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import PortfolioCommittee
from coinswarm.errors import ConfigError, DataError

HOUR = 3_600_000


@pytest.fixture(scope="module")
def spot(pairs_2021):
    prices, _ = pairs_2021
    return {s: f for s, f in cs.align({s: prices[s] for s in ("BTC/USDT", "ETH/USDT")}).items()}


def _grid(aligned: dict) -> tuple[np.ndarray, np.ndarray]:
    closes = np.column_stack([f["close"].to_numpy() for f in aligned.values()])
    return next(iter(aligned.values())).index.as_unit("ms").asi8, closes


def _refused(committee, aligned: dict, tell: bool) -> tuple[int, int]:
    """Step over ``aligned``; the venue refuses the first BTC order and fills every other one.
    With ``tell``, each step is told BTC's actual weight (0) until it is ordered again (NaN:
    unknown for the rest). Returns (bar of the refused order, bar of the next BTC order)."""
    state = committee.init(tuple(aligned))
    stamps, closes = _grid(aligned)
    refused = None
    for t in range(len(stamps)):
        holdings = np.array([0.0, np.nan]) if tell and refused is not None else None
        _, orders = committee.step(state, int(stamps[t]), closes[t], holdings=holdings)
        if orders is not None and np.isfinite(orders[0]) and orders[0] > 0:
            if refused is not None:
                return refused, t
            refused = t
    raise AssertionError("BTC was never ordered again")


def test_a_refused_order_is_ordered_again_at_the_next_decision_when_told(spot):
    committee = PortfolioCommittee()
    refused, again = _refused(committee, spot, tell=True)
    assert again - refused == 24  # the very next daily decision
    believed, later = _refused(committee, spot, tell=False)
    assert believed == refused and later - refused >= 3 * 24  # the belief's band kept it off for days


def test_unknown_holdings_keep_every_decision_bit_identical(spot):
    committee = PortfolioCommittee()
    history = committee.targets(spot).to_numpy()
    stamps, closes = _grid(spot)
    told, plain = committee.init(tuple(spot)), committee.init(tuple(spot))
    unknown = np.full(len(spot), np.nan)
    for t in range(len(stamps)):
        _, orders = committee.step(told, int(stamps[t]), closes[t], holdings=unknown)
        committee.step(plain, int(stamps[t]), closes[t])
        row = np.full(len(spot), np.nan) if orders is None else orders
        np.testing.assert_array_equal(row, history[t])
    assert np.isfinite(history).any()
    assert told.to_bytes() == plain.to_bytes()


def test_holdings_on_a_bar_that_does_not_decide_are_ignored(spot):
    committee = PortfolioCommittee()
    stamps, closes = _grid(spot)
    a, b = committee.init(tuple(spot)), committee.init(tuple(spot))
    for t in range(30):
        assert (stamps[t] + HOUR) % 86_400_000 != 0 or t == 23
        committee.step(a, int(stamps[t]), closes[t], holdings=np.array([0.3, 0.2]) if t != 23 else None)
        committee.step(b, int(stamps[t]), closes[t])
    assert a.to_bytes() == b.to_bytes()


@pytest.mark.parametrize(("holdings", "error", "match"), [
    (np.zeros(3), ConfigError, r"expected 2 holdings .*got shape \(3,\)"),
    ([[0.1, 0.2]], ConfigError, r"expected 2 holdings"),
    (["a", "b"], ConfigError, r"holdings must be one weight per symbol"),
    (np.array([np.inf, 0.0]), DataError, "holdings must be finite fractions of equity"),
])
def test_bad_holdings_are_typed_and_change_nothing(spot, holdings, error, match):
    committee = PortfolioCommittee()
    stamps, closes = _grid(spot)
    state = committee.init(tuple(spot))
    committee.step(state, int(stamps[0]), closes[0])
    before = state.to_bytes()
    with pytest.raises(error, match=match):
        committee.step(state, int(stamps[1]), closes[1], holdings=holdings)
    assert state.to_bytes() == before
