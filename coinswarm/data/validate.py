"""Validation of OHLCV candles with typed errors that name file, row and value."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from coinswarm.errors import (
    ConfigError,
    DuplicateTimestampError,
    GapError,
    InconsistentBarError,
    MissingValueError,
    NegativeVolumeError,
    NonPositivePriceError,
    OffGridTimestampError,
    UnsortedTimestampError,
)

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int | None:
    """Bar length in milliseconds (``"5m"`` → 300000); ``None`` for calendar months ("1M")."""
    tf = str(timeframe).strip()
    if tf.endswith("M"):
        return None
    try:
        count, unit = int(tf[:-1]), tf[-1].lower()
        return count * _UNIT_MS[unit]
    except (ValueError, KeyError):
        raise ConfigError(f"unknown timeframe '{timeframe}' (use e.g. 1m, 5m, 1h, 4h, 1d, 1M)") from None


def infer_timeframe(timestamps_ms: np.ndarray) -> str:
    """Guess the timeframe from the most common step between timestamps."""
    if len(timestamps_ms) < 2:
        raise ConfigError("cannot infer a timeframe from fewer than two bars")
    steps, counts = np.unique(np.diff(timestamps_ms), return_counts=True)
    step = int(steps[np.argmax(counts)])
    for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if step % ms == 0:
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
    """Epoch milliseconds as an ISO-8601 UTC timestamp (how errors name a bar's time)."""
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


def validate_arrays(
    ts: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    timeframe: str | None = None,
    source: str | None = None,
    gaps: str = "keep",
) -> GapReport:
    """Validate candle arrays; return the gap report.

    Raises
    ------
    DataError
        A subclass naming the first offending row, column and value.
    """
    if gaps not in ("raise", "keep", "ffill"):
        raise ConfigError(f"gaps must be 'raise', 'keep' or 'ffill', not {gaps!r}")
    check_values(values, ts, source)
    tf = timeframe or infer_timeframe(ts)
    check_timestamps(ts, tf, source)
    report = gap_report(ts, tf)
    if gaps == "raise" and report.missing_bars:
        raise GapError(
            f"{report.missing_bars} missing {tf} bars in {report.n_gaps} gaps; longest "
            f"{report.longest_gap_bars} bars after {report.longest_gap_after} "
            "(choose gaps='keep' or 'ffill' to accept them)",
            source=source,
        )
    return report


def validate_ohlcv(
    df: pd.DataFrame, *, timeframe: str | None = None, source: str | None = None, gaps: str = "keep"
) -> GapReport:
    """Validate an OHLCV frame indexed by a UTC ``DatetimeIndex`` (see :func:`validate_arrays`)."""
    ts = df.index.as_unit("ms").asi8 if isinstance(df.index, pd.DatetimeIndex) else None
    if ts is None:
        raise ConfigError("an OHLCV frame needs a DatetimeIndex")
    values = {c: np.asarray(df[c], dtype=np.float64) for c in OHLCV_COLUMNS}
    return validate_arrays(ts, values, timeframe=timeframe, source=source, gaps=gaps)
