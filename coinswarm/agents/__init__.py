"""Agents: pure, O(1)-per-bar voters that double as strategies.

Each agent has typed ``Params`` and the one step protocol of the core
(:mod:`coinswarm.agents.state`): ``init(params) -> State``, ``step(state, bar) -> (state,
output)`` for the live path, ``run(prices)`` (one compiled loop over the same step) and
``targets(prices, params)`` for the backtester. All are registered as strategies (by
:mod:`coinswarm.strategies`): ``trend``, ``mean_reversion``, ``risk``, ``execution``,
``arbitrage`` (pairs), ``carry``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from coinswarm._lazy import lazy_exports

# public name → the module that defines it (imported on first use, PEP 562: the live runner
# steps the agents it runs without importing the others)
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("ArbitrageParams", "CarryParams", "FundingCarry", "LegVotes", "PairsArbitrage"),
                    "coinswarm.agents.arbitrage"),
    **dict.fromkeys(("Agent", "Bar", "FundingBar", "GapWarning", "Vote", "iter_bars", "reset_gap_warnings"),
                    "coinswarm.agents.base"),
    **dict.fromkeys(("Execution", "ExecutionParams"), "coinswarm.agents.execution"),
    **dict.fromkeys(("MeanReversion", "MeanReversionParams"), "coinswarm.agents.mean_reversion"),
    **dict.fromkeys(("Risk", "RiskParams"), "coinswarm.agents.risk"),
    **dict.fromkeys(("State", "scan"), "coinswarm.agents.state"),
    **dict.fromkeys(("Trend", "TrendParams"), "coinswarm.agents.trend"),
}

__all__ = [
    "Agent",
    "ArbitrageParams",
    "Bar",
    "CarryParams",
    "Execution",
    "ExecutionParams",
    "FundingBar",
    "FundingCarry",
    "GapWarning",
    "LegVotes",
    "MeanReversion",
    "MeanReversionParams",
    "PairsArbitrage",
    "Risk",
    "RiskParams",
    "State",
    "Trend",
    "TrendParams",
    "Vote",
    "iter_bars",
    "reset_gap_warnings",
    "scan",
]


_lazy_getattr, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


def __getattr__(name: str) -> Any:
    if name == "AgentState":  # the core's state is State (the ORM's agent_state table is another thing)
        warnings.warn("coinswarm.agents.AgentState is now coinswarm.agents.State", DeprecationWarning, stacklevel=2)
        return _lazy_getattr("State")
    return _lazy_getattr(name)


if TYPE_CHECKING:  # names for type checkers and IDEs
    from coinswarm.agents.arbitrage import ArbitrageParams, CarryParams, FundingCarry, LegVotes, PairsArbitrage
    from coinswarm.agents.base import Agent, Bar, FundingBar, GapWarning, Vote, iter_bars, reset_gap_warnings
    from coinswarm.agents.execution import Execution, ExecutionParams
    from coinswarm.agents.mean_reversion import MeanReversion, MeanReversionParams
    from coinswarm.agents.risk import Risk, RiskParams
    from coinswarm.agents.state import State, scan
    from coinswarm.agents.trend import Trend, TrendParams
