"""The portfolio kernel: fills, cash, fees, slippage, funding, leverage cap and bankruptcy,
one bar at a time (plain Python, compiled once by :func:`coinswarm._jit.jit`).

One implementation serves :func:`coinswarm.simulate` (which scans :func:`portfolio_step_py`
over history in :func:`simulate_bars_py`) and the live paper broker (which calls it once per
closed bar through :func:`portfolio_step`), so a replay equals
the backtest bit for bit by construction.

State
-----
One float64 vector (``tobytes``/``frombuffer`` round-trips it exactly): the header slots
``P_*`` (layout version, number of assets ``m``, cash, equity at the last close, bars stepped,
bar of bankruptcy or −1, interest credited and borrow fees paid so far), the metric
accumulator (:mod:`coinswarm.kernels.metrics`) at ``P_ACC``, then :data:`BOOK_ROWS` rows of
``m`` from ``P_BOOKS``: positions (units), per-trade cash, last finite close, valuation prices,
two scratch rows, pending targets.

Conventions
-----------
* ``target[j]`` is the fraction of equity to hold in asset ``j`` after the bar, decided at
  the bar's close. NaN means "no order" (keep the position).
* ``next_open=True``: a bar's targets fill at the next bar's open; ``False``: at its own
  close (optimistic, for cross-checks).
* Equity used for sizing is valued at the fill bar's base price (before slippage);
  orders of one bar are executed sells first (ascending order value), like
  vectorbt's ``call_seq="auto"``.
* Gross exposure never exceeds ``max_lev`` × equity: a buy (or short sale) that
  would breach it is reduced. With ``max_lev=1`` and long only this is exactly
  "cost + fee ≤ cash".
* Funding at a bar is charged on the position held into the bar, at its open:
  ``cash -= position × open × rate`` (longs pay a positive rate).
* Financing at the close of the first bar at or after each UTC day's end (00:00 UTC), after its
  valuation — the rule the live daemon can apply as bars arrive (:func:`finance_days`: a bar
  whose close passes several day ends, after a gap in the data, finances each of those days in
  turn; a series ending mid-day leaves that day unfinanced): idle cash earns ``credit`` (a daily
  rate), ``idle = max(0, equity − gross exposure)`` — every position commits its full notional
  (no interest on margin or on short-sale proceeds); each short position pays ``borrow[j]`` (a
  daily rate, 0 for perpetuals, which pay funding instead) on its value, and a levered spot
  book pays the largest ``borrow`` rate on its quote loan (the negative cash of its spot legs:
  ``cash`` plus the perpetuals' signed notional). Both are 0 by default.
  A book whose equity is ≤ 0 at that close is not financed (it is closed out, see below).
* Bankruptcy: when equity at a close is ≤ 0 every position is closed at that close (no fee),
  the deficit is written off, equity is 0 from then on and the account never trades again.
"""

from __future__ import annotations

import numpy as np

from coinswarm._jit import jit
from coinswarm.errors import ConfigError
from coinswarm.kernels.days import days_financed, finance_days  # noqa: F401  (the kernel's day rule)
from coinswarm.kernels.metrics import (
    A_FUNDING,
    ACC_SIZE,
    acc_bar_nb,
    acc_fill_nb,
    acc_init_nb,
    acc_trade_nb,
)

TINY_ORDER = 1e-10  # orders below this fraction of equity are not sent

# state header slots, then the accumulator, then the books (see the module docstring)
P_VERSION, P_M, P_CASH, P_EQUITY, P_BARS, P_BANKRUPT, P_INTEREST, P_BORROW = 0, 1, 2, 3, 4, 5, 6, 7
P_ACC = 8
P_BOOKS = P_ACC + ACC_SIZE
BOOK_ROWS = 7
STATE_VERSION = 1.0

fill_dt = np.dtype([("bar", np.int64), ("asset", np.int64), ("qty", np.float64), ("price", np.float64),
                    ("fee", np.float64)])
"""One fill: bar index (bars stepped before it), asset column, signed units (> 0 bought), fill price
(slippage included), fee paid."""


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


