"""coinswarm: backtest-first crypto trading research.

>>> import coinswarm as cs
>>> btc = cs.load_ohlcv("binance:BTC/USDT:1h", start="2018", end="2024")
>>> result = cs.simulate(btc, cs.get_strategy("sma_cross").targets(btc, cs.SmaCrossParams()))
"""

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
from coinswarm.backtest.engine import Result, simulate
from coinswarm.backtest.sweep import sweep
from coinswarm.backtest.walkforward import Gate, WalkForwardReport, walk_forward
from coinswarm.committee import Committee, CommitteeConfig, CommitteeParams
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
from coinswarm.strategies import available_strategies, get_strategy, make_params
from coinswarm.strategies.gated import GatedTrend
from coinswarm.strategies.sma_cross import SmaCrossParams

__version__ = "0.1.0"

__all__ = [
    "ArbitrageParams",
    "Bar",
    "CarryParams",
    "CoinswarmError",
    "Committee",
    "CommitteeConfig",
    "CommitteeParams",
    "Execution",
    "ExecutionParams",
    "GatedTrend",
    "FundingCarry",
    "MeanReversion",
    "MeanReversionParams",
    "PairsArbitrage",
    "RegimeParams",
    "Risk",
    "RiskParams",
    "Trend",
    "TrendParams",
    "Vote",
    "ConfigError",
    "Costs",
    "DataError",
    "Gate",
    "Result",
    "SmaCrossParams",
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
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "regimes",
    "resample_ohlcv",
    "simulate",
    "sweep",
    "validate_ohlcv",
    "walk_forward",
]
