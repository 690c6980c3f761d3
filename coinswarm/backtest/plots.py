"""Plots of a backtest, a walk-forward and a sweep.

Every figure is titled with what was run and its headline metrics, states its assumptions
(fees, slippage, fill rule, data range), labels its axes with units (equity in the quote
currency on a log axis with plain ticks, drawdown and position in % of equity) and draws
buy-and-hold as the benchmark.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from coinswarm.errors import ConfigError

STRATEGY_COLOUR, BENCHMARK_COLOUR, FOLD_COLOUR = "tab:blue", "0.45", "tab:orange"


def money(value: float, _pos=None) -> str:
    """``12345`` → ``"12.3k"``; a plain, readable tick label for a log-scaled money axis."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def log_money_axis(ax, label: str) -> None:
    """Log y-axis with ticks at 1, 2 and 5 × 10ⁿ labelled as money (no 10⁴ notation)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(money))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(label)
    ax.grid(True, which="major", alpha=0.3)


def quote_currency(result) -> str:
    """``"USDT"`` for ``BTC/USDT`` (all symbols sharing one quote), else ``"cash"``."""
    quotes = {s.split("/")[1].split(":")[0] for s in result.assumptions["symbols"] if "/" in s}
    return quotes.pop() if len(quotes) == 1 else "cash"


def headline(result) -> str:
    """``total return 848%, CAGR 38%, Sharpe 0.92, max drawdown 66%, 400 trades``."""
    m = result.metrics
    return (f"total return {m['total_return']:.0%}, CAGR {m['cagr']:.1%}, Sharpe {m['sharpe']:.2f}, "
            f"max drawdown {m['max_drawdown']:.1%}, {int(m['n_trades'])} trades")


def assumptions_line(result) -> str:
    """Fees, slippage, fill rule and data range, for a subtitle."""
    a = result.assumptions
    cash = f"cash {a['cash_rate']:.1%}, borrow {a['borrow_rate']:.1%}, " if "cash_rate" in a else ""
    return (f"fees {a['fee_bps']:g} bps, slippage {a['slippage_bps']:g} bps, {cash}fills at {a['execution']}, "
            f"{a['start'][:10]} → {a['end'][:10]}")


def benchmark_equity(result) -> pd.Series:
    """Buy-and-hold equity (no costs; equal weights, never rebalanced, for several symbols)."""
    init = result.assumptions["init_cash"]
    parts = []
    for symbol in result.positions.columns:
        close = result.prices[symbol]["close"].ffill().bfill()
        parts.append(close / close.iloc[0])
    growth = pd.concat(parts, axis=1).mean(axis=1) if parts else pd.Series(1.0, index=result.equity.index)
    return (init * growth).rename("buy and hold")


def exposure(result) -> pd.Series:
    """Gross exposure per bar: Σ|units × close| / equity (1.0 = fully invested)."""
    gross = pd.Series(0.0, index=result.equity.index)
    for symbol in result.positions.columns:
        close = result.prices[symbol]["close"].ffill()
        gross = gross + (result.positions[symbol] * close).abs()
    equity = result.equity.where(result.equity > 0)
    return (gross / equity).fillna(0.0).rename("exposure")


def _daily(series: pd.Series) -> pd.Series:
    return series.resample("1D").last().dropna() if len(series) > 5000 else series


def _equity_panel(ax, result, benchmark: bool) -> None:
    equity = _daily(result.equity)
    ax.plot(equity.index, equity.to_numpy(), lw=1.1, color=STRATEGY_COLOUR, label="strategy")
    if benchmark:
        bench = _daily(benchmark_equity(result))
        total = bench.iloc[-1] / result.assumptions["init_cash"] - 1.0
        ax.plot(bench.index, bench.to_numpy(), lw=0.9, color=BENCHMARK_COLOUR,
                label=f"buy and hold (no costs, total return {total:.0%})")
    log_money_axis(ax, f"equity ({quote_currency(result)}, log scale)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _drawdown_panel(ax, result) -> None:
    equity = _daily(result.equity)
    drawdown = (equity / equity.cummax() - 1.0) * 100.0
    ax.fill_between(drawdown.index, drawdown.to_numpy(), 0.0, color="tab:red", alpha=0.45, lw=0)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("drawdown (%)")
    ax.grid(True, alpha=0.3)


def _position_panel(ax, result) -> None:
    equity = result.equity.where(result.equity > 0)
    several = len(result.positions.columns) > 1
    for symbol in result.positions.columns:
        close = result.prices[symbol]["close"].ffill()
        weight = result.positions[symbol] * close / equity * 100.0
        if len(weight) > 5000:  # hourly flips are unreadable over years: the weekly mean
            weight = weight.resample("7D").mean().dropna()
        if several:
            ax.plot(weight.index, weight.to_numpy(), lw=0.8, label=symbol)
        else:
            ax.fill_between(weight.index, weight.to_numpy(), 0.0, step="post", lw=0, alpha=0.6, label=symbol)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("position (% of equity,\nweekly mean)" if len(result.equity) > 5000 else "position (% of equity)")
    ax.set_xlabel("date (UTC)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=min(len(result.positions.columns), 6))


def _panels(result, title: str, benchmark: bool = True):
    fig, (ax_eq, ax_dd, ax_pos) = plt.subplots(
        3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2]}
    )
    _equity_panel(ax_eq, result, benchmark)
    _drawdown_panel(ax_dd, result)
    _position_panel(ax_pos, result)
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    ax_eq.set_title(f"{headline(result)}\n{assumptions_line(result)}", fontsize=9, loc="left")
    fig.tight_layout()
    return fig, (ax_eq, ax_dd, ax_pos)


def save(fig, path: str | None):
    """Save to ``path`` (then close) when given; return the figure."""
    if path:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_result(result, path: str | None = None, *, title: str | None = None, benchmark: bool = True):
    """Equity vs buy-and-hold (log), drawdown (%) and positions (% of equity) of a
    :class:`~coinswarm.backtest.engine.Result` (saved when ``path`` is given).

    Parameters
    ----------
    result : Result
    path : str, optional
        PNG (or any matplotlib format) to write; the figure is closed after saving.
    title : str, optional
        What was run, e.g. ``"sma_cross(fast=20, slow=100) on BTC/USDT 1h"``.
    benchmark : bool
        Draw buy-and-hold of the same symbols.
    """
    name = title or f"backtest: {', '.join(result.assumptions['symbols'])}"
    fig, _ = _panels(result, name, benchmark)
    return save(fig, path)


def plot_walk_forward(report, path: str | None = None, *, benchmark: bool = True):
    """Out-of-sample equity, drawdown and positions with alternate test windows shaded
    (and a legend saying so), titled with the gate's numbers."""
    verdict = "passed" if report.passed else "failed"
    fig, axes = _panels(report.oos, f"walk-forward {report.strategy}: OOS Sharpe {report.oos_sharpe:.2f}, "
                        f"DSR {report.dsr:.2f}, PBO {report.pbo:.2f}, {report.n_trials} trials — gate {verdict}",
                        benchmark)
    for k, fold in enumerate(report.folds):
        if k % 2 == 0:
            for ax in axes:
                ax.axvspan(fold["test_start"], fold["test_end"], color=FOLD_COLOUR, alpha=0.10, lw=0)
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Patch(color=FOLD_COLOUR, alpha=0.25))
    labels.append(f"test windows of {len(report.folds)} folds (every other one shaded)")
    axes[0].legend(handles, labels, loc="upper left", fontsize=8, frameon=False)
    return save(fig, path)


