"""Small numba indicators shared by strategies (plain-Python twins)."""

from __future__ import annotations

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
