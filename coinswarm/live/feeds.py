"""Feeds of closed bars (:class:`~coinswarm.live.protocols.Feed`): :class:`ReplayFeed` replays
catalog or CSV candles at a multiple of real time, :class:`CcxtFeed` polls an exchange's REST
candles and yields only the closed ones.

Both own no clock of their own: ``clock`` (seconds) and ``sleep`` are injected, so tests replay
hours of bars without waiting. Every candle from a venue is checked by the rules of
:mod:`coinswarm.data.validate` before it is yielded: a malformed one raises the typed
:class:`~coinswarm.errors.DataError` (never silently accepted, never skipped).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from coinswarm.data.validate import check_values, iso_utc, timeframe_ms
from coinswarm.errors import (
    ConfigError,
    DataError,
    MissingValueError,
    OffGridTimestampError,
    RateLimitedError,
    VenueError,
)
from coinswarm.live.protocols import ClosedBar

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_FIELDS = ("open", "high", "low", "close", "volume")


def check_closed_bar(bar: ClosedBar, source: str | None = None) -> ClosedBar:
    """Validate one bar (finite numbers, prices > 0, open/close within [low, high], volume ≥ 0);
    raises the :class:`~coinswarm.errors.DataError` subclass of :mod:`coinswarm.data.validate`."""
    o, h, low, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    try:  # NaN fails every comparison: the usual bar passes in one expression
        if 0.0 < low <= o <= h < math.inf and low <= c <= h and 0.0 <= v < math.inf:
            return bar
    except TypeError:
        pass
    values = {}
    for name in _FIELDS:
        try:
            values[name] = np.array([getattr(bar, name)], dtype=np.float64)
        except (TypeError, ValueError):
            raise MissingValueError(f"{name} is {getattr(bar, name)!r} (not a number)", source=source, column=name,
                                    value=getattr(bar, name), timestamp=iso_utc(bar.time)) from None
    try:
        check_values(values, np.array([bar.time], dtype=np.int64), source)
    except DataError as exc:  # the same error, without a file row
        raise type(exc)(exc.problem, source=source, column=exc.column, value=exc.value,
                        timestamp=exc.timestamp) from None
    raise DataError(f"bar {bar!r} is not valid", source=source)  # pragma: no cover - check_values raised


def bar_from_row(row: Any, symbol: str, step_ms: int, source: str) -> ClosedBar:
    """A ccxt OHLCV row ``[time, open, high, low, close, volume]`` → a checked :class:`ClosedBar`."""
    if not isinstance(row, list | tuple) or len(row) < 6:
        raise MissingValueError(f"candle {row!r} is not [time, open, high, low, close, volume]", source=source)
    t = row[0]
    if not isinstance(t, int | float) or not math.isfinite(t) or int(t) != t:
        raise MissingValueError(f"candle time {t!r} is not epoch milliseconds", source=source, column="time",
                                value=t)
    if int(t) % step_ms:
        raise OffGridTimestampError(f"candle time {int(t)} is not a multiple of {step_ms} ms", source=source,
                                    column="time", value=t, timestamp=iso_utc(int(t)))
    values = []
    for name, x in zip(_FIELDS, row[1:6], strict=True):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise MissingValueError(f"{name} is {x!r} (not a number)", source=source, column=name, value=x,
                                    timestamp=iso_utc(int(t)))
        values.append(float(x))
    return check_closed_bar(ClosedBar(symbol, int(t), *values), source)


def timeframe_step_ms(timeframe: str) -> int:
    """The bar length of ``timeframe`` in milliseconds; a :class:`~coinswarm.errors.ConfigError`
    for a timeframe without a fixed length (``"1M"``) or an unknown one."""
    step = timeframe_ms(timeframe)
    if step is None:
        raise ConfigError(f"timeframe {timeframe!r} has no fixed length; use e.g. '1m', '1h', '1d'")
    return step


_MAX_PAGES = 100_000


async def rest_closed(fetch: Callable[[int], Awaitable[list]], symbol: str, since: int, until_close: int, *,
                      step_ms: int, limit: int, source: str, skip_open_pages: bool = False) -> list[ClosedBar]:
    """Closed bars of ``symbol`` with open ≥ ``since`` and close ≤ ``until_close``, oldest first,
    each once, read page by page from a venue's REST candles.

    Parameters
    ----------
    fetch : async callable
        ``fetch(cursor)``: up to ``limit`` ccxt OHLCV rows from open time ``cursor`` on.
    symbol : str
    since, until_close : int
        Epoch milliseconds: the first open time wanted and the venue's "now".
    step_ms, limit : int
        The bar length; the page size (a shorter page is the last).
    source : str
        Named by a :class:`~coinswarm.errors.DataError` for a malformed row (:func:`bar_from_row`).
    skip_open_pages : bool
        Ask for no page whose first bar has not closed by ``until_close`` (else such a page is
        asked for and yields nothing new).
    """
    out: dict[int, ClosedBar] = {}
    cursor = since
    for _ in range(_MAX_PAGES):
        if skip_open_pages and cursor + step_ms > until_close:
            break
        rows = await fetch(cursor)
        bars = [bar_from_row(r, symbol, step_ms, source) for r in rows]
        fresh = [b for b in bars if since <= b.time and b.time + step_ms <= until_close and b.time not in out]
        out.update((b.time, b) for b in fresh)
        if len(rows) < limit or not fresh:
            break
        cursor = max(out) + step_ms
    return [out[t] for t in sorted(out)]


class Backoff:
    """What both REST-polling feeds share: :meth:`guarded`, a venue call behind a back-off.

    A subclass sets ``backoff_s``, ``max_backoff_s``, ``_sleep`` (an injected async sleep) and
    the counter ``rate_limited``; :meth:`_outage` counts each other venue error (nothing here).
    """

    backoff_s: float
    max_backoff_s: float
    rate_limited: int
    _sleep: Sleep

    async def guarded(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` until it answers: waits ``retry_after`` on a rate limit (429/418), backs
        off exponentially (``backoff_s`` doubling up to ``max_backoff_s``) on another venue error;
        a :class:`~coinswarm.errors.DataError` passes."""
        delay = self.backoff_s
        while True:
            try:
                return await fn(*args)
            except RateLimitedError as exc:
                self.rate_limited += 1
                await self._sleep(exc.retry_after if exc.retry_after is not None else delay)
            except VenueError as exc:
                self._outage()
                # every failure is said (an outage, or a malformed reply a venue keeps sending): the
                # back-off bounds the lines to one per delay, at most max_backoff_s apart
                log.warning("venue call %s failed (%s: %s); retrying in %.1f s", getattr(fn, "__name__", fn),
                            type(exc).__name__, exc, delay)
                await self._sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)

    def _outage(self) -> None:
        """Count a venue error other than a rate limit (a subclass's counter)."""