def plot_sweep(table: pd.DataFrame, x: str | None = None, y: str | None = None, metric: str = "sharpe",
               path: str | None = None):
    """Heatmap of one metric over two parameters of a :func:`coinswarm.sweep` table.

    Parameters
    ----------
    table : DataFrame
        What :func:`coinswarm.sweep` returned.
    x, y : str, optional
        Parameter columns for the axes (default: the first two parameters of the strategy).
    metric : str
        Metric column coloured (invalid combinations stay blank); the best cell is boxed.
    path : str, optional
        File to write.

    Raises
    ------
    ConfigError
        A column that is not in the table, or fewer than two parameters.
    """
    params = [c for c in table.columns if c not in _metric_names()]
    x = x or (params[0] if params else None)
    y = y or (params[1] if len(params) > 1 else None)
    for name, value in (("x", x), ("y", y), ("metric", metric)):
        if value is None or value not in table.columns:
            raise ConfigError(f"plot_sweep {name}={value!r} is not a column of the table; columns are "
                              f"{list(table.columns)}")
    grid = table.pivot_table(index=y, columns=x, values=metric, aggfunc="max")
    fig, ax = plt.subplots(figsize=(min(4 + 0.45 * len(grid.columns), 13), min(3 + 0.3 * len(grid.index), 9)))
    percent = metric in _PERCENT_METRICS
    values = grid.to_numpy(dtype=np.float64) * (100.0 if percent else 1.0)
    cmap = "RdYlGn_r" if metric in _LOWER_IS_BETTER else "RdYlGn"
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
                      norm=_centred(values, metric))
    ax.set_xticks(range(len(grid.columns)), [str(v) for v in grid.columns],
                  rotation=0 if len(grid.columns) <= 16 else 90, fontsize=7)
    ax.set_yticks(range(len(grid.index)), [str(v) for v in grid.index], fontsize=7)
    ax.set_xlabel(f"{x} (bars)" if x in ("fast", "slow") else x)
    ax.set_ylabel(f"{y} (bars)" if y in ("fast", "slow") else y)
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(_METRIC_LABELS.get(metric, f"{metric} (%)" if percent else metric))
    if np.isfinite(values).any():
        pick = np.nanargmin if metric in _LOWER_IS_BETTER else np.nanargmax
        row, col = np.unravel_index(pick(values), values.shape)
        ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, lw=2, ec="black"))
        word = "lowest" if metric in _LOWER_IS_BETTER else "best"
        best = (f"{word} {metric} {values[row, col]:.2f}{'%' if percent else ''} at {x}={grid.columns[col]}, "
                f"{y}={grid.index[row]} (boxed)")
    else:
        best = "no finite value"
    a = table.attrs.get("assumptions", {})
    costs = f"fees {a.get('fee_bps', math.nan):g} bps, slippage {a.get('slippage_bps', math.nan):g} bps"
    ax.set_title(f"sweep {table.attrs.get('strategy', '')}: {metric} over {len(table)} combinations; {best}\n"
                 f"{costs}, {str(a.get('start', ''))[:10]} → {str(a.get('end', ''))[:10]}; blank = invalid",
                 fontsize=9, loc="left")
    fig.tight_layout()
    return save(fig, path)


_METRIC_LABELS = {"sharpe": "Sharpe (daily returns, √365)", "sortino": "Sortino (daily returns, √365)",
                  "max_drawdown": "max drawdown (%)", "total_return": "total return (%)", "cagr": "CAGR (%)"}


def _centred(values: np.ndarray, metric: str):
    """A colour scale with white at 0 for metrics whose sign matters (red loses, green earns)."""
    from matplotlib.colors import TwoSlopeNorm

    finite = values[np.isfinite(values)]
    if metric == "max_drawdown" or not len(finite) or finite.min() >= 0 or finite.max() <= 0:
        return None
    return TwoSlopeNorm(vcenter=0.0, vmin=finite.min(), vmax=finite.max())


_LOWER_IS_BETTER = ("max_drawdown", "max_drawdown_days", "ann_volatility", "fees_paid", "funding_paid", "turnover")
_PERCENT_METRICS = ("total_return", "cagr", "ann_volatility", "max_drawdown", "win_rate", "exposure")


def _metric_names() -> tuple[str, ...]:
    from coinswarm.kernels.metrics import METRIC_NAMES

    return METRIC_NAMES
