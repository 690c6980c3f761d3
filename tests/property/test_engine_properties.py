"""Hypothesis: engine invariants on adversarial inputs.

Price paths here are synthetic on purpose (random-walk shapes Hypothesis can shrink);
targets are arbitrary, including NaN, negatives and over-leverage.
"""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import coinswarm as cs

N = 60


@st.composite
def market(draw):
    steps = draw(st.lists(st.floats(-0.2, 0.2), min_size=N, max_size=N))
    close = 100.0 * np.exp(np.cumsum(steps))
    gaps = draw(st.lists(st.floats(-0.05, 0.05), min_size=N, max_size=N))
    open_ = close * np.exp(np.array(gaps))
    prices = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.01,
                           "low": np.minimum(open_, close) * 0.99, "close": close,
                           "volume": 1.0},
                          index=pd.date_range("2024-01-01", periods=N, freq="h", tz="UTC",
                                              name="time"))
    target = draw(st.lists(st.one_of(st.floats(-3, 3), st.just(float("nan"))), min_size=N,
                           max_size=N))
    return prices, pd.Series(target, index=prices.index)


@settings(max_examples=150, deadline=None)
@given(market(), st.floats(0, 50), st.floats(0, 30), st.sampled_from([1.0, 2.0, 3.0]),
       st.booleans(), st.sampled_from(["next_open", "close"]))
def test_invariants(data, fee_bps, slip_bps, max_lev, allow_short, execution):
    prices, target = data
    r = cs.simulate(prices, target, costs=cs.Costs(fee_bps=fee_bps, slippage_bps=slip_bps),
                    max_leverage=max_lev, allow_short=allow_short, execution=execution)
    units = r.positions.iloc[:, 0]
    marked = r.cash + units * prices["close"]
    np.testing.assert_allclose(r.equity, marked, rtol=1e-12, atol=1e-9)
    assert (r.fills["fee"] >= 0).all()
    assert np.isfinite(r.equity).all()
    if not allow_short:
        assert (units >= -1e-12).all()
    px = prices["open"] if execution == "next_open" else prices["close"]
    traded = prices.index.isin(r.fills["time"])
    gross = (units * px).abs()[traded]
    assert (gross <= max_lev * (r.cash + units * px)[traded] * (1 + 1e-9) + 1e-9).all()


@settings(max_examples=50, deadline=None)
@given(market())
def test_zero_target_never_fills(data):
    prices, _ = data
    r = cs.simulate(prices, pd.Series(0.0, index=prices.index))
    assert r.fills.empty and (r.equity == 10_000.0).all()
