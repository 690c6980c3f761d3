"""O(1)-per-bar building blocks kept inside a flat ``float64`` state array.

Every helper takes the state array ``s`` and an offset ``o`` into it, so one agent's
whole state is a single contiguous array the live runner can persist and restore.
Each is written once in plain Python (``*_py``) and compiled with :func:`coinswarm._jit.jit`.

Layouts
-------
Rolling window (``roll_*``): ``[count, head, sum, sumsq, buf[w]]``; the sums are
recomputed exactly from the buffer once per lap so add/subtract drift cannot build up.
A look-back ring (the trend agent's) has the same layout and keeps no sums.
Pair window (``pair_*``): ``[count, head, sx, sy, sxx, sxy, syy, bufx[w], bufy[w]]``.
P² quantile (``p2_*``, Jain & Chlamtac 1985): 5 marker heights, 5 positions, 5
desired positions and a count — an expanding-window quantile in O(1) memory (all zeros is
an empty estimator).
Hysteresis (``hyst_*``): ``[label, candidate, streak]``.
"""

from __future__ import annotations

import math

import numpy as np

from coinswarm._jit import jit

ROLL_HEADER = 4
PAIR_HEADER = 7
P2_SIZE = 16
HYST_SIZE = 3


def roll_size_py(window):
    """State floats for a rolling window of ``window`` values."""
    return ROLL_HEADER + window


roll_size = jit(roll_size_py, inline=True)


def pair_size_py(window):
    """State floats for a rolling window of ``window`` (x, y) pairs."""
    return PAIR_HEADER + 2 * window


pair_size = jit(pair_size_py, inline=True)


def roll_step_py(s, buf, w, count, head, total, squares, x):
    """:func:`roll_push_py` with the window's header in registers: push ``x`` into the buffer
    ``s[buf:buf + w]`` given ``(count, head, total, squares)``; returns them after the push."""
    if count >= w:
        old = s[buf + head]
        total -= old
        squares -= old * old
    else:
        count += 1.0
    s[buf + head] = x
    total += x
    squares += x * x
    head += 1
    if head == w:
        head = 0
        if count >= w:
            total, squares = 0.0, 0.0
            for i in range(w):
                v = s[buf + i]
                total += v
                squares += v * v
    return count, head, total, squares


roll_step_nb = jit(roll_step_py, inline=True)


def roll_push_py(s, o, w, x):
    """Append ``x`` to the window at ``s[o:]`` (evicting the oldest value when full)."""
    count, head, total, squares = roll_step_nb(s, o + ROLL_HEADER, w, s[o], int(s[o + 1]), s[o + 2], s[o + 3], x)
    s[o], s[o + 1], s[o + 2], s[o + 3] = count, float(head), total, squares


roll_push_nb = jit(roll_push_py, inline=True)


def mean_std_py(n, total, squares):
    """(mean, population std) of ``n`` values from their sum and sum of squares (0, 0 when
    ``n ≤ 0``)."""
    if n <= 0.0:
        return 0.0, 0.0
    mean = total / n
    var = squares / n - mean * mean
    return mean, math.sqrt(var) if var > 0.0 else 0.0


mean_std_nb = jit(mean_std_py, inline=True)


def roll_mean_std_py(s, o):
    """(mean, population std) of the values in the window (0, 0 when empty)."""
    return mean_std_nb(s[o], s[o + 2], s[o + 3])


roll_mean_std_nb = jit(roll_mean_std_py, inline=True)


def tstat_py(n, total, squares):
    """t-statistic of the mean of ``n`` values (mean / (std / sqrt(n))) from their sum and sum
    of squares; 0 when undefined (fewer than 2 values, or no spread)."""
    mean, std = mean_std_nb(n, total, squares)
    if n < 2.0 or std <= 0.0:
        return 0.0
    return mean / (std / math.sqrt(n))


tstat_nb = jit(tstat_py, inline=True)


def roll_tstat_py(s, o):
    """t-statistic of the window's mean (:func:`tstat_py`)."""
    return tstat_nb(s[o], s[o + 2], s[o + 3])


