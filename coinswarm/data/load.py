"""Loading candles and funding rates from the catalog or from files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from coinswarm.data.catalog import find_entry, is_catalog_name, parse_catalog_name, path_exists, resolve_path
from coinswarm.data.validate import (
    OHLCV_COLUMNS,
    GapReport,
    as_time_bound,
    check_epoch_ms,
    check_timestamps,
    gap_policy,
    gap_report,
    timeframe_ms,
    validate_arrays,
)
from coinswarm.errors import (
    CoinswarmError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    GapWarning,
    MissingValueError,
    SchemaError,
)

PathLike = str | os.PathLike


def _resolve(source: PathLike, data_dir: PathLike | None) -> tuple[Path, str | None, str]:
    """Return (path, timeframe from the catalog or None, display name)."""
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(f"source must be a catalog name or a file path, not {type(source).__name__}")
    text = str(source)
    if is_catalog_name(text):
        entry = find_entry(text)
        return resolve_path(entry, data_dir), entry.timeframe, entry.name
    path = Path(text)
    if not path_exists(text) and data_dir is not None:
        path = Path(data_dir) / text
    if not path_exists(str(path)) or not path.is_file():
        raise DatasetNotFoundError(f"no file or catalog name '{text}' (a catalog name looks like "
                                   "binance:BTC/USDT:1h; see `coinswarm data list`)")
    return path, None, path.name


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    """``pd.read_csv`` with every way a file can be unreadable turned into a ``DataError``."""
    import zlib

    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SchemaError("the file is empty (no header, no rows)", source=name) from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read the file as CSV (.csv or gzip .csv.gz): {problem}", source=name) from None


def _read_numeric_csv(path: Path, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    raw = _read_csv(path, name)
    missing = [c for c in ("timestamp", *columns) if c not in raw.columns]
    if missing:
        raise SchemaError(
            f"missing column(s) {missing}; found {[str(c) for c in raw.columns][:12]}; the header is "
            f"timestamp,{','.join(columns)}", source=name
        )
    if raw.empty:
        raise DataError("the file has a header but no rows", source=name)
    for col in columns:
        if not pd.api.types.is_numeric_dtype(raw[col]) or pd.api.types.is_bool_dtype(raw[col]):
            coerced = pd.to_numeric(raw[col], errors="coerce")
            bad = _first_bad(coerced.isna().to_numpy() & raw[col].notna().to_numpy())
            raise SchemaError(
                f"{col} value {raw[col].iloc[bad]!r} is not a number",
                source=name, row=bad, column=col, value=raw[col].iloc[bad],
            )
    raw["timestamp"] = epoch_ms(raw["timestamp"], name)
    return raw


def _first_bad(mask: np.ndarray) -> int:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else 0


def epoch_ms(column: pd.Series, name: str | None = None) -> np.ndarray:
    """A ``timestamp`` column (epoch milliseconds, or ISO-8601 times) as int64 epoch ms.

    Raises
    ------
    DataError
        An empty cell, a number that is not whole epoch ms between 1970 and 2100 (seconds,
        µs and ns are named as such), or a text that is not an ISO-8601 time.
    """
    if column.isna().any():
        row = _first_bad(column.isna().to_numpy())
        raise MissingValueError("timestamp is empty", source=name, row=row, column="timestamp")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        row = _first_bad(values != np.floor(values))
        if (values != np.floor(values)).any():
            raise DataError(f"timestamp {values[row]!r} is not whole epoch milliseconds", source=name,
                            row=row, column="timestamp", value=values[row])
        clipped = np.clip(values, -1.0, 4.2e18)
        check_epoch_ms(clipped.astype(np.int64), name)
        if (values < 1e11).all():
            raise DataError(f"timestamp {int(values[0])} and every other falls before 1973 as epoch "
                            "milliseconds; they look like seconds (multiply by 1,000)", source=name, row=0,
                            column="timestamp", value=int(values[0]))
        return clipped.astype(np.int64)
    return _iso_to_ms(column.astype(str), name)


def _iso_to_ms(column: pd.Series, name: str | None) -> np.ndarray:
    """ISO-8601 texts (naive ones read as UTC) as epoch ms."""
    try:
        stamps = pd.to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
        row = _first_bad(parsed.isna().to_numpy())
        raise DataError(
            f"timestamp {column.iloc[row]!r} is neither epoch milliseconds nor an ISO-8601 time "
            "(e.g. 2024-01-01T00:00:00Z)", source=name, row=row, column="timestamp",
            value=column.iloc[row],
        ) from None
    ms = pd.DatetimeIndex(stamps).as_unit("ms").asi8
    check_epoch_ms(ms, name)
    return ms


def _index(ts_ms: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(ts_ms, unit="ms", utc=True), name="time")


def fill_gaps(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Reindex onto the full bar grid; filled bars are flat at the previous close, volume 0.

    The number of filled bars is stored in ``df.attrs["filled_bars"]``.
    """
    step = timeframe_ms(timeframe)
    if step is None or df.empty:
        return df
    grid = pd.date_range(df.index[0], df.index[-1], freq=pd.Timedelta(milliseconds=step), name="time")
    out = df.reindex(grid)
    filled = out["close"].isna()
    prev_close = out["close"].ffill()
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].where(~filled, prev_close)
    out["volume"] = out["volume"].fillna(0.0)
    out.attrs = dict(df.attrs, filled_bars=int(filled.sum()))
    return out


