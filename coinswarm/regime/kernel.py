"""The regime detector's compiled passes over a run of bars of one symbol.

A call first takes every bar's log return and Corwin–Schultz spread (:func:`bar_moves_py`: no
bar depends on another, so that loop is vector code). :func:`regime_chunk_py` then advances
the detector over up to ``CHUNK`` bars in short loops: the spread EWMA and the sums of the two
rolling windows (the bar-to-bar chains, held in registers), the windows' statistics (vector
code), the labels each bar proposes (vector code between two bars that feed the quantile
estimators) and their hysteresis. Every value is computed with exactly the arithmetic of one
bar at a time, in the same order, so a run split anywhere gives bit-identical labels; the
live path is a run of one bar.

Per-bar results go to a scratch array ``rf`` of shape ``(m, N_RF, CHUNK)`` (one row of bars
per column ``RF_*``), so each pass reads and writes contiguous memory."""

from __future__ import annotations

from coinswarm._jit import jit
from coinswarm.kernels.steps import (
    HYST_SIZE,
    P2_SIZE,
    ROLL_HEADER,
    corwin_schultz_log_nb,
    ewma_nb,
    hyst_step_nb,
    mean_std_nb,
    p2_push_nb,
    p2_value_nb,
    roll_size,
    roll_step_nb,
    tstat_nb,
)

CHUNK = 256  # bars per run of passes
# state layout: scalars, three hysteresis triples, four P² estimators, two rolling windows
_COUNT, _PREV_H, _PREV_L, _PREV_C, _SPREAD, ALPHA, RAW_SPREAD = 0, 1, 2, 3, 4, 5, 6
HYST_VOL, HYST_TREND, HYST_LIQ = 7, 7 + HYST_SIZE, 7 + 2 * HYST_SIZE
P2_VOL_LO = 7 + 3 * HYST_SIZE
P2_VOL_HI = P2_VOL_LO + P2_SIZE
P2_SPR_LO = P2_VOL_HI + P2_SIZE
P2_SPR_HI = P2_SPR_LO + P2_SIZE
ROLL_VOL = P2_SPR_HI + P2_SIZE
_P2_COUNT = 15  # where a P² estimator keeps its number of observations

# rows of ``moves[j]`` (symbol j's bars of one call, contiguous): the log high, low and close,
# the log return and the raw spread
MOVE_LH, MOVE_LL, MOVE_LC, MOVE_RET, MOVE_SPREAD = 0, 1, 2, 3, 4
N_MOVES = 5
# columns of the per-bar scratch ``rf[j]``: whether the bar has a return and spread (not the
# first bar); the spread EWMA; each window's count, sum and sum of squares; realized volatility
# and trend t-statistic (0 until their window is full); the three labels
RF_HAS_SPREAD, RF_SPREAD = 0, 1
RF_VOL_N, RF_VOL_SUM, RF_VOL_SQ, RF_TREND_N, RF_TREND_SUM, RF_TREND_SQ = 2, 3, 4, 5, 6, 7
RF_RV, RF_TSTAT, RF_VOL, RF_TREND, RF_LIQ = 8, 9, 10, 11, 12
N_RF = 13


def trend_offset_py(p):
    """Where the ``trend_window`` of log returns starts in the detector's state."""
    return ROLL_VOL + roll_size(p.vol_window)


trend_offset_nb = jit(trend_offset_py, inline=True)


def bar_moves_py(s, j, lh, ll, lc, moves):
    """Symbol ``j``'s log highs, lows and closes from ``(bars, symbols)`` into contiguous rows
    of ``moves[j]`` (rows ``MOVE_*``), then every bar's log return and raw Corwin–Schultz
    spread; the first bar against the detector's previous bar (0 and the last spread on the
    very first bar), which then becomes the call's last bar. No bar depends on another, so the
    loops over the whole call are vector code (a per-symbol row is what makes them so)."""
    out, n = moves[j], lc.shape[0]
    if n == 0:
        return
    h, low, c = out[MOVE_LH], out[MOVE_LL], out[MOVE_LC]
    for t in range(n):
        h[t], low[t], c[t] = lh[t, j], ll[t, j], lc[t, j]
    if s[_COUNT] > 0.0:
        out[MOVE_RET, 0] = c[0] - s[_PREV_C]
        out[MOVE_SPREAD, 0] = corwin_schultz_log_nb(s[_PREV_H], s[_PREV_L], h[0], low[0])
    else:
        out[MOVE_RET, 0], out[MOVE_SPREAD, 0] = 0.0, s[RAW_SPREAD]
    for t in range(1, n):
        out[MOVE_RET, t] = c[t] - c[t - 1]
        out[MOVE_SPREAD, t] = corwin_schultz_log_nb(h[t - 1], low[t - 1], h[t], low[t])
    s[_PREV_H], s[_PREV_L], s[_PREV_C] = h[n - 1], low[n - 1], c[n - 1]