roll_tstat_nb = jit(roll_tstat_py, inline=True)


def pair_push_py(s, o, w, x, y):
    """Append the pair ``(x, y)`` to the pair window at ``s[o:]``."""
    n = s[o]
    head = int(s[o + 1])
    bx = o + PAIR_HEADER
    by = bx + w
    if n >= w:
        ox, oy = s[bx + head], s[by + head]
        s[o + 2] -= ox
        s[o + 3] -= oy
        s[o + 4] -= ox * ox
        s[o + 5] -= ox * oy
        s[o + 6] -= oy * oy
    else:
        s[o] = n + 1.0
    s[bx + head], s[by + head] = x, y
    s[o + 2] += x
    s[o + 3] += y
    s[o + 4] += x * x
    s[o + 5] += x * y
    s[o + 6] += y * y
    head += 1
    if head == w:
        head = 0
        if s[o] >= w:
            for j in range(2, PAIR_HEADER):
                s[o + j] = 0.0
            for k in range(w):
                vx, vy = s[bx + k], s[by + k]
                s[o + 2] += vx
                s[o + 3] += vy
                s[o + 4] += vx * vx
                s[o + 5] += vx * vy
                s[o + 6] += vy * vy
    s[o + 1] = head


pair_push_nb = jit(pair_push_py, inline=True)


def pair_regression_py(s, o):
    """OLS of y on x over the window: (alpha, beta, residual std); zeros when degenerate."""
    n = s[o]
    if n < 3.0:
        return 0.0, 0.0, 0.0
    mx, my = s[o + 2] / n, s[o + 3] / n
    vx = s[o + 4] / n - mx * mx
    vy = s[o + 6] / n - my * my
    cxy = s[o + 5] / n - mx * my
    if vx <= 0.0:
        return 0.0, 0.0, 0.0
    beta = cxy / vx
    resid_var = vy - beta * cxy
    return my - beta * mx, beta, math.sqrt(resid_var) if resid_var > 0.0 else 0.0


pair_regression_nb = jit(pair_regression_py, inline=True)


def _p2_seed_py(s, o, p, x, count):
    """One of the first five observations: insertion-sorted into the markers; at the fifth
    the positions and desired positions are set."""
    k = count
    while k > 0 and s[o + k - 1] > x:
        s[o + k] = s[o + k - 1]
        k -= 1
    s[o + k] = x
    s[o + 15] = count + 1.0
    if count == 4:
        for i in range(5):
            s[o + 5 + i] = float(i)
        s[o + 10], s[o + 11], s[o + 12] = 0.0, 2.0 * p, 4.0 * p
        s[o + 13], s[o + 14] = 2.0 + 2.0 * p, 4.0


_p2_seed_nb = jit(_p2_seed_py, inline=True)


def _p2_place_py(s, o, x):
    """Widen the outer markers to ``x`` if it falls outside them and add 1 to the position of
    every marker above ``x``'s cell. With sorted markers (P² keeps them so) that is one
    comparison per marker, without a branch (the cell's search mispredicts often), and a NaN
    lands in cell 0 either way; unsorted markers (NaN among them) are searched."""
    q0, q1, q2, q3, q4 = s[o], s[o + 1], s[o + 2], s[o + 3], s[o + 4]
    if q0 <= q1 <= q2 <= q3 <= q4:
        s[o] = x if x < q0 else q0
        s[o + 4] = x if x >= q4 else q4
        s[o + 6] += 0.0 if x >= q1 else 1.0
        s[o + 7] += 0.0 if x >= q2 else 1.0
        s[o + 8] += 0.0 if x >= q3 else 1.0
        s[o + 9] += 1.0
        return
    if x < q0:
        s[o] = x
        cell = 0
    elif x >= q4:
        s[o + 4] = x
        cell = 3
    else:
        cell = 0
        while cell < 3 and x >= s[o + cell + 1]:
            cell += 1
    for i in range(cell + 1, 5):
        s[o + 5 + i] += 1.0


_p2_place_nb = jit(_p2_place_py, inline=True)


