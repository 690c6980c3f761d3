"""The strategy interface: prices + params → target weights.

A strategy is a small object with a ``Params`` NamedTuple (field defaults are the
defaults), a ``targets(prices, params)`` method returning the fraction of equity
to hold after each bar (decided at the bar's close, using data up to it), and a
``warmup(params)`` bar count (a strategy that decides on days also states ``warmup_days``, its
warm-up in time, so the bar count follows the bar length: :func:`warmup_bars`). Strategies may
also offer a fused sweep kernel
(``sweep_metrics``) that computes signals, simulation and metrics in one pass, a
``default_grid`` (the grid ``sweep``/``walk_forward``/the CLI use when given none) and
``invalid_reason(params)`` (why ``is_valid`` refuses a combination).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from coinswarm._lazy import lazy_module
from coinswarm.errors import ConfigError
from coinswarm.params import expand_grid, make_params

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["Strategy", "available_strategies", "engine_limits", "expand_grid", "get_strategy", "make_params",
           "register", "warmup_bars"]

DAY_MS = 86_400_000


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


def warmup_bars(strategy: Strategy, params: NamedTuple | None, bar_ms: int | None) -> int:
    """Bars ``strategy`` needs before its first meaningful target, on bars of ``bar_ms`` milliseconds.

    A strategy with ``warmup_days`` (the daily portfolio committee: 60) needs that many days of
    bars of any length — 1,440 hourly bars or 60 daily ones; the others count bars
    (``warmup(params)``) whatever their length. ``bar_ms`` None: the strategy's own ``warmup``.
    """
    days = getattr(strategy, "warmup_days", None)
    if days and bar_ms:
        return int(days) * DAY_MS // int(bar_ms)
    return int(strategy.warmup(params))


def engine_limits(strategy: Strategy) -> tuple[float, bool]:
    """``(max_leverage, allow_short)`` the engine should use for ``strategy``'s targets.

    Strategies declare them as attributes (``allow_short = True`` for the pair trade and
    carry); the defaults are 1.0 and False (long-only, no leverage).
    """
    return float(getattr(strategy, "max_leverage", 1.0)), bool(getattr(strategy, "allow_short", False))


def register(strategy: Strategy, name: str | None = None) -> Strategy:
    """Add a strategy to the registry under ``name`` (default ``strategy.name``)."""
    _REGISTRY[name or strategy.name] = strategy
    return strategy


def get_strategy(strategy: str | Strategy) -> Strategy:
    """Look a strategy up by name (or pass an instance through).

    Raises
    ------
    ConfigError
        An unknown name, or an object that is neither a name nor a strategy (``None``, a number).
    """
    if not isinstance(strategy, str):
        if isinstance(strategy, type) or not isinstance(strategy, Strategy):
            raise ConfigError(
                f"strategy must be a registered name ({', '.join(sorted(_REGISTRY))}) or a strategy "
                f"object with name, Params, targets, warmup and is_valid, not {strategy!r:.80}"
            )
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
