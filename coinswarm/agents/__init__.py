"""Agents: pure, O(1)-per-bar voters that double as strategies.

Each agent has typed ``Params``, ``init(params) -> state`` and ``update(state, bar) -> Vote``
for the live path, and ``run(prices)`` (one compiled loop over the same step) and
``targets(prices, params)`` for the backtester. All are registered as strategies (by :mod:`coinswarm.strategies`):
``trend``, ``mean_reversion``, ``risk``, ``execution``, ``arbitrage`` (pairs), ``carry``.
"""

from coinswarm.agents.arbitrage import ArbitrageParams, CarryParams, FundingCarry, PairsArbitrage
from coinswarm.agents.base import Agent, AgentState, Bar, GapWarning, Vote, iter_bars
from coinswarm.agents.execution import Execution, ExecutionParams
from coinswarm.agents.mean_reversion import MeanReversion, MeanReversionParams
from coinswarm.agents.risk import Risk, RiskParams
from coinswarm.agents.trend import Trend, TrendParams

__all__ = [
    "Agent",
    "AgentState",
    "ArbitrageParams",
    "Bar",
    "CarryParams",
    "Execution",
    "ExecutionParams",
    "FundingCarry",
    "GapWarning",
    "MeanReversion",
    "MeanReversionParams",
    "PairsArbitrage",
    "Risk",
    "RiskParams",
    "Trend",
    "TrendParams",
    "Vote",
    "iter_bars",
]
