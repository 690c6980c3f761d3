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

from coinswarm.data.catalog import catalog_name
from coinswarm.data.validate import EPOCH_MS_RANGE, OHLCV_COLUMNS, as_time_bound, timeframe_ms, validate_arrays
from coinswarm.errors import ConfigError, DataError


def make_exchange(name: str) -> Any:
    """A ccxt exchange instance with rate limiting on (network access happens on use)."""
    import ccxt

    if not isinstance(name, str) or name not in ccxt.exchanges:
        raise ConfigError(f"ccxt has no exchange named {name!r:.60} (e.g. binance, coinbase, kraken)")
    return getattr(ccxt, name)({"enableRateLimit": True})


def _to_ms(when: str | int | pd.Timestamp | None, name: str) -> int | None:
    if when is None:
        return None
    if isinstance(when, int | np.integer) and not isinstance(when, bool):
        lo, hi = EPOCH_MS_RANGE
        if not lo <= int(when) <= hi:
            raise ConfigError(f"{name}={when} is not epoch milliseconds between 1970 and 2100")
        return int(when)
    return int(as_time_bound(when, name).value // 1_000_000)


def _fetch(venue: Any, symbol: str, timeframe: str, cursor: int, limit: int) -> list:
    """One page of ``fetch_ohlcv``; a venue or network failure is a ``DataError`` naming the venue."""
    try:
        page = venue.fetch_ohlcv(symbol, timeframe, cursor, limit)
    except Exception as exc:  # ccxt raises its own hierarchy (NetworkError, BadSymbol, …) and OSErrors
        venue_name = getattr(venue, "id", type(venue).__name__)
        raise DataError(f"{venue_name} fetch_ohlcv({symbol}, {timeframe}) failed: {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:300]}") from exc
    if not isinstance(page, list) or not all(isinstance(r, list | tuple) and len(r) >= 6 for r in page):
        raise DataError(f"{symbol} {timeframe}: the venue returned a malformed page (expected rows "
                        "[timestamp, open, high, low, close, volume])")
    try:
        return [[int(r[0]), *(float(v) for v in r[1:6])] for r in page]
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{symbol} {timeframe}: the venue returned a row that is not numbers") from None


def download_ohlcv(exchange: Any, symbol: str, timeframe: str, since: str | int | pd.Timestamp,
                   until: str | int | pd.Timestamp | None = None, *, limit: int = 1000,
                   max_pages: int = 100_000) -> pd.DataFrame:
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
    max_pages : int
        At most this many requests.

    Returns
    -------
    DataFrame
        Validated candles in the :func:`coinswarm.load_ohlcv` layout (the last,
        still-open bar is dropped when the venue returns it).

    Raises
    ------
    ConfigError
        Unknown exchange, malformed symbol, timeframe, dates or limit (before any request).
    DataError
        The venue cannot be reached or refuses the request, returns malformed rows, no
        candles, or candles :func:`~coinswarm.data.validate.validate_arrays` refuses.
    """
    step, cursor, stop = _check_request(symbol, timeframe, since, until, limit)
    venue = make_exchange(exchange) if isinstance(exchange, str) else exchange
    rows = _pages(venue, symbol, timeframe, cursor, stop, step, limit, max_pages)
    if not rows:
        raise DataError(f"{symbol} {timeframe}: the venue returned no candles from {since}")
    return _candles(rows, symbol, timeframe)


def _check_request(symbol: Any, timeframe: str, since: str | int | pd.Timestamp,
                   until: str | int | pd.Timestamp | None, limit: Any) -> tuple[int, int, int | None]:
    """``(bar length, first open time, end)`` in ms of a well-formed request; :class:`ConfigError` otherwise."""
    step = timeframe_ms(timeframe)
    if step is None:
        raise ConfigError("download supports fixed-length timeframes (not 1M)")
    if not isinstance(symbol, str) or symbol.count("/") != 1 or not all(symbol.split("/")) or ":" in symbol:
        raise ConfigError(f"symbol {symbol!r:.60} is not BASE/QUOTE (e.g. BTC/USDT)")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise ConfigError(f"limit must be a whole number in [1, 100000], not {limit!r}")
    cursor, stop = _to_ms(since, "since"), _to_ms(until, "until")
    if stop is not None and stop <= cursor:
        raise ConfigError(f"until {until!r} is not after since {since!r}")
    return step, cursor, stop


def _pages(venue: Any, symbol: str, timeframe: str, cursor: int, stop: int | None, step: int, limit: int,
           max_pages: int) -> list[list[float]]:
    """Every row ``cursor ≤ open time < stop``, one ``fetch_ohlcv`` page after another."""
    rows: list[list[float]] = []
    for _ in range(max_pages):
        page = _fetch(venue, symbol, timeframe, cursor, limit)
        page = [r for r in page if r[0] >= cursor and (stop is None or r[0] < stop)]
        if not page:
            break
        rows.extend(page)
        cursor = int(page[-1][0]) + step
        if stop is not None and cursor >= stop:
            break
    return rows


def _candles(rows: list[list[float]], symbol: str, timeframe: str) -> pd.DataFrame:
    """The venue's rows as validated candles in the :func:`coinswarm.load_ohlcv` layout."""
    frame = pd.DataFrame(rows, columns=["timestamp", *OHLCV_COLUMNS])
    frame = frame.drop_duplicates("timestamp").sort_values("timestamp")
    ts = frame["timestamp"].to_numpy(np.int64)
    values = {c: frame[c].to_numpy(np.float64) for c in OHLCV_COLUMNS}
    report = validate_arrays(ts, values, timeframe=timeframe, source=f"{symbol} {timeframe}")
    out = pd.DataFrame(values, index=pd.DatetimeIndex(pd.to_datetime(ts, unit="ms", utc=True),
                                                      name="time"))
    out.attrs = {"source": catalog_name("download", symbol, timeframe), "timeframe": timeframe,
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
