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


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """One column as float64."""
    return frame[name].to_numpy(np.float64)


def realised_pnl(result, symbol: str) -> pd.Series:
    """Exact per-bar PnL of one symbol in the engine's result (before funding)."""
    return pd.Series(_realised_pnl(result, symbol), index=result.equity.index)


def _realised_pnl(result, symbol: str) -> np.ndarray:
    frame = result.prices[symbol]
    open_ = _column(frame, "open")
    close = pd.Series(_column(frame, "close")).ffill().to_numpy()
    pos = result.positions[symbol].to_numpy(np.float64)
    pnl = np.zeros(len(pos))
    prev_close = np.concatenate([[np.nan], close[:-1]])
    prev_pos = np.concatenate([[0.0], pos[:-1]])
    gap = np.where(np.isfinite(open_), prev_pos * (open_ - prev_close), 0.0)
    body = np.where(np.isfinite(open_), pos * (close - open_), prev_pos * (close - prev_close))
    pnl[1:] = np.nan_to_num(gap[1:]) + np.nan_to_num(body[1:])
    fills = result.fills
    if len(fills):
        fills = fills[fills["symbol"].to_numpy() == symbol]
    if len(fills):
        rows = result.equity.index.get_indexer(fills["time"])
        side = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0)
        slip_cost = side * fills["qty"].to_numpy() * (fills["price"].to_numpy() - open_[rows])
        np.subtract.at(pnl, rows, fills["fee"].to_numpy() + np.nan_to_num(slip_cost))
    return pnl


def attribute(result, table: pd.DataFrame, agents: tuple[str, ...]) -> pd.DataFrame:
    """PnL (currency) by agent and regime for a committee ``result`` and its ``run`` table."""
    symbols = list(result.prices)
    rows = list(agents) + ["execution_and_costs"]
    out = np.zeros((len(rows), len(CELL_NAMES)))
    equity = result.equity
    eq = equity.to_numpy()
    for symbol in symbols:
        part = table if not isinstance(table.columns, pd.MultiIndex) else table[symbol]
        if not part.index.equals(equity.index):
            part = part.reindex(equity.index)
        close = pd.Series(_column(result.prices[symbol], "close")).ffill().to_numpy()
        next_return = np.nan_to_num(np.concatenate([close[1:], [np.nan]]) / close - 1.0, nan=0.0, posinf=np.inf,
                                    neginf=-np.inf)
        regime = pd.Series(part["regime"].to_numpy(np.float64)).ffill().fillna(4).astype(int).to_numpy()
        decided = np.roll(regime, 1)
        decided[0] = regime[0]
        actual = _realised_pnl(result, symbol)
        paper_total = np.zeros(len(equity))
        for a, agent in enumerate(agents):
            share = np.nan_to_num(part[f"c_{agent}"].to_numpy(np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
            paper = share * eq * next_return
            paper_total += paper
            out[a] += np.bincount(regime, weights=paper, minlength=9)
        residual = actual - np.roll(paper_total, 1)
        residual[0] = actual[0]
        out[-1] += np.bincount(decided, weights=residual, minlength=9)
    frame = pd.DataFrame(0.0, index=rows, columns=CELL_NAMES)  # same layout as before: bit-identical totals
    frame.iloc[:, :] = out
    frame["total"] = frame.sum(axis=1)
    frame.loc["total"] = frame.sum(axis=0)
    return frame
