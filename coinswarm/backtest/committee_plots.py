"""Figures for regimes and the committee: price with regime shading, weights over time,
attribution by agent and regime."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from coinswarm.backtest.plots import log_money_axis
from coinswarm.errors import ConfigError

VOL_COLOURS = {"low": "tab:green", "normal": None, "high": "tab:red"}
TREND_COLOURS = {"down": "tab:red", "range": None, "up": "tab:green"}


def _shade(ax, index: pd.DatetimeIndex, labels: pd.Series, colours: dict) -> None:
    """Shade contiguous runs of each coloured label."""
    values = labels.astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for lo, hi in zip(starts, ends, strict=True):
        colour = colours.get(values[lo])
        if colour:
            ax.axvspan(index[lo], index[min(hi, len(index) - 1)], color=colour, alpha=0.15, lw=0)


def _save(fig, path: str | None):
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_regimes(prices: pd.DataFrame, labels: pd.DataFrame, path: str | None = None):
    """Close price (log scale) twice: shaded by volatility regime, then by trend regime."""
    fig, (ax_vol, ax_trend) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    close = prices["close"]
    source = str(prices.attrs.get("source", ""))
    quote = source.split(":")[1].split("/")[1] if source.count(":") >= 2 and "/" in source else "price"
    for ax, column, colours in ((ax_vol, "volatility", VOL_COLOURS), (ax_trend, "trend", TREND_COLOURS)):
        ax.plot(close.index, close.to_numpy(), lw=0.7, color="black")
        log_money_axis(ax, f"close ({quote}, log scale)")
        _shade(ax, close.index, labels[column], colours)
        named = ", ".join(f"{k} = {v.replace('tab:', '')}" for k, v in colours.items() if v)
        ax.set_title(f"{column} regime ({named}; unshaded = {'normal' if column == 'volatility' else 'range'})",
                     fontsize=9)
    ax_trend.set_xlabel("date (UTC)")
    version = labels["version"].iloc[0] if len(labels) else ""
    fig.suptitle(f"{prices.attrs.get('source', '')} causal regimes ({version})", fontsize=10)
    return _save(fig, path)


def plot_weights(table: pd.DataFrame, agents: tuple[str, ...], path: str | None = None):
    """Committee weights in use (stacked, % of the vote) and the risk brake over time, for one
    symbol's :meth:`Committee.run` table (``w_<agent>`` and ``brake`` columns)."""
    from matplotlib.ticker import PercentFormatter

    missing = [c for c in (*(f"w_{a}" for a in agents), "brake") if c not in table.columns]
    if missing:
        raise ConfigError(f"plot_weights needs a Committee.run table of one symbol; missing columns {missing} "
                          f"(columns are {list(table.columns)[:12]})")
    fig, (ax_w, ax_b) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    daily = table.resample("1D").last()
    weights = [daily[f"w_{a}"].to_numpy() * 100.0 for a in agents]
    means = [f"{a} (mean {daily[f'w_{a}'].mean():.0%})" for a in agents]
    ax_w.stackplot(daily.index, *weights, labels=means, alpha=0.8)
    ax_w.set_ylim(0, 100)
    ax_w.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax_w.set_ylabel("weight (% of the vote)")
    ax_w.legend(loc="lower left", fontsize=8, framealpha=0.85)
    ax_w.set_title("committee weights in the current regime cell (each UTC day's last bar)", fontsize=9, loc="left")
    ax_b.plot(daily.index, daily["brake"].to_numpy(), lw=0.8, color="tab:red")
    ax_b.set_ylabel("risk brake\n(1 = no cut)")
    ax_b.set_ylim(-0.05, 1.05)
    ax_b.set_xlabel("date (UTC)")
    ax_b.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_attribution(attribution: pd.DataFrame, path: str | None = None, *, currency: str = "quote currency"):
    """PnL by agent within each regime cell (bars, totals in the legend), from
    :meth:`Committee.backtest`'s ``Result.attribution``."""
    from matplotlib.ticker import FuncFormatter

    if not isinstance(attribution, pd.DataFrame) or attribution.empty:
        raise ConfigError("plot_attribution needs Result.attribution (a DataFrame of agents × regimes) from "
                          f"Committee.backtest, not {type(attribution).__name__}")
    totals = attribution["total"] if "total" in attribution.columns else attribution.sum(axis=1)
    body = attribution.drop(index="total", errors="ignore").drop(columns="total", errors="ignore")
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(len(body.index), 1)
    x = np.arange(len(body.columns))
    for k, agent in enumerate(body.index):
        ax.bar(x + k * width, body.loc[agent].to_numpy(), width, label=f"{agent} (total {totals[agent]:+,.0f})")
    ax.set_xticks(x + width * (len(body.index) - 1) / 2)
    ax.set_xticklabels(body.columns, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel(f"PnL ({currency})")
    ax.set_xlabel("regime when the decision was made (volatility/trend)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    total = f", committee total {totals['total']:+,.0f}" if "total" in totals.index else ""
    ax.set_title(f"PnL attribution by agent and regime{total}", fontsize=9, loc="left")
    return _save(fig, path)