def p2_push_py(s, o, p, x):
    """Feed ``x`` to the P² estimator of quantile ``p`` stored at ``s[o:]``."""
    count = int(s[o + 15])
    if count < 5:
        _p2_seed_nb(s, o, p, x, count)
        return
    _p2_place_nb(s, o, x)
    s[o + 11] += p / 2.0
    s[o + 12] += p
    s[o + 13] += (1.0 + p) / 2.0
    s[o + 14] += 1.0
    for i in range(1, 4):
        _p2_adjust_nb(s, o, i)
    s[o + 15] = count + 1.0


def p2_adjust_py(s, o, i):
    """Move marker ``i`` one step toward its desired position (parabolic or linear)."""
    q, n = o, o + 5
    d = s[o + 10 + i] - s[n + i]
    if not ((d >= 1.0 and s[n + i + 1] - s[n + i] > 1.0) or (d <= -1.0 and s[n + i - 1] - s[n + i] < -1.0)):
        return
    step = 1.0 if d > 0.0 else -1.0
    n_lo, n_mid, n_hi = s[n + i - 1], s[n + i], s[n + i + 1]
    q_lo, q_mid, q_hi = s[q + i - 1], s[q + i], s[q + i + 1]
    candidate = q_mid + step / (n_hi - n_lo) * (
        (n_mid - n_lo + step) * (q_hi - q_mid) / (n_hi - n_mid)
        + (n_hi - n_mid - step) * (q_mid - q_lo) / (n_mid - n_lo)
    )
    if not (q_lo < candidate < q_hi):
        j = i + 1 if step > 0.0 else i - 1
        candidate = q_mid + step * (s[q + j] - q_mid) / (s[n + j] - n_mid)
    s[q + i] = candidate
    s[n + i] = n_mid + step


_p2_adjust_nb = jit(p2_adjust_py, inline=True)
p2_push_nb = jit(p2_push_py, inline=True)


def p2_value_py(s, o):
    """Current quantile estimate (NaN before five observations)."""
    if s[o + 15] < 5.0:
        return np.nan
    return s[o + 2]


p2_value_nb = jit(p2_value_py, inline=True)


def hyst_step_py(label, candidate, streak, raw, confirm):
    """Hysteresis without a branch: ``(label, candidate, streak)`` after proposal ``raw``. A new
    label is adopted once it has been proposed ``confirm`` bars in a row (``confirm ≥ 1``); the
    candidate is always the last proposal, the streak how often in a row it was made."""
    streak = 0.0 if raw == label else streak + 1.0 if raw == candidate else 1.0
    adopt = streak >= confirm
    return (raw if adopt else label), raw, (0.0 if adopt else streak)


hyst_step_nb = jit(hyst_step_py, inline=True)


_CS_K = 3.0 - 2.0 * math.sqrt(2.0)
_CS_BETA = (math.sqrt(2.0) - 1.0) / _CS_K
_CS_GAMMA = 1.0 / math.sqrt(_CS_K)


def corwin_schultz_log_py(lh1, ll1, lh2, ll2):
    """Corwin–Schultz (2012) spread from two consecutive bars' log highs and log lows (≥ 0).

    ``α = (√(2β) − √β) / (3 − 2√2) − √(γ / (3 − 2√2))`` with ``β`` the sum of the two
    squared log ranges and ``γ`` the squared log range of the two bars together; in log
    space that is one square root and one exponential.
    """
    a1 = lh1 - ll1
    a2 = lh2 - ll2
    g = max(lh1, lh2) - min(ll1, ll2)
    alpha = _CS_BETA * math.sqrt(a1 * a1 + a2 * a2) - _CS_GAMMA * g
    # no branch (a loop of spreads compiles to vector code): α ≤ 0 gives e = 1, exactly 0; past
    # α = 44 the quotient is exactly 2 (and beyond 709, e^α would overflow to NaN)
    alpha = 0.0 if alpha <= 0.0 else EXP_FAST_LIMIT if alpha > EXP_FAST_LIMIT else alpha
    e = exp_core_nb(alpha)
    return 2.0 * (e - 1.0) / (1.0 + e)


corwin_schultz_log_nb = jit(corwin_schultz_log_py, inline=True)


