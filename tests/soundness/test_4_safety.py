"""4. Safety: Hypothesis-driven adversarial price paths never breach the risk limits.

The price paths are synthetic on purpose (crashes, spikes, flat stretches and whipsaws
that Hypothesis can shrink); the limits are checked bar by bar on the risk agent's own
outputs and tracked equity, and on the committee's targets after the engine fills them.
"""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coinswarm as cs
from coinswarm.agents.risk import N_RISK_MOVES, risk_init, risk_run_nb, risk_state_size

N = 400


@st.composite
def adversarial_path(draw, n_symbols=1):
    steps = draw(st.lists(st.sampled_from([0.0, 0.001, -0.001, 0.02, -0.02, 0.08, -0.08, -0.3, 0.3]),
                          min_size=N, max_size=N))
    steps = np.array(steps).reshape(-1, 1) * np.ones((1, n_symbols))
    if n_symbols > 1:
        steps[:, 1] *= draw(st.sampled_from([-1.0, 0.5, 1.0]))
    return 100.0 * np.exp(np.cumsum(steps, axis=0))


def _frame(close: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC", name="time")
    prev = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({"open": prev, "high": np.maximum(prev, close) * 1.001,
                         "low": np.minimum(prev, close) * 0.999, "close": close, "volume": 1.0}, index=index)


risk_limits = st.builds(
    cs.RiskParams,
    target_vol=st.sampled_from([0.2, 1.0, 5.0]),
    vol_halflife=st.sampled_from([5.0, 24.0]),
    max_position=st.sampled_from([0.3, 1.0]),
    max_leverage=st.sampled_from([0.5, 1.0, 1.5]),
    dd_soft=st.sampled_from([0.02, 0.1]),
    dd_hard=st.sampled_from([0.15, 0.3]),
    daily_loss=st.sampled_from([0.01, 0.05]),
    cooldown=st.sampled_from([1, 24]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_path(n_symbols=2), risk_limits,
       st.lists(st.floats(-5, 5), min_size=2, max_size=2))
def test_risk_agent_never_breaches_its_limits(close, p, proposal):
    n, m = close.shape
    proposed = np.array(proposal)
    state = np.zeros(risk_state_size(m))
    risk_init(state, p)
    out, brakes, scratch = np.zeros((1, m)), np.zeros(1), np.empty((m, N_RISK_MOVES, 1))
    worst_dd = 0.0
    for t in range(n):  # one bar per call (as live), to check the state after every bar
        moves = np.abs(close[t] / close[t - 1] - 1.0).max() if t else 0.0
        risk_run_nb(state, p, np.array([1_704_067_200_000 + t * 3_600_000]), close[t:t + 1], np.log(close[t:t + 1]),
                    proposed.reshape(1, m), out, brakes, scratch, scratch[:, 0], False)
        brake = brakes[0]
        equity, peak, day_start = state[1], state[2], state[4]
        drawdown = 1.0 - equity / peak
        assert np.isfinite(out).all() and 0.0 <= brake <= 1.0
        assert (np.abs(out) <= p.max_position + 1e-12).all()
        assert np.abs(out).sum() <= p.max_leverage + 1e-12
        if drawdown >= p.dd_hard or 1.0 - equity / day_start >= p.daily_loss:
            assert (out == 0).all(), f"bar {t}: limit breached (dd {drawdown:.3f}) but still exposed"
        # the drawdown can pass dd_hard by at most one bar's move at full leverage
        assert drawdown <= p.dd_hard + p.max_leverage * moves + 1e-9 or drawdown <= worst_dd + 1e-12
        worst_dd = max(worst_dd, drawdown)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(adversarial_path())
def test_committee_targets_and_engine_exposure_stay_within_limits(close):
    prices = _frame(close[:, 0])
    committee = cs.Committee.default()
    table = committee.run(prices, gaps="ignore")
    limits = committee.config.risk
    assert (table["risked"].abs() <= limits.max_position + 1e-12).all()
    assert (table["target"].abs() <= limits.max_position + 1e-12).all()
    result = committee.backtest(prices)
    exposure = (result.positions.iloc[:, 0].abs() * prices["open"]) / result.equity.shift(1)
    assert (exposure.dropna() <= limits.max_leverage * 1.25).all()
    assert (result.positions.iloc[:, 0] >= 0).all(), "single-asset committee never shorts"