def load_ohlcv(source: PathLike, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None, *,
               timeframe: str | None = None, gaps: str = "ignore", data_dir: PathLike | None = None) -> pd.DataFrame:
    """Load validated candles.

    Parameters
    ----------
    source : str or path
        A catalog name (``"binance:BTC/USDT:1h"``, ``"binance-perp:BTC/USDT:1h"``,
        ``"coinbase:BTC/USD:1h"``; see ``coinswarm data list``) or a ``.csv``/``.csv.gz``
        file with header ``timestamp,open,high,low,close,volume`` (bar open time in epoch ms
        or ISO-8601; naive times are UTC).
    start, end : str or Timestamp, optional
        Inclusive bounds, applied after validation (``end="2024"`` includes all of 2024).
    timeframe : str, optional
        Bar length; taken from the catalog or inferred when omitted.
    gaps : {"ignore", "warn", "raise", "ffill"}
        Missing bars (the one gap vocabulary, :data:`~coinswarm.data.validate.GAP_POLICIES`):
        keep them missing silently (reported in ``attrs["gaps"]``), keep them and issue a
        :class:`~coinswarm.errors.GapWarning`, raise :class:`~coinswarm.errors.GapError`, or
        fill flat bars at the previous close. ``"keep"`` (the old name of ``"ignore"``) still
        works, with a DeprecationWarning.
    data_dir : path, optional
        Data root searched first.

    Returns
    -------
    pandas.DataFrame
        float64 columns ``open high low close volume`` on a UTC ``DatetimeIndex`` named
        ``time`` (bar open time). ``attrs`` holds ``source``, ``timeframe`` and ``gaps``,
        and for a perpetual whose funding rates are in the catalog also ``funding`` (the
        :func:`load_funding` series, which the carry agent reads).

    Raises
    ------
    ConfigError
        ``start``/``end`` not ISO-8601 dates (or the end before the start), an unknown
        ``timeframe`` or ``gaps``.
    DataError
        A typed subclass naming file, row and value of the first problem found; an empty,
        header-only or unreadable file; no bars between ``start`` and ``end`` (the message
        states the range that exists).
    """
    lo, hi = _check_bounds(start, end)
    if timeframe is not None:
        timeframe_ms(timeframe)
    gaps = gap_policy(gaps)
    path, catalog_tf, name = _resolve(source, data_dir)
    df, report = _read_candles(path, name, timeframe or catalog_tf, gaps)
    _warn_gaps(name, report, gaps)
    if gaps == "ffill":
        df = fill_gaps(df, report.timeframe)
    if start is not None or end is not None:
        df = _window(df, start, end, lo, hi, name)
        stamps = df.index.as_unit("ms").asi8
        df.attrs["gaps"] = gap_report(stamps, report.timeframe).to_dict()
    funding = _catalog_funding(name, data_dir)
    if funding is not None:
        df.attrs["funding"] = funding
    return df