def ewma_py(prev, x, alpha, started):
    """Exponentially weighted mean: the first value seeds it."""
    if not started:
        return x
    return prev + alpha * (x - prev)


ewma_nb = jit(ewma_py, inline=True)


def halflife_alpha_py(halflife):
    """Smoothing factor of an EWMA with the given half-life in bars."""
    return 1.0 - 0.5 ** (1.0 / halflife)



# exp without a libm call: k = round(32 y / ln 2) = 32 m + j, y = k ln2 / 32 + r with |r| ≤ ln2 / 64,
# e^y = 2^m · 2^(j/32) · e^r; ln2 / 32 split in two so that k · hi is exact (Cody–Waite)
_EXP_INV_STEP = 32.0 / math.log(2.0)
_EXP_STEP_HI = 0.02166084938653512  # ln2 / 32 with the low 21 mantissa bits cleared
_EXP_STEP_LO = 5.9631716539705866e-12  # ln2 / 32 − hi
_ROUNDING_SHIFT = 6755399441055744.0  # 1.5 · 2^52: adding and subtracting it rounds to an integer
EXP_FAST_LIMIT = 44.0  # |y| beyond this goes to math.exp (2^m is tabulated for |m| ≤ 64)
_EXP_FRACTION = np.array([2.0 ** (j / 32.0) for j in range(32)])
_EXP_POW2 = np.array([2.0 ** m for m in range(-64, 65)])


def exp_py(y):
    """``e**y``: inline arithmetic for ``|y| ≤ 44`` (a table and a degree-6 polynomial, within
    1 ulp of ``math.exp``), ``math.exp`` beyond (and for NaN). A libm call costs a per-bar
    kernel more than the arithmetic, and cannot be overlapped with the code around it."""
    if not -EXP_FAST_LIMIT <= y <= EXP_FAST_LIMIT:
        return math.exp(y)
    return exp_core_nb(y)


def exp_core_py(y):
    """:func:`exp_py` for ``|y| ≤ 44`` only, without a branch (so loops of it vectorize).

    The table index is masked into the table: ``|y| ≤ 44`` never needs the mask, but a NaN
    (whose integer conversion is undefined in compiled code) then reads a table entry and
    returns NaN instead of reading outside the table (it crashed the process before). The
    plain-Python twin refuses NaN (``int(nan)`` raises); live inputs are validated before
    they get here (:func:`coinswarm.agents.base.check_bar`)."""
    k = (y * _EXP_INV_STEP + _ROUNDING_SHIFT) - _ROUNDING_SHIFT
    r = (y - k * _EXP_STEP_HI) - k * _EXP_STEP_LO
    r2 = r * r  # Estrin's scheme: the same polynomial as Horner's with a shorter dependency chain
    expm1_r = (r + r2 * 0.5) + r2 * r * ((1.0 / 6.0 + r * (1.0 / 24.0)) + r2 * (1.0 / 120.0 + r * (1.0 / 720.0)))
    ki = int(k)
    scale = _EXP_POW2[((ki >> 5) + 64) & 127] * _EXP_FRACTION[ki & 31]
    return scale + scale * expm1_r


exp_core_nb = jit(exp_core_py, inline=True)
exp_nb = jit(exp_py, inline=True)


def tanh_py(x):
    """``tanh(x)`` as ``(1 − e) / (1 + e)`` with ``e = exp(−2|x|)`` from :func:`exp_core_py` (no libm
    call, no branch); within 4e-16 of libm's ``tanh`` absolutely, exactly ±1 in the tails."""
    a = abs(x)
    a = 20.0 if a > 20.0 else a  # beyond, e < 5e-18 and the quotient rounds to exactly 1
    e = exp_core_nb(-2.0 * a)  # no branch: a loop of tanh compiles to vector code
    t = (1.0 - e) / (1.0 + e)
    return t if x >= 0.0 else -t


tanh_nb = jit(tanh_py, inline=True)


def clip_py(x, lo, hi):
    """``x`` limited to ``[lo, hi]``."""
    return lo if x < lo else hi if x > hi else x


clip_nb = jit(clip_py, inline=True)
