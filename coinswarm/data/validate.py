"""Validation of OHLCV candles with typed errors that name file, row and value."""

from __future__ import annotations

import datetime
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from coinswarm._lazy import lazy_module
from coinswarm.errors import (
    ConfigError,
    DataError,
    DuplicateTimestampError,
    GapError,
    InconsistentBarError,
    MissingValueError,
    NegativeVolumeError,
    NonPositivePriceError,
    OffGridTimestampError,
    SchemaError,
    UnsortedTimestampError,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TIMEFRAME = re.compile(r"([1-9][0-9]{0,5})([smhdwM])")
MAX_TIMEFRAME_MS = 366 * 86_400_000
#: Epoch milliseconds accepted in a ``timestamp`` column: 1970-01-01 to 2100-01-01.
EPOCH_MS_RANGE = (0, 4_102_444_800_000)


def timeframe_ms(timeframe: str) -> int | None:
    """Bar length in milliseconds (``"5m"`` → 300000); ``None`` for calendar months ("1M").

    Raises
    ------
    ConfigError
        Not a positive count followed by one of s, m, h, d, w, M (``"0h"``, ``"-1h"``,
        ``"1.5h"``, ``"1y"`` are refused), or longer than a year.
    """
    match = _TIMEFRAME.fullmatch(timeframe.strip()) if isinstance(timeframe, str) else None
    valid = "a positive whole count and a unit s, m, h, d, w or M (e.g. 1m, 5m, 1h, 4h, 1d, 1w, 1M)"
    if match is None:
        raise ConfigError(f"unknown timeframe {timeframe!r}: use {valid}")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "M":
        if count != 1:
            raise ConfigError(f"timeframe {timeframe!r}: only 1M (calendar months) is supported")
        return None
    ms = count * _UNIT_MS[unit.lower()]
    if ms > MAX_TIMEFRAME_MS:
        raise ConfigError(f"timeframe {timeframe!r} is longer than a year; use {valid}")
    return ms


def as_time_bound(value: object, name: str) -> pd.Timestamp | None:
    """Check a ``start``/``end`` bound and return it as a UTC Timestamp (``None`` passes through).

    Accepts an ISO-8601 string (``"2024"``, ``"2024-03"``, ``"2024-03-01T12:00Z"``), a
    ``datetime``/``date`` or a ``pandas.Timestamp``; naive times are read as UTC.

    Raises
    ------
    ConfigError
        Anything else: a number, a bool, ``"now"``, an impossible date (``"2024-13-01"``).
    """
    if value is None:
        return None
    valid = "an ISO-8601 date or time such as '2024', '2024-03-01' or '2024-03-01T12:00Z'"
    if isinstance(value, str):
        if not re.fullmatch(r"\d{4}([-T:.+ Z0-9]*)", value.strip()):
            raise ConfigError(f"{name}={value!r} is not {valid}")
    elif not isinstance(value, datetime.date | pd.Timestamp) or isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} ({type(value).__name__}) is not {valid}")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{name}={value!r} is not {valid} ({exc})") from None
    if stamp is pd.NaT:
        raise ConfigError(f"{name}={value!r} is not {valid}")
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def check_epoch_ms(ts: np.ndarray, source: str | None) -> None:
    """Check timestamps are whole epoch milliseconds between 1970 and 2100.

    Raises
    ------
    DataError
        A value out of that range (seconds, microseconds or nanoseconds are named as such).
    """
    lo, hi = EPOCH_MS_RANGE
    row = _first((ts < lo) | (ts > hi))
    if row is None:
        return
    value = int(ts[row])
    guess = ""
    for unit, scale in (("microseconds", 1_000), ("nanoseconds", 1_000_000)):
        if lo <= value // scale <= hi and value > hi:
            guess = f"; it looks like {unit} (divide by {scale:,})"
            break
    if 0 < value * 1_000 <= hi and value < 10_000_000_000:
        guess = "; it looks like seconds (multiply by 1,000)"
    raise DataError(
        f"timestamp {value} is not epoch milliseconds between 1970 and 2100{guess}; the timestamp "
        "column holds epoch milliseconds or ISO-8601 times",
        source=source, row=row, column="timestamp", value=value,
    )


