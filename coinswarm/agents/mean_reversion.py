"""Mean reversion: fade stretches of price away from its rolling mean, in ranges only.

``z = (log c − mean) / std`` over the last ``window`` log closes. Flat → long when
``z < −entry`` (short when ``z > entry``); a position is closed once ``|z| < exit``
on its side (entry/exit bands give hysteresis). With ``only_in_range=1`` (default)
the agent is flat unless the market is ranging: the t-statistic of the mean log return
over ``trend_window`` bars is inside ``±trend_t`` — the trend regime rule of
:mod:`coinswarm.regime`. Vote: the position (−1, 0, 1); confidence
``min(1, |z| / (2 · entry))`` while in a position.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from coinswarm._jit import jit
from coinswarm.agents.base import Agent, Bar
from coinswarm.kernels.steps import (
    ROLL_HEADER,
    mean_std_nb,
    roll_mean_std_nb,
    roll_push_nb,
    roll_size,
    roll_step_nb,
    roll_tstat_nb,
)

_COUNT, _POS, _PREV, _ROLL_PRICE = 0, 1, 2, 3


class MeanReversionParams(NamedTuple):
    """Band widths in standard deviations; windows in bars; ``only_in_range`` 1 or 0."""

    window: int = 72
    entry: float = 2.0
    exit: float = 0.5
    trend_window: int = 168
    trend_t: float = 1.0
    only_in_range: int = 1


def next_position_py(pos, z, entry, exit_):
    """Band logic: enter beyond ``entry``, leave inside ``exit``."""
    if pos == 0.0:
        if z < -entry:
            return 1.0
        if z > entry:
            return -1.0
        return 0.0
    if pos > 0.0 and z > -exit_:
        return 0.0
    if pos < 0.0 and z < exit_:
        return 0.0
    return pos


next_position_nb = jit(next_position_py, inline=True)


def mean_reversion_step_py(s, p, c):
    """One bar of the mean-reversion agent: ``(vote, confidence)``."""
    return mean_reversion_core_nb(s, p, math.log(c))


def mean_reversion_core_py(s, p, lc):
    """:func:`mean_reversion_step_py` given the log close."""
    tstat, trend_ready = own_trend_tstat_nb(s, p, lc)
    return mean_reversion_bands_nb(s, p, lc, tstat, trend_ready)


def own_trend_tstat_py(s, p, lc):
    """Push this bar's log return into the agent's own ``trend_window``; returns
    ``(t-statistic of its mean, whether the window is full)``."""
    o_trend = _ROLL_PRICE + roll_size(p.window)
    if s[_COUNT] > 0.0:
        roll_push_nb(s, o_trend, p.trend_window, lc - s[_PREV])
    if s[o_trend] < p.trend_window:
        return 0.0, False
    return roll_tstat_nb(s, o_trend), True


own_trend_tstat_nb = jit(own_trend_tstat_py, inline=True)


def mean_reversion_decide_py(p, pos, z, valid, tstat):
    """The bands on one bar's ``z`` (``valid``: the windows are full and the std positive) and
    the trend t-statistic: ``(position after the bar, vote, confidence)``."""
    if not valid:
        return pos, 0.0, 0.0
    pos = next_position_nb(pos, z, p.entry, p.exit)
    if p.only_in_range != 0 and not abs(tstat) < p.trend_t:
        pos = 0.0
    if pos == 0.0:
        return pos, 0.0, 0.0
    return pos, pos, min(1.0, abs(z) / (2.0 * p.entry))


mean_reversion_decide_nb = jit(mean_reversion_decide_py, inline=True)


def mean_reversion_bands_py(s, p, lc, tstat, trend_ready):
    """The bands given the trend t-statistic over ``trend_window`` log returns (the agent's own,
    or the regime detector's identical one when the committee runs both on the same window)."""
    roll_push_nb(s, _ROLL_PRICE, p.window, lc)
    s[_PREV] = lc
    s[_COUNT] += 1.0
    mean, std = roll_mean_std_nb(s, _ROLL_PRICE)
    valid = s[_ROLL_PRICE] >= p.window and trend_ready and std > 0.0
    s[_POS], vote, confidence = mean_reversion_decide_nb(p, s[_POS], (lc - mean) / std if valid else 0.0, valid,
                                                         tstat)
    return vote, confidence


mean_reversion_bands_nb = jit(mean_reversion_bands_py, inline=True)


def mean_reversion_bars_py(s, p, lc, t0, n, tstat, trend_n, trend_window, work, out):
    """:func:`mean_reversion_bands_py` over bars ``t0 .. t0+n-1`` of the log closes ``lc`` (one
    symbol's, contiguous), given each bar's trend t-statistic and trend-window count (full at
    ``trend_window``); ``vote · confidence`` into ``out``. Three loops: the price window's sums
    (a chain in registers), the z-scores (vector code) and the positions (a chain in
    registers); ``work`` ``(3, n)`` is scratch."""
    count, head, total, squares = s[_ROLL_PRICE], int(s[_ROLL_PRICE + 1]), s[_ROLL_PRICE + 2], s[_ROLL_PRICE + 3]
    for k in range(n):
        count, head, total, squares = roll_step_nb(s, _ROLL_PRICE + ROLL_HEADER, p.window, count, head, total,
                                                   squares, lc[t0 + k])
        work[0, k], work[1, k], work[2, k] = count, total, squares
    s[_ROLL_PRICE], s[_ROLL_PRICE + 1], s[_ROLL_PRICE + 2], s[_ROLL_PRICE + 3] = count, float(head), total, squares
    s[_PREV], s[_COUNT] = lc[t0 + n - 1], s[_COUNT] + n
    for k in range(n):
        mean, std = mean_std_nb(work[0, k], work[1, k], work[2, k])
        valid = work[0, k] >= p.window and trend_n[k] >= trend_window and std > 0.0
        work[1, k], work[2, k] = (lc[t0 + k] - mean) / std if valid else 0.0, valid
    pos = s[_POS]
    for k in range(n):
        pos, vote, confidence = mean_reversion_decide_nb(p, pos, work[1, k], work[2, k] != 0.0, tstat[k])
        out[k] = vote * confidence
    s[_POS] = pos


mean_reversion_bars_nb = jit(mean_reversion_bars_py, inline=True)
mean_reversion_core_nb = jit(mean_reversion_core_py, inline=True)  # also inlined into the committee's loop
mean_reversion_step_nb = jit(mean_reversion_step_py, refcount=False)


def mean_reversion_run_py(s, p, close):
    """The agent over history (one compiled loop)."""
    n = close.shape[0]
    votes, conf = np.empty(n), np.empty(n)
    for t in range(n):
        votes[t], conf[t] = mean_reversion_step_nb(s, p, close[t])
    return votes, conf


mean_reversion_run_nb = jit(mean_reversion_run_py)


class MeanReversion(Agent):
    """Z-score bands around a rolling mean, active in ranging regimes."""

    name = "mean_reversion"
    Params = MeanReversionParams
    default_grid = {"window": [48, 72, 168], "entry": [1.5, 2.0, 2.5]}

    def state_size(self, p: MeanReversionParams) -> int:
        """Floats of state."""
        return _ROLL_PRICE + roll_size(p.window) + roll_size(p.trend_window)

    def _init_state(self, values: np.ndarray, p: MeanReversionParams) -> None:
        values[:] = 0.0

    def _step(self, values, p, bar: Bar):
        return mean_reversion_step_nb(values, p, bar.close)

    def _run(self, values, p, arrays):
        return mean_reversion_run_nb(values, p, arrays[4])

    def warmup(self, params: MeanReversionParams | None = None) -> int:
        """The longer of the two windows, plus one."""
        p = params or MeanReversionParams()
        return int(max(p.window, p.trend_window + 1))

    def is_valid(self, p: MeanReversionParams) -> bool:
        """Windows ≥ 2, ``0 ≤ exit < entry``, ``trend_t > 0``."""
        return p.window >= 2 and p.trend_window >= 2 and 0 <= p.exit < p.entry and p.trend_t > 0
