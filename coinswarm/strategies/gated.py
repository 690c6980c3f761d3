"""``gated_trend``: the trend agent, trading only in regime cells memory has enabled.

A memory-aware strategy: ``targets_with_memory(prices, params, view)`` keeps the trend
vote on bars whose volatility × trend cell has an *enabled* pattern
``"<cell>|trend"`` in ``view`` (a :class:`coinswarm.quorum.MemoryView`) and is flat
elsewhere. Without memory, ``targets`` is plain trend. In a walk-forward with
``memory=``, each fold sees only memory committed from data before its test window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coinswarm._lazy import lazy_module
from coinswarm.agents.trend import Trend, TrendParams
from coinswarm.regime.detector import CELL_NAMES, regimes

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")


def trend_key(cell: int) -> str:
    """Pattern key of the trend signal in regime cell ``cell`` (0..8)."""
    return f"{CELL_NAMES[cell]}|trend"


class GatedTrend(Trend):
    """Trend votes gated by enabled patterns in memory."""

    name = "gated_trend"
    Params = TrendParams

    def targets_with_memory(self, prices: pd.DataFrame, params: TrendParams, view) -> pd.Series:
        """Trend target where the bar's regime cell is enabled in ``view``, else 0."""
        votes = self.targets(prices, params)
        cells = regimes(prices, gaps="ignore")["regime"].to_numpy()
        enabled = np.array([view.enabled(trend_key(c)) for c in range(9)])
        return votes.where(enabled[cells], 0.0)