bar_moves_nb = jit(bar_moves_py, inline=True)


def spread_and_windows_py(s, p, moves_j, t0, n, out):
    """Bars ``t0 .. t0+n-1``: the spread EWMA and the two rolling windows of log returns (their
    count, sum and sum of squares after each bar) into ``out``; advances the bar count. The
    detector's three bar-to-bar chains, held in registers and run side by side in one loop.
    Returns the bar count before the run (0: its first bar has no return and no spread)."""
    count0, spread, alpha = s[_COUNT], s[_SPREAD], s[ALPHA]
    o_vol, o_trend = ROLL_VOL, trend_offset_nb(p)
    vol_n, vol_head, vol_sum, vol_sq = s[o_vol], int(s[o_vol + 1]), s[o_vol + 2], s[o_vol + 3]
    trend_n, trend_head, trend_sum, trend_sq = s[o_trend], int(s[o_trend + 1]), s[o_trend + 2], s[o_trend + 3]
    for k in range(n):
        seen = count0 + k
        if seen > 0.0:
            spread = ewma_nb(spread, moves_j[MOVE_SPREAD, t0 + k], alpha, seen > 1.0)
            r = moves_j[MOVE_RET, t0 + k]
            vol_n, vol_head, vol_sum, vol_sq = roll_step_nb(s, o_vol + ROLL_HEADER, p.vol_window, vol_n, vol_head,
                                                            vol_sum, vol_sq, r)
            trend_n, trend_head, trend_sum, trend_sq = roll_step_nb(s, o_trend + ROLL_HEADER, p.trend_window, trend_n,
                                                                    trend_head, trend_sum, trend_sq, r)
        out[RF_SPREAD, k], out[RF_HAS_SPREAD, k] = spread, seen > 0.0
        out[RF_VOL_N, k], out[RF_VOL_SUM, k], out[RF_VOL_SQ, k] = vol_n, vol_sum, vol_sq
        out[RF_TREND_N, k], out[RF_TREND_SUM, k], out[RF_TREND_SQ, k] = trend_n, trend_sum, trend_sq
    s[_SPREAD], s[RAW_SPREAD], s[_COUNT] = spread, moves_j[MOVE_SPREAD, t0 + n - 1], count0 + n
    s[o_vol], s[o_vol + 1], s[o_vol + 2], s[o_vol + 3] = vol_n, float(vol_head), vol_sum, vol_sq
    s[o_trend], s[o_trend + 1], s[o_trend + 2], s[o_trend + 3] = trend_n, float(trend_head), trend_sum, trend_sq
    return count0


spread_and_windows_nb = jit(spread_and_windows_py, inline=True)


def window_stats_py(out, p, n):
    """Realized volatility (population std of the ``vol_window`` returns) and the trend
    t-statistic (mean / (std / √n) over ``trend_window``) from the windows' sums, 0 until a
    window is full. No bar depends on another: vector code."""
    for k in range(n):
        rv = mean_std_nb(out[RF_VOL_N, k], out[RF_VOL_SUM, k], out[RF_VOL_SQ, k])[1]
        out[RF_RV, k] = rv if out[RF_VOL_N, k] >= p.vol_window else 0.0
        tstat = tstat_nb(out[RF_TREND_N, k], out[RF_TREND_SUM, k], out[RF_TREND_SQ, k])
        out[RF_TSTAT, k] = tstat if out[RF_TREND_N, k] >= p.trend_window else 0.0


window_stats_nb = jit(window_stats_py, inline=True)


def quantile_code_py(x, lo, hi, ready):
    """0 below the low quantile, 2 above the high one, else (or not ``ready``) 1."""
    return 0.0 if ready and x < lo else 2.0 if ready and x > hi else 1.0


quantile_code_nb = jit(quantile_code_py, inline=True)


def raw_labels_py(s, p, out, k0, k1):
    """The labels bars ``k0 .. k1-1`` propose (before hysteresis) into ``out``, against the
    quantile estimators as they stand (none of these bars feeds them before the last)."""
    ready_spr = s[P2_SPR_LO + _P2_COUNT] >= p.min_obs
    lo_spr, hi_spr = p2_value_nb(s, P2_SPR_LO), p2_value_nb(s, P2_SPR_HI)
    ready_vol = s[P2_VOL_LO + _P2_COUNT] >= p.min_obs
    lo_vol, hi_vol = p2_value_nb(s, P2_VOL_LO), p2_value_nb(s, P2_VOL_HI)
    for k in range(k0, k1):
        out[RF_LIQ, k] = quantile_code_nb(out[RF_SPREAD, k], lo_spr, hi_spr, ready_spr)
        vol = quantile_code_nb(out[RF_RV, k], lo_vol, hi_vol, ready_vol)
        out[RF_VOL, k] = vol if out[RF_VOL_N, k] >= p.vol_window else 1.0
        tstat = out[RF_TSTAT, k]
        out[RF_TREND, k] = 2.0 if tstat > p.trend_t else 0.0 if tstat < -p.trend_t else 1.0


