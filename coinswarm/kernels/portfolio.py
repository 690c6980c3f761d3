"""Simulation kernels (plain Python, compiled once by :func:`coinswarm._jit.jit`).

Conventions
-----------
* ``target[t, j]`` is the fraction of equity to hold in asset ``j`` after bar ``t``,
  decided at bar ``t``'s close. NaN means "no order" (keep the position).
* ``next_open=True``: orders for bar ``t`` fill at ``open[t + 1]``; ``False``: at
  ``close[t]`` (optimistic, for cross-checks).
* Equity used for sizing is valued at the fill bar's base price (before slippage);
  orders of one bar are executed sells first (ascending order value), like
  vectorbt's ``call_seq="auto"``.
* Gross exposure never exceeds ``max_lev`` × equity: a buy (or short sale) that
  would breach it is reduced. With ``max_lev=1`` and long only this is exactly
  "cost + fee ≤ cash".
* Funding at bar ``t`` is charged on the position held into the bar, at
  ``open[t]``: ``cash -= position × open × rate`` (longs pay a positive rate).
"""

from __future__ import annotations

import numpy as np

from coinswarm._jit import jit
from coinswarm.kernels.metrics import (
    A_FUNDING,
    A_INIT,
    ACC_SIZE,
    acc_bar_nb,
    acc_fill_nb,
    acc_init_nb,
    acc_trade_nb,
)

TINY_ORDER = 1e-10  # orders below this fraction of equity are not sent


def equity_short_py(cash: float, pos: np.ndarray, vp: np.ndarray) -> tuple[float, float]:
    """Equity and gross short value at valuation prices ``vp``."""
    equity = cash
    short = 0.0
    for j in range(pos.shape[0]):
        if pos[j] != 0.0:
            value = pos[j] * vp[j]
            equity += value
            if value < 0.0:
                short -= value
    return equity, short


equity_short_nb = jit(equity_short_py, inline=True)


def _reduce_py(cash, pos, trade_cash, acc, j, qty, side, fill_px, fee):
    """Reduce |pos[j]| by ``qty`` (≤ |pos[j]|); close the trade when flat."""
    notional = qty * fill_px
    paid = notional * fee
    cash -= side * notional + paid
    trade_cash[j] += -side * notional - paid
    if qty == abs(pos[j]):
        pos[j] = 0.0
        acc_trade_nb(acc, trade_cash[j])
        trade_cash[j] = 0.0
    else:
        pos[j] += side * qty
    return cash, paid


_reduce_nb = jit(_reduce_py)


def execute_order_py(cash, pos, trade_cash, vp, acc, j, delta, price, fee, slip, max_lev,
                     allow_short):
    """Trade ``delta`` units of asset ``j`` at ``price`` (slippage applied against us).

    Returns ``(cash, filled_qty_signed, fill_price, fee_paid)``. ``pos``,
    ``trade_cash`` and ``acc`` are updated in place.
    """
    side = 1.0 if delta > 0.0 else -1.0
    fill_px = price * (1.0 + slip) if delta > 0.0 else price * (1.0 - slip)
    want = abs(delta)
    reduce = 0.0
    if pos[j] * side < 0.0:
        reduce = min(want, abs(pos[j]))
    increase = want - reduce
    if side < 0.0 and not allow_short:
        increase = 0.0
    paid_total = 0.0
    if reduce > 0.0:
        cash, paid = _reduce_nb(cash, pos, trade_cash, acc, j, reduce, side, fill_px, fee)
        paid_total += paid
    if increase > 0.0:
        equity, short = equity_short_nb(cash, pos, vp)
        headroom = cash + (max_lev - 1.0) * equity - 2.0 * short
        max_cost = headroom / (1.0 + max_lev * fee)
        if max_cost <= 0.0:
            increase = 0.0
        elif increase * fill_px > max_cost:
            increase = max_cost / fill_px
        if increase > 0.0:
            notional = increase * fill_px
            paid = notional * fee
            if pos[j] == 0.0:
                trade_cash[j] = 0.0
            cash -= side * notional + paid
            trade_cash[j] += -side * notional - paid
            pos[j] += side * increase
            paid_total += paid
    return cash, side * (reduce + increase), fill_px, paid_total


execute_order_nb = jit(execute_order_py)


