"""The risk agent's brake: the division-free shortcut never changes what the drawdown's own
arithmetic (``brake_by_drawdown``) gives.

Equity values are synthetic on purpose: they sit within a few ulps to a few parts in 10⁹ of
the soft-brake and daily-loss thresholds, where a shortcut that was not conservative would
give a different brake than the drawdown's own arithmetic.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coinswarm.agents.risk import (
    RiskParams,
    _brake_nb,
    _brake_py,
    brake_by_drawdown_py,
    risk_history,
    risk_init,
    risk_state_size,
)

near = st.sampled_from([0.0, 1e-16, -1e-16, 3e-16, -3e-16, 1e-12, -1e-12, 1e-9, -1e-9, 2e-9, -2e-9, 0.01, -0.01])


@settings(max_examples=400, deadline=None)
@given(peak=st.floats(1e-6, 1e6), drawdown_off=near, loss_off=near, which=st.booleans(),
       dd_soft=st.sampled_from([0.02, 0.1, 0.3]), daily_loss=st.sampled_from([0.01, 0.05, 0.5]),
       kill_left=st.sampled_from([0.0, 0.0, 1.0, 5.0]), halted=st.booleans(), count=st.sampled_from([3.0, 500.0]))
def test_the_shortcut_gives_the_brake_of_the_drawdown(peak, drawdown_off, loss_off, which, dd_soft, daily_loss,
                                                         kill_left, halted, count):
    p = RiskParams(dd_soft=dd_soft, dd_hard=dd_soft + 0.1, daily_loss=daily_loss, vol_halflife=24.0)
    if which:  # equity right at the soft brake's threshold; the day started higher or lower
        eq = peak * (1.0 - dd_soft) * (1.0 + drawdown_off)
        day_start = eq / ((1.0 - daily_loss) * (1.0 + loss_off))
    else:  # equity right at the daily loss's threshold; the peak a little above it
        day_start = peak
        eq = day_start * (1.0 - daily_loss) * (1.0 + loss_off)
        peak = max(eq, peak * (1.0 + drawdown_off))
    args = (p, count, eq, peak, 7.0, day_start, kill_left, 7.0 if halted else -1.0)
    expected = brake_by_drawdown_py(*args)
    assert _brake_py(*args) == expected
    assert _brake_nb(*args) == expected


def test_nan_equity_takes_the_drawdowns_path():
    p = RiskParams()
    args = (p, 500.0, np.nan, 1.0, 7.0, 1.0, 0.0, -1.0)
    got, expected = _brake_py(*args), brake_by_drawdown_py(*args)
    assert np.isnan(got[0]) == np.isnan(expected[0]) and got[1:] == expected[1:]


def test_a_new_utc_day_is_seen_whichever_way_time_moves():
    """The day's starting equity is the equity before the first bar of each new UTC day, also
    when timestamps jump back (the kernel takes any order; validated data is sorted)."""
    day = 86_400_000
    times = np.array([5 * day - 1, 5 * day, 5 * day + 3_600_000, 4 * day + 10, 9 * day, 9 * day + 1, -1, 0])
    close = 100.0 * np.exp(np.cumsum(np.r_[0.0, 0.01 * np.ones(len(times) - 1)])).reshape(-1, 1)
    p = RiskParams(vol_halflife=1.0)
    s = np.zeros(risk_state_size(1))
    risk_init(s, p)
    for t in range(len(times)):
        before = s[1]
        previous_day = s[3]
        risk_history(s, p, times[t:t + 1], close[t:t + 1], np.ones((1, 1)))
        assert s[3] == times[t] // day
        if times[t] // day != previous_day:
            assert s[4] == before