def infer_timeframe(timestamps_ms: np.ndarray) -> str:
    """Guess the timeframe from the most common step between timestamps."""
    if len(timestamps_ms) < 2:
        raise ConfigError("cannot infer a timeframe from fewer than two bars")
    steps, counts = np.unique(np.diff(timestamps_ms), return_counts=True)
    return timeframe_of_ms(int(steps[np.argmax(counts)]))


def timeframe_of_ms(step: int) -> str:
    """A bar length in milliseconds as a timeframe (``3_600_000`` → ``"1h"``)."""
    for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if step > 0 and step % ms == 0:
            return f"{step // ms}{unit}"
    raise ConfigError(f"cannot infer a timeframe from a step of {step} ms")


@dataclass(frozen=True)
class GapReport:
    """Missing bars of a candle series (on the bar grid)."""

    timeframe: str
    missing_bars: int
    n_gaps: int
    longest_gap_bars: int
    longest_gap_after: str | None

    def to_dict(self) -> dict:
        """Plain-dict form (for JSON and ``DataFrame.attrs``)."""
        return asdict(self)


def iso_utc(ts_ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC timestamp (how errors name a bar's time).

    The same text as ``pd.Timestamp(ts_ms, unit="ms", tz="UTC").isoformat()`` without
    importing pandas (the live runner names every bar it checks); pandas only beyond the
    years 1..9999 that :mod:`datetime` covers."""
    try:
        return (_EPOCH + datetime.timedelta(milliseconds=int(ts_ms))).isoformat()
    except OverflowError:
        return pd.Timestamp(int(ts_ms), unit="ms", tz="UTC").isoformat()


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def check_values(values: dict[str, np.ndarray], ts: np.ndarray, source: str | None) -> None:
    """Check NaN, prices > 0, high ≥ low, open/close in [low, high], volume ≥ 0."""
    for col in OHLCV_COLUMNS:
        row = _first(~np.isfinite(values[col]))
        if row is not None:
            raise MissingValueError(
                f"{col} is {values[col][row].item()!r} (not a finite number)",
                source=source, row=row, column=col, value=values[col][row], timestamp=iso_utc(ts[row]),
            )
    for col in PRICE_COLUMNS:
        row = _first(values[col] <= 0)
        if row is not None:
            raise NonPositivePriceError(
                f"{col} {values[col][row].item()!r} is not positive",
                source=source, row=row, column=col, value=values[col][row], timestamp=iso_utc(ts[row]),
            )
    high, low = values["high"], values["low"]
    row = _first(high < low)
    if row is not None:
        raise InconsistentBarError(
            f"high {high[row].item()!r} < low {low[row].item()!r}",
            source=source, row=row, column="high", value=high[row], timestamp=iso_utc(ts[row]),
        )
    for col in ("open", "close"):
        v = values[col]
        row = _first((v < low) | (v > high))
        if row is not None:
            raise InconsistentBarError(
                f"{col} {v[row].item()!r} outside [low {low[row].item()!r}, high {high[row].item()!r}]",
                source=source, row=row, column=col, value=v[row], timestamp=iso_utc(ts[row]),
            )
    row = _first(values["volume"] < 0)
    if row is not None:
        raise NegativeVolumeError(
            f"volume {values['volume'][row].item()!r} is negative",
            source=source, row=row, column="volume", value=values["volume"][row],
            timestamp=iso_utc(ts[row]),
        )


def check_timestamps(ts: np.ndarray, timeframe: str, source: str | None) -> None:
    """Check timestamps are strictly increasing and on the bar grid."""
    steps = np.diff(ts)
    row = _first(steps == 0)
    if row is not None:
        raise DuplicateTimestampError(
            f"timestamp {ts[row + 1]} repeats the previous row",
            source=source, row=row + 1, column="timestamp", value=int(ts[row + 1]),
            timestamp=iso_utc(ts[row + 1]),
        )
    row = _first(steps < 0)
    if row is not None:
        raise UnsortedTimestampError(
            f"timestamp {ts[row + 1]} is earlier than the previous row's {ts[row]}",
            source=source, row=row + 1, column="timestamp", value=int(ts[row + 1]),
            timestamp=iso_utc(ts[row + 1]),
        )
    step = timeframe_ms(timeframe)
    if step is None:
        stamps = pd.to_datetime(ts, unit="ms", utc=True)
        off = (stamps.day != 1) | (stamps.hour != 0) | (stamps.minute != 0)
        row = _first(np.asarray(off))
    else:
        row = _first(ts % step != 0)
    if row is not None:
        raise OffGridTimestampError(
            f"timestamp {ts[row]} is not on the {timeframe} bar grid",
            source=source, row=row, column="timestamp", value=int(ts[row]), timestamp=iso_utc(ts[row]),
        )


def gap_report(ts: np.ndarray, timeframe: str) -> GapReport:
    """Count missing bars between consecutive timestamps (calendar months: no gaps counted)."""
    step = timeframe_ms(timeframe)
    if step is None or len(ts) < 2:
        return GapReport(timeframe, 0, 0, 0, None)
    missing = np.diff(ts) // step - 1
    gap_rows = np.flatnonzero(missing > 0)
    if gap_rows.size == 0:
        return GapReport(timeframe, 0, 0, 0, None)
    longest = int(gap_rows[np.argmax(missing[gap_rows])])
    return GapReport(
        timeframe=timeframe,
        missing_bars=int(missing[gap_rows].sum()),
        n_gaps=int(gap_rows.size),
        longest_gap_bars=int(missing[longest]),
        longest_gap_after=iso_utc(ts[longest]),
    )


#: How missing bars are handled, one vocabulary everywhere: ``"raise"`` a GapError, ``"warn"``
#: (keep them missing and issue a GapWarning), ``"ignore"`` (keep them missing, silently; the gap
#: report is still in ``attrs["gaps"]``), ``"ffill"`` (loading only: fill flat bars at the
#: previous close). Agents, regimes and the committee take the first three.
GAP_POLICIES = ("raise", "warn", "ignore", "ffill")
#: Old names still accepted with a DeprecationWarning: ``"keep"`` was the loaders' ``"ignore"``.
GAP_ALIASES = {"keep": "ignore"}


def gap_policy(gaps: object, allowed: tuple[str, ...] = GAP_POLICIES, hint: str = "") -> str:
    """``gaps`` checked against ``allowed`` (a deprecated alias is translated, with a warning).

    Raises
    ------
    ConfigError
        Not one of ``allowed`` (the message lists them, and ``hint`` when given).
    """
    if isinstance(gaps, str) and gaps in GAP_ALIASES:
        import warnings

        warnings.warn(f"gaps={gaps!r} is deprecated: use gaps={GAP_ALIASES[gaps]!r} (the same policy: missing bars "
                      "stay missing and are reported in attrs['gaps'])", DeprecationWarning, stacklevel=3)
        gaps = GAP_ALIASES[gaps]
    if not isinstance(gaps, str) or gaps not in allowed:
        extra = f"; {hint}" if hint and gaps in GAP_POLICIES else ""
        raise ConfigError(f"gaps must be one of {', '.join(map(repr, allowed))} (or the deprecated 'keep'), "
                          f"not {gaps!r}{extra}")
    return gaps


def validate_arrays(
    ts: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    timeframe: str | None = None,
    source: str | None = None,
    gaps: str = "ignore",
) -> GapReport:
    """Validate candle arrays; return the gap report (``gaps``: see :data:`GAP_POLICIES`; only
    ``"raise"`` acts here, the loaders warn or fill).

    Raises
    ------
    DataError
        A subclass naming the first offending row, column and value.
    """
    gaps = gap_policy(gaps)
    if len(ts) == 0:
        raise DataError("no bars (the data is empty)", source=source)
    lengths = {c: len(values[c]) for c in OHLCV_COLUMNS}
    if set(lengths.values()) != {len(ts)}:
        raise SchemaError(f"columns differ in length from the {len(ts)} timestamps: {lengths}", source=source)
    check_epoch_ms(ts, source)
    check_values(values, ts, source)
    tf = timeframe or infer_timeframe(ts)
    check_timestamps(ts, tf, source)
    report = gap_report(ts, tf)
    if gaps == "raise" and report.missing_bars:
        raise GapError(
            f"{report.missing_bars} missing {tf} bars in {report.n_gaps} gaps; longest "
            f"{report.longest_gap_bars} bars after {report.longest_gap_after} "
            "(choose gaps='ignore', 'warn' or 'ffill' to accept them)",
            source=source,
        )
    return report


def validate_ohlcv(
    df: pd.DataFrame, *, timeframe: str | None = None, source: str | None = None, gaps: str = "ignore"
) -> GapReport:
    """Validate an OHLCV frame indexed by a UTC ``DatetimeIndex`` (see :func:`validate_arrays`).

    Raises
    ------
    ConfigError
        Not a DataFrame, or ``timeframe``/``gaps`` invalid.
    DataError
        Empty; an index that is not a UTC ``DatetimeIndex`` (tz-naive, another zone, NaT);
        a missing or non-numeric column (:class:`~coinswarm.errors.SchemaError`); or any
        problem :func:`validate_arrays` finds.
    """
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"validate_ohlcv needs a pandas DataFrame, not {type(df).__name__}")
    source = source if source is not None else df.attrs.get("source")
    check_utc_index(df.index, source)
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"missing column(s) {missing}; an OHLCV frame has {list(OHLCV_COLUMNS)}, "
                          f"this one has {[str(c) for c in df.columns][:12]}", source=source)
    values = {}
    for col in OHLCV_COLUMNS:
        if isinstance(df[col], pd.DataFrame) or not pd.api.types.is_numeric_dtype(df[col]) \
                or pd.api.types.is_bool_dtype(df[col]) or pd.api.types.is_complex_dtype(df[col]):
            raise SchemaError(f"column {col!r} is not one real numeric column", source=source, column=col)
        values[col] = np.asarray(df[col], dtype=np.float64)
    if timeframe is not None:
        timeframe_ms(timeframe)
    return validate_arrays(df.index.as_unit("ms").asi8, values, timeframe=timeframe, source=source, gaps=gaps)


_UTC_NAMES = {"UTC", "Etc/UTC", "UTC+00:00", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "Universal", "Etc/Universal"}


def check_utc_index(index: pd.Index, source: str | None) -> None:
    """Raise :class:`~coinswarm.errors.DataError` unless ``index`` is a non-empty UTC DatetimeIndex."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"the index is a {type(index).__name__}; candles need a UTC DatetimeIndex "
                        "(bar open times)", source=source)
    if len(index) == 0:
        raise DataError("no bars (the frame is empty)", source=source)
    if index.tz is None:
        raise DataError("the index is tz-naive; localise it with df.tz_localize('UTC') if its times are UTC",
                        source=source)
    if str(index.tz) not in _UTC_NAMES:
        raise DataError(f"the index is in time zone {index.tz}, not UTC; convert it with df.tz_convert('UTC')",
                        source=source)
    if index.hasnans:
        raise DataError("the index holds NaT (a missing bar time)", source=source, row=int(np.argmax(index.isna())))