raw_labels_nb = jit(raw_labels_py, inline=True)


def learn_quantiles_py(s, p, out, k):
    """Feed bar ``k``'s spread EWMA (and realized volatility, once its window is full) to the
    quantile estimators."""
    p2_push_nb(s, P2_SPR_LO, p.low_quantile, out[RF_SPREAD, k])
    p2_push_nb(s, P2_SPR_HI, p.high_quantile, out[RF_SPREAD, k])
    if out[RF_VOL_N, k] >= p.vol_window:
        p2_push_nb(s, P2_VOL_LO, p.low_quantile, out[RF_RV, k])
        p2_push_nb(s, P2_VOL_HI, p.high_quantile, out[RF_RV, k])


learn_quantiles_nb = jit(learn_quantiles_py, inline=True)


def hysteresis_py(s, p, out, n):
    """Each bar's proposed labels through hysteresis (:func:`hyst_step_py`), in place."""
    vol, vol_cand, vol_streak = s[HYST_VOL], s[HYST_VOL + 1], s[HYST_VOL + 2]
    trend, trend_cand, trend_streak = s[HYST_TREND], s[HYST_TREND + 1], s[HYST_TREND + 2]
    liq, liq_cand, liq_streak = s[HYST_LIQ], s[HYST_LIQ + 1], s[HYST_LIQ + 2]
    for k in range(n):
        vol, vol_cand, vol_streak = hyst_step_nb(vol, vol_cand, vol_streak, out[RF_VOL, k], p.confirm)
        trend, trend_cand, trend_streak = hyst_step_nb(trend, trend_cand, trend_streak, out[RF_TREND, k], p.confirm)
        liq, liq_cand, liq_streak = hyst_step_nb(liq, liq_cand, liq_streak, out[RF_LIQ, k], p.confirm)
        out[RF_VOL, k], out[RF_TREND, k], out[RF_LIQ, k] = vol, trend, liq
    s[HYST_VOL], s[HYST_VOL + 1], s[HYST_VOL + 2] = vol, vol_cand, vol_streak
    s[HYST_TREND], s[HYST_TREND + 1], s[HYST_TREND + 2] = trend, trend_cand, trend_streak
    s[HYST_LIQ], s[HYST_LIQ + 1], s[HYST_LIQ + 2] = liq, liq_cand, liq_streak


hysteresis_nb = jit(hysteresis_py, inline=True)


def labels_py(s, p, out, count0, n):
    """Each bar's volatility, trend and liquidity labels into ``out``. The quantile estimators
    learn from every ``quantile_every``-th bar after the bar is labelled, so the bars between
    two such bars are labelled against the same quantiles, in one vector loop."""
    k = 0
    if count0 == 0.0:  # the very first bar: no return yet, every label stays where it starts
        out[RF_VOL, 0], out[RF_TREND, 0], out[RF_LIQ, 0] = 1.0, 1.0, 1.0
        k = 1
    every = p.quantile_every
    while k < n:
        learn_at = k + (every - int(count0 + k) % every) % every
        last = min(n - 1, learn_at)
        raw_labels_nb(s, p, out, k, last + 1)
        if learn_at < n:
            learn_quantiles_nb(s, p, out, learn_at)
        k = last + 1
    hysteresis_nb(s, p, out, n)


labels_nb = jit(labels_py, inline=True)


def regime_chunk_py(s, p, j, t0, n, moves, rf):
    """Advance symbol ``j``'s detector (state ``s``) over bars ``t0 .. t0+n-1`` (``n ≤ CHUNK``)
    of a call whose returns and spreads are in ``moves[j]`` (:func:`bar_moves_py`); per-bar
    results in ``rf[j]`` (columns ``RF_*``)."""
    out = rf[j]
    count0 = spread_and_windows_nb(s, p, moves[j], t0, n, out)
    window_stats_nb(out, p, n)
    labels_nb(s, p, out, count0, n)


regime_chunk_nb = jit(regime_chunk_py, inline=True)


def spread_state_py(s):
    """What the spread EWMA carries into the next bar: ``(smoothing, bars with a spread, EWMA)``
    (every bar but the very first has a spread)."""
    return s[ALPHA], max(s[_COUNT] - 1.0, 0.0), s[_SPREAD]


spread_state_nb = jit(spread_state_py, inline=True)


def trend_window_full_py(s, p):
    """Whether the detector's ``trend_window`` of log returns is full (its t-statistic defined)."""
    return s[trend_offset_nb(p)] >= p.trend_window


trend_window_full_nb = jit(trend_window_full_py, inline=True)
