"""PnL attribution kernels: one asset's exact per-bar PnL and its split by agent and regime.

:func:`coinswarm.backtest.attribution.attribute` calls them once per symbol; they do in one
pass what the earlier numpy expressions did in twenty, with the same operations in the same
order (so the same bits): each bin is a running sum in bar order, as ``np.bincount`` adds.
Callers allocate every array (no allocation here).
"""

from __future__ import annotations

import numpy as np

from coinswarm._jit import jit

FLOAT_MAX = np.finfo(np.float64).max


def _finite_py(x: float) -> float:
    """``np.nan_to_num(x)``: NaN → 0, ±inf → ± the largest finite float."""
    if np.isnan(x):
        return 0.0
    if x == np.inf:
        return FLOAT_MAX
    if x == -np.inf:
        return -FLOAT_MAX
    return x


_finite_nb = jit(_finite_py, inline=True, refcount=False)


def realised_bars_py(open_, close, pos, pnl):
    """Per-bar PnL of one asset before its fills' fees and slippage, written to ``pnl``.

    Bar t (t ≥ 1) earns ``pos[t-1] · (open[t] − close[t-1]) + pos[t] · (close[t] − open[t])``;
    a bar without an open (NaN: the asset has no candle there) earns
    ``pos[t-1] · (close[t] − close[t-1])``. Each part is passed through ``np.nan_to_num``;
    ``pnl[0]`` is 0. ``close`` is forward-filled by the caller.
    """
    if close.shape[0] == 0:
        return
    pnl[0] = 0.0
    for t in range(1, close.shape[0]):
        prev_close = close[t - 1]
        prev_pos = pos[t - 1]
        if np.isfinite(open_[t]):
            gap = prev_pos * (open_[t] - prev_close)
            body = pos[t] * (close[t] - open_[t])
        else:
            gap = 0.0
            body = prev_pos * (close[t] - prev_close)
        pnl[t] = _finite_nb(gap) + _finite_nb(body)


realised_bars_nb = jit(realised_bars_py, refcount=False)


def attribution_bins_py(equity, close, shares, regime, actual, bins):
    """Add one asset's PnL by agent (rows ``0..A-1``) and its residual (row ``A``) per regime cell.

    Agent ``a`` is credited at bar t with its paper PnL ``shares[a, t] · equity[t] · r[t+1]``
    (``r`` the close-to-close return, NaN → 0) in the cell ``regime[t]``; the residual
    ``actual[t] − Σ_a paper[t-1]`` goes to the cell in force when it was decided
    (``regime[t-1]``; bar 0: ``actual[0]`` in ``regime[0]``). ``bins`` is ``(A + 1, cells)``,
    zeroed by the caller.
    """
    n_agents = shares.shape[0]
    n = close.shape[0]
    prev_total = 0.0
    for t in range(n):
        ret = close[t + 1] / close[t] - 1.0 if t + 1 < n else np.nan
        if np.isnan(ret):
            ret = 0.0
        cell = regime[t]
        total = 0.0
        for a in range(n_agents):
            share = shares[a, t]
            if np.isnan(share):
                share = 0.0
            paper = share * equity[t] * ret
            total += paper
            bins[a, cell] += paper
        if t == 0:
            bins[n_agents, regime[0]] += actual[0]
        else:
            bins[n_agents, regime[t - 1]] += actual[t] - prev_total
        prev_total = total


attribution_bins_nb = jit(attribution_bins_py, refcount=False)
