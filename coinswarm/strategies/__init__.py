"""Strategies: prices + params → target weights, and the registry behind ``cs.get_strategy``.

Registered here (the registry sits above the members, which never import it): ``sma_cross``,
every agent (``trend``, ``mean_reversion``, ``risk``, ``execution``, ``arbitrage``, ``carry``),
``committee`` and ``gated_trend``.
"""

from coinswarm.agents import Execution, FundingCarry, MeanReversion, PairsArbitrage, Risk, Trend
from coinswarm.committee import Committee
from coinswarm.strategies.base import (
    Strategy,
    available_strategies,
    expand_grid,
    get_strategy,
    make_params,
    register,
)
from coinswarm.strategies.gated import GatedTrend
from coinswarm.strategies.sma_cross import SmaCross

for _strategy in (SmaCross(), Trend(), MeanReversion(), Risk(), Execution(), PairsArbitrage(), FundingCarry(),
                  Committee.default(), GatedTrend()):
    register(_strategy)

__all__ = [
    "GatedTrend",
    "SmaCross",
    "Strategy",
    "available_strategies",
    "expand_grid",
    "get_strategy",
    "make_params",
    "register",
]
