"""Streaming metric accumulators shared by every simulation kernel.

A kernel owns one float64 vector ``acc`` of length :data:`ACC_SIZE`, updates it
once per bar with :func:`acc_bar_nb` and once per closed trade with
:func:`acc_trade_nb`, and :func:`finalize_nb` turns it into the metric vector
whose names are :data:`METRIC_NAMES`. The engine and the fused sweep kernels use
the same functions, so their metrics agree to the bit.

Sharpe, Sortino and volatility use **daily** returns (equity at each UTC day's
last bar) annualized with √365: crypto trades every day of the year.
"""

from __future__ import annotations

import math

import numpy as np

from coinswarm._jit import jit

# accumulator slots
A_NDAYS, A_MEAN, A_M2, A_DOWN2, A_PREV_DAY = 0, 1, 2, 3, 4
A_PEAK, A_MAXDD, A_PEAK_BAR, A_MAXDD_BARS = 5, 6, 7, 8
A_EXPOSED, A_NOTIONAL, A_FEES, A_TRADES, A_WINS = 9, 10, 11, 12, 13
A_GROSS_PROFIT, A_GROSS_LOSS, A_FILLS, A_FUNDING, A_SUM_EQ, A_NBARS, A_LAST_EQ = (
    14, 15, 16, 17, 18, 19, 20,
)
A_INIT = 21
ACC_SIZE = 22

METRIC_NAMES = (
    "total_return", "cagr", "ann_volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "max_drawdown_days", "win_rate", "profit_factor", "expectancy",
    "exposure", "turnover", "fees_paid", "funding_paid", "n_trades", "n_fills",
    "final_equity",
)
N_METRICS = len(METRIC_NAMES)
DAYS_PER_YEAR = 365.0


def acc_init_py(acc: np.ndarray, init_cash: float) -> None:
    """Reset ``acc`` for a run starting with ``init_cash``."""
    acc[:] = 0.0
    acc[A_PREV_DAY] = init_cash
    acc[A_PEAK] = init_cash
    acc[A_LAST_EQ] = init_cash
    acc[A_INIT] = init_cash


acc_init_nb = jit(acc_init_py)


def acc_bar_py(acc: np.ndarray, t: int, equity: float, day_end: bool, exposed: bool) -> None:
    """Account bar ``t``'s closing equity."""
    acc[A_NBARS] += 1.0
    acc[A_SUM_EQ] += equity
    acc[A_LAST_EQ] = equity
    if exposed:
        acc[A_EXPOSED] += 1.0
    if equity >= acc[A_PEAK]:
        acc[A_PEAK] = equity
        acc[A_PEAK_BAR] = t
    else:
        dd = 1.0 - equity / acc[A_PEAK]
        if dd > acc[A_MAXDD]:
            acc[A_MAXDD] = dd
        if t - acc[A_PEAK_BAR] > acc[A_MAXDD_BARS]:
            acc[A_MAXDD_BARS] = t - acc[A_PEAK_BAR]
    if day_end:
        prev = acc[A_PREV_DAY]
        r = equity / prev - 1.0 if prev > 0.0 else 0.0
        acc[A_NDAYS] += 1.0
        delta = r - acc[A_MEAN]
        acc[A_MEAN] += delta / acc[A_NDAYS]
        acc[A_M2] += delta * (r - acc[A_MEAN])
        if r < 0.0:
            acc[A_DOWN2] += r * r
        acc[A_PREV_DAY] = equity


acc_bar_nb = jit(acc_bar_py, inline=True)


def acc_fill_py(acc: np.ndarray, notional: float, fee: float) -> None:
    """Account one fill's traded notional and fee."""
    acc[A_FILLS] += 1.0
    acc[A_NOTIONAL] += abs(notional)
    acc[A_FEES] += fee


acc_fill_nb = jit(acc_fill_py)


def acc_trade_py(acc: np.ndarray, pnl: float) -> None:
    """Account one closed round trip with net PnL ``pnl`` (fees and funding included)."""
    acc[A_TRADES] += 1.0
    if pnl > 0.0:
        acc[A_WINS] += 1.0
        acc[A_GROSS_PROFIT] += pnl
    else:
        acc[A_GROSS_LOSS] -= pnl


acc_trade_nb = jit(acc_trade_py)


def finalize_py(acc: np.ndarray, span_days: float, bar_days: float) -> np.ndarray:
    """Metric vector (order of :data:`METRIC_NAMES`) from a finished accumulator."""
    out = np.full(N_METRICS, np.nan)
    init, last = acc[A_INIT], acc[A_LAST_EQ]
    total = last / init - 1.0
    years = span_days / DAYS_PER_YEAR
    out[0] = total
    if years > 0.0 and last > 0.0:
        out[1] = (last / init) ** (1.0 / years) - 1.0
    n = acc[A_NDAYS]
    if n >= 2.0:
        std = math.sqrt(acc[A_M2] / (n - 1.0))
        out[2] = std * math.sqrt(DAYS_PER_YEAR)
        if std > 0.0:
            out[3] = acc[A_MEAN] / std * math.sqrt(DAYS_PER_YEAR)
        down = math.sqrt(acc[A_DOWN2] / n)
        if down > 0.0:
            out[4] = acc[A_MEAN] / down * math.sqrt(DAYS_PER_YEAR)
    out[6] = acc[A_MAXDD]
    if acc[A_MAXDD] > 0.0:
        out[5] = out[1] / acc[A_MAXDD]
    out[7] = acc[A_MAXDD_BARS] * bar_days
    trades = acc[A_TRADES]
    if trades > 0.0:
        out[8] = acc[A_WINS] / trades
        out[10] = (acc[A_GROSS_PROFIT] - acc[A_GROSS_LOSS]) / trades
        if acc[A_GROSS_LOSS] > 0.0:
            out[9] = acc[A_GROSS_PROFIT] / acc[A_GROSS_LOSS]
    if acc[A_NBARS] > 0.0:
        out[11] = acc[A_EXPOSED] / acc[A_NBARS]
        mean_eq = acc[A_SUM_EQ] / acc[A_NBARS]
        if years > 0.0 and mean_eq > 0.0:
            out[12] = acc[A_NOTIONAL] / mean_eq / years
    out[13] = acc[A_FEES]
    out[14] = acc[A_FUNDING]
    out[15] = trades
    out[16] = acc[A_FILLS]
    out[17] = last
    return out


finalize_nb = jit(finalize_py)
