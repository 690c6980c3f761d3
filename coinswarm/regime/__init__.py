"""Causal regime detection: volatility, trend, liquidity and session labels per bar."""

from coinswarm.regime.detector import (
    CELL_NAMES,
    LIQUIDITY_LABELS,
    N_REGIMES,
    SESSION_LABELS,
    TREND_LABELS,
    VOLATILITY_LABELS,
    RegimeDetector,
    RegimeLabels,
    RegimeParams,
    regime_index,
    regimes,
    version_id,
)

__all__ = [
    "CELL_NAMES",
    "LIQUIDITY_LABELS",
    "N_REGIMES",
    "SESSION_LABELS",
    "TREND_LABELS",
    "VOLATILITY_LABELS",
    "RegimeDetector",
    "RegimeLabels",
    "RegimeParams",
    "regime_index",
    "regimes",
    "version_id",
]
