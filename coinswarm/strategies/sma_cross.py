"""``sma_cross``: long when SMA(fast) > SMA(slow), flat otherwise.

Besides the generic ``targets``, it ships a fused sweep kernel: signals,
simulation and metrics for every parameter combination in one compiled pass
over the bars, parallel over combinations, with memory O(bars + combos).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from coinswarm._jit import jit, prange
from coinswarm._lazy import lazy_module
from coinswarm.errors import ConfigError
from coinswarm.kernels.indicators import running_sum_nb, sma_at_nb, sma_nb
from coinswarm.kernels.metrics import (
    ACC_SIZE,
    N_METRICS,
    acc_bar_nb,
    acc_fill_nb,
    acc_init_nb,
    finalize_nb,
)
from coinswarm.kernels.portfolio import TINY_ORDER, execute_order_nb

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")


class SmaCrossParams(NamedTuple):
    """Window lengths in bars."""

    fast: int = 20
    slow: int = 100


def sma_cross_path_py(open_, close, csum, day_end, fast, slow, fee, slip, init_cash, next_open,
                      span, bar):
    """Metrics of one (fast, slow) combination; same arithmetic as the generic engine."""
    n = close.shape[0]
    pos = np.zeros(1)
    trade_cash = np.zeros(1)
    vp = np.empty(1)
    acc = np.empty(ACC_SIZE)
    acc_init_nb(acc, init_cash)
    cash = init_cash
    prev_signal = 0.0
    for t in range(n):
        fast_ma = sma_at_nb(csum, t, fast)
        slow_ma = sma_at_nb(csum, t, slow)
        signal = 1.0 if fast_ma > slow_ma else 0.0
        trade = (t > 0) if next_open else True
        if trade:
            px = open_[t] if next_open else close[t]
            tg = prev_signal if next_open else signal
            vp[0] = px
            equity = cash
            if pos[0] != 0.0:
                equity += pos[0] * px
            if equity > 0.0:
                delta = tg * equity / px - pos[0]
                if abs(delta * px) > TINY_ORDER * equity:
                    cash, qty, fill_px, paid = execute_order_nb(
                        cash, pos, trade_cash, vp, acc, 0, delta, px, fee, slip, 1.0, False
                    )
                    if qty != 0.0:
                        acc_fill_nb(acc, qty * fill_px, paid)
        prev_signal = signal
        eq = cash
        if pos[0] != 0.0:
            eq += pos[0] * close[t]
        acc_bar_nb(acc, t, eq, day_end[t], pos[0] != 0.0)
    return finalize_nb(acc, span, bar)


sma_cross_path_nb = jit(sma_cross_path_py)


def sma_cross_sweep_py(open_, close, day_end, fasts, slows, fee, slip, init_cash, next_open,
                       span, bar):
    """Metric matrix ``(n_combos, N_METRICS)`` for every (fast, slow) pair."""
    csum = running_sum_nb(close)
    out = np.empty((fasts.shape[0], N_METRICS))
    for c in prange(fasts.shape[0]):
        out[c] = sma_cross_path_nb(open_, close, csum, day_end, fasts[c], slows[c], fee, slip,
                                   init_cash, next_open, span, bar)
    return out


sma_cross_sweep_nb = jit(sma_cross_sweep_py, parallel=True)


class SmaCross:
    """Moving-average crossover, long/flat (the benchmark strategy)."""

    name = "sma_cross"
    Params = SmaCrossParams
    default_grid = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 211, 10))}

    def warmup(self, params: SmaCrossParams) -> int:
        """The slow window."""
        return int(params.slow)

    def is_valid(self, params: SmaCrossParams) -> bool:
        """Windows positive and fast < slow."""
        return 1 <= params.fast < params.slow

    def invalid_reason(self, params: SmaCrossParams) -> str | None:
        """Why ``params`` is invalid (``None`` when valid)."""
        if params.fast < 1:
            return f"fast={params.fast} < 1 (windows are at least one bar)"
        if params.fast >= params.slow:
            return f"fast={params.fast} ≥ slow={params.slow} (need 1 ≤ fast < slow)"
        return None

    def targets(self, prices: pd.DataFrame, params: SmaCrossParams) -> pd.Series:
        """1.0 while SMA(fast) > SMA(slow) at the bar's close, else 0.0."""
        if not isinstance(prices, pd.DataFrame):
            raise ConfigError("sma_cross trades one asset; pass one OHLCV DataFrame")
        close = prices["close"].to_numpy(np.float64)
        fast, slow = sma_nb(close, int(params.fast)), sma_nb(close, int(params.slow))
        return pd.Series(np.where(fast > slow, 1.0, 0.0), index=prices.index, name="target")

    def sweep_metrics(self, prices, combos, *, fee, slip, init_cash, next_open, span, bar,
                      day_end) -> np.ndarray | None:
        """Fused kernel over ``combos``; ``None`` when the input needs the generic path."""
        if not isinstance(prices, pd.DataFrame):
            return None
        open_ = prices["open"].to_numpy(np.float64)
        close = prices["close"].to_numpy(np.float64)
        if not (np.isfinite(open_).all() and np.isfinite(close).all()):
            return None
        fasts = np.array([p.fast for p in combos], dtype=np.int64)
        slows = np.array([p.slow for p in combos], dtype=np.int64)
        return sma_cross_sweep_nb(open_, close, day_end, fasts, slows, fee, slip, init_cash,
                                  next_open, span, bar)
