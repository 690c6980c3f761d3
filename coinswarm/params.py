"""Typed parameters from plain values: ``make_params`` (one combination) and ``expand_grid``
(every valid combination of a grid), with strict coercion and errors that name the parameter.

Works for anything with ``name``, a ``Params`` NamedTuple (field defaults are the defaults)
and ``is_valid(params)``: strategies, agents, the committee. A strategy may also offer
``invalid_reason(params)`` (why a combination is invalid, e.g. ``"fast=200 ≥ slow=100"``) and
``default_grid`` (the grid used when none is given: the one source of default grids).

Coercion is exact: an ``int`` parameter takes ``20``, ``20.0`` or ``"20"`` but refuses
``2.5``, ``True``, ``"2.5"``, NaN, ±inf and complex numbers; a ``float`` parameter takes any
finite real number (or its exact text); a ``bool`` takes ``True``/``False`` (or 0/1).
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from coinswarm.errors import ConfigError

#: Most combinations one grid may expand to (a larger grid is refused, not run for hours).
MAX_COMBINATIONS = 1_000_000
#: Largest integer parameter: a window of more bars than 19 years of minutes is a typo (and its state would
#: not fit in memory).
MAX_INT_PARAM = 10_000_000
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _as_int(value: Any) -> int:
    if isinstance(value, str):
        value = _parse_number_text(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError("not a whole number")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        as_float = float(value)
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise ValueError("not a whole number")
        out = int(as_float)
    if abs(out) > MAX_INT_PARAM:
        raise ValueError(f"outside ±{MAX_INT_PARAM:,} (a count of bars; larger would not fit in memory)")
    return out


def _as_float(value: Any) -> float:
    if isinstance(value, str):
        value = _parse_number_text(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError("not a real number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError("not a finite number")
    return out


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise ValueError("not True or False")


def _parse_number_text(text: str) -> float | int:
    stripped = text.strip()
    if not _NUMBER_TEXT.fullmatch(stripped):
        raise ValueError("not a number")
    return int(stripped) if re.fullmatch(r"[+-]?\d+", stripped) else float(stripped)


_COERCE = {int: _as_int, float: _as_float, bool: _as_bool}


def coerce_value(strategy: Any, key: str, value: Any, kind: type) -> Any:
    """``value`` as ``kind`` when the conversion is exact, else a ``ConfigError`` naming the parameter."""
    convert = _COERCE.get(kind)
    try:
        if convert is not None:
            return convert(value)
        if isinstance(value, kind):
            return value
        raise ValueError(f"not a {kind.__name__}")
    except (ValueError, TypeError, OverflowError) as exc:
        hint = " (a whole number such as 20)" if kind is int else " (a finite number)" if kind is float else ""
        raise ConfigError(f"{strategy.name}.{key}: cannot use {value!r} as {kind.__name__}: {exc}{hint}") from None


def _check_fields(strategy: Any, names: Iterable[str]) -> tuple[str, ...]:
    fields = strategy.Params._fields
    unknown = [k for k in names if k not in fields]
    if unknown:
        raise ConfigError(f"{strategy.name} has no parameter(s) {unknown}; it takes {list(fields)}")
    return fields


def invalid_reason(strategy: Any, params: NamedTuple) -> str | None:
    """Why ``params`` is not a valid combination for ``strategy`` (``None`` when it is valid)."""
    if strategy.is_valid(params):
        return None
    explain = getattr(strategy, "invalid_reason", None)
    reason = explain(params) if callable(explain) else None
    return reason or f"the combination {params._asdict()} is refused by {strategy.name}.is_valid"


def make_params(strategy: Any, values: Mapping[str, Any] | None = None) -> NamedTuple:
    """Build ``strategy.Params`` from a mapping, with exact coercion and clear errors.

    Raises
    ------
    ConfigError
        An unknown name, a value that is not exactly of the parameter's type, or an invalid
        combination (the message says why, e.g. ``fast=200 ≥ slow=100``).
    """
    if values is not None and not isinstance(values, Mapping):
        raise ConfigError(f"{strategy.name}: parameters must be a mapping name → value, not {type(values).__name__}")
    values = dict(values or {})
    _check_fields(strategy, values)
    defaults = strategy.Params()
    coerced = {k: coerce_value(strategy, k, v, type(getattr(defaults, k))) for k, v in values.items()}
    params = defaults._replace(**coerced)
    reason = invalid_reason(strategy, params)
    if reason:
        raise ConfigError(f"{strategy.name}: invalid parameters: {reason}")
    return params


def resolve_params(strategy: Any, params: Any) -> NamedTuple:
    """``strategy.Params`` from ``None`` (the defaults), a mapping or a ``Params`` tuple, every
    value coerced exactly and the combination validated (:func:`make_params`): the one door
    through which an agent's ``init`` and ``run`` take parameters."""
    if params is None:
        values: Mapping[str, Any] = {}
    elif isinstance(params, Mapping):
        values = params
    elif isinstance(params, strategy.Params):
        values = params._asdict()
    else:
        raise ConfigError(f"{strategy.name} takes {strategy.Params.__name__} or a mapping name → value, "
                          f"not {type(params).__name__}")
    return make_params(strategy, values)


