"""The walk-forward gate's defaults, in one place: :class:`~coinswarm.backtest.walkforward.Gate`,
``coinswarm walkforward`` and ``coinswarm evidence`` all read them (this module imports nothing,
so the command line shows them in ``--help`` without loading the library).

A strategy passes when, out of sample and after fees and slippage, its Sharpe ratio (daily
returns, √365) is at least ``min_sharpe``, its deflated Sharpe ratio over every trial of every
fold at least ``min_dsr``, its probability of backtest overfitting (CSCV) at most ``max_pbo``
(0.5: the in-sample best is more likely than not below the out-of-sample median) and it made at
least ``min_trades`` round trips.
"""

GATE_DEFAULTS: dict[str, float | int] = {"min_sharpe": 1.5, "min_dsr": 0.95, "max_pbo": 0.5, "min_trades": 10}


def describe_gate(min_sharpe: float, min_dsr: float, max_pbo: float | None, min_trades: int) -> str:
    """``OOS Sharpe >= 1.5, DSR >= 0.95, PBO <= 0.5 (min 10 trades)`` for reports."""
    pbo = "" if max_pbo is None else f", PBO <= {max_pbo:g}"
    return f"OOS Sharpe >= {min_sharpe:g}, DSR >= {min_dsr:g}{pbo} (min {min_trades} trades)"
