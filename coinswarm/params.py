"""Typed parameters from plain values: ``make_params`` (one combination) and ``expand_grid``
(every valid combination of a grid), with coercion and errors that name the parameter.

Works for anything with ``name``, a ``Params`` NamedTuple (field defaults are the defaults)
and ``is_valid(params)``: strategies, agents, the committee.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from coinswarm.errors import ConfigError


def make_params(strategy: Any, values: Mapping[str, Any] | None = None) -> NamedTuple:
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


def expand_grid(strategy: Any, grid: Mapping[str, Iterable]) -> list[NamedTuple]:
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
