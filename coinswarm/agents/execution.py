"""Execution: turn target changes into cheaper trades.

Given a desired target each bar, the agent keeps the current executed target and moves
it only when the difference exceeds a no-trade band ``band + spread_mult · spread``
(hysteresis), where ``spread`` is an EWMA of the Corwin–Schultz high–low spread estimate;
a move is at most ``max_step`` per bar (large changes are spread over bars). A desired
target of exactly 0 (an exit) always proceeds, ``max_step`` at a time.

As a strategy, ``targets`` emits NaN ("no order") on bars where the executed target did
not change, so the engine does not rebalance drifting weights either; alone it shapes
the default :class:`~coinswarm.agents.trend.Trend` agent's votes (compare
``simulate(trend targets)`` with ``simulate(execution targets)`` for the saving).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from coinswarm._jit import jit
from coinswarm._lazy import lazy_module
from coinswarm.agents.base import Agent, Bar, check_prices, ohlcv_arrays
from coinswarm.agents.trend import TrendParams, trend_init, trend_step_nb
from coinswarm.kernels.steps import clip_nb, corwin_schultz_log_nb, ewma_nb, halflife_alpha_py

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

EXEC_SIZE = 7
_COUNT, _CURRENT, _SPREAD, _PREV_H, _PREV_L, _ALPHA, _HAS_PREV = 0, 1, 2, 3, 4, 5, 6


class ExecutionParams(NamedTuple):
    """Band and step as fractions of equity; spread half-life in bars."""

    band: float = 0.1
    max_step: float = 0.5
    spread_mult: float = 2.0
    spread_halflife: float = 24.0


def execution_init(values: np.ndarray, offset: int, p: ExecutionParams) -> None:
    """Reset the execution block at ``values[offset:]`` (EWMA factor precomputed)."""
    values[offset:offset + EXEC_SIZE] = 0.0
    values[offset + _ALPHA] = halflife_alpha_py(p.spread_halflife)


def execution_spread_py(alpha, spread, count, raw_spread, has_spread):
    """The spread EWMA and the number of bars with a spread after a bar."""
    if has_spread:
        return ewma_nb(spread, raw_spread, alpha, count > 0.0), count + 1.0
    return spread, count


execution_spread_nb = jit(execution_spread_py, inline=True)


def execution_move_py(p, spread, current, desired):
    """The executed target after a bar, given the spread EWMA after it."""
    diff = desired - current
    band = p.band + p.spread_mult * spread
    if desired == 0.0 or abs(diff) > band:
        current += clip_nb(diff, -p.max_step, p.max_step)
    return current


execution_move_nb = jit(execution_move_py, inline=True)


def execution_next_py(p, alpha, spread, count, current, raw_spread, has_spread, desired):
    """One bar of the execution agent on its state in registers (spread EWMA, bars with a
    spread, executed target) given the bar's raw spread estimate; returns them after the bar."""
    spread, count = execution_spread_nb(alpha, spread, count, raw_spread, has_spread)
    return spread, count, execution_move_nb(p, spread, current, desired)


execution_next_nb = jit(execution_next_py, inline=True)


def execution_spread_state_py(s, o):
    """What the block's spread EWMA carries into the next bar: ``(smoothing, bars with a
    spread, spread EWMA)``."""
    return s[o + _ALPHA], s[o + _COUNT], s[o + _SPREAD]


execution_spread_state_nb = jit(execution_spread_state_py, inline=True)


def execution_bars_py(s, o, p, raw_spreads, has_spread, desired, out, smoothed, given):
    """The block at ``s[o:o + EXEC_SIZE]`` over a run of bars (raw spreads, whether each bar has
    one, desired targets) with its state in registers; executed targets into ``out``. When
    ``given``, the spread EWMA after each bar is read from ``smoothed`` (the caller ran the
    same chain from the same state, see :func:`execution_spread_state_py`)."""
    spread, count, current, alpha = s[o + _SPREAD], s[o + _COUNT], s[o + _CURRENT], s[o + _ALPHA]
    if given:
        for k in range(desired.shape[0]):
            spread, count = smoothed[k], count + (has_spread[k] != 0.0)
            current = execution_move_nb(p, spread, current, desired[k])
            out[k] = current
    else:
        for k in range(desired.shape[0]):
            spread, count, current = execution_next_nb(p, alpha, spread, count, current, raw_spreads[k],
                                                       has_spread[k] != 0.0, desired[k])
            out[k] = current
    s[o + _SPREAD], s[o + _COUNT], s[o + _CURRENT] = spread, count, current


execution_bars_nb = jit(execution_bars_py, inline=True)