def clip_targets_py(tgt, px, max_lev, allow_short, out):
    """Targets ``tgt`` (one per asset) into ``out`` with shorts removed (unless allowed) and gross
    scaled to ≤ ``max_lev``; returns how many are finite (NaN: no order, or no price ``px``)."""
    m = tgt.shape[0]
    gross = 0.0
    finite = 0
    for j in range(m):
        x = tgt[j]
        if np.isnan(x) or not np.isfinite(px[j]):
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


def record_fill_py(acc, fills, nf, t, j, qty, fill_px, paid):
    """Account a fill and write it to ``fills`` (records of :data:`fill_dt`) while it has room;
    returns nf + 1."""
    acc_fill_nb(acc, qty * fill_px, paid)
    if nf < fills.shape[0]:
        fills[nf]["bar"] = t
        fills[nf]["asset"] = j
        fills[nf]["qty"] = qty
        fills[nf]["price"] = fill_px
        fills[nf]["fee"] = paid
    return nf + 1


record_fill_nb = jit(record_fill_py)


def rebalance_py(t, px, tgt, last_px, cash, pos, trade_cash, vp, acc, fee, slip, max_lev, allow_short,
                 fills, nf, tg, order_value, idx):
    """Trade every asset towards its target ``tgt`` at prices ``px``; returns ``(cash, nf)``.

    ``tg``, ``order_value`` (m,) and ``idx`` (m,) are scratch space, so a bar allocates nothing.
    """
    m = pos.shape[0]
    orders = clip_targets_nb(tgt, px, max_lev, allow_short, tg)
    may_deleverage = allow_short or max_lev > 1.0
    if orders == 0 and not may_deleverage:  # nothing to trade (most bars of a sparse signal)
        return cash, nf
    for j in range(m):
        vp[j] = px[j] if np.isfinite(px[j]) else last_px[j]
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
                cash, pos, trade_cash, vp, acc, j, delta, px[j], fee, slip, max_lev, allow_short
            )
            if qty != 0.0:
                nf = record_fill_nb(acc, fills, nf, t, j, qty, fill_px, paid)
    if may_deleverage:
        cash, nf = deleverage_nb(t, px, cash, pos, trade_cash, vp, acc, fee, slip, max_lev, fills, nf)
    return cash, nf


rebalance_nb = jit(rebalance_py, inline=True)


def deleverage_py(t, px, cash, pos, trade_cash, vp, acc, fee, slip, max_lev, fills, nf):
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
            if pos[j] != 0.0 and np.isfinite(px[j]):
                cash, qty, fill_px, paid = execute_order_nb(
                    cash, pos, trade_cash, vp, acc, j, -k * pos[j], px[j], fee, slip, max_lev, True
                )
                if qty != 0.0:
                    nf = record_fill_nb(acc, fills, nf, t, j, qty, fill_px, paid)
    return cash, nf


deleverage_nb = jit(deleverage_py)


def charge_funding_py(open_, funding, last_px, cash, pos, trade_cash, acc):
    """Charge this bar's funding rates on the positions held into it; returns cash."""
    for j in range(pos.shape[0]):
        rate = funding[j]
        if rate != 0.0 and pos[j] != 0.0:
            px = open_[j] if np.isfinite(open_[j]) else last_px[j]
            pay = pos[j] * px * rate
            cash -= pay
            trade_cash[j] -= pay
            acc[A_FUNDING] += pay
    return cash


charge_funding_nb = jit(charge_funding_py, inline=True)


def close_out_py(t, cash, pos, trade_cash, last_px, acc, fills, nf):
    """Bankruptcy: equity ≤ 0 at bar ``t``'s close. Every position is closed at its last price
    (no fee: nothing is left to pay it with), the deficit is written off (cash 0) and the account
    stops trading. Returns ``nf``."""
    for j in range(pos.shape[0]):
        if pos[j] != 0.0:
            qty = -pos[j]
            trade_cash[j] += pos[j] * last_px[j]
            nf = record_fill_nb(acc, fills, nf, t, j, qty, last_px[j], 0.0)
            acc_trade_nb(acc, trade_cash[j])
            trade_cash[j] = 0.0
            pos[j] = 0.0
    return nf


