"""Loading candles and funding rates from the catalog or from files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from coinswarm.data.catalog import find_entry, is_catalog_name, resolve_path
from coinswarm.data.validate import (
    OHLCV_COLUMNS,
    check_timestamps,
    gap_report,
    timeframe_ms,
    validate_arrays,
)
from coinswarm.errors import CoinswarmError, DatasetNotFoundError, MissingValueError, SchemaError

PathLike = str | os.PathLike


def _resolve(source: PathLike, data_dir: PathLike | None) -> tuple[Path, str | None, str]:
    """Return (path, timeframe from the catalog or None, display name)."""
    text = str(source)
    if is_catalog_name(text):
        entry = find_entry(text)
        return resolve_path(entry, data_dir), entry.timeframe, entry.name
    path = Path(text)
    if not path.exists() and data_dir is not None:
        path = Path(data_dir) / text
    if not path.exists():
        raise DatasetNotFoundError(f"no file or catalog name '{text}'")
    return path, None, path.name


def _read_numeric_csv(path: Path, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SchemaError(f"cannot read CSV: {exc}", source=name) from exc
    missing = [c for c in ("timestamp", *columns) if c not in raw.columns]
    if missing:
        raise SchemaError(
            f"missing column(s) {missing}; found {list(raw.columns)}", source=name
        )
    for col in ("timestamp", *columns):
        if not pd.api.types.is_numeric_dtype(raw[col]):
            coerced = pd.to_numeric(raw[col], errors="coerce")
            bad = int(np.flatnonzero(coerced.isna().to_numpy())[0])
            raise SchemaError(
                f"{col} value {raw[col].iloc[bad]!r} is not a number",
                source=name, row=bad, column=col, value=raw[col].iloc[bad],
            )
    ts = raw["timestamp"].to_numpy()
    if np.isnan(ts.astype(np.float64)).any():
        row = int(np.flatnonzero(np.isnan(ts.astype(np.float64)))[0])
        raise MissingValueError("timestamp is empty", source=name, row=row, column="timestamp")
    return raw


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


def load_ohlcv(
    source: PathLike,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    timeframe: str | None = None,
    gaps: str = "keep",
    data_dir: PathLike | None = None,
) -> pd.DataFrame:
    """Load validated candles.

    Parameters
    ----------
    source : str or path
        A catalog name (``"binance:BTC/USDT:1h"``, ``"binance-perp:BTC/USDT:1h"``,
        ``"coinbase:BTC/USD:1h"``; see ``coinswarm data list``) or a ``.csv``/``.csv.gz``
        file with header ``timestamp,open,high,low,close,volume`` (epoch ms, bar open).
    start, end : str or Timestamp, optional
        Inclusive bounds, applied after validation (``end="2024"`` includes all of 2024).
    timeframe : str, optional
        Bar length; taken from the catalog or inferred when omitted.
    gaps : {"keep", "raise", "ffill"}
        Missing bars: keep them missing (reported in ``attrs["gaps"]``), raise
        :class:`~coinswarm.errors.GapError`, or fill flat bars at the previous close.
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
    DataError
        A typed subclass naming file, row and value of the first problem found.
    """
    path, catalog_tf, name = _resolve(source, data_dir)
    raw = _read_numeric_csv(path, OHLCV_COLUMNS, name)
    ts = raw["timestamp"].to_numpy(dtype=np.int64)
    values = {c: raw[c].to_numpy(dtype=np.float64) for c in OHLCV_COLUMNS}
    tf = timeframe or catalog_tf
    report = validate_arrays(ts, values, timeframe=tf, source=name, gaps=gaps)
    df = pd.DataFrame(values, index=_index(ts))
    df.attrs = {"source": name, "timeframe": report.timeframe, "gaps": report.to_dict()}
    if gaps == "ffill":
        df = fill_gaps(df, report.timeframe)
    if start is not None or end is not None:
        df = df.loc[start:end]
        stamps = df.index.as_unit("ms").asi8
        df.attrs["gaps"] = gap_report(stamps, report.timeframe).to_dict()
    funding = _catalog_funding(name, data_dir)
    if funding is not None:
        df.attrs["funding"] = funding
    return df


def _catalog_funding(name: str, data_dir: PathLike | None) -> pd.Series | None:
    """The catalog's funding rates of a perpetual's candles (``None`` for spot or a file)."""
    if not name.startswith("binance-perp:"):
        return None
    try:
        return load_funding(":".join(name.split(":")[:2]) + ":funding", data_dir=data_dir)
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
    text = str(source)
    if text.count(":") == 1 and "/" in text:
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
    return series.loc[start:end] if (start is not None or end is not None) else series
