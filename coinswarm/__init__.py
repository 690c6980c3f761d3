"""coinswarm: backtest-first crypto trading research.

>>> import coinswarm as cs
>>> btc = cs.load_ohlcv("binance:BTC/USDT:1h", start="2018", end="2024")
>>> result = cs.simulate(btc, cs.get_strategy("sma_cross").targets(btc, cs.SmaCrossParams()))

Every public name is imported on first use (PEP 562), so ``import coinswarm`` loads no
numba, scipy or matplotlib until something needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from coinswarm._lazy import lazy_exports

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("ArbitrageParams", "Bar", "CarryParams", "Execution", "ExecutionParams", "FundingCarry",
                     "MeanReversion", "MeanReversionParams", "PairsArbitrage", "Risk", "RiskParams", "Trend",
                     "TrendParams", "Vote"), "coinswarm.agents"),
    **dict.fromkeys(("Result", "simulate"), "coinswarm.backtest.engine"),
    "sweep": "coinswarm.backtest.sweep",
    "plot_sweep": "coinswarm.backtest.plots",
    **dict.fromkeys(("Gate", "WalkForwardReport", "walk_forward"), "coinswarm.backtest.walkforward"),
    "Committee": "coinswarm.backtest.committee",
    **dict.fromkeys(("plot_regimes", "plot_weights", "plot_attribution"), "coinswarm.backtest.committee_plots"),
    **dict.fromkeys(("CommitteeConfig", "CommitteeParams"), "coinswarm.committee"),
    "Costs": "coinswarm.costs",
    **dict.fromkeys(("align", "catalog", "fill_gaps", "load_funding", "load_ohlcv", "resample_ohlcv",
                     "validate_ohlcv"), "coinswarm.data"),
    **dict.fromkeys(("CoinswarmError", "ConfigError", "DataError"), "coinswarm.errors"),
    **dict.fromkeys(("RegimeParams", "regimes"), "coinswarm.regime"),
    **dict.fromkeys(("deflated_sharpe_ratio", "probabilistic_sharpe_ratio", "probability_of_backtest_overfitting"),
                    "coinswarm.stats"),
    **dict.fromkeys(("available_strategies", "get_strategy", "make_params", "GatedTrend"), "coinswarm.strategies"),
    "SmaCrossParams": "coinswarm.strategies.sma_cross",
    **dict.fromkeys(("PortfolioCommittee", "PortfolioParams"), "coinswarm.committee.portfolio"),
    "TrialLedger": "coinswarm.backtest.ledger",
}

__all__ = [
    "ArbitrageParams",
    "Bar",
    "CarryParams",
    "CoinswarmError",
    "Committee",
    "CommitteeConfig",
    "CommitteeParams",
    "ConfigError",
    "Costs",
    "DataError",
    "Execution",
    "ExecutionParams",
    "FundingCarry",
    "Gate",
    "GatedTrend",
    "MeanReversion",
    "MeanReversionParams",
    "PairsArbitrage",
    "PortfolioCommittee",
    "PortfolioParams",
    "RegimeParams",
    "Result",
    "Risk",
    "RiskParams",
    "SmaCrossParams",
    "Trend",
    "TrendParams",
    "TrialLedger",
    "Vote",
    "WalkForwardReport",
    "align",
    "available_strategies",
    "catalog",
    "deflated_sharpe_ratio",
    "fill_gaps",
    "get_strategy",
    "load_funding",
    "load_ohlcv",
    "make_params",
    "plot_attribution",
    "plot_regimes",
    "plot_sweep",
    "plot_weights",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "regimes",
    "resample_ohlcv",
    "simulate",
    "sweep",
    "validate_ohlcv",
    "walk_forward",
]


def _fill_registry(name: str, module: str) -> None:
    if module != "coinswarm.strategies" and name not in ("Costs", "CoinswarmError", "ConfigError", "DataError"):
        import_module("coinswarm.strategies")  # the registry behind get_strategy is filled on first use


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__, before=_fill_registry)


if TYPE_CHECKING:  # names for type checkers and IDEs
    from coinswarm.agents import (
        ArbitrageParams,
        Bar,
        CarryParams,
        Execution,
        ExecutionParams,
        FundingCarry,
        MeanReversion,
        MeanReversionParams,
        PairsArbitrage,
        Risk,
        RiskParams,
        Trend,
        TrendParams,
        Vote,
    )
    from coinswarm.backtest.committee import Committee
    from coinswarm.backtest.committee_plots import plot_attribution, plot_regimes, plot_weights
    from coinswarm.backtest.engine import Result, simulate
    from coinswarm.backtest.ledger import TrialLedger
    from coinswarm.backtest.plots import plot_sweep
    from coinswarm.backtest.sweep import sweep
    from coinswarm.backtest.walkforward import Gate, WalkForwardReport, walk_forward
    from coinswarm.committee import CommitteeConfig, CommitteeParams
    from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams
    from coinswarm.costs import Costs
    from coinswarm.data import (
        align,
        catalog,
        fill_gaps,
        load_funding,
        load_ohlcv,
        resample_ohlcv,
        validate_ohlcv,
    )
    from coinswarm.errors import CoinswarmError, ConfigError, DataError
    from coinswarm.regime import RegimeParams, regimes
    from coinswarm.stats import (
        deflated_sharpe_ratio,
        probabilistic_sharpe_ratio,
        probability_of_backtest_overfitting,
    )
    from coinswarm.strategies import GatedTrend, available_strategies, get_strategy, make_params
    from coinswarm.strategies.sma_cross import SmaCrossParams