close_out_nb = jit(close_out_py)


def finance_py(cash, pos, trade_cash, last_px, credit, borrow, state):
    """A UTC day's financing at its close: interest on idle cash, borrow fees on shorts and on
    the quote loan of a levered spot book; returns cash (see the module docstring). An insolvent
    book (equity ≤ 0) is not financed: it is closed out and its deficit written off, so a fee
    charged on it would never be paid."""
    equity, gross, spot_cash, loan_rate = cash, 0.0, cash, 0.0
    for j in range(pos.shape[0]):
        if borrow[j] > loan_rate:
            loan_rate = borrow[j]
        if pos[j] != 0.0:
            value = pos[j] * last_px[j]
            equity += value
            gross += abs(value)
            if borrow[j] == 0.0:  # a perpetual (no borrow rate): its notional is margin, not cash spent
                spot_cash += value
    if not equity > 0.0:
        return cash
    for j in range(pos.shape[0]):
        value = pos[j] * last_px[j]
        if value < 0.0 and borrow[j] != 0.0:
            fee = -value * borrow[j]
            cash -= fee
            trade_cash[j] -= fee
            state[P_BORROW] += fee
    if spot_cash < -TINY_ORDER * equity and loan_rate != 0.0:  # not the round-off of a fully invested book
        fee = -spot_cash * loan_rate
        cash -= fee
        state[P_BORROW] += fee
    if credit != 0.0 and equity > gross:
        interest = (equity - gross) * credit
        cash += interest
        state[P_INTEREST] += interest
    return cash


finance_nb = jit(finance_py, inline=True)


def mark_py(t, close, day_end, days, cash, pos, trade_cash, last_px, acc, fills, nf, state, credit, borrow):
    """Value the book at bar ``t``'s close (after financing the ``days`` UTC days whose end it
    passed), close it out on bankruptcy, account the bar; returns ``nf``."""
    m = pos.shape[0]
    for j in range(m):
        if np.isfinite(close[j]):
            last_px[j] = close[j]
    if days > 0:
        for _ in range(days):
            cash = finance_nb(cash, pos, trade_cash, last_px, credit, borrow, state)
        state[P_CASH] = cash
    eq = cash
    exposed = False
    for j in range(m):
        if pos[j] != 0.0:
            eq += pos[j] * last_px[j]
            exposed = True
    if not eq > 0.0:
        nf = close_out_nb(t, cash, pos, trade_cash, last_px, acc, fills, nf)
        state[P_BANKRUPT] = t
        eq = 0.0
        exposed = False
        state[P_CASH] = 0.0
    state[P_EQUITY] = eq
    acc_bar_nb(acc, t, eq, day_end, exposed)
    return nf


mark_nb = jit(mark_py, inline=True)