def order_sequence_py(order_value: np.ndarray, idx: np.ndarray) -> int:
    """Write the indices of finite order values, sorted ascending (stable insertion sort),
    to ``idx[:k]`` and return ``k``."""
    k = 0
    for j in range(order_value.shape[0]):
        if not np.isnan(order_value[j]):
            idx[k] = j
            k += 1
    for a in range(1, k):
        cur = idx[a]
        b = a - 1
        while b >= 0 and order_value[idx[b]] > order_value[cur]:
            idx[b + 1] = idx[b]
            b -= 1
        idx[b + 1] = cur
    return k


order_sequence_nb = jit(order_sequence_py, inline=True)


def clip_targets_py(tgt, tt, px, pt, max_lev, allow_short, out):
    """Targets ``tgt[tt]`` into ``out`` with shorts removed (unless allowed) and gross scaled to
    ≤ ``max_lev``; returns how many are finite (NaN: no order, or no price ``px[pt]`` this bar)."""
    m = tgt.shape[1]
    gross = 0.0
    finite = 0
    for j in range(m):
        x = tgt[tt, j]
        if np.isnan(x) or not np.isfinite(px[pt, j]):
            out[j] = np.nan
            continue
        if x < 0.0 and not allow_short:
            x = 0.0
        out[j] = x
        gross += abs(x)
        finite += 1
    if gross > max_lev:
        scale = max_lev / gross
        for j in range(m):
            out[j] = out[j] * scale
    return finite


clip_targets_nb = jit(clip_targets_py, inline=True)


def record_fill_py(acc, fills_i, fills_f, nf, t, j, qty, fill_px, paid):
    """Account a fill and write it to the fill arrays while they have room; returns nf + 1."""
    acc_fill_nb(acc, qty * fill_px, paid)
    if nf < fills_i.shape[0]:
        fills_i[nf, 0] = t
        fills_i[nf, 1] = j
        fills_f[nf, 0] = qty
        fills_f[nf, 1] = fill_px
        fills_f[nf, 2] = paid
    return nf + 1


record_fill_nb = jit(record_fill_py)


def rebalance_py(t, px, pt, tgt, tt, last_px, cash, pos, trade_cash, vp, acc, fee, slip,
                 max_lev, allow_short, fills_i, fills_f, nf, work, idx):
    """Trade every asset towards its target ``tgt[tt]`` at prices ``px[pt]``; returns ``(cash, nf)``.

    Fills are written to ``fills_i`` (bar, asset) and ``fills_f`` (qty, price, fee)
    when they have room (size-0 arrays switch recording off). ``work`` (2, m) and
    ``idx`` (m,) are scratch space, so a bar allocates nothing.
    """
    m = pos.shape[0]
    tg, order_value = work[0], work[1]
    orders = clip_targets_nb(tgt, tt, px, pt, max_lev, allow_short, tg)
    may_deleverage = allow_short or max_lev > 1.0
    if orders == 0 and not may_deleverage:  # nothing to trade (most bars of a sparse signal)
        return cash, nf
    for j in range(m):
        vp[j] = px[pt, j] if np.isfinite(px[pt, j]) else last_px[j]
    equity, _ = equity_short_nb(cash, pos, vp)
    if not equity > 0.0:
        return cash, nf
    if orders > 0:
        for j in range(m):
            order_value[j] = tg[j] * equity - pos[j] * vp[j]
        for a in range(order_sequence_nb(order_value, idx)):
            j = idx[a]
            delta = tg[j] * equity / vp[j] - pos[j]
            if abs(delta * vp[j]) <= TINY_ORDER * equity:
                continue
            cash, qty, fill_px, paid = execute_order_nb(
                cash, pos, trade_cash, vp, acc, j, delta, px[pt, j], fee, slip, max_lev, allow_short
            )
            if qty != 0.0:
                nf = record_fill_nb(acc, fills_i, fills_f, nf, t, j, qty, fill_px, paid)
    if may_deleverage:
        cash, nf = deleverage_nb(t, px, pt, cash, pos, trade_cash, vp, acc, fee, slip, max_lev,
                                 fills_i, fills_f, nf)
    return cash, nf


rebalance_nb = jit(rebalance_py, inline=True)


