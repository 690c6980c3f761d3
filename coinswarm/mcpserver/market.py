"""Market data for the MCP server: catalog candles, their regimes and the committee's state,
loaded once per data set and kept in a small cache (the tools answer from memory after the
first call). Only bundled catalog names are accepted — never a file path, so a client cannot
make the server read arbitrary files.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd

from coinswarm.errors import ConfigError

CACHE_SIZE = 8


def symbol_from_uri(text: str) -> str:
    """``BTC-USDT`` / ``BTC_USDT`` / ``BTC%2FUSDT`` / ``BTC/USDT`` → ``BTC/USDT``."""
    from urllib.parse import unquote

    symbol = unquote(text).upper().replace("-", "/").replace("_", "/")
    base, sep, quote = symbol.partition("/")
    if not sep or not base.isalnum() or not quote.isalnum():
        raise ConfigError(f"symbol {text!r} is not BASE-QUOTE (e.g. BTC-USDT)")
    return symbol


def catalog_entry(name: str):
    """The catalog entry of ``name`` (``exchange:BASE/QUOTE:timeframe``); a ConfigError
    listing similar names when it is unknown or not a catalog name at all."""
    from coinswarm.data.catalog import find_entry, is_catalog_name

    if not isinstance(name, str) or not is_catalog_name(name):
        raise ConfigError(f"data {name!r:.80} is not a catalog name such as 'binance:BTC/USDT:1h' "
                          "(files are not served; see the candles:// resources)")
    return find_entry(name)


class _Lru:
    """A thread-safe LRU of computed frames (the computation runs outside the lock)."""

    def __init__(self, size: int) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


class Market:
    """Cached candles, regimes and committee runs of catalog data sets."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._candles, self._regimes, self._committee = _Lru(cache_size), _Lru(cache_size), _Lru(cache_size)

    def candles(self, name: str) -> pd.DataFrame:
        """The whole catalog data set ``name`` (validated by :func:`coinswarm.load_ohlcv`)."""
        entry = catalog_entry(name)
        if entry.kind != "ohlcv":
            raise ConfigError(f"data {name!r} holds {entry.kind}, not candles")

        def load() -> pd.DataFrame:
            import warnings

            from coinswarm.data import load_ohlcv

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return load_ohlcv(entry.name)

        return self._candles.get(entry.name, load)

    def window(self, name: str, start: str | None, end: str | None) -> pd.DataFrame:
        """``candles(name)`` cut to ``[start, end]`` (dates or timestamps, UTC; end inclusive by day)."""
        from coinswarm.data.validate import as_time_bound

        frame = self.candles(name)
        lo, hi = as_time_bound(start, "start"), as_time_bound(end, "end")
        if lo is not None and hi is not None and hi < lo:
            raise ConfigError(f"end {end} is before start {start}")
        if lo is not None:
            frame = frame[frame.index >= lo]
        if hi is not None:
            hi_ts = pd.Timestamp(hi)
            if isinstance(end, str) and len(end) <= 10:
                hi_ts = hi_ts + pd.Timedelta(days=1)
                frame = frame[frame.index < hi_ts]
            else:
                frame = frame[frame.index <= hi_ts]
        if frame.empty:
            raise ConfigError(f"data {name!r} holds no bars between {start} and {end}")
        return frame

    def has_regimes(self, name: str) -> bool:
        """Whether the regimes of ``name`` are cached (a call then costs well under a millisecond)."""
        with self._regimes.lock:
            return name in self._regimes.items

    def regimes(self, name: str) -> pd.DataFrame:
        """Causal regime labels of every bar of ``name`` (:func:`coinswarm.regimes`)."""
        def compute() -> pd.DataFrame:
            import warnings

            from coinswarm.regime import regimes

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return regimes(self.candles(name))

        return self._regimes.get(name, compute)

    def committee(self, name: str) -> pd.DataFrame:
        """The default committee run over ``name`` (targets, regime cell, weights, contributions)."""
        def compute() -> pd.DataFrame:
            import warnings

            from coinswarm.committee import Committee

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return Committee.default().run(self.candles(name))

        return self._committee.get(name, compute)

    def last_close(self, name: str) -> tuple[pd.Timestamp, float]:
        """The last bar's open time and close of ``name`` (the paper fill price)."""
        frame = self.candles(name)
        return frame.index[-1], float(frame["close"].iloc[-1])