def portfolio_step_py(state, open_, close, target, funding, day_end, days, fee, slip, next_open, max_lev,
                      allow_short, fills, nf, idx, credit, borrow):
    """Advance the portfolio ``state`` (see :func:`portfolio_init_py`) by one bar of ``m`` assets.

    In order: funding on the positions held into the bar (at its open); the pending orders
    (the previous bar's ``target`` with ``next_open``, filled at this ``open_``; else this
    ``target`` at this ``close``); valuation at ``close``; bankruptcy close-out when equity
    ≤ 0; the bar's metrics (``day_end``: the bar ends a UTC day of the daily returns); ``target``
    (decided at this close) becomes the pending order. Before the valuation the book is financed
    for ``days`` UTC days (:func:`finance_days`; ``credit``: the daily rate idle cash earns,
    ``borrow``: ``(m,)`` daily rates shorts pay; see the module docstring).
    ``open_``, ``close``, ``target`` and ``funding`` are ``(m,)`` rows (NaN price: the asset has
    no bar, is not traded and is valued at its last close). Fills are written to ``fills``
    (:data:`fill_dt`) from ``nf`` on while it has room; returns the new fill count. ``idx``
    is ``(m,)`` int64 scratch. Allocates nothing.
    """
    m = idx.shape[0]
    t = int(state[P_BARS])
    acc = state[P_ACC:P_ACC + ACC_SIZE]
    pos = state[P_BOOKS:P_BOOKS + m]
    trade_cash = state[P_BOOKS + m:P_BOOKS + 2 * m]
    last_px = state[P_BOOKS + 2 * m:P_BOOKS + 3 * m]
    vp = state[P_BOOKS + 3 * m:P_BOOKS + 4 * m]
    tg = state[P_BOOKS + 4 * m:P_BOOKS + 5 * m]
    order_value = state[P_BOOKS + 5 * m:P_BOOKS + 6 * m]
    pending = state[P_BOOKS + 6 * m:P_BOOKS + 7 * m]
    cash = state[P_CASH]
    if state[P_BANKRUPT] < 0.0:
        cash = charge_funding_nb(open_, funding, last_px, cash, pos, trade_cash, acc)
        if next_open:
            if t > 0:
                cash, nf = rebalance_nb(t, open_, pending, last_px, cash, pos, trade_cash, vp, acc, fee, slip,
                                        max_lev, allow_short, fills, nf, tg, order_value, idx)
        else:
            cash, nf = rebalance_nb(t, close, target, last_px, cash, pos, trade_cash, vp, acc, fee, slip,
                                    max_lev, allow_short, fills, nf, tg, order_value, idx)
        state[P_CASH] = cash
        nf = mark_nb(t, close, day_end, days, cash, pos, trade_cash, last_px, acc, fills, nf, state, credit, borrow)
    else:
        state[P_EQUITY] = 0.0
        acc_bar_nb(acc, t, 0.0, day_end, False)
    for j in range(m):
        pending[j] = target[j]
    state[P_BARS] = t + 1
    return nf


portfolio_step_nb = jit(portfolio_step_py, inline=True)


def portfolio_init_py(m, init_cash):
    """A fresh portfolio of ``m`` assets holding ``init_cash``: one float64 vector (layout in the
    module docstring) that :func:`portfolio_step_py` advances and ``tobytes`` serialises."""
    state = np.zeros(P_BOOKS + BOOK_ROWS * m)
    state[P_VERSION] = STATE_VERSION
    state[P_M] = m
    state[P_CASH] = init_cash
    state[P_EQUITY] = init_cash
    state[P_BANKRUPT] = -1.0
    acc_init_nb(state[P_ACC:P_ACC + ACC_SIZE], init_cash)
    state[P_BOOKS + 2 * m:P_BOOKS + 3 * m] = np.nan
    state[P_BOOKS + 6 * m:P_BOOKS + 7 * m] = np.nan
    return state


portfolio_init_nb = jit(portfolio_init_py)


def simulate_bars_py(open_, close, target, funding, day_end, days, fee, slip, next_open, max_lev, allow_short,
                     state, equity, cash_path, pos_path, fills, idx, credit, borrow):
    """:func:`portfolio_step_py` scanned over the bars, into caller-owned arrays; returns the fill
    count. Compiled without reference counting (it allocates nothing)."""
    n, m = close.shape
    pos = state[P_BOOKS:P_BOOKS + m]
    nf = 0
    for t in range(n):
        nf = portfolio_step_nb(state, open_[t], close[t], target[t], funding[t], day_end[t], days[t], fee, slip,
                               next_open, max_lev, allow_short, fills, nf, idx, credit, borrow)
        for j in range(m):
            pos_path[t, j] = pos[j]
        equity[t] = state[P_EQUITY]
        cash_path[t] = state[P_CASH]
    return nf


simulate_bars_nb = jit(simulate_bars_py, refcount=False)