def deleverage_py(t, px, pt, cash, pos, trade_cash, vp, acc, fee, slip, max_lev, fills_i,
                  fills_f, nf):
    """Trim every position pro rata when fees of this bar's trades left gross > ``max_lev``.

    Target sizing uses pre-trade equity, so the fees of a bar's orders can leave gross
    exposure a hair above the cap (only with shorts or leverage; long-only at 1x is bounded
    by cash). Returns ``(cash, nf)``.
    """
    for _ in range(3):
        equity, short = equity_short_nb(cash, pos, vp)
        gross = 0.0
        for j in range(pos.shape[0]):
            gross += abs(pos[j] * vp[j])
        if not (gross > max_lev * equity * (1.0 + 1e-12)) or not equity > 0.0:
            return cash, nf
        cost = fee + slip
        k = (gross - max_lev * equity) / (gross * (1.0 - max_lev * cost)) * (1.0 + 1e-9)
        for j in range(pos.shape[0]):
            if pos[j] != 0.0 and np.isfinite(px[pt, j]):
                cash, qty, fill_px, paid = execute_order_nb(
                    cash, pos, trade_cash, vp, acc, j, -k * pos[j], px[pt, j], fee, slip,
                    max_lev, True
                )
                if qty != 0.0:
                    nf = record_fill_nb(acc, fills_i, fills_f, nf, t, j, qty, fill_px, paid)
    return cash, nf


deleverage_nb = jit(deleverage_py)


def charge_funding_py(t, open_, funding, last_px, cash, pos, trade_cash, acc):
    """Charge funding for bar ``t`` on the positions held into it; returns cash."""
    for j in range(pos.shape[0]):
        rate = funding[t, j]
        if rate != 0.0 and pos[j] != 0.0:
            px = open_[t, j] if np.isfinite(open_[t, j]) else last_px[j]
            pay = pos[j] * px * rate
            cash -= pay
            trade_cash[j] -= pay
            acc[A_FUNDING] += pay
    return cash


charge_funding_nb = jit(charge_funding_py, inline=True)


def simulate_bars_py(open_, close, target, funding, day_end, fee, slip, next_open, max_lev, allow_short,
                     books, equity, cash_path, pos_path, fills_i, fills_f, acc, idx):
    """The bar loop of :func:`simulate_py` over caller-owned arrays; returns the fill count.

    ``books`` rows: positions, per-trade cash, last finite close, valuation prices, then two
    scratch rows. Compiled without reference counting (it allocates nothing).
    """
    n, m = close.shape
    pos, trade_cash, last_px, vp, work = books[0], books[1], books[2], books[3], books[4:]
    cash = acc[A_INIT]
    nf = 0
    for t in range(n):
        cash = charge_funding_nb(t, open_, funding, last_px, cash, pos, trade_cash, acc)
        if next_open:
            if t > 0:
                cash, nf = rebalance_nb(t, open_, t, target, t - 1, last_px, cash, pos,
                                        trade_cash, vp, acc, fee, slip, max_lev, allow_short,
                                        fills_i, fills_f, nf, work, idx)
        else:
            cash, nf = rebalance_nb(t, close, t, target, t, last_px, cash, pos, trade_cash, vp,
                                    acc, fee, slip, max_lev, allow_short, fills_i, fills_f, nf, work, idx)
        eq = cash
        exposed = False
        for j in range(m):
            if np.isfinite(close[t, j]):
                last_px[j] = close[t, j]
            if pos[j] != 0.0:
                eq += pos[j] * last_px[j]
                exposed = True
            pos_path[t, j] = pos[j]
        equity[t] = eq
        cash_path[t] = cash
        acc_bar_nb(acc, t, eq, day_end[t], exposed)
    return nf


simulate_bars_nb = jit(simulate_bars_py, refcount=False)


def simulate_py(open_, close, target, funding, day_end, fee, slip, init_cash, next_open,
                max_lev, allow_short, record_fills):
    """Simulate target-weight trading on ``(n, m)`` price arrays.

    Returns ``(equity, cash, positions, fills_i, fills_f, n_fills, acc)``.
    """
    n, m = close.shape
    books = np.zeros((6, m))
    books[2, :] = np.nan
    equity = np.empty(n)
    cash_path = np.empty(n)
    pos_path = np.empty((n, m))
    cap = n * m if record_fills else 0
    fills_i = np.empty((cap, 2), dtype=np.int64)
    fills_f = np.empty((cap, 3))
    acc = np.empty(ACC_SIZE)
    acc_init_nb(acc, init_cash)
    idx = np.empty(m, dtype=np.int64)
    nf = simulate_bars_nb(open_, close, target, funding, day_end, fee, slip, next_open, max_lev, allow_short,
                          books, equity, cash_path, pos_path, fills_i, fills_f, acc, idx)
    return equity, cash_path, pos_path, fills_i, fills_f, min(nf, cap), acc


simulate_nb = jit(simulate_py)
