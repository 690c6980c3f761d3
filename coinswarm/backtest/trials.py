"""Per-trial return matrices and window metrics used by walk-forward statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coinswarm.backtest.engine import (
    Result,
    as_price_dict,
    day_end_mask,
    financing,
    financing_days,
    funding_matrix,
    metrics_dict,
    target_matrix,
)
from coinswarm.costs import Costs
from coinswarm.kernels.metrics import ACC_SIZE, acc_bar_nb, acc_init_nb
from coinswarm.kernels.portfolio import simulate_nb
from coinswarm.strategies.base import engine_limits


def daily_returns_matrix(strategy, prices, combos, *, costs: Costs, init_cash: float,
                         execution: str) -> np.ndarray:
    """Daily returns ``(days, len(combos))`` of every combination over the whole data."""
    frames = as_price_dict(prices)
    symbols = list(frames)
    index = next(iter(frames.values())).index
    day_end = day_end_mask(index)
    days = financing_days(index)
    open_ = np.column_stack([frames[s]["open"].to_numpy(np.float64) for s in symbols])
    close = np.column_stack([frames[s]["close"].to_numpy(np.float64) for s in symbols])
    funding = funding_matrix(costs, index, symbols)
    rates = financing(costs, symbols)
    single = next(iter(frames.values())) if len(frames) == 1 else frames
    max_leverage, allow_short = engine_limits(strategy)
    out = np.empty((int(day_end.sum()), len(combos)))
    for k, params in enumerate(combos):
        tgt = target_matrix(strategy.targets(single, params), index, symbols)
        equity = simulate_nb(open_, close, tgt, funding, day_end, days, costs.fee, costs.slippage,
                             float(init_cash), execution == "next_open", max_leverage, allow_short,
                             False, *rates)[0]
        daily = np.concatenate([[init_cash], equity[day_end]])
        out[:, k] = daily[1:] / daily[:-1] - 1.0
    return out


def window_metrics(result: Result, lo: pd.Timestamp, hi: pd.Timestamp) -> dict:
    """Metrics of ``result``'s equity between ``lo`` (inclusive) and ``hi`` (exclusive).

    The window starts from the equity at the close before ``lo`` (or the initial cash).
    """
    equity = result.equity
    inside = (equity.index >= lo) & (equity.index < hi)
    window = equity[inside]
    if window.empty:
        return {}
    before = equity[equity.index < lo]
    start_equity = float(before.iloc[-1]) if len(before) else result.assumptions["init_cash"]
    acc = np.empty(ACC_SIZE)
    acc_init_nb(acc, start_equity)
    day_end = day_end_mask(window.index)
    values = window.to_numpy()
    held = result.positions[inside].abs().sum(axis=1).to_numpy() > 0
    for t in range(len(values)):
        acc_bar_nb(acc, t, values[t], day_end[t], held[t])
    metrics = metrics_dict(acc, window.index)
    fills = result.fills
    n_fills = int(((fills["time"] >= lo) & (fills["time"] < hi)).sum())
    keep = ("total_return", "sharpe", "sortino", "max_drawdown", "exposure")
    return {**{k: metrics[k] for k in keep}, "n_fills": n_fills}