def _symbol_of(source: str) -> str:
    parts = source.split(":")
    if len(parts) == 3 and "/" in parts[1]:  # exchange:BASE/QUOTE:timeframe
        return parts[1]
    return Path(source).name.split(".")[0]


class ReplayFeed:
    """Closed bars from the catalog or CSV files, several symbols aligned on time.

    Parameters
    ----------
    sources : mapping or sequence of str
        ``{"BTC/USDT": "binance:BTC/USDT:1h", "ETH/USDT": "eth.csv"}``, or a list of sources (the
        symbol is the catalog name's middle part, or the file name's stem).
    start, end : str or None
        Bars replayed, bounds inclusive as :func:`coinswarm.load_ohlcv` (``end="2024-03-02"``
        includes that whole day); earlier bars
        of the files serve :meth:`history` (warm-up).
    speed : float or "max"
        Multiple of real time (``3600`` = one 1h bar per second) or ``"max"`` (no pacing).
    after_ms : int, optional
        Resume: skip bars with open time ≤ ``after_ms``.
    clock, sleep : callables
        Monotonic seconds and an async sleep (injected; tests pass fakes).
    """

    def __init__(self, sources: Mapping[str, str] | Sequence[str], *, start: str | None = None,
                 end: str | None = None, speed: float | str = "max", after_ms: int | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        from coinswarm.data.load import load_ohlcv

        if isinstance(sources, str):
            sources = [sources]
        pairs = dict(sources) if isinstance(sources, Mapping) else {_symbol_of(s): s for s in sources}
        if not pairs:
            raise ConfigError("ReplayFeed needs at least one source (a catalog name or a CSV path)")
        if not (speed == "max" or (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0)):
            raise ConfigError(f"speed must be 'max' or a positive multiple of real time, got {speed!r}")
        self.speed, self._clock, self._sleep, self.after_ms = speed, clock, sleep, after_ms
        self._start_ms = None if start is None else _ms(start)
        self._frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for symbol, source in pairs.items():
            frame = load_ohlcv(source, end=end)
            self._frames[symbol] = (frame.index.as_unit("ms").asi8.astype(np.int64),
                                    frame[list(_FIELDS)].to_numpy(np.float64))
        steps = [int(np.min(np.diff(ts))) for ts, _ in self._frames.values() if len(ts) > 1]
        self.step_ms = min(steps) if steps else 0

    async def history(self, symbol: str, until_ms: int, bars: int) -> list[ClosedBar]:
        """Up to ``bars`` bars of ``symbol`` with open time < ``until_ms``."""
        if symbol not in self._frames:
            raise ConfigError(f"{symbol!r} is not replayed; symbols: {sorted(self._frames)}")
        ts, rows = self._frames[symbol]
        i1 = int(np.searchsorted(ts, until_ms, "left"))
        return [ClosedBar(symbol, int(ts[i]), *map(float, rows[i])) for i in range(max(0, i1 - bars), i1)]

    def _merged(self) -> list[tuple[int, int, str, int]]:
        lo = max(self._start_ms or -(2**62), (self.after_ms + 1) if self.after_ms is not None else -(2**62))
        order = []
        for k, (symbol, (ts, _)) in enumerate(self._frames.items()):
            i0 = int(np.searchsorted(ts, lo, "left"))
            order.extend((int(ts[i]), k, symbol, i) for i in range(i0, len(ts)))
        order.sort()
        return order

    async def closed_bars(self) -> AsyncIterator[ClosedBar]:
        """Every bar in time order (symbols in the order given at each time), paced by ``speed``."""
        order = self._merged()
        if not order:
            return
        t_first, wall0 = order[0][0], self._clock()
        for n, (t, _, symbol, i) in enumerate(order):
            if self.speed != "max":
                due = wall0 + (t - t_first) / 1000.0 / float(self.speed)
                wait = due - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            elif n % 1024 == 1023:
                await asyncio.sleep(0)  # let the loop breathe at full speed
            yield ClosedBar(symbol, t, *map(float, self._frames[symbol][1][i]))


def _ms(when: str) -> int:
    import pandas as pd

    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp
    return int(stamp.value // 1_000_000)


class CandleSource(Protocol):
    """Where :class:`CcxtFeed` polls (a :class:`~coinswarm.live.ccxt_broker.CcxtBroker`)."""

    name: str

    async def candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list: ...

    async def server_time_ms(self) -> int: ...


class CcxtFeed(Backoff):
    """Closed candles by REST polling (ccxt ``fetch_ohlcv`` through a :class:`CandleSource`).

    Each poll reads the venue's clock (``server_time_ms``) and keeps only candles whose close
    (open + bar length) is at or before it, so the forming candle is never yielded. Each symbol
    resumes from its last yielded bar, so after an outage the gap is backfilled by REST (paged)
    and duplicates are dropped. On :class:`~coinswarm.errors.RateLimitedError` it waits
    ``retry_after`` (or the back-off), on another :class:`~coinswarm.errors.VenueError` it backs
    off exponentially (``backoff_s`` doubling up to ``max_backoff_s``) and counts a reconnect.
    Malformed candles raise :class:`~coinswarm.errors.DataError`.

    Parameters
    ----------
    source : CandleSource
    symbols : sequence of str
    timeframe : str
        ccxt timeframe (``"1h"``).
    after_ms : int, optional
        Resume after this bar (open time); default: start from the last closed bar.
    settle_ms : int
        Wait this long after a bar's close before polling for it.
    max_bars : int, optional
        Stop after this many bars (tests, bounded runs).
    sleep : async callable
        Injected (tests advance a fake venue clock instead of waiting).
    """

    def __init__(self, source: CandleSource, symbols: Sequence[str], timeframe: str, *, after_ms: int | None = None,
                 limit: int = 1000, settle_ms: int = 1_000, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 max_bars: int | None = None, sleep: Sleep = asyncio.sleep) -> None:
        step = timeframe_step_ms(timeframe)
        if not symbols:
            raise ConfigError("CcxtFeed needs at least one symbol")
        self.source, self.symbols, self.timeframe, self.step_ms = source, list(symbols), timeframe, step
        self.limit, self.settle_ms, self.max_bars, self._sleep = int(limit), int(settle_ms), max_bars, sleep
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.last_ms: dict[str, int | None] = {s: after_ms for s in self.symbols}
        self.reconnects = self.rate_limited = self.polls = 0
        self.lag_ms = 0  # venue time − close of the newest bar yielded

    def _source_name(self, symbol: str) -> str:
        return f"{getattr(self.source, 'name', 'venue')}:{symbol}:{self.timeframe}"

    async def _closed(self, symbol: str, since: int, until_close: int) -> list[ClosedBar]:
        """Closed bars of ``symbol`` with open ≥ ``since`` and close ≤ ``until_close`` (paged,
        :func:`rest_closed`; a failure is retried whole by :meth:`guarded`)."""
        async def page(cursor: int) -> list:
            return await self.source.candles(symbol, self.timeframe, cursor, self.limit)

        return await rest_closed(page, symbol, since, until_close, step_ms=self.step_ms, limit=self.limit,
                                 source=self._source_name(symbol))

    async def history(self, symbol: str, until_ms: int, bars: int) -> list[ClosedBar]:
        """Up to ``bars`` closed bars of ``symbol`` with open time < ``until_ms`` (warm-up by REST)."""
        now = await self.guarded(self.source.server_time_ms)
        since = (until_ms // self.step_ms - bars) * self.step_ms
        got = await self.guarded(self._closed, symbol, since, now)
        return [b for b in got if b.time < until_ms][-bars:]

    def _outage(self) -> None:
        """An outage of the venue's REST counts as a reconnect."""
        self.reconnects += 1

    async def _poll(self) -> tuple[list[ClosedBar], int]:
        now = await self.guarded(self.source.server_time_ms)
        bars = []
        for k, symbol in enumerate(self.symbols):
            last = self.last_ms[symbol]
            since = last + self.step_ms if last is not None else (now // self.step_ms - 1) * self.step_ms
            got = await self.guarded(self._closed, symbol, since, now)
            bars.extend((b.time, k, b) for b in got)
            if got:
                self.last_ms[symbol] = got[-1].time
        bars.sort(key=lambda x: (x[0], x[1]))
        return [b for _, _, b in bars], now

    async def closed_bars(self) -> AsyncIterator[ClosedBar]:
        """Closed bars of every symbol as they close, oldest first (gaps backfilled, no duplicates)."""
        yielded = 0
        while self.max_bars is None or yielded < self.max_bars:
            self.polls += 1
            bars, now = await self._poll()
            for bar in bars:
                self.lag_ms = now - (bar.time + self.step_ms)
                yield bar
                yielded += 1
                if self.max_bars is not None and yielded >= self.max_bars:
                    return
            next_close = (now // self.step_ms + 1) * self.step_ms + self.settle_ms
            await self._sleep(max((next_close - now) / 1000.0, 0.001))
