"""Risk: volatility targeting, a drawdown brake, position/leverage/daily-loss limits and
a kill switch. Applied last: it scales or vetoes whatever target it is given.

The agent keeps its own mark-to-market of the targets it has *allowed* (``equity``
starts at 1 and compounds ``Σ_j out_j · r_j`` each bar), so it needs no broker. Per bar:

1. On a new UTC day the day's starting equity is recorded.
2. Drawdown ``dd = 1 − equity / peak``; at ``dd ≥ dd_hard`` the kill switch outputs 0 for
   ``cooldown`` bars, then the peak is reset to the current equity.
3. A day's loss ``≥ daily_loss`` halts trading until the next UTC day.
4. Otherwise the brake is 1 below ``dd_soft`` and falls linearly to 0 at ``dd_hard``.
5. Each symbol's target is scaled by ``target_vol / annualised EWMA vol``, times the brake,
   clipped to ``±max_position``; if the gross exceeds ``max_leverage`` all are scaled down.

No output ever exceeds ``max_position`` per symbol or ``max_leverage`` gross (safety tests).
Until ``vol_halflife`` bars have been seen the output is 0 (volatility unknown).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from coinswarm._jit import jit
from coinswarm.agents.base import Agent, Bar
from coinswarm.kernels.indicators import log_prices
from coinswarm.kernels.steps import clip_nb, ewma_nb, halflife_alpha_py

DAY_MS = 86_400_000
_COUNT, _EQ, _PEAK, _DAY, _DAY_START, _KILL_LEFT, _HALTED_DAY, _ALPHA = 0, 1, 2, 3, 4, 5, 6, 7
_HEADER = 8
_PER_SYMBOL = 4  # previous close, EWMA variance of log returns, previous output, previous log close


class RiskParams(NamedTuple):
    """Annualised vol target; limits as fractions of equity; ``cooldown`` in bars."""

    target_vol: float = 0.5
    vol_halflife: float = 168.0
    bars_per_year: float = 8760.0
    max_position: float = 1.0
    max_leverage: float = 1.0
    dd_soft: float = 0.10
    dd_hard: float = 0.25
    daily_loss: float = 0.05
    cooldown: int = 168


def risk_state_size(n_symbols: int) -> int:
    """Floats of risk state for ``n_symbols``."""
    return _HEADER + _PER_SYMBOL * n_symbols


def risk_init(values: np.ndarray, p: RiskParams) -> None:
    """Equity and peak start at 1; no day seen yet; EWMA factor precomputed."""
    values[:] = 0.0
    values[_ALPHA] = halflife_alpha_py(p.vol_halflife)
    values[_EQ] = values[_PEAK] = values[_DAY_START] = 1.0
    values[_DAY] = values[_HALTED_DAY] = -1.0


# rows of the per-symbol scratch ``moves[j]`` of :func:`risk_run_py` (contiguous over the bars)
_MV_CLOSE, _MV_LOG, _MV_SCALE, _MV_RETURN = 0, 1, 2, 3
N_RISK_MOVES = 4


def _variance_chain_py(var, prev_log, alpha, count0, n, lpx, out):
    """The EWMA variance of log returns after each of the first ``n`` bars into ``out``;
    returns the last."""
    for t in range(n):
        if count0 + t > 0.0:
            r = lpx[t] - prev_log
            var = ewma_nb(var, r * r, alpha, count0 + t > 1.0)
        prev_log = lpx[t]
        out[t] = var
    return var


_variance_chain_nb = jit(_variance_chain_py, inline=True)


def _symbol_moves_py(s, p, j, count0, close, log_close, moves, variance, given):
    """Symbol ``j`` over the run's bars (``count0`` bars seen before it): each bar's simple
    return ``close / previous − 1`` (0 on the very first bar) into ``moves[j, _MV_RETURN]``
    and, once the EWMA variance of log returns has taken the bar, its volatility scale
    ``target_vol / annualised vol`` (0 while the volatility is 0) into ``moves[j, _MV_SCALE]``.
    The prices are first copied into contiguous rows; then only the variance is a bar-to-bar
    chain, and the divisions and square roots run over all bars at once, in vector code. When
    ``given``, the variance after each bar is read from ``variance[j]`` instead (the caller has
    run the same chain from the same state: see :func:`risk_variance_state_py`)."""
    o, n = _HEADER + _PER_SYMBOL * j, close.shape[0]
    if n == 0:
        return
    px, lpx, scale, ret = moves[j, _MV_CLOSE], moves[j, _MV_LOG], moves[j, _MV_SCALE], moves[j, _MV_RETURN]
    for t in range(n):
        px[t], lpx[t] = close[t, j], log_close[t, j]
    ret[0] = px[0] / s[o] - 1.0 if count0 > 0.0 else 0.0
    for t in range(1, n):
        ret[t] = px[t] / px[t - 1] - 1.0
    if given:
        for t in range(n):
            scale[t] = variance[j, t]
        var = scale[n - 1]
    else:
        var = _variance_chain_nb(s[o + 1], s[o + 3], s[_ALPHA], count0, n, lpx, scale)
    for t in range(n):
        vol = math.sqrt(scale[t] * p.bars_per_year)
        scale[t] = p.target_vol / vol if vol > 0.0 else 0.0
    s[o], s[o + 1], s[o + 3] = px[n - 1], var, lpx[n - 1]


_symbol_moves_nb = jit(_symbol_moves_py, inline=True)


def risk_variance_state_py(s, j):
    """What symbol ``j``'s variance chain carries into the next bar: ``(smoothing, bars seen,
    variance, previous log close)``."""
    o = _HEADER + _PER_SYMBOL * j
    return s[_ALPHA], s[_COUNT], s[o + 1], s[o + 3]


risk_variance_state_nb = jit(risk_variance_state_py, inline=True)


# a relative margin far wider than the few ulps by which ``1 − eq / peak`` can round
_CLEAR_MARGIN = 1.0 + 1e-9


def _clear_of_limits_py(p, eq, peak, day_start):
    """Whether ``1 − eq / peak ≤ dd_soft`` and ``1 − eq / day_start < daily_loss`` surely hold,
    decided by multiplications with a margin (False for NaN): then the brake's divisions
    would find no drawdown to brake and no daily loss to halt on."""
    return (eq >= peak * ((1.0 - p.dd_soft) * _CLEAR_MARGIN)
            and eq >= day_start * ((1.0 - p.daily_loss) * _CLEAR_MARGIN))


_clear_of_limits_nb = jit(_clear_of_limits_py, inline=True)


def brake_by_drawdown_py(p, count, eq, peak, day, day_start, kill_left, halted_day):
    """0 (killed, halted, warming up) … 1 (no drawdown) multiplier for this bar, from the
    drawdown and the day's loss as the module docstring defines them; returns it with the
    peak, kill countdown and halted day after the bar."""
    dd = 1.0 - eq / peak
    if dd >= p.dd_hard and kill_left == 0.0:
        kill_left = float(p.cooldown)
    if 1.0 - eq / day_start >= p.daily_loss:
        halted_day = day
    if kill_left > 0.0:
        kill_left -= 1.0
        if kill_left == 0.0:
            peak = eq
        return 0.0, peak, kill_left, halted_day
    if halted_day == day or count < p.vol_halflife:
        return 0.0, peak, kill_left, halted_day
    if dd <= p.dd_soft:
        return 1.0, peak, kill_left, halted_day
    return max(0.0, (p.dd_hard - dd) / (p.dd_hard - p.dd_soft)), peak, kill_left, halted_day


brake_by_drawdown_nb = jit(brake_by_drawdown_py, inline=True)


def _brake_py(p, count, eq, peak, day, day_start, kill_left, halted_day):
    """:func:`brake_by_drawdown_py`, known without either division while the equity is clear
    of both the soft brake's and the daily loss's thresholds (:func:`_clear_of_limits_py`)."""
    if kill_left == 0.0 and _clear_of_limits_nb(p, eq, peak, day_start):
        return 0.0 if halted_day == day or count < p.vol_halflife else 1.0, peak, kill_left, halted_day
    return brake_by_drawdown_nb(p, count, eq, peak, day, day_start, kill_left, halted_day)


_brake_nb = jit(_brake_py, inline=True)


def _limit_py(s, p, brake, proposed, moves, t, out):
    """Scale each proposed target by its volatility scale (``moves[j, _MV_SCALE, t]``), times
    the brake, clipped to ``±max_position``; shrink all if the gross exceeds ``max_leverage``;
    remember the outputs."""
    gross = 0.0
    for j in range(proposed.shape[0]):
        x = proposed[j] * moves[j, _MV_SCALE, t] * brake if proposed[j] == proposed[j] else 0.0
        out[j] = clip_nb(x, -p.max_position, p.max_position)
        gross += abs(out[j])
    if gross > p.max_leverage:
        shrink = p.max_leverage / gross
        for j in range(proposed.shape[0]):
            out[j] *= shrink
    for j in range(proposed.shape[0]):
        s[_HEADER + _PER_SYMBOL * j + 2] = out[j]


_limit_nb = jit(_limit_py, inline=True)


def risk_run_py(s, p, time_ms, close, log_close, proposed, out, brakes, moves, variance, given):
    """Limit the proposed targets ``(n, m)`` into ``out`` bar by bar, the brakes in [0, 1] into
    ``brakes``, given the closes and their logs (computed by the caller, once for every member);
    ``moves`` ``(m, N_RISK_MOVES, n)`` is scratch. When ``given``, every symbol's EWMA variance
    after each bar is read from ``variance`` ``(m, n)``: a caller that runs the same chain
    (same smoothing, same state, see :func:`risk_variance_state_py`) computes it once for all.

    Per bar: on a new UTC day the day's starting equity is recorded; the PnL of the targets
    allowed last bar is compounded; the brake follows the drawdown; the targets are limited.
    Each symbol's returns and volatility come first, symbol by symbol; then the portfolio, bar
    by bar, with its equity, peak, day and kill switch in registers."""
    count, eq, peak, day, day_start = s[_COUNT], s[_EQ], s[_PEAK], s[_DAY], s[_DAY_START]
    kill_left, halted_day = s[_KILL_LEFT], s[_HALTED_DAY]
    m = close.shape[1]
    for j in range(m):
        _symbol_moves_nb(s, p, j, count, close, log_close, moves, variance, given)
    day_ms = int(day) * DAY_MS  # the current UTC day's first millisecond
    for t in range(close.shape[0]):
        if time_ms[t] < day_ms or time_ms[t] - day_ms >= DAY_MS:  # a new UTC day
            day, day_start = float(time_ms[t] // DAY_MS), eq
            day_ms = int(day) * DAY_MS
        if count != 0.0:
            pnl = 0.0
            for j in range(m):
                pnl += s[_HEADER + _PER_SYMBOL * j + 2] * moves[j, _MV_RETURN, t]
            eq = max(eq * (1.0 + pnl), 1e-12)
            peak = max(peak, eq)
        brakes[t], peak, kill_left, halted_day = _brake_nb(p, count, eq, peak, day, day_start, kill_left, halted_day)
        _limit_nb(s, p, brakes[t], proposed[t], moves, t, out[t])
        count += 1.0
    s[_COUNT], s[_EQ], s[_PEAK], s[_DAY], s[_DAY_START] = count, eq, peak, day, day_start
    s[_KILL_LEFT], s[_HALTED_DAY] = kill_left, halted_day


risk_run_nb = jit(risk_run_py, refcount=False)
risk_run_inline_nb = jit(risk_run_py, inline=True)


def risk_history(s: np.ndarray, p: RiskParams, time_ms: np.ndarray, close: np.ndarray, proposed: np.ndarray):
    """:func:`risk_run_py` over ``(n, m)`` closes with fresh outputs: ``(out, brakes)``."""
    out, brakes = np.zeros(close.shape), np.empty(close.shape[0])
    moves = np.empty((close.shape[1], N_RISK_MOVES, close.shape[0]))
    no_variance = moves[:, _MV_SCALE]  # not read: risk runs its own variance chain here
    risk_run_nb(s, p, time_ms, close, log_prices(close), proposed, out, brakes, moves, no_variance, False)
    return out, brakes


class Risk(Agent):
    """Limits on whatever it is given; alone, it runs a vol-targeted long position."""

    name = "risk"
    Params = RiskParams
    default_grid = {"target_vol": [0.2, 0.35, 0.5], "dd_hard": [0.2, 0.3]}

    def state_size(self, p: RiskParams) -> int:
        """Floats of single-asset state."""
        return risk_state_size(1)

    def _init_state(self, values: np.ndarray, p: RiskParams) -> None:
        risk_init(values, p)

    def _step(self, values, p, bar: Bar):
        out, brakes = risk_history(values, p, np.array([bar.time]), np.array([[bar.close]]), np.ones((1, 1)))
        return out[0, 0], brakes[0]

    def _run(self, values, p, arrays):
        time_ms, close = arrays[0], arrays[4].reshape(-1, 1)
        out, brakes = risk_history(values, p, time_ms, close, np.ones_like(close))
        return out[:, 0], brakes

    def warmup(self, params: RiskParams | None = None) -> int:
        """The volatility half-life in bars."""
        return int(math.ceil((params or RiskParams()).vol_halflife))

    def is_valid(self, p: RiskParams) -> bool:
        """Positive targets and limits, ``0 < dd_soft < dd_hard < 1``, ``max_position ≤ 1``."""
        return (p.target_vol > 0 and p.vol_halflife > 0 and p.bars_per_year > 0
                and 0 < p.max_position <= 1 and p.max_leverage > 0 and 0 < p.dd_soft < p.dd_hard < 1
                and 0 < p.daily_loss < 1 and p.cooldown >= 1)
