"""Trend: time-series momentum over three horizons, scaled by volatility.

For each horizon h the agent measures the log return over the last h bars in units of
its expected size, ``z_h = (log c_t − log c_{t−h}) / (σ √h)``, where σ is an EWMA of
per-bar log-return volatility. The vote is the mean of ``tanh(z_h)`` (in [-1, 1]); the
confidence is how much the horizons agree, ``|Σ sign(z_h)| / 3``. State: a ring buffer of
``slow + 1`` log closes and the EWMA variance — O(1) per bar.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from coinswarm._jit import jit
from coinswarm.agents.base import Agent, Bar
from coinswarm.kernels.steps import ROLL_HEADER, ewma_nb, halflife_alpha_py, roll_size, tanh_nb

_COUNT, _VAR, _ALPHA, _ISQ_FAST, _ISQ_MID, _ISQ_SLOW, _RING = 0, 1, 2, 3, 4, 5, 6


class TrendParams(NamedTuple):
    """Momentum horizons in bars (fast < mid < slow) and the volatility half-life."""

    fast: int = 24
    mid: int = 168
    slow: int = 720
    vol_halflife: float = 168.0


def trend_init(values: np.ndarray, p: TrendParams) -> None:
    """Zero state with the EWMA smoothing factor precomputed."""
    values[:] = 0.0
    values[_ALPHA] = halflife_alpha_py(p.vol_halflife)
    values[_ISQ_FAST], values[_ISQ_MID], values[_ISQ_SLOW] = (1.0 / math.sqrt(h) for h in (p.fast, p.mid, p.slow))


def trend_step_py(s, p, c):
    """One bar of the trend agent: ``(vote, confidence)``."""
    return trend_core_nb(s, p, math.log(c))


def trend_core_py(s, p, lc):
    """:func:`trend_step_py` given the log close (the committee computes it once for every member)."""
    z1, z2, z3 = trend_scores_nb(s, p, lc)
    return trend_vote_nb(z1, z2, z3)


def _ring_newest_py(s, p, head):
    """The log close pushed last into the ring (``head``: the next slot)."""
    return s[_RING + ROLL_HEADER + (head - 1 if head > 0 else p.slow)]


_ring_newest_nb = jit(_ring_newest_py, inline=True)


def trend_variance_py(s, p, count, var, head, lc):
    """The EWMA variance of log returns after a bar with log close ``lc``, ``count`` bars seen
    before it (the previous log close is the ring's newest value)."""
    if count == 0.0:
        return var
    r = lc - _ring_newest_nb(s, p, head)
    return ewma_nb(var, r * r, s[_ALPHA], count > 1.0)


trend_variance_nb = jit(trend_variance_py, inline=True)


def trend_push_py(s, p, count, var, head, lc):
    """Push the bar's log close ``lc`` into the ring, given the variance after the bar: returns
    ``(count, head, z1, z2, z3)`` after the bar, the horizons' ``z`` all 0 during warm-up."""
    w = p.slow + 1
    buf = _RING + ROLL_HEADER
    s[buf + head] = lc
    head = 0 if head + 1 == w else head + 1
    if count < p.slow or var <= 0.0:
        return count + 1.0, head, 0.0, 0.0, 0.0
    inv_sigma = 1.0 / math.sqrt(var)
    z1 = (lc - s[buf + _ago_nb(head, p.fast, w)]) * inv_sigma * s[_ISQ_FAST]
    z2 = (lc - s[buf + _ago_nb(head, p.mid, w)]) * inv_sigma * s[_ISQ_MID]
    z3 = (lc - s[buf + _ago_nb(head, p.slow, w)]) * inv_sigma * s[_ISQ_SLOW]
    return count + 1.0, head, z1, z2, z3


def trend_next_py(s, p, count, var, head, lc):
    """One bar with the bar count, EWMA variance and ring head in registers (the ring's values
    stay in ``s``): returns ``(count, var, head, z1, z2, z3)`` after the bar (see
    :func:`trend_variance_py` and :func:`trend_push_py`)."""
    var = trend_variance_nb(s, p, count, var, head, lc)
    count, head, z1, z2, z3 = trend_push_nb(s, p, count, var, head, lc)
    return count, var, head, z1, z2, z3


trend_push_nb = jit(trend_push_py, inline=True)
trend_next_nb = jit(trend_next_py, inline=True)


def _ago_py(head, k, w):
    """Ring index of the value pushed ``k`` pushes before the last (``head``: the next slot)."""
    idx = head - 1 - k
    return idx + w if idx < 0 else idx


_ago_nb = jit(_ago_py, inline=True)


def trend_variance_state_py(s, p):
    """What the variance chain carries into the next bar: ``(smoothing, bars seen, variance,
    previous log close)`` (the previous log close is 0 before the first bar)."""
    count = s[_COUNT]
    prev = _ring_newest_nb(s, p, int(s[_RING + 1])) if count > 0.0 else 0.0
    return s[_ALPHA], count, s[_VAR], prev


trend_variance_state_nb = jit(trend_variance_state_py, inline=True)


def trend_load_py(s):
    """The registers of :func:`trend_next_py`: ``(count, var, head)``."""
    return s[_COUNT], s[_VAR], int(s[_RING + 1])


trend_load_nb = jit(trend_load_py, inline=True)


def trend_store_py(s, p, count, var, head):
    """Write :func:`trend_next_py`'s registers back (the ring holds ``min(count, slow + 1)``)."""
    s[_COUNT], s[_VAR], s[_RING + 1], s[_RING] = count, var, float(head), min(count, p.slow + 1.0)


trend_store_nb = jit(trend_store_py, inline=True)


def trend_scores_py(s, p, lc):
    """Advance the state by one bar; the three horizons' ``z`` (all 0 during warm-up)."""
    count, var, head = trend_load_nb(s)
    count, var, head, z1, z2, z3 = trend_next_nb(s, p, count, var, head, lc)
    trend_store_nb(s, p, count, var, head)
    return z1, z2, z3


trend_scores_nb = jit(trend_scores_py, inline=True)


def trend_vote_py(z1, z2, z3):
    """``(vote, confidence)`` from the horizons' ``z``: pure arithmetic without branches, so the
    committee computes it for a run of bars in vector code."""
    vote = (tanh_nb(z1) + tanh_nb(z2) + tanh_nb(z3)) / 3.0
    agree = int(z1 > 0.0) - int(z1 < 0.0) + int(z2 > 0.0) - int(z2 < 0.0) + int(z3 > 0.0) - int(z3 < 0.0)
    return vote, abs(agree) / 3.0


trend_vote_nb = jit(trend_vote_py, inline=True)


trend_core_nb = jit(trend_core_py, refcount=False)
trend_step_nb = jit(trend_step_py, refcount=False)


def trend_run_py(s, p, close):
    """The trend agent over history (one compiled loop over ``trend_step``)."""
    n = close.shape[0]
    votes, conf = np.empty(n), np.empty(n)
    for t in range(n):
        votes[t], conf[t] = trend_step_nb(s, p, close[t])
    return votes, conf


trend_run_nb = jit(trend_run_py)


class Trend(Agent):
    """Multi-horizon, volatility-scaled time-series momentum."""

    name = "trend"
    Params = TrendParams
    default_grid = {"fast": [12, 24, 48], "mid": [168], "slow": [336, 720]}

    def state_size(self, p: TrendParams) -> int:
        """Floats of state."""
        return _RING + roll_size(p.slow + 1)

    def _init_state(self, values: np.ndarray, p: TrendParams) -> None:
        trend_init(values, p)

    def _step(self, values: np.ndarray, p: TrendParams, bar: Bar):
        return trend_step_nb(values, p, bar.close)

    def _run(self, values: np.ndarray, p: TrendParams, arrays):
        return trend_run_nb(values, p, arrays[4])

    def warmup(self, params: TrendParams | None = None) -> int:
        """``slow + 1`` bars."""
        return int((params or TrendParams()).slow) + 1

    def is_valid(self, p: TrendParams) -> bool:
        """``1 ≤ fast < mid < slow`` and a positive half-life."""
        return 1 <= p.fast < p.mid < p.slow and p.vol_halflife > 0
