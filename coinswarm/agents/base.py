"""What every agent shares: the bar records, the vote record, input checks, the step
protocol and the pandas face (``run``, ``targets``) around an agent's compiled kernels.

An agent is pure: ``init(params)`` returns its whole state (a :class:`~coinswarm.agents.state.State`,
one ``float64`` array) and ``step(state, bar)`` advances it by one closed bar in O(1),
returning ``(state, Vote)``. ``run(prices)`` drives the *same* compiled step over history in
one loop, so the live path (``step`` per bar) and the backtest path (``run``) agree bit for bit.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from coinswarm._lazy import lazy_module
from coinswarm.agents.state import State, check_layout, layout_id
from coinswarm.data.validate import OHLCV_COLUMNS, check_values, gap_policy, iso_utc, validate_ohlcv
from coinswarm.errors import (
    ConfigError,
    DataError,
    DuplicateTimestampError,
    GapError,
    GapWarning,
    MissingValueError,
    UnsortedTimestampError,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")


class Bar(NamedTuple):
    """One closed candle; ``time`` is the bar's open time in epoch milliseconds (UTC)."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Vote(NamedTuple):
    """An agent's opinion after a bar: direction/size in [-1, 1] and confidence in [0, 1]."""

    vote: float
    confidence: float


# a perpetual's closed candle: the fields of :class:`Bar`, then the funding rate
FundingBar = NamedTuple("FundingBar", [*Bar.__annotations__.items(), ("funding_rate", float)])
FundingBar.__doc__ = """A perpetual's closed candle (the fields of :class:`Bar`) and ``funding_rate``, the
last funding rate settled at or before its open: what the carry trade steps on beside the
spot leg's :class:`Bar`."""


def new_clock() -> np.ndarray:
    """A bar clock for a fresh live state: no bar taken yet."""
    return np.full(1, -1, dtype=np.int64)


def check_bar_time(clock: np.ndarray | None, time_ms: int, source: str | None = None) -> None:
    """Refuse a bar that is not newer than the last one taken: a
    :class:`~coinswarm.errors.DuplicateTimestampError` for the same open time (a feed that
    replays a bar), an :class:`~coinswarm.errors.UnsortedTimestampError` for an older one.
    The state stays as it was; the caller moves ``clock`` on after the step."""
    if clock is None or time_ms > clock[0]:
        return
    error = DuplicateTimestampError if time_ms == clock[0] else UnsortedTimestampError
    raise error(f"bar at {iso_utc(time_ms)} is not after the last bar taken ({iso_utc(clock[0])})", source=source,
                column="time", value=time_ms)


_GAPS_WARNED: set[tuple] = set()


def reset_gap_warnings() -> None:
    """Forget which datasets' gaps were reported, so the next call over each warns again."""
    _GAPS_WARNED.clear()


def _gap_key(frame: pd.DataFrame, report: Any) -> tuple:
    """What identifies a dataset for :class:`GapWarning`: its source (``attrs``), timeframe,
    first and last bar, length and gaps."""
    index = frame.index
    return (frame.attrs.get("source"), str(report.timeframe), index[0] if len(index) else None,
            index[-1] if len(index) else None, len(index), report.missing_bars, report.n_gaps)


#: The gap policies an agent, the regimes and the committee take (``"ffill"`` is for loading only).
GAP_POLICIES = ("warn", "raise", "ignore")


MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant pandas can print


def check_bar_stamp(time_ms: object, source: str | None = None) -> None:
    """Refuse a bar time that is not an integer of epoch milliseconds in [0, 9999-12-31]
    (a float, a string, a bool, NaN or a nanosecond stamp) with a typed
    :class:`~coinswarm.errors.DataError` naming the value and what would be valid."""
    if isinstance(time_ms, int | np.integer) and not isinstance(time_ms, bool) and 0 <= time_ms <= MAX_TIME_MS:
        return
    raise DataError(f"time is {time_ms!r}: a bar's open time must be an int of epoch milliseconds in "
                    f"[0, {MAX_TIME_MS}] (1970-01-01 to 9999-12-31 UTC)", source=source, column="time",
                    value=time_ms)