def simulate_py(open_, close, target, funding, day_end, days, fee, slip, init_cash, next_open,
                max_lev, allow_short, record_fills, credit, borrow):
    """Simulate target-weight trading on ``(n, m)`` price arrays (``day_end``: bool, the bars
    ending a UTC day for the metrics; ``days``: int64, the days financed at each bar,
    :func:`finance_days`; ``credit``, ``borrow``: the daily financing rates of
    :func:`portfolio_step_py`; 0 and zeros: none).

    Returns ``(equity, cash, positions, fills, n_fills, state, acc)``: ``fills`` are
    :data:`fill_dt` records (``record_fills=False``: none are kept), ``state`` the final
    portfolio state and ``acc`` its metric accumulator.
    """
    n, m = close.shape
    state = portfolio_init_nb(m, init_cash)
    equity = np.empty(n)
    cash_path = np.empty(n)
    pos_path = np.empty((n, m))
    cap = n * m if record_fills else 0
    fills = np.empty(cap, dtype=fill_dt)
    idx = np.empty(m, dtype=np.int64)
    nf = simulate_bars_nb(open_, close, target, funding, day_end, days, fee, slip, next_open, max_lev, allow_short,
                          state, equity, cash_path, pos_path, fills, idx, credit, borrow)
    return equity, cash_path, pos_path, fills, min(nf, cap), state, state[P_ACC:P_ACC + ACC_SIZE]


simulate_nb = jit(simulate_py)


def screen_bars_py(ts, open_, high, low, close, volume, step):
    """First row (or -1) breaking a candle rule the kernel relies on: finite values, prices > 0,
    low ≤ open, close ≤ high, volume ≥ 0, timestamps strictly increasing and (``step`` > 0) on
    the ``step`` grid. One pass, no allocation: a screen before the exact, typed diagnosis of
    :mod:`coinswarm.data.validate`, which callers run only on a hit."""
    for t in range(ts.shape[0]):
        lo = low[t]
        hi = high[t]
        if not (lo > 0.0 and hi >= lo and hi < np.inf and lo <= open_[t] <= hi and lo <= close[t] <= hi
                and 0.0 <= volume[t] < np.inf):
            return t
        if t > 0 and ts[t] <= ts[t - 1]:
            return t
        if step > 0 and ts[t] % step != 0:
            return t
    return -1


screen_bars_nb = jit(screen_bars_py, refcount=False)

# -- the per-bar API (the paper broker's face of the same kernel) -------------------------------
MAX_FILLS_PER_ASSET = 5  # one order, three deleveraging passes, a bankruptcy close-out


def portfolio_init(m: int, init_cash: float) -> np.ndarray:
    """A fresh portfolio state for ``m`` assets holding ``init_cash``.

    Parameters
    ----------
    m : int
        Number of assets (columns of every bar given to :func:`portfolio_step`).
    init_cash : float
        Starting cash, finite and > 0.

    Returns
    -------
    ndarray
        The state vector (float64); :func:`portfolio_to_bytes` / :func:`portfolio_from_bytes`
        persist it exactly.
    """
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
        raise ConfigError(f"portfolio: m (number of assets) must be an integer ≥ 1, got {m!r}")
    if isinstance(init_cash, bool) or not isinstance(init_cash, int | float | np.integer | np.floating) \
            or not np.isfinite(init_cash) or init_cash <= 0:
        raise ConfigError(f"portfolio: init_cash must be a finite number > 0, got {init_cash!r}")
    return portfolio_init_nb(int(m), float(init_cash))


def _row(name: str, values, m: int) -> np.ndarray:
    row = np.ascontiguousarray(values, dtype=np.float64)
    if row.shape != (m,):
        raise ConfigError(f"portfolio_step: {name} must have shape ({m},) (one value per asset), got {row.shape}")
    return row


