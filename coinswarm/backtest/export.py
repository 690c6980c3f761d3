"""A run's series for JSON: equity at each bar and every fill (``coinswarm ... --json``).

Kept apart from ``Result.to_dict`` (metrics and assumptions only, small enough to log); numbers
are fractions and quote-currency amounts as in the result itself (see :mod:`coinswarm.backtest.units`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def series_dict(result) -> dict:
    """``{"equity": {"time": [...], "equity": [...]}, "fills": [{time, symbol, side, qty, price, fee}, ...]}``.

    Times are ISO-8601 UTC (bar close for equity, fill bar for fills); non-finite numbers are
    ``null``.
    """
    equity = result.equity
    fills = result.fills
    return {
        "equity": {"time": _times(equity.index), "equity": _floats(equity.to_numpy(dtype=np.float64))},
        "fills": [
            {"time": t, "symbol": str(s), "side": str(d), "qty": q, "price": p, "fee": f}
            for t, s, d, q, p, f in zip(_times(pd.DatetimeIndex(fills["time"])), fills["symbol"], fills["side"],
                                        _floats(fills["qty"]), _floats(fills["price"]), _floats(fills["fee"]),
                                        strict=True)
        ],
    }


def _times(index: pd.DatetimeIndex) -> list[str]:
    return [t.isoformat() for t in index]


def _floats(values) -> list:
    array = np.asarray(values, dtype=np.float64)
    return [float(v) if np.isfinite(v) else None for v in array]
