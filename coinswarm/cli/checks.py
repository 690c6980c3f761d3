"""Argument types and pre-run checks of the ``coinswarm`` command: every malformed argument is
refused before any data is loaded or anything is computed, with one line saying what is valid.

Nothing here imports numba: parsing stays as light as ``coinswarm --help``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from coinswarm.errors import CoinswarmError, ConfigError

#: Fees and slippage above this many basis points (10 % per fill) are refused as absurd.
MAX_BPS = 1_000.0
#: Above this many basis points (1 % per fill) a run goes ahead with a warning on stderr:
#: exchange taker fees are 1 to 10 bps, so such costs are more likely a typo (50 for 5).
WARN_BPS = 100.0
#: Most values one ``--grid`` range may expand to.
MAX_VALUES = 10_000


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every option's default and keeps the epilog's examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "%(default)" in text:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line on stderr (exit 2), like every other error,
    and whose ``--help`` shows defaults (sub-command parsers inherit both)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


class LazyChoices:
    """Choices read from the library only when argparse needs them (a bad value or ``--help``
    of that sub-command), so parsing and ``coinswarm --help`` load no numba."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load

    def __contains__(self, item: object) -> bool:
        return item in self._load()

    def __iter__(self):
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def strategy_names() -> list[str]:
    """Every registered strategy (``cs.available_strategies()``)."""
    import coinswarm as cs

    return list(cs.available_strategies())


def metric_names() -> tuple[str, ...]:
    """Every metric a sweep or walk-forward can rank by."""
    from coinswarm.kernels.metrics import METRIC_NAMES

    return METRIC_NAMES


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split()) or "(no message)"


def _typed(check: Callable[[str], object]) -> Callable[[str], object]:
    """Turn a ``ConfigError`` into argparse's ``ArgumentTypeError`` (keeping our message)."""

    def parse(text: str) -> object:
        try:
            return check(text)
        except CoinswarmError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__
    return parse


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{text!r} is not a finite number")
    return value


@_typed
def bps(text: str) -> float:
    """Basis points in [0, MAX_BPS]."""
    value = _real(text)
    if not 0.0 <= value <= MAX_BPS:
        raise ConfigError(f"{text} bps is outside the valid range 0 to {MAX_BPS:g} bps (0 % to 10 %)")
    return value


@_typed
def annual_rate(text: str) -> float:
    """An annual rate as a fraction in [0, 1) (0.04 = 4 % a year)."""
    value = _real(text)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{text} is not an annual fraction in [0, 1) (write 0.04 for 4 % a year)")
    return value


@_typed
def positive(text: str) -> float:
    """A finite number > 0."""
    value = _real(text)
    if value <= 0:
        raise ConfigError(f"{text} must be > 0")
    return value


@_typed
def finite(text: str) -> float:
    """Any finite number."""
    return _real(text)


@_typed
def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _real(text)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{text} is not a probability in [0, 1]")
    return value


def whole(lo: int, hi: int) -> Callable[[str], object]:
    """A whole number in [lo, hi]."""

    @_typed
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{value} is outside the valid range {lo} to {hi}")
        return value

    return count


@_typed
def date(text: str) -> str:
    """An ISO-8601 date or time (``2018``, ``2018-01-01``, ``2018-01-01T12:00Z``)."""
    from coinswarm.data.validate import as_time_bound

    as_time_bound(text, "date")
    return text


@_typed
def duration(text: str) -> str:
    """A window length with a unit (``365D``, ``12h``)."""
    from coinswarm.params import as_duration

    as_duration(text, "window", allow_zero=True)
    return text


@_typed
def timeframe(text: str) -> str:
    """A bar length (``1h``)."""
    from coinswarm.data.validate import timeframe_ms

    timeframe_ms(text)
    return text


def check_output(path: str | None, flag: str) -> None:
    """Refuse an output file whose folder does not exist (checked before the run, not after)."""
    if path is None:
        return
    target = Path(path)
    if not path.strip() or "\x00" in path or target.is_dir():
        raise ConfigError(f"{flag} {path!r} is not a file path")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"{flag} {path!r}: folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{flag} {path!r}: folder {str(folder)!r} is not writable")


