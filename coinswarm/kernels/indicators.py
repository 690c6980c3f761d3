"""Small numba indicators shared by strategies (plain-Python twins)."""

from __future__ import annotations

import math

import numpy as np

from coinswarm._jit import jit


def running_sum_py(a: np.ndarray) -> np.ndarray:
    """Sequential cumulative sum (same summation order as vectorbt's rolling mean)."""
    out = np.empty(a.shape[0])
    total = 0.0
    for i in range(a.shape[0]):
        total = total + a[i]
        out[i] = total
    return out


running_sum_nb = jit(running_sum_py)


def sma_at_py(csum: np.ndarray, t: int, window: int) -> float:
    """Simple moving average of the ``window`` values ending at ``t`` (NaN in warm-up)."""
    if t < window - 1:
        return np.nan
    if t < window:
        return csum[t] / window
    return (csum[t] - csum[t - window]) / window


sma_at_nb = jit(sma_at_py)


def sma_py(a: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over ``a`` (NaN for the first ``window - 1`` values)."""
    csum = running_sum_nb(a)
    out = np.empty(a.shape[0])
    for t in range(a.shape[0]):
        out[t] = sma_at_nb(csum, t, window)
    return out


sma_nb = jit(sma_py)


def log_each_py(flat: np.ndarray) -> np.ndarray:
    """The C library's natural log (``math.log``) of every value of a 1-D float64 array."""
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        x = flat[i]
        out[i] = math.log(x) if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    return out


log_each_nb = jit(log_each_py)


def log_prices(a: np.ndarray) -> np.ndarray:
    """Natural log of positive prices (any shape), bit-identical on every x86-64 CPU.

    ``np.log`` dispatches on the CPU: with AVX-512 numpy uses its own vectorised log, which
    differs from the C library's in the last bit for some inputs, so results built on it (and
    golden digests of them) moved between machines. The agents' step kernels take ``math.log``
    of one bar at a time; their vectorised callers use this, so a backtest and a live step agree
    on any machine. NaN stays NaN (a bar an aligned asset lacks).
    """
    values = np.ascontiguousarray(a, dtype=np.float64)
    return log_each_nb(values.reshape(-1)).reshape(values.shape)
