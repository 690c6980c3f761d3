"""One unit convention for every number coinswarm prints.

**Fractions in data, percentages in text.** Metrics in a :class:`~coinswarm.backtest.engine.Result`,
in a sweep table, in JSON and CSV are fractions (``total_return`` 0.25 is +25 %, 44.07 is
+4,407 %); text for people (result lines, the sweep table the CLI prints, reports) shows the same
numbers as percentages. Fees and slippage are basis points everywhere (1 bp = 0.01 %), printed
without a trailing ``.0`` (``10 bps`` from Python and from the command line alike).
``max_drawdown_days`` is calendar days (bars × bar length, so fractional on intraday bars) and
is printed as whole days.
"""

from __future__ import annotations

import math

import pandas as pd

#: Metrics that are fractions of equity or of time, printed as percentages.
PERCENT_METRICS = ("total_return", "cagr", "ann_volatility", "max_drawdown", "win_rate", "exposure")
#: Metrics where smaller is better: ``sweep --sort`` puts their smallest values first.
LOWER_IS_BETTER = ("max_drawdown", "max_drawdown_days", "ann_volatility", "fees_paid", "turnover")


def bps(value: float) -> str:
    """``10`` and ``10.0`` → ``"10 bps"``; ``2.5`` → ``"2.5 bps"``."""
    return f"{float(value):g} bps"


def percent(value: float) -> str:
    """A fraction as a percentage with two decimals (``0.2534`` → ``"25.34%"``); NaN → ``"n/a"``."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2%}"


def days(value: float) -> str:
    """Calendar days, whole (``12.9583`` → ``"13"``)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.0f}"


def table_text(table: pd.DataFrame) -> str:
    """A metrics table as text: fractions as percentages, drawdown days whole, the rest 4 digits.

    The column header of a percentage column gets a ``%`` suffix (``total_return%``), so a
    reader never mistakes 44.07 for a fraction.
    """
    out = pd.DataFrame(index=table.index)
    for name in table.columns:
        column = table[name]
        if name in PERCENT_METRICS:
            out[f"{name}%"] = column.map(lambda v: "n/a" if not math.isfinite(v) else f"{100 * v:.2f}")
        elif name == "max_drawdown_days":
            out[name] = column.map(days)
        elif pd.api.types.is_float_dtype(column):
            out[name] = column.map(lambda v: f"{v:.4g}")
        else:
            out[name] = column
    return out.to_string(index=False)


def sort_best_first(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows ordered best first: ascending for :data:`LOWER_IS_BETTER`, descending otherwise; NaN last."""
    return table.sort_values(column, ascending=column in LOWER_IS_BETTER, na_position="last", kind="stable")