def default_grid(strategy: Any) -> dict[str, list]:
    """The strategy's own default grid (``{}`` when it has none)."""
    return dict(getattr(strategy, "default_grid", None) or {})


def _grid_values(strategy: Any, name: str, values: Any, kind: type) -> list:
    """One grid entry as a list of coerced values."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        values = [values]
    if hasattr(values, "__len__") and len(values) > MAX_COMBINATIONS:
        raise ConfigError(f"grid '{name}' has {len(values):,} values; at most {MAX_COMBINATIONS:,} are allowed")
    out = [coerce_value(strategy, name, v, kind) for v in itertools.islice(values, MAX_COMBINATIONS + 1)]
    if not out:
        raise ConfigError(f"grid '{name}' of {strategy.name} has no values; give at least one")
    return list(dict.fromkeys(out))


def expand_grid(strategy: Any, grid: Mapping[str, Iterable] | None = None) -> list[NamedTuple]:
    """All valid parameter combinations of ``grid`` (a dict of name → values).

    ``grid=None`` means the strategy's ``default_grid`` (its default parameters when it has
    none); an empty grid ``{}`` is an error. Invalid combinations (e.g. ``fast ≥ slow``) are
    skipped; a grid with none valid is an error that says why for the first one.

    Raises
    ------
    ConfigError
        Not a mapping, empty, unknown names, values of the wrong type, an empty value list,
        more than ``MAX_COMBINATIONS`` combinations, or no valid combination.
    """
    if grid is None:
        grid = default_grid(strategy)
        if not grid:
            return [make_params(strategy)]
    if not isinstance(grid, Mapping):
        raise ConfigError(f"grid must be a mapping name → values, not {type(grid).__name__}")
    if not grid:
        raise ConfigError(f"empty grid for {strategy.name}; pass grid=None for its default grid "
                          f"{default_grid(strategy) or '(its default parameters)'}")
    _check_fields(strategy, grid)
    defaults = strategy.Params()
    names = list(grid)
    values = [_grid_values(strategy, n, grid[n], type(getattr(defaults, n))) for n in names]
    size = math.prod(len(v) for v in values)
    if size > MAX_COMBINATIONS:
        raise ConfigError(f"grid of {strategy.name} has {size:,} combinations; at most {MAX_COMBINATIONS:,}")
    combos, first_reason = [], None
    for combo in itertools.product(*values):
        params = defaults._replace(**dict(zip(names, combo, strict=True)))
        reason = invalid_reason(strategy, params)
        if reason is None:
            combos.append(params)
        elif first_reason is None:
            first_reason = reason
    if not combos:
        raise ConfigError(f"grid {dict(grid)} has no valid combination for {strategy.name}: e.g. {first_reason}")
    return combos


def as_duration(value: Any, name: str, *, allow_zero: bool = False):
    """A window length (``"365D"``, ``"12h"``, a ``Timedelta``/``timedelta``) as a ``pandas.Timedelta``.

    Bare numbers are refused (pandas would read ``365`` as 365 nanoseconds), as are NaT,
    negative lengths and, unless ``allow_zero``, zero.

    Raises
    ------
    ConfigError
        Names the argument, the value and what would be valid.
    """
    import datetime

    import pandas as pd

    valid = "a duration with a unit such as '365D', '12h' or '90 days' (years and months are ambiguous)"
    if isinstance(value, str):
        if not re.search(r"[A-Za-z]", value) or value.strip().lower() in ("nat", "nan"):
            raise ConfigError(f"{name}={value!r} is not {valid}")
    elif not isinstance(value, datetime.timedelta | np.timedelta64):
        raise ConfigError(f"{name}={value!r:.60} ({type(value).__name__}) is not {valid}")
    try:
        out = pd.Timedelta(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{name}={value!r} is not {valid} ({exc})") from None
    if out is pd.NaT or pd.isna(out):
        raise ConfigError(f"{name}={value!r} is not {valid}")
    if out < pd.Timedelta(0) or (out == pd.Timedelta(0) and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r} must be {bound} (a negative {name} would let the future leak "
                          "into the past)" if out < pd.Timedelta(0) else f"{name}={value!r} must be {bound}")
    return out