def execution_core_py(s, o, p, spread, has_spread, desired):
    """Executed target given this bar's raw spread estimate (shared with the regime detector)."""
    s[o + _SPREAD], s[o + _COUNT], s[o + _CURRENT] = execution_next_nb(
        p, s[o + _ALPHA], s[o + _SPREAD], s[o + _COUNT], s[o + _CURRENT], spread, has_spread, desired)
    return s[o + _CURRENT]


execution_core_nb = jit(execution_core_py, inline=True)


def execution_step_py(s, o, p, h, low, desired):
    """Executed target after this bar for the block at ``s[o:o + EXEC_SIZE]``."""
    lh, ll = math.log(h), math.log(low)
    has_prev = s[o + _HAS_PREV] != 0.0
    spread = corwin_schultz_log_nb(s[o + _PREV_H], s[o + _PREV_L], lh, ll) if has_prev else 0.0
    s[o + _PREV_H], s[o + _PREV_L], s[o + _HAS_PREV] = lh, ll, 1.0
    return execution_core_nb(s, o, p, spread, has_prev, desired)


execution_step_nb = jit(execution_step_py, refcount=False)


def shaped_trend_step_py(s, p, tp, h, low, c):
    """Trend vote (state after the execution block) shaped by execution: ``(target, conf)``."""
    vote, conf = trend_step_nb(s[EXEC_SIZE:], tp, c)
    return execution_step_nb(s, 0, p, h, low, vote), conf


shaped_trend_step_nb = jit(shaped_trend_step_py, refcount=False)


def execution_run_py(s, p, tp, high, low, close):
    """Execution shaping of the trend agent over history."""
    n = close.shape[0]
    out, conf = np.empty(n), np.empty(n)
    for t in range(n):
        out[t], conf[t] = shaped_trend_step_nb(s, p, tp, high[t], low[t], close[t])
    return out, conf


execution_run_nb = jit(execution_run_py)


def orders_only_py(executed, out):
    """``executed`` ``(n, m)`` into ``out``, NaN where a target equals the previous bar's."""
    for j in range(executed.shape[1]):
        if executed.shape[0] > 0:
            out[0, j] = executed[0, j]
        for t in range(1, executed.shape[0]):
            out[t, j] = np.nan if executed[t, j] == executed[t - 1, j] else executed[t, j]


orders_only_nb = jit(orders_only_py, refcount=False)


def orders_only(executed: np.ndarray) -> np.ndarray:
    """NaN where the executed target equals the previous bar's (no order to send); one pass."""
    executed = np.asarray(executed, dtype=np.float64)
    out = np.empty_like(executed)
    as_matrix = (lambda a: a.reshape(-1, 1)) if executed.ndim == 1 else (lambda a: a)
    orders_only_nb(as_matrix(executed), as_matrix(out))
    return out


class Execution(Agent):
    """No-trade band and step limits around a desired target."""

    name = "execution"
    Params = ExecutionParams
    default_grid = {"band": [0.05, 0.1, 0.2], "max_step": [0.25, 0.5, 1.0]}

    def __init__(self, desired: TrendParams | None = None) -> None:
        self.desired = desired or TrendParams()

    def _layout_config(self) -> tuple:
        """The shaped trend agent's parameters (its state follows the execution block)."""
        return (self.desired,)

    def state_size(self, p: ExecutionParams) -> int:
        """Execution block plus the shaped trend agent's state."""
        from coinswarm.agents.trend import Trend

        return EXEC_SIZE + Trend().state_size(self.desired)

    def _init_state(self, values: np.ndarray, p: ExecutionParams) -> None:
        execution_init(values, 0, p)
        trend_init(values[EXEC_SIZE:], self.desired)

    def _step(self, values, p, bar: Bar):
        return shaped_trend_step_nb(values, p, self.desired, bar.high, bar.low, bar.close)

    def _run(self, values, p, arrays):
        return execution_run_nb(values, p, self.desired, arrays[2], arrays[3], arrays[4])

    def targets(self, prices: pd.DataFrame, params: ExecutionParams | None = None) -> pd.Series:
        """Executed targets with NaN on bars that need no order."""
        params = self._params(params)
        check_prices(prices, "ignore")
        executed, _ = self._run(self.init(params).values, params, ohlcv_arrays(prices))
        return pd.Series(orders_only(executed), index=prices.index, name="target")

    def warmup(self, params: ExecutionParams | None = None) -> int:
        """The shaped trend agent's warm-up."""
        return int(self.desired.slow) + 1

    def is_valid(self, p: ExecutionParams) -> bool:
        """Non-negative band and spread multiplier, ``0 < max_step ≤ 2``."""
        return p.band >= 0 and p.spread_mult >= 0 and 0 < p.max_step <= 2 and p.spread_halflife > 0
