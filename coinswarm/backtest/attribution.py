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

from coinswarm.errors import ConfigError
from coinswarm.kernels.attribution import attribution_bins_nb, realised_bars_nb
from coinswarm.regime.detector import CELL_NAMES


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """One column as contiguous float64."""
    return np.ascontiguousarray(frame[name].to_numpy(np.float64))


def _ffill(values: np.ndarray) -> np.ndarray:
    """Forward-fill NaN as ``Series.ffill`` does (leading NaN stay); the input when nothing is missing."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    last = np.where(missing, 0, np.arange(len(values)))
    np.maximum.accumulate(last, out=last)
    return values[last]


def _finite(values: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(values)`` (NaN → 0, ±inf → the largest finite float), skipped when all are finite."""
    return values if np.isfinite(values).all() else np.nan_to_num(values)


def _regime_codes(column: pd.Series) -> np.ndarray:
    """Regime cells as int64, NaN carried forward from the last known cell (4 before any)."""
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    codes = _ffill(values.astype(np.float64))
    return np.where(np.isnan(codes), 4.0, codes).astype(np.int64)


def realised_pnl(result, symbol: str) -> pd.Series:
    """Exact per-bar PnL of one symbol in the engine's result (before funding)."""
    return pd.Series(_realised_pnl(result, symbol), index=result.equity.index)


def _realised_pnl(result, symbol: str) -> np.ndarray:
    frame = result.prices[symbol]
    open_ = _column(frame, "open")
    pnl = np.empty(len(open_))
    realised_bars_nb(open_, _ffill(_column(frame, "close")),
                     np.ascontiguousarray(result.positions[symbol].to_numpy(np.float64)), pnl)
    fills = result.fills
    if len(fills) and len(result.prices) > 1:
        fills = fills[np.asarray(fills["symbol"].array == symbol, dtype=bool)]
    if len(fills):
        rows = result.equity.index.get_indexer(fills["time"])
        side = np.where(np.asarray(fills["side"].array == "buy", dtype=bool), 1.0, -1.0)
        slip_cost = side * fills["qty"].to_numpy() * (fills["price"].to_numpy() - open_[rows])
        np.subtract.at(pnl, rows, fills["fee"].to_numpy() + _finite(slip_cost))
    return pnl


def _symbol_bins(equity: np.ndarray, part: pd.DataFrame, close: np.ndarray, actual: np.ndarray,
                 agents: tuple[str, ...]) -> np.ndarray:
    """One symbol's paper PnL per agent and its residual (the last row) by regime cell."""
    regime = _regime_codes(part["regime"])
    if len(regime) and (regime.min() < 0 or regime.max() >= len(CELL_NAMES)):
        bad = int(np.flatnonzero((regime < 0) | (regime >= len(CELL_NAMES)))[0])
        raise ConfigError(f"regime code {regime[bad]} at row {bad} of the committee table is not a cell "
                          f"0..{len(CELL_NAMES) - 1} ({', '.join(CELL_NAMES)})")
    shares = np.empty((len(agents), len(regime)))
    for a, agent in enumerate(agents):
        shares[a] = part[f"c_{agent}"].to_numpy(np.float64)
    bins = np.zeros((len(agents) + 1, len(CELL_NAMES)))
    attribution_bins_nb(equity, close, shares, regime, actual, bins)
    return bins


def attribute(result, table: pd.DataFrame, agents: tuple[str, ...]) -> pd.DataFrame:
    """PnL (currency) by agent and regime for a committee ``result`` and its ``run`` table."""
    rows = list(agents) + ["execution_and_costs"]
    out = np.zeros((len(rows), len(CELL_NAMES)))
    equity = result.equity
    for symbol in result.prices:
        part = table if not isinstance(table.columns, pd.MultiIndex) else table[symbol]
        if not part.index.equals(equity.index):
            part = part.reindex(equity.index)
        close = _ffill(_column(result.prices[symbol], "close"))
        out += _symbol_bins(equity.to_numpy(), part, close, _realised_pnl(result, symbol), agents)
    frame = pd.DataFrame(0.0, index=rows, columns=CELL_NAMES)  # same layout as before: bit-identical totals
    frame.iloc[:, :] = out
    frame["total"] = frame.sum(axis=1)
    totals = frame.sum(axis=0)
    return pd.DataFrame(np.vstack([frame.to_numpy(), totals.to_numpy()[None, :]]),
                        index=pd.Index([*rows, "total"]), columns=frame.columns)
