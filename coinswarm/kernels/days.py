"""The UTC days the portfolio kernel finances at each bar (interest on idle cash, borrow fees):
one causal rule for :func:`coinswarm.simulate` and the live daemon, plain numpy (the exchange
daemon imports it without the compiled kernel)."""

from __future__ import annotations

import numpy as np

DAY_MS = 86_400_000


def finance_days(open_ms, bar_ms: int) -> np.ndarray:
    """The UTC days financed at each bar: the day ends (00:00 UTC) after the previous bar's close
    (the first bar: after its open) and at or before this bar's close (``open + bar_ms``).

    One causal rule for the backtest and the live daemon, which cannot know a bar is the last of
    its day until a later one arrives: day D is financed at the close of the first bar whose close
    is ≥ the end of D. On whole days without gaps that is each day's last bar (one day each); a
    gap makes the first bar after it finance every day ended meanwhile; a series ending mid-day
    leaves that day unfinanced.

    Parameters
    ----------
    open_ms : array of int
        Bar open times, epoch ms UTC, increasing.
    bar_ms : int
        Bar length in ms (> 0).

    Returns
    -------
    ndarray of int64
        Days to finance at each bar (the ``days`` of
        :func:`coinswarm.kernels.portfolio.portfolio_step`).
    """
    opens = np.asarray(open_ms, dtype=np.int64)
    closes = opens + np.int64(bar_ms)
    since = np.empty_like(closes)
    if len(closes):
        since[0] = opens[0]
        since[1:] = closes[:-1]
    return np.maximum(closes // DAY_MS - since // DAY_MS, 0)


def days_financed(last_open_ms: int | None, open_ms: int, bar_ms: int) -> int:
    """:func:`finance_days` of one bar opening at ``open_ms`` after a bar that opened at
    ``last_open_ms`` (None: the first bar), both ``bar_ms`` long — the live daemon's form."""
    since = open_ms if last_open_ms is None else last_open_ms + bar_ms
    return max(0, (open_ms + bar_ms) // DAY_MS - since // DAY_MS)
