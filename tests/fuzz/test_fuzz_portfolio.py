"""Fuzz: the portfolio committee's step over real closes corrupted one way at a time. Each case gives
orders that are NaN or finite weights within the capital cap, or raises a CoinswarmError subclass
— never another exception, never a hang — and an error leaves the state unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coinswarm as cs
from coinswarm.committee.portfolio import PortfolioCommittee
from coinswarm.errors import CoinswarmError
from tests.fuzz.budget import DEADLINE_MS, examples, seen

SETTINGS = dict(deadline=DEADLINE_MS, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_REAL: dict[str, np.ndarray] = {}


def closes() -> tuple[np.ndarray, np.ndarray]:
    """Real BTC and ETH 1h closes (2022-01 → 2022-04) and their bar times in ms."""
    if not _REAL:
        frames = cs.align({s: cs.load_ohlcv(f"binance:{s}/USDT:1h", start="2022-01", end="2022-04")
                           for s in ("BTC", "ETH")}, how="inner")
        _REAL["c"] = np.column_stack([f["close"].to_numpy() for f in frames.values()])
        _REAL["t"] = next(iter(frames.values())).index.as_unit("ms").asi8
    return _REAL["c"], _REAL["t"]


CORRUPTIONS = st.sampled_from(["none", "nan", "inf", "zero", "negative", "stale_time", "shape", "huge"])


@settings(max_examples=examples(40), **SETTINGS)
@given(kind=CORRUPTIONS, at=st.integers(min_value=0, max_value=2_000), column=st.integers(0, 1))
def test_step_gives_orders_or_typed_errors(kind, at, column):
    seen("portfolio")
    c, t = closes()
    committee = PortfolioCommittee(params=cs.get_strategy("portfolio").defaults._replace(carry=False))
    state = committee.init(("BTC/USDT", "ETH/USDT"))
    stop = min(at, len(c) - 1)
    for i in range(stop):
        committee.step(state, int(t[i]), c[i])
    row, time = c[stop].copy(), int(t[stop])
    if kind == "nan":
        row[column] = np.nan
    elif kind == "inf":
        row[column] = np.inf
    elif kind == "zero":
        row[column] = 0.0
    elif kind == "negative":
        row[column] = -row[column]
    elif kind == "stale_time":
        time = int(t[max(stop - 1, 0)]) if stop else -1
    elif kind == "shape":
        row = row[:1]
    elif kind == "huge":
        row[column] = 1e300
    before = copy.deepcopy(state)
    try:
        _, orders = committee.step(state, time, row)
    except CoinswarmError:
        assert state.clock == before.clock and np.array_equal(state.held, before.held)
        assert np.array_equal(state.pending, before.pending, equal_nan=True)
        return
    if orders is not None:
        finite = orders[np.isfinite(orders)]
        assert np.all(np.abs(finite) <= 1.0 + 1e-9)
        assert not pd.isna(state.held).any()


LEARN_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10_000),
                         st.sampled_from(["90", "x", "true", "", None, True, [1]]))


@settings(max_examples=examples(40), **SETTINGS)
@given(halflife=LEARN_VALUES, cost=LEARN_VALUES, learn=LEARN_VALUES, huge_move=st.booleans())
def test_learning_parameters_give_a_committee_or_typed_errors(halflife, cost, learn, huge_move):
    """Any value for the learned-weighting knobs: a committee whose steps give bounded orders and
    whose gates stay 0 or 1, or a ConfigError before any state exists."""
    seen("portfolio")
    from coinswarm.params import make_params

    base = PortfolioCommittee(params=cs.get_strategy("portfolio").defaults._replace(carry=False))
    try:
        params = make_params(base, {"learn_halflife": halflife, "cost_bps": cost, "learn": learn})
    except CoinswarmError:
        return
    c, t = closes()
    committee = PortfolioCommittee(params=params)
    state = committee.init(("BTC/USDT", "ETH/USDT"))
    for i in range(min(len(c), 24 * 90)):
        row = c[i] * (50.0 if huge_move and i == 24 * 70 else 1.0)
        _, orders = committee.step(state, int(t[i]), row)
        if orders is not None:
            assert np.all(np.abs(orders[np.isfinite(orders)]) <= 1.0 + 1e-9)
    assert set(np.unique(state.gate)) <= {0.0, 1.0} and np.isfinite(state.score).all()


@settings(max_examples=examples(40), **SETTINGS)
@given(guard=LEARN_VALUES, margin=LEARN_VALUES)
def test_margin_guard_parameters_give_a_committee_or_typed_errors(guard, margin):
    """Any ``carry_guard``/``margin``: a committee whose guard threshold lies strictly inside the
    liquidation distance (or is off), or a ConfigError."""
    seen("portfolio")
    from coinswarm.committee.portfolio import MAINTENANCE, guard_threshold
    from coinswarm.params import make_params

    base = PortfolioCommittee()
    try:
        params = make_params(base, {"carry_guard": guard, "margin": margin})
        committee = PortfolioCommittee(params=params)
    except CoinswarmError:
        return
    limit = guard_threshold(committee.defaults)
    distance = (committee.defaults.margin - MAINTENANCE) / (1.0 + MAINTENANCE)
    assert limit == float("inf") or 0 < limit < distance