def portfolio_step(state: np.ndarray, open_, close, target, *, funding=None, day_end: bool = False,
                   days: int | None = None, fee: float = 0.001, slippage: float = 0.0, next_open: bool = True,
                   max_leverage: float = 1.0, allow_short: bool = False, credit: float = 0.0,
                   borrow=None) -> np.ndarray:
    """Advance ``state`` (in place) by one closed bar; return the bar's fills.

    The same compiled step :func:`coinswarm.simulate` scans over history: looping it over the
    bars with the engine's arguments (``day_end`` from
    :func:`coinswarm.backtest.engine.day_end_mask`, ``days`` from :func:`finance_days`)
    reproduces ``simulate`` bit for bit.

    Parameters
    ----------
    state : ndarray
        From :func:`portfolio_init` or :func:`portfolio_from_bytes`.
    open_, close : array of shape (m,)
        The bar's prices per asset (NaN: the asset has no bar).
    target : array of shape (m,)
        Weights decided at this bar's close (NaN: no order); filled at the next bar's open with
        ``next_open``, else at this close.
    funding : array of shape (m,), optional
        Funding rates due at this bar's open (fraction; longs pay when positive).
    day_end : bool
        The bar closes a UTC day (daily returns for the metrics are taken there).
    days : int, optional
        UTC days whose end this bar's close is the first to reach: each is financed at this close
        (:func:`finance_days`; ≥ 0). Default: 1 with ``day_end``, else 0.
    fee, slippage : float
        Fractions of notional / price (``Costs.fee``, ``Costs.slippage``).
    next_open, max_leverage, allow_short
        As ``execution == "next_open"``, ``max_leverage``, ``allow_short`` of ``simulate``.
    credit : float, default 0
        Daily rate idle cash earns at a day's end (``Costs.cash_rate`` as
        :func:`coinswarm.stats.daily_rate`).
    borrow : array of shape (m,), optional
        Daily borrow fee rates of short positions at a day's end (0 for perpetuals).

    Returns
    -------
    ndarray of :data:`fill_dt`
        This bar's fills (``bar`` is the state's bar count before the step).
    """
    m = portfolio_assets(state)
    fund = np.zeros(m) if funding is None else _row("funding", funding, m)
    if not np.isfinite(fund).all():
        raise ConfigError("portfolio_step: funding rates must be finite")
    rates = np.zeros(m) if borrow is None else _row("borrow", borrow, m)
    if not (np.isfinite(rates).all() and np.isfinite(credit)):
        raise ConfigError("portfolio_step: credit and borrow rates must be finite")
    financed = int(bool(day_end)) if days is None else days
    if isinstance(financed, bool) or not isinstance(financed, int | np.integer) or financed < 0:
        raise ConfigError(f"portfolio_step: days (UTC days financed at this close) must be an integer ≥ 0, "
                          f"got {days!r}")
    fills = np.empty(MAX_FILLS_PER_ASSET * m, dtype=fill_dt)
    n = portfolio_step_nb(state, _row("open", open_, m), _row("close", close, m), _row("target", target, m),
                          fund, bool(day_end), int(financed), float(fee), float(slippage), bool(next_open),
                          float(max_leverage), bool(allow_short), fills, 0, np.empty(m, dtype=np.int64),
                          float(credit), rates)
    return fills[:n].copy()


def portfolio_assets(state: np.ndarray) -> int:
    """Number of assets of a portfolio state (checks the state's layout)."""
    if not (isinstance(state, np.ndarray) and state.dtype == np.float64 and state.ndim == 1
            and state.size > P_BOOKS and state[P_VERSION] == STATE_VERSION):
        raise ConfigError("not a portfolio state (use portfolio_init or portfolio_from_bytes)")
    m = int(state[P_M])
    if m < 1 or state.size != P_BOOKS + BOOK_ROWS * m:
        raise ConfigError(f"portfolio state of {state.size} values does not fit {m} assets")
    return m


def portfolio_to_bytes(state: np.ndarray) -> bytes:
    """The state's exact bytes (float64, little-endian)."""
    portfolio_assets(state)
    return state.astype("<f8", copy=False).tobytes()


def portfolio_from_bytes(data: bytes) -> np.ndarray:
    """A state from :func:`portfolio_to_bytes` (a writable copy); refuses anything else."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) % 8:
        raise ConfigError("portfolio state bytes must be a multiple of 8 bytes (float64 values)")
    state = np.frombuffer(data, dtype="<f8").astype(np.float64)
    portfolio_assets(state)
    return state


def portfolio_view(state: np.ndarray) -> dict:
    """Cash, equity at the last close, positions, bars stepped and bankruptcy bar (or None)."""
    m = portfolio_assets(state)
    bankrupt = int(state[P_BANKRUPT])
    return {"cash": float(state[P_CASH]), "equity": float(state[P_EQUITY]),
            "positions": state[P_BOOKS:P_BOOKS + m].copy(), "bars": int(state[P_BARS]),
            "bankrupt_bar": bankrupt if bankrupt >= 0 else None}
