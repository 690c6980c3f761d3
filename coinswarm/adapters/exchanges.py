"""Rebuild data sets online with ccxt (the only module here that touches the network).

``download_ohlcv`` pages through ``exchange.fetch_ohlcv`` and writes the catalog's
CSV schema. Tests drive it with a local fake venue; nothing in the test suite
reaches an exchange.
"""

from __future__ import annotations

import gzip
import os
from typing import Any

import numpy as np
import pandas as pd

from coinswarm.data.validate import OHLCV_COLUMNS, timeframe_ms, validate_arrays
from coinswarm.errors import ConfigError, DataError


def make_exchange(name: str) -> Any:
    """A ccxt exchange instance with rate limiting on (network access happens on use)."""
    import ccxt

    try:
        return getattr(ccxt, name)({"enableRateLimit": True})
    except AttributeError:
        raise ConfigError(f"ccxt has no exchange named '{name}'") from None


def _to_ms(when: str | int | pd.Timestamp | None) -> int | None:
    if when is None:
        return None
    if isinstance(when, int | np.integer):
        return int(when)
    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp
    return int(stamp.value // 1_000_000)


def download_ohlcv(
    exchange: Any,
    symbol: str,
    timeframe: str,
    since: str | int | pd.Timestamp,
    until: str | int | pd.Timestamp | None = None,
    *,
    limit: int = 1000,
    max_pages: int = 100_000,
) -> pd.DataFrame:
    """Fetch candles ``since ≤ open time < until`` by paging ``fetch_ohlcv``.

    Parameters
    ----------
    exchange : ccxt exchange or str
        An object with ccxt's ``fetch_ohlcv(symbol, timeframe, since, limit)`` or an
        exchange name for :func:`make_exchange`.
    symbol, timeframe : str
        ccxt symbol (``"BTC/USDT"``) and timeframe (``"1h"``).
    since, until : str, int (ms) or Timestamp
        Range of bar open times.
    limit : int
        Bars per request.

    Returns
    -------
    DataFrame
        Validated candles in the :func:`coinswarm.load_ohlcv` layout (the last,
        still-open bar is dropped when the venue returns it).
    """
    venue = make_exchange(exchange) if isinstance(exchange, str) else exchange
    step = timeframe_ms(timeframe)
    if step is None:
        raise ConfigError("download supports fixed-length timeframes (not 1M)")
    cursor, stop = _to_ms(since), _to_ms(until)
    rows: list[list[float]] = []
    for _ in range(max_pages):
        page = venue.fetch_ohlcv(symbol, timeframe, cursor, limit)
        page = [r for r in page if r[0] >= cursor and (stop is None or r[0] < stop)]
        if not page:
            break
        rows.extend(page)
        cursor = int(page[-1][0]) + step
        if stop is not None and cursor >= stop:
            break
    if not rows:
        raise DataError(f"{symbol} {timeframe}: the venue returned no candles from {since}")
    frame = pd.DataFrame(rows, columns=["timestamp", *OHLCV_COLUMNS])
    frame = frame.drop_duplicates("timestamp").sort_values("timestamp")
    ts = frame["timestamp"].to_numpy(np.int64)
    values = {c: frame[c].to_numpy(np.float64) for c in OHLCV_COLUMNS}
    report = validate_arrays(ts, values, timeframe=timeframe, source=f"{symbol} {timeframe}")
    out = pd.DataFrame(values, index=pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True),
                                                      name="time"))
    out.attrs = {"source": f"download:{symbol}:{timeframe}", "timeframe": timeframe,
                 "gaps": report.to_dict()}
    return out


def write_ohlcv_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write candles in the catalog schema (``timestamp`` in epoch ms; gzip for ``.gz``)."""
    table = df[list(OHLCV_COLUMNS)].copy()
    table.insert(0, "timestamp", df.index.as_unit("ms").asi8)
    text = table.to_csv(index=False, float_format=None)
    path = str(path)
    if path.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        with open(path, "w") as fh:
            fh.write(text)
