"""PnL attribution of a committee backtest: by agent and by regime.

For each symbol and bar t+1 the engine's realised PnL is exact:
``pos_t · (open_{t+1} − close_t) + pos_{t+1} · (close_{t+1} − open_{t+1}) − fees − slippage``
(funding, if any, is left in the total). Each agent is credited with the *paper* PnL of
its share of the risk-limited target decided at t: ``c_a,t · equity_t · r_{t+1}`` with
``r`` the close-to-close return. What remains — execution shaping (bands, steps, fills at
the next open) and costs — is the ``execution_and_costs`` row. Columns are the regime
cell (volatility/trend) in force when the decision was made, plus ``total``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coinswarm.regime.detector import CELL_NAMES


def realised_pnl(result, symbol: str) -> pd.Series:
    """Exact per-bar PnL of one symbol in the engine's result (before funding)."""
    frame = result.prices[symbol]
    open_ = frame["open"].to_numpy(np.float64)
    close = frame["close"].ffill().to_numpy(np.float64)
    pos = result.positions[symbol].to_numpy(np.float64)
    pnl = np.zeros(len(pos))
    prev_close = np.concatenate([[np.nan], close[:-1]])
    prev_pos = np.concatenate([[0.0], pos[:-1]])
    gap = np.where(np.isfinite(open_), prev_pos * (open_ - prev_close), 0.0)
    body = np.where(np.isfinite(open_), pos * (close - open_), prev_pos * (close - prev_close))
    pnl[1:] = np.nan_to_num(gap[1:]) + np.nan_to_num(body[1:])
    fills = result.fills[result.fills["symbol"] == symbol]
    if len(fills):
        rows = result.equity.index.get_indexer(fills["time"])
        side = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0)
        slip_cost = side * fills["qty"].to_numpy() * (fills["price"].to_numpy() - open_[rows])
        np.subtract.at(pnl, rows, fills["fee"].to_numpy() + np.nan_to_num(slip_cost))
    return pd.Series(pnl, index=result.equity.index)


def attribute(result, table: pd.DataFrame, agents: tuple[str, ...]) -> pd.DataFrame:
    """PnL (currency) by agent and regime for a committee ``result`` and its ``run`` table."""
    symbols = list(result.prices)
    rows = list(agents) + ["execution_and_costs"]
    out = pd.DataFrame(0.0, index=rows, columns=CELL_NAMES)
    equity = result.equity
    for symbol in symbols:
        part = table if not isinstance(table.columns, pd.MultiIndex) else table[symbol]
        part = part.reindex(equity.index)
        close = result.prices[symbol]["close"].ffill()
        next_return = (close.shift(-1) / close - 1.0).fillna(0.0).to_numpy()
        regime = part["regime"].ffill().fillna(4).astype(int).to_numpy()
        decided = np.roll(regime, 1)
        decided[0] = regime[0]
        actual = realised_pnl(result, symbol).to_numpy()
        paper_total = np.zeros(len(equity))
        for agent in agents:
            share = part[f"c_{agent}"].fillna(0.0).to_numpy()
            paper = share * equity.to_numpy() * next_return
            paper_total += paper
            out.loc[agent] += np.bincount(regime, weights=paper, minlength=9)
        residual = actual - np.roll(paper_total, 1)
        residual[0] = actual[0]
        out.loc["execution_and_costs"] += np.bincount(decided, weights=residual, minlength=9)
    out["total"] = out.sum(axis=1)
    out.loc["total"] = out.sum(axis=0)
    return out
