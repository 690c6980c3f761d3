"""Baselines every edge must beat: equal-weight buy-and-hold and the volatility-targeted trend portfolio.

* ``buy_and_hold`` — equal weight in every spot asset (perpetuals are left alone), bought once
  on the first bar where all of them trade and never rebalanced.
* ``trend_portfolio`` / ``trend_portfolio_ls`` — the portfolio committee's trend sleeve alone
  (:mod:`coinswarm.committee.portfolio`: nine-horizon Donchian breakouts, inverse-volatility
  sizing, 20 % volatility target, gross ≤ 1, relative no-trade band), long-only and long/short.
  Parameters are fixed a priori (Zarattini, Pagani & Barbon 2025 style), never tuned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from coinswarm._lazy import lazy_module
from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams
from coinswarm.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")


class BuyAndHoldParams(NamedTuple):
    """Buy-and-hold has no knobs (a placeholder field keeps the grid machinery uniform)."""

    weight_sum: float = 1.0


class BuyAndHold:
    """Equal-weight buy-and-hold of the spot assets."""

    name = "buy_and_hold"
    Params = BuyAndHoldParams
    default_grid: dict = {}
    continuous = True

    def targets(self, prices, params: BuyAndHoldParams | None = None) -> pd.Series | pd.DataFrame:
        """``weight_sum / N`` in each spot asset on the first bar all have a close, then no order."""
        params = params or BuyAndHoldParams()
        if isinstance(prices, pd.DataFrame):
            out = pd.Series(np.nan, index=prices.index, name="target")
            out.iloc[0] = params.weight_sum
            return out
        if not isinstance(prices, dict) or not prices:
            raise ConfigError("prices must be an OHLCV DataFrame or a non-empty dict of them")
        index = None
        for frame in prices.values():
            index = frame.index if index is None else index.union(frame.index)
        spot = [s for s in prices if ":" not in s] or list(prices)
        closes = pd.DataFrame({s: prices[s]["close"].reindex(index) for s in prices})
        ready = closes[spot].notna().all(axis=1).to_numpy()
        out = pd.DataFrame(np.nan, index=index, columns=list(prices))
        if ready.any():
            first = int(np.flatnonzero(ready)[0])
            out.iloc[first] = [params.weight_sum / len(spot) if s in spot else 0.0 for s in prices]
        return out

    def warmup(self, params=None) -> int:
        """No warm-up."""
        return 0

    def is_valid(self, params: BuyAndHoldParams) -> bool:
        """0 < weight_sum ≤ 1."""
        return 0 < params.weight_sum <= 1


def trend_portfolio(long_short: bool) -> PortfolioCommittee:
    """The trend sleeve alone (no carry), long-only or long/short."""
    name = "trend_portfolio_ls" if long_short else "trend_portfolio"
    return PortfolioCommittee(name=name, params=PortfolioParams(long_short=long_short, carry=False))
