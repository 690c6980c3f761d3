"""Each sleeve's net contribution inside a portfolio committee's backtest: PnL after its share of costs.

For every symbol and bar the engine's realised PnL is exact (price moves, fees and slippage:
:func:`coinswarm.backtest.attribution.realised_pnl`; plus the funding charged on perpetuals).
Each sleeve is credited with the fraction of that PnL matching its part of the symbol's
position, as decided at the last daily decision before the bar
(:meth:`coinswarm.committee.portfolio.PortfolioCommittee.sleeve_weights`); a position a
decision closes keeps the split it had, so the closing fee goes to whoever held it. Where two
sleeves hold opposite weights in one symbol the split is signed (each is credited with the PnL
of its own weight). What no decision explains (nothing should) is ``unattributed``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coinswarm.backtest.attribution import realised_pnl
from coinswarm.backtest.engine import funding_matrix


def _funding_pnl(result, costs, symbols: list[str]) -> np.ndarray:
    """Funding received (+) or paid (−) per bar and symbol on the positions held into the bar."""
    index = result.equity.index
    rates = funding_matrix(costs, index, symbols)
    held = result.positions[symbols].to_numpy(np.float64)
    before = np.vstack([np.zeros((1, len(symbols))), held[:-1]])
    opens = np.column_stack([result.prices[s]["open"].ffill().to_numpy(np.float64) for s in symbols])
    return np.nan_to_num(-before * opens * rates)


def _shares(weights: pd.DataFrame, sleeves: tuple[str, ...], symbol: str, index: pd.DatetimeIndex) -> np.ndarray:
    """(bars, sleeves) share of ``symbol``'s PnL for each sleeve, from the decisions before each bar."""
    parts = weights[[(s, symbol) for s in sleeves]].to_numpy(np.float64)
    total = parts.sum(axis=1, keepdims=True)
    decided = np.isfinite(total[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(decided[:, None] & (np.abs(total) > 1e-12), parts / total, np.nan)
    frame = pd.DataFrame(share, index=weights.index).ffill().shift(1)
    return frame.reindex(index, method="ffill").to_numpy(np.float64)


def sleeve_contributions(result, weights: pd.DataFrame, costs, sleeves: tuple[str, ...] = ("trend", "carry")) -> dict:
    """Net PnL (currency and fraction of the initial cash) of each sleeve in ``result``.

    Parameters
    ----------
    result : Result
        The committee's backtest (the out-of-sample run of a walk-forward).
    weights : DataFrame
        :meth:`PortfolioCommittee.sleeve_weights` of the same run, from its first bar (it may
        start before ``result``: the composition held into the window is carried).
    costs : Costs
        The costs of ``result`` (for the funding series).

    Returns
    -------
    dict
        ``{sleeve: {"net_pnl", "net_return", "fees", "funding", "share_of_net", "days_on"}, "unattributed": …,
        "init_cash": …}``.
    """
    symbols = list(result.prices)
    index = result.equity.index
    init_cash = float(result.assumptions["init_cash"])
    funding = _funding_pnl(result, costs, symbols)
    fees = np.zeros((len(index), len(symbols)))
    if len(result.fills):
        rows = index.get_indexer(result.fills["time"])
        cols = [symbols.index(s) for s in result.fills["symbol"]]
        np.add.at(fees, (rows, cols), result.fills["fee"].to_numpy(np.float64))
    out = {s: {"net_pnl": 0.0, "fees": 0.0, "funding": 0.0} for s in sleeves}
    for j, symbol in enumerate(symbols):
        share = np.nan_to_num(_shares(weights, sleeves, symbol, index))
        pnl = realised_pnl(result, symbol).to_numpy() + funding[:, j]
        for k, sleeve in enumerate(sleeves):
            out[sleeve]["net_pnl"] += float(share[:, k] @ pnl)
            out[sleeve]["fees"] += float(share[:, k] @ fees[:, j])
            out[sleeve]["funding"] += float(share[:, k] @ funding[:, j])
    total = float(result.equity.iloc[-1]) - init_cash
    window = weights.loc[(weights.index >= index[0]) & (weights.index <= index[-1])]
    for sleeve in sleeves:
        row = out[sleeve]
        row["net_return"] = row["net_pnl"] / init_cash
        row["share_of_net"] = row["net_pnl"] / total if total else float("nan")
        gates = window[("gate", sleeve)].dropna() if ("gate", sleeve) in window.columns else pd.Series(dtype=float)
        row["days_on"] = float(gates.mean()) if len(gates) else float("nan")
    out["unattributed"] = total - sum(out[s]["net_pnl"] for s in sleeves)
    out["init_cash"] = init_cash
    return out
