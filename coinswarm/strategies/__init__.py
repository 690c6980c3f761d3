"""Strategies: prices + params → target weights, and the registry behind ``cs.get_strategy``.

Registered here (the registry sits above the members, which never import it): ``sma_cross``,
every agent (``trend``, ``mean_reversion``, ``risk``, ``execution``, ``arbitrage``, ``carry``),
``committee`` (also ``committee_hourly``), ``gated_trend``, the portfolio committee
``portfolio`` and the baselines ``buy_and_hold``, ``trend_portfolio`` and ``trend_portfolio_ls``.
"""

from coinswarm.agents import Execution, FundingCarry, MeanReversion, PairsArbitrage, Risk, Trend
from coinswarm.committee import Committee
from coinswarm.committee.portfolio import PortfolioCommittee
from coinswarm.strategies.base import (
    Strategy,
    available_strategies,
    expand_grid,
    get_strategy,
    make_params,
    register,
)
from coinswarm.strategies.baselines import BuyAndHold, trend_portfolio
from coinswarm.strategies.gated import GatedTrend
from coinswarm.strategies.sma_cross import SmaCross

for _strategy in (SmaCross(), Trend(), MeanReversion(), Risk(), Execution(), PairsArbitrage(), FundingCarry(),
                  Committee.default(), GatedTrend(), PortfolioCommittee.default(), BuyAndHold(),
                  trend_portfolio(False), trend_portfolio(True)):
    register(_strategy)
register(Committee.default(), name="committee_hourly")  # the hourly committee, reachable by its own name

__all__ = [
    "BuyAndHold",
    "GatedTrend",
    "PortfolioCommittee",
    "SmaCross",
    "Strategy",
    "available_strategies",
    "expand_grid",
    "get_strategy",
    "make_params",
    "register",
]
