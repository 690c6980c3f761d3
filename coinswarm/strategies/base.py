"""The strategy interface: prices + params → target weights.

A strategy is a small object with a ``Params`` NamedTuple (field defaults are the
defaults), a ``targets(prices, params)`` method returning the fraction of equity
to hold after each bar (decided at the bar's close, using data up to it), and a
``warmup(params)`` bar count. Strategies may also offer a fused sweep kernel
(``sweep_metrics``) that computes signals, simulation and metrics in one pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from coinswarm.errors import ConfigError


@runtime_checkable
class Strategy(Protocol):
    """What :func:`coinswarm.simulate`, :func:`coinswarm.sweep` and walk-forward need."""

    name: str
    Params: type[NamedTuple]

    def targets(self, prices: pd.DataFrame | dict, params: NamedTuple) -> pd.Series | pd.DataFrame:
        """Target weights per bar (no lookahead: row t uses data up to t)."""
        ...

    def warmup(self, params: NamedTuple) -> int:
        """Bars needed before the first meaningful target."""
        ...

    def is_valid(self, params: NamedTuple) -> bool:
        """Whether a parameter combination makes sense (e.g. fast < slow)."""
        ...


_REGISTRY: dict[str, Strategy] = {}


def engine_limits(strategy: Strategy) -> tuple[float, bool]:
    """``(max_leverage, allow_short)`` the engine should use for ``strategy``'s targets.

    Strategies declare them as attributes (``allow_short = True`` for the pair trade and
    carry); the defaults are 1.0 and False (long-only, no leverage).
    """
    return float(getattr(strategy, "max_leverage", 1.0)), bool(getattr(strategy, "allow_short", False))


def register(strategy: Strategy) -> Strategy:
    """Add a strategy to the registry under ``strategy.name``."""
    _REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(strategy: str | Strategy) -> Strategy:
    """Look a strategy up by name (or pass an instance through)."""
    if not isinstance(strategy, str):
        return strategy
    try:
        return _REGISTRY[strategy]
    except KeyError:
        raise ConfigError(
            f"unknown strategy '{strategy}'; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def available_strategies() -> list[str]:
    """Names of registered strategies."""
    return sorted(_REGISTRY)


def make_params(strategy: Strategy, values: Mapping[str, Any] | None = None) -> NamedTuple:
    """Build ``strategy.Params`` from a mapping, with type coercion and clear errors."""
    values = dict(values or {})
    fields = strategy.Params._fields
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ConfigError(f"{strategy.name} has no parameter(s) {unknown}; it takes {list(fields)}")
    defaults = strategy.Params()
    coerced = {}
    for key, value in values.items():
        kind = type(getattr(defaults, key))
        try:
            coerced[key] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{strategy.name}.{key}: cannot use {value!r} as {kind.__name__}") from None
    params = defaults._replace(**coerced)
    if not strategy.is_valid(params):
        raise ConfigError(f"{strategy.name}: invalid parameters {params._asdict()}")
    return params


def expand_grid(strategy: Strategy, grid: Mapping[str, Iterable]) -> list[NamedTuple]:
    """All valid parameter combinations of ``grid`` (a dict of name → values)."""
    if not grid:
        return [make_params(strategy)]
    names = list(grid)
    values = [list(np.atleast_1d(np.asarray(list(grid[n])))) for n in names]
    combos = []
    for combo in itertools.product(*values):
        try:
            combos.append(make_params(strategy, dict(zip(names, combo, strict=True))))
        except ConfigError as exc:
            if "invalid parameters" not in str(exc):
                raise
    if not combos:
        raise ConfigError(f"grid {dict(grid)} has no valid combination for {strategy.name}")
    return combos