def _read_candles(path: Path, name: str, timeframe: str | None, gaps: str) -> tuple[pd.DataFrame, GapReport]:
    """The file's validated candles (one float64 frame) and their validation report."""
    raw = _read_numeric_csv(path, OHLCV_COLUMNS, name)
    ts = raw["timestamp"].to_numpy(dtype=np.int64)
    values = {c: raw[c].to_numpy(dtype=np.float64) for c in OHLCV_COLUMNS}
    report = validate_arrays(ts, values, timeframe=timeframe, source=name, gaps=gaps)
    df = pd.DataFrame(values, index=_index(ts))
    df.attrs = {"source": name, "timeframe": report.timeframe, "gaps": report.to_dict()}
    return df, report


def _warn_gaps(name: str, report: GapReport, gaps: str) -> None:
    """The :class:`GapWarning` of ``gaps="warn"`` when bars are missing (attributed to
    :func:`load_ohlcv`'s caller)."""
    if gaps == "warn" and report.missing_bars:
        import warnings

        warnings.warn(f"{name}: {report.missing_bars} missing {report.timeframe} bars in {report.n_gaps} gaps "
                      f"(longest {report.longest_gap_bars} after {report.longest_gap_after}); gaps='ffill' fills "
                      "them, gaps='ignore' keeps them silently", GapWarning, stacklevel=3)


def _check_bounds(start, end) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse ``start``/``end``; refuse an end before the start."""
    lo, hi = as_time_bound(start, "start"), as_time_bound(end, "end")
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"end {end!r} is before start {start!r}")
    return lo, hi


def _bound(value, stamp: pd.Timestamp | None):
    """Strings keep pandas' partial-date slicing (``end="2024"`` is all of 2024); others are UTC."""
    return value if isinstance(value, str) or value is None else stamp


def _between(data, start, end):
    """``data.loc[start:end]``, each bound resolved alone (a string and a Timestamp may be mixed)."""
    first = 0 if start is None else data.index.slice_locs(start=start)[0]
    stop = len(data) if end is None else data.index.slice_locs(end=end)[1]
    return data.iloc[first:max(first, stop)]


def _window(df: pd.DataFrame, start, end, lo, hi, name: str) -> pd.DataFrame:
    """``df`` between the bounds (inclusive); an empty result is a ``DataError`` naming the range."""
    out = _between(df, _bound(start, lo), _bound(end, hi))
    if out.empty:
        raise DataError(
            f"no bars between start={start!r} and end={end!r}; the data covers {df.index[0]} → "
            f"{df.index[-1]} ({len(df):,} bars)", source=name,
        )
    return out


def _catalog_funding(name: str, data_dir: PathLike | None) -> pd.Series | None:
    """The catalog's funding rates of a perpetual's candles (``None`` for spot or a file)."""
    parsed = parse_catalog_name(name, strict=False)
    if parsed is None or not parsed.is_perpetual:
        return None
    try:
        return load_funding(parsed.funding_name, data_dir=data_dir)
    except (CoinswarmError, OSError):
        return None


def load_funding(
    source: PathLike,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    data_dir: PathLike | None = None,
) -> pd.Series:
    """Load a funding-rate series (rate per funding interval, a fraction; longs pay if > 0).

    ``source`` is a catalog name such as ``"binance-perp:BTC/USDT:funding"`` (the
    ``:funding`` suffix may be left out) or a CSV with ``timestamp,funding_rate``.
    """
    lo, hi = _check_bounds(start, end)
    text = str(source)
    if parse_catalog_name(text + ":funding", strict=False) is not None and text.count(":") == 1:
        text += ":funding"
    path, _, name = _resolve(text, data_dir)
    raw = _read_numeric_csv(path, ("funding_rate",), name)
    ts = raw["timestamp"].to_numpy(dtype=np.int64)
    rate = raw["funding_rate"].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(rate))
    if bad.size:
        raise MissingValueError(
            "funding_rate is not a finite number", source=name, row=int(bad[0]),
            column="funding_rate", value=rate[bad[0]],
        )
    check_timestamps(ts, "1h", name)
    series = pd.Series(rate, index=_index(ts), name="funding_rate")
    series.attrs = {"source": name}
    if start is None and end is None:
        return series
    out = _between(series, _bound(start, lo), _bound(end, hi))
    if out.empty:
        raise DataError(f"no funding rates between start={start!r} and end={end!r}; the data covers "
                        f"{series.index[0]} → {series.index[-1]}", source=name)
    return out