def check_folder(path: str, flag: str) -> None:
    """Refuse an output folder that exists as a file or whose parent does not exist."""
    target = Path(path)
    if not path.strip() or "\x00" in path or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{flag} {path!r} is not a folder")
    if not target.exists() and not target.parent.is_dir():
        raise ConfigError(f"{flag} {path!r}: its parent folder {str(target.parent)!r} does not exist")


def data_names(spec: str) -> list[str]:
    """``--data``: comma-separated catalog names or CSV paths (at least one, no duplicates)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--data {spec!r} names no data set (e.g. binance:BTC/USDT:1h)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--data {spec!r} names a data set twice")
    return names


def parse_values(spec: str) -> list:
    """``"5:50:5"`` → 5, 10, …, 50 (inclusive); ``"5,10,20"`` → that list.

    Raises
    ------
    ConfigError
        Not numbers, a step ≤ 0, a stop below the start, non-finite values, or more than
        ``MAX_VALUES`` values.
    """
    spec = spec.strip()
    valid = "use start:stop:step (e.g. 5:50:5) or a,b,c"
    if ":" in spec:
        parts = [_number(p, spec, valid) for p in spec.split(":")]
        if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
            raise ConfigError(f"cannot read values '{spec}': need start ≤ stop and step > 0; {valid}")
        count = math.floor((parts[1] - parts[0]) / parts[2] + 1e-9) + 1
        if count > MAX_VALUES:
            raise ConfigError(f"'{spec}' gives {count:,} values; at most {MAX_VALUES:,}")
        values = [parts[0] + k * parts[2] for k in range(count)]
        return [int(v) if float(v).is_integer() else float(v) for v in values]
    items = spec.split(",")
    if len(items) > MAX_VALUES:
        raise ConfigError(f"'{spec[:40]}…' gives {len(items):,} values; at most {MAX_VALUES:,}")
    return [_number(v, spec, valid) for v in items]


def _number(text: str, spec: str, valid: str) -> int | float:
    item = text.strip()
    try:
        value = int(item) if item.lstrip("+-").isdigit() else float(item)
    except ValueError:
        raise ConfigError(f"cannot read values '{spec}': {item!r} is not a number; {valid}") from None
    if not math.isfinite(value):
        raise ConfigError(f"cannot read values '{spec}': {item!r} is not a finite number")
    return value


def parse_grid(items: Sequence[str] | None, strategy: str) -> dict:
    """``["fast=5:50:5", "slow=20:210:10"]`` (or one string joined by ';') → grid dict.

    Without ``--grid`` it is the strategy's own ``default_grid`` (the one source of default grids).
    """
    if not items:
        from coinswarm.params import default_grid
        from coinswarm.strategies.base import get_strategy

        return default_grid(get_strategy(strategy)) or None
    grid: dict = {}
    for item in ";".join(items).split(";"):
        if not item.strip():
            continue
        name, sep, spec = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"grid entry '{item}' is not name=values")
        if name.strip() in grid:
            raise ConfigError(f"grid parameter '{name.strip()}' is given twice")
        grid[name.strip()] = parse_values(spec)
    if not grid:
        raise ConfigError("--grid names no parameter; use name=start:stop:step or name=a,b,c")
    return grid


def parse_params(text: str | None) -> dict:
    """``"fast=20,slow=100"`` → dict (one value each)."""
    out: dict = {}
    for item in (text or "").split(","):
        if item.strip():
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"parameter '{item}' is not name=value")
            if name.strip() in out:
                raise ConfigError(f"parameter '{name.strip()}' is given twice")
            values = parse_values(value)
            if ":" in value or len(values) != 1:
                raise ConfigError(f"parameter '{item}' takes one value (ranges are for sweep --grid)")
            out[name.strip()] = values[0]
    return out
