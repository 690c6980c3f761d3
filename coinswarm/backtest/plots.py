"""Plots: equity, drawdown and positions; walk-forward test windows shaded."""

from __future__ import annotations

import matplotlib.pyplot as plt


def _panels(result, title: str):
    fig, (ax_eq, ax_dd, ax_pos) = plt.subplots(
        3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.2]}
    )
    equity = result.equity
    ax_eq.plot(equity.index, equity.to_numpy(), lw=1.0, color="tab:blue")
    ax_eq.set_ylabel("equity")
    ax_eq.set_yscale("log")
    a = result.assumptions
    ax_eq.set_title(f"{title}\nfees {a['fee_bps']} bps, slippage {a['slippage_bps']} bps, "
                    f"fills at {a['execution']}, {a['start'][:10]} → {a['end'][:10]}", fontsize=9)
    drawdown = equity / equity.cummax() - 1.0
    ax_dd.fill_between(drawdown.index, drawdown.to_numpy(), 0.0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown")
    for symbol in result.positions.columns:
        close = result.prices[symbol]["close"].ffill()
        weight = result.positions[symbol] * close / equity
        ax_pos.plot(weight.index, weight.to_numpy(), lw=0.8, label=symbol)
    ax_pos.set_ylabel("weight")
    ax_pos.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig, (ax_eq, ax_dd, ax_pos)


def plot_result(result, path: str | None = None):
    """Figure of a :class:`~coinswarm.backtest.engine.Result` (saved when ``path`` is given)."""
    fig, _ = _panels(result, f"backtest: {', '.join(result.assumptions['symbols'])}")
    if path:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def plot_walk_forward(report, path: str | None = None):
    """Figure of a walk-forward report with alternate test windows shaded."""
    verdict = "passed" if report.passed else "failed"
    fig, axes = _panels(report.oos, f"walk-forward {report.strategy}: OOS Sharpe "
                        f"{report.oos_sharpe:.2f}, DSR {report.dsr:.2f}, PBO {report.pbo:.2f} "
                        f"({verdict})")
    for k, fold in enumerate(report.folds):
        if k % 2 == 0:
            for ax in axes:
                ax.axvspan(fold["test_start"], fold["test_end"], color="grey", alpha=0.12, lw=0)
    if path:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