def check_bar(bar: Bar, source: str | None = None) -> Bar:
    """Validate one live bar before any state is touched (the rules of
    :func:`~coinswarm.data.validate.validate_ohlcv`: finite numbers, prices > 0, open and close
    within [low, high], volume ≥ 0). Raises the same typed :class:`~coinswarm.errors.DataError`
    subclasses, naming ``source`` (the symbol), the field, the value and the bar's time; the
    caller's state stays as it was. Returns the bar with float prices and volume (what the
    compiled steps take: an int or numpy price does not compile a second specialisation)."""
    if type(bar) is not Bar and not (isinstance(bar, tuple) and set(Bar._fields) <= set(getattr(bar, "_fields", ()))):
        raise ConfigError(f"a bar must be a coinswarm Bar(time, open, high, low, close, volume), not "
                          f"{type(bar).__name__}{' ' + repr(bar)[:80] if bar is not None else ''}")
    check_bar_stamp(bar.time, source)
    o, h, low, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    try:  # every comparison with NaN is False: the usual bar passes in one expression
        if (0.0 < low <= o <= h < math.inf and low <= c <= h and 0.0 <= v < math.inf
                and True not in (type(o) is bool, type(h) is bool, type(low) is bool, type(c) is bool,
                                 type(v) is bool)):
            return bar if type(o) is type(h) is type(low) is type(c) is type(v) is float else bar._replace(
                open=float(o), high=float(h), low=float(low), close=float(c), volume=float(v))
    except TypeError:
        pass
    values = {}
    for name in OHLCV_COLUMNS:
        value = getattr(bar, name)
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
            raise MissingValueError(f"{name} is {value!r} ({type(value).__name__}): a bar's prices and volume "
                                    "must be real numbers (int or float)", source=source, column=name, value=value,
                                    timestamp=bar.time)
        try:
            values[name] = np.array([value], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise MissingValueError(f"{name} is {getattr(bar, name)!r} (not a number)", source=source,
                                    column=name, value=getattr(bar, name), timestamp=bar.time) from None
    try:
        check_values(values, np.array([bar.time], dtype=np.int64), source)
    except DataError as exc:  # the same error for a live bar, without the file row
        raise type(exc)(exc.problem, source=source, column=exc.column, value=exc.value,
                        timestamp=exc.timestamp) from None
    return bar._replace(**{name: float(values[name][0]) for name in OHLCV_COLUMNS})


def check_prices(frame: pd.DataFrame, gaps: str = "warn") -> None:
    """Validate candles before an agent sees them.

    Raises a typed :class:`~coinswarm.errors.DataError` on NaN, non-positive prices,
    high < low, negative volume, duplicate/unsorted/off-grid timestamps; gaps raise
    :class:`~coinswarm.errors.GapError` (``gaps="raise"``), warn with :class:`GapWarning`
    (default; once per dataset, see :class:`GapWarning`) or pass (``"ignore"``). Zero volume
    is valid: no agent weights by volume.
    """
    gaps = gap_policy(gaps, GAP_POLICIES, "cs.load_ohlcv(..., gaps='ffill') fills bars before an agent sees them")
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected an OHLCV DataFrame, got {type(frame).__name__}")
    source = frame.attrs.get("source")
    report = validate_ohlcv(frame, source=source, timeframe=frame.attrs.get("timeframe"))
    if report.missing_bars and gaps != "ignore":
        message = (f"{source or 'candles'}: {report.missing_bars} missing {report.timeframe} bars in "
                   f"{report.n_gaps} gaps (longest {report.longest_gap_bars} after "
                   f"{report.longest_gap_after}); agents treat each gap as one bar")
        if gaps == "raise":
            raise GapError(message, source=source)
        key = _gap_key(frame, report)
        if key not in _GAPS_WARNED:
            _GAPS_WARNED.add(key)
            warnings.warn(message + " (reported once per dataset; coinswarm.agents.reset_gap_warnings() "
                          "shows it again)", GapWarning, stacklevel=3)


def ohlcv_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """(time_ms, open, high, low, close, volume) as contiguous arrays."""
    time_ms = frame.index.as_unit("ms").asi8.astype(np.int64)
    cols = [np.ascontiguousarray(frame[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close", "volume")]
    return (time_ms, *cols)


def ohlcv_matrices(frames: dict[str, pd.DataFrame]) -> tuple[np.ndarray, ...]:
    """(time_ms, open, high, low, close, volume) with one column per symbol."""
    first = next(iter(frames.values()))
    time_ms = first.index.as_unit("ms").asi8.astype(np.int64)
    cols = [np.ascontiguousarray(np.column_stack([f[c].to_numpy(np.float64) for f in frames.values()]))
            for c in ("open", "high", "low", "close", "volume")]
    return (time_ms, *cols)


def iter_bars(frame: pd.DataFrame):
    """Yield :class:`Bar` records of a frame, oldest first (a replay feed)."""
    time_ms, o, h, low, c, v = ohlcv_arrays(frame)
    for k in range(len(time_ms)):
        yield Bar(int(time_ms[k]), float(o[k]), float(h[k]), float(low[k]), float(c[k]), float(v[k]))


class Agent(ABC):
    """Base of single-asset agents: subclasses provide the kernels and the layout.

    Subclasses set ``name``, ``Params``, ``default_grid`` and implement
    ``state_size(params)``, ``_init_state(state, params)``, ``_step(state, params, bar)``
    (one bar, returns ``(vote, confidence)``) and ``_run(state, params, arrays)``
    (the compiled loop, returns ``(votes, confidences)``).
    """

    name: str = "agent"
    Params: type = NamedTuple
    default_grid: dict[str, list] = {}
    state_version: int = 1  # bumped when the meaning of the state array changes

    # -- the step protocol -------------------------------------------------------------
    @cached_property
    def layout(self) -> str:
        """The layout of this agent's states (:func:`~coinswarm.agents.state.layout_id`)."""
        return layout_id(self.name, self.state_version, *self._layout_config())

    def _layout_config(self) -> tuple:
        """Fixed configuration (besides the params) the state's meaning depends on."""
        return ()

    def init(self, params: Any = None) -> State:
        """A fresh state for ``params`` (defaults when ``None``; a dict is coerced)."""
        params = self._params(params)
        values = np.zeros(self.state_size(params))
        self._init_state(values, params)
        return State(params, values, new_clock(), (), self.layout)

    def step(self, state: State, bar: Bar) -> tuple[State, Vote]:
        """Advance ``state`` in place by one closed bar (O(1)): ``(state, vote)``.

        A malformed bar raises a typed :class:`~coinswarm.errors.DataError` (see
        :func:`check_bar`) and changes nothing, as does a bar not newer than the last one
        (see :func:`check_bar_time`); a state of another agent or version raises
        :class:`~coinswarm.errors.StaleStateError`."""
        check_layout(state, self.layout, self.name, lambda: self.init(state.params))
        bar = check_bar(bar)
        check_bar_time(state.clock, bar.time)
        vote, confidence = self._step(state.values, state.params, bar)
        state.clock[0] = bar.time
        return state, Vote(float(vote), float(confidence))

    def update(self, state: State, bar: Bar) -> Vote:
        """``step(state, bar)[1]``: the vote only (the older name, kept for compatibility)."""
        return self.step(state, bar)[1]

    # -- the pandas face -----------------------------------------------------------------
    def run(self, prices: pd.DataFrame, params: Any = None, *, gaps: str = "warn") -> pd.DataFrame:
        """Votes and confidences for every bar of ``prices`` (row t uses bars ≤ t only)."""
        params = self._params(params)
        check_prices(prices, gaps)
        state = self.init(params)
        votes, confidence = self._run(state.values, params, ohlcv_arrays(prices))
        return pd.DataFrame({"vote": votes, "confidence": confidence}, index=prices.index)

    def targets(self, prices: pd.DataFrame, params: Any = None) -> pd.Series:
        """Target weight per bar: the vote (a strategy for simulate/sweep/walk-forward)."""
        return self.run(prices, params, gaps="ignore")["vote"].rename("target")

    @abstractmethod
    def warmup(self, params: Any = None) -> int:
        """Bars before the first non-zero vote."""

    @abstractmethod
    def state_size(self, params: Any) -> int:
        """Floats of state for ``params``."""

    @abstractmethod
    def _init_state(self, values: np.ndarray, params: Any) -> None:
        """Fill a zeroed state array for ``params``."""

    @abstractmethod
    def _step(self, values: np.ndarray, params: Any, bar: Bar):
        """One bar through the compiled step: ``(vote, confidence)``."""

    @abstractmethod
    def _run(self, values: np.ndarray, params: Any, arrays: tuple):
        """The compiled loop over history: ``(votes, confidences)``."""

    def is_valid(self, params: Any) -> bool:
        """Whether ``params`` make sense."""
        return True

    def _params(self, params: Any):
        from coinswarm.params import resolve_params

        return resolve_params(self, params)

    def __repr__(self) -> str:
        return f"<agent {self.name}>"
