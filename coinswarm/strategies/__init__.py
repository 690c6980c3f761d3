"""Strategies: prices + params → target weights."""

from coinswarm.strategies.base import (
    Strategy,
    available_strategies,
    expand_grid,
    get_strategy,
    make_params,
    register,
)
from coinswarm.strategies.sma_cross import SmaCross

__all__ = [
    "SmaCross",
    "Strategy",
    "available_strategies",
    "expand_grid",
    "get_strategy",
    "make_params",
    "register",
]
