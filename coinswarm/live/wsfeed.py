"""Closed bars over a WebSocket (ccxt pro ``watch_ohlcv``), with REST for the truth after a gap.

``watch_ohlcv`` delivers the *forming* candle again and again and, on Binance, one last kline
event flagged ``"x": true`` when the candle closes. :class:`WsFeed` acts only on closed candles:

* a candle flagged closed by the venue (Binance's ``x``, read by a hook on the exchange's
  kline handler, since ccxt's OHLCV arrays drop the flag) is yielded at once, with the values
  of that closing event;
* a candle never flagged (a lost closing event, an exchange without the flag) is closed once a
  newer candle has been seen or the venue's clock has passed its close by ``settle_ms``; it is
  then read by REST (``fetch_ohlcv`` through the :class:`~coinswarm.live.feeds.CandleSource`),
  never taken from a forming update;
* after a reconnect the gap since the last yielded bar is backfilled by REST before anything
  else, and whatever the stream repeats or sends late (duplicates, reordered events, bars
  already backfilled) is dropped: every bar is yielded once, oldest first per symbol.

Times: the venue's clock offset (``server_time_ms − clock()``) is measured at start, after
every reconnect and every ``resync_s`` seconds; "now" is always local clock + offset. REST calls
back off on :class:`~coinswarm.errors.RateLimitedError` for its ``retry_after`` (the
``Retry-After`` header of a 429/418) or exponentially, and ccxt's ``enableRateLimit`` spaces
them (:func:`make_pro_exchange`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from coinswarm.errors import ConfigError, VenueError
from coinswarm.live.feeds import Backoff, CandleSource, Sleep, bar_from_row, rest_closed, timeframe_step_ms
from coinswarm.live.protocols import ClosedBar


def make_pro_exchange(exchange: str = "binance", *, sandbox: bool = False, api_url: str | None = None,
                      ws_url: str | None = None, options: dict | None = None) -> Any:
    """A ccxt pro exchange for market data (no keys): ``enableRateLimit`` on, spot markets only;
    ``api_url``/``ws_url`` point REST and the spot WebSocket elsewhere (the fake venue and
    :class:`~coinswarm.adapters.fake_ws.FakeKlineStream`); ``sandbox`` selects the testnet."""
    from urllib.parse import urlparse

    import ccxt.pro as ccxtpro

    if not hasattr(ccxtpro, exchange):
        raise ConfigError(f"ccxt pro has no exchange {exchange!r}; expected e.g. 'binance' or 'coinbase'")
    base = {"binance": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False},
            "coinbase": {"fetchMarkets": {"types": ["spot"]}}}.get(exchange, {})
    ex = getattr(ccxtpro, exchange)({"enableRateLimit": True, "options": {**base, **(options or {})}})
    if sandbox:
        ex.set_sandbox_mode(True)
    if api_url or ws_url:
        api = dict(ex.urls["api"])
        if api_url:
            api.update({k: api_url.rstrip("/") + urlparse(v).path for k, v in api.items() if isinstance(v, str)})
        if ws_url:
            api["ws"] = {**(api.get("ws") or {}), "spot": ws_url, "margin": ws_url}
        ex.urls["api"] = api
    return ex


class WsFeed(Backoff):
    """The :class:`~coinswarm.live.protocols.Feed` of closed bars over ccxt pro's ``watch_ohlcv``.

    Parameters
    ----------
    exchange : ccxt.pro exchange
        What ``watch_ohlcv`` runs on (:func:`make_pro_exchange`); closed by :meth:`close`.
    rest : CandleSource
        ``candles(symbol, timeframe, since_ms, limit)`` and ``server_time_ms()`` (a
        :class:`~coinswarm.live.ccxt_broker.CcxtBroker`): warm-up, gaps, the clock offset.
    symbols : sequence of str
    timeframe : str
    after_ms : int, optional
        Resume after this bar (open time): the first closed bar triggers a REST backfill from
        here. Default: start with the first bar that closes while watching.
    settle_ms : int
        A candle without a closing event counts as closed this long after its close.
    max_bars : int, optional
        Stop after this many bars (tests, bounded runs).
    clock : callable
        Local epoch milliseconds (injected).
    sleep : async callable
        Back-off waits (injected).
    """

    def __init__(self, exchange: Any, rest: CandleSource, symbols: Sequence[str], timeframe: str, *,
                 after_ms: int | None = None, settle_ms: int = 2_000, limit: int = 1000, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, resync_s: float = 300.0, max_bars: int | None = None,
                 clock: Callable[[], int] | None = None, sleep: Sleep = asyncio.sleep) -> None:
        step = timeframe_step_ms(timeframe)
        if not symbols or len(set(symbols)) != len(symbols):
            raise ConfigError(f"WsFeed needs distinct symbols, got {list(symbols)!r}")
        self.exchange, self.rest, self.symbols, self.timeframe, self.step_ms = exchange, rest, list(symbols), \
            timeframe, step
        self.settle_ms, self.limit, self.max_bars = int(settle_ms), int(limit), max_bars
        self.backoff_s, self.max_backoff_s, self.resync_s = float(backoff_s), float(max_backoff_s), float(resync_s)
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._sleep = sleep
        self.last_ms: dict[str, int | None] = {s: after_ms for s in self.symbols}
        self.offset_ms = 0
        self.lag_ms = 0
        self.reconnects = self.rate_limited = self.duplicates = self.backfilled = self.from_stream = 0
        self._synced_at: float | None = None
        self._final: dict[str, dict[int, list]] = {s: {} for s in self.symbols}  # closing events
        self._newest: dict[str, int] = {}  # newest candle time seen on the stream
        self._gap: set[str] = set(s for s in self.symbols if after_ms is not None)
        self._events: asyncio.Queue = asyncio.Queue()
        self._hooked = False

    # -- clock ---------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The venue's time: local clock + the measured offset."""
        return int(self._clock()) + self.offset_ms

    async def sync_clock(self) -> int:
        """Measure the venue's clock offset (``server_time_ms − clock()``, half the round trip
        credited); returns it."""
        async def measure() -> int:  # one attempt: a retry after a back-off measures afresh
            before = int(self._clock())
            server = await self.rest.server_time_ms()
            return int(server) - (before + int(self._clock())) // 2

        self.offset_ms = await self.guarded(measure)
        self._synced_at = time.monotonic()
        return self.offset_ms

    # -- REST ----------------------------------------------------------------------------
    async def _rest_closed(self, symbol: str, since: int, until_close: int) -> list[ClosedBar]:
        """Closed bars with open ≥ ``since`` and close ≤ ``until_close`` by REST (paged, checked,
        :func:`~coinswarm.live.feeds.rest_closed`): each page behind the back-off, and none asked
        for before its first bar has closed."""
        async def page(cursor: int) -> list:
            return await self.guarded(self.rest.candles, symbol, self.timeframe, cursor, self.limit)

        return await rest_closed(page, symbol, since, until_close, step_ms=self.step_ms, limit=self.limit,
                                 source=f"{getattr(self.rest, 'name', 'venue')}:{symbol}:{self.timeframe}",
                                 skip_open_pages=True)

    async def history(self, symbol: str, until_ms: int, bars: int) -> list[ClosedBar]:
        """Up to ``bars`` closed bars of ``symbol`` with open time < ``until_ms`` (warm-up, REST)."""
        if symbol not in self.last_ms:
            raise ConfigError(f"{symbol!r} is not watched; symbols: {self.symbols}")
        await self.sync_clock()
        since = (until_ms // self.step_ms - bars) * self.step_ms
        got = await self._rest_closed(symbol, since, self.now_ms())
        return [b for b in got if b.time < until_ms][-bars:]

    # -- the stream ----------------------------------------------------------------------
    def _hook(self) -> None:
        """Wrap the exchange's kline handler to read each closing event (``"k": {"x": true}``):
        ccxt's OHLCV arrays do not carry the flag."""
        original = getattr(self.exchange, "handle_ohlcv", None)
        if self._hooked or original is None:
            self._hooked = True
            return
        interval = str(getattr(self.exchange, "timeframes", {}).get(self.timeframe, self.timeframe))

        def handle(client: Any, message: Any) -> Any:
            kline = message.get("k") if isinstance(message, dict) else None
            if isinstance(kline, dict) and kline.get("x") is True and kline.get("i") == interval:
                symbol = self.exchange.safe_symbol(kline.get("s"), None, None, "spot")
                if symbol in self._final:
                    row = [kline.get("t"), *(_number(kline.get(k)) for k in ("o", "h", "l", "c", "v"))]
                    self._events.put_nowait(("final", symbol, row))
            return original(client, message)

        self.exchange.handle_ohlcv = handle
        self._hooked = True

    async def _watch(self, symbol: str) -> None:
        """One symbol's ``watch_ohlcv`` loop: the newest candle time to the queue; a dropped
        connection → a ``reconnect`` event and a back-off (ccxt reconnects on the next call)."""
        import ccxt

        delay = self.backoff_s
        while True:
            try:
                rows = await self.exchange.watch_ohlcv(symbol, self.timeframe)
            except (ccxt.NetworkError, ccxt.ExchangeNotAvailable) as exc:
                self._events.put_nowait(("reconnect", symbol, f"{type(exc).__name__}: {exc}"))
                await self._sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            except ccxt.BaseError as exc:
                self._events.put_nowait(("error", symbol, VenueError(
                    f"watch_ohlcv {symbol} {self.timeframe}: {type(exc).__name__}: {str(exc)[:300]}",
                    venue=getattr(self.exchange, "id", None))))
                return
            delay = self.backoff_s
            times = [int(r[0]) for r in rows or () if isinstance(r, list | tuple) and r and isinstance(r[0], int)]
            if times:
                self._events.put_nowait(("rows", symbol, max(times)))

    def _wait_s(self) -> float:
        """How long to wait for stream events before re-checking the clock."""
        now, waits = self.now_ms(), [60.0]
        for symbol in self.symbols:
            newest = self._newest.get(symbol)
            if newest is not None:
                waits.append((newest + self.step_ms + self.settle_ms - now) / 1000.0)
        return min(max(min(waits), 0.05), 60.0)

    async def _take_events(self) -> None:
        """Wait for stream events (or the next clock deadline) and apply every queued one."""
        try:
            first = await asyncio.wait_for(self._events.get(), self._wait_s())
        except TimeoutError:
            first = None
        events = [first] if first is not None else []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        resync = self._synced_at is None or time.monotonic() - self._synced_at > self.resync_s
        for kind, symbol, value in events:
            if kind == "final":
                t, last = value[0], self.last_ms[symbol]
                if isinstance(t, int) and last is not None and t <= last:
                    self.duplicates += 1
                elif isinstance(t, int) and t in self._final[symbol]:
                    self.duplicates += 1
                else:
                    self._final[symbol][t] = value
                if isinstance(t, int):
                    self._newest[symbol] = max(self._newest.get(symbol, t), t)
            elif kind == "rows":
                self._newest[symbol] = max(self._newest.get(symbol, value), value)
            elif kind == "reconnect":
                self.reconnects += 1
                self._gap.add(symbol)
                resync = True
            elif kind == "error":
                raise value
        if resync:
            await self.sync_clock()

    async def _ready(self, symbol: str) -> list[ClosedBar]:
        """The bars of ``symbol`` that can be yielded now, in order (see the module docstring)."""
        out: list[ClosedBar] = []
        now, last, final = self.now_ms(), self.last_ms[symbol], self._final[symbol]
        source = f"{getattr(self.exchange, 'id', 'ws')}:{symbol}:{self.timeframe}"
        if symbol in self._gap:
            if last is not None:
                got = await self._rest_closed(symbol, last + self.step_ms, now)
                self.backfilled += len(got)
                out += got
                last = got[-1].time if got else last
            self._gap.discard(symbol)
        while True:
            for t in [t for t in final if last is not None and t <= last]:
                del final[t]
            newest = self._newest.get(symbol)
            nxt = last + self.step_ms if last is not None else (min(final) if final else newest)
            if nxt is None:
                break
            if nxt in final:
                out.append(bar_from_row(final.pop(nxt), symbol, self.step_ms, source))
                self.from_stream += 1
                last = nxt
                continue
            closed = (newest is not None and newest > nxt) or now >= nxt + self.step_ms + self.settle_ms
            if not closed or now < nxt + self.step_ms:
                break
            got = await self._rest_closed(symbol, nxt, now)  # never a forming update: the venue's record
            if not got:
                break
            self.backfilled += len(got)
            out += got
            last = got[-1].time
        if out:
            self.last_ms[symbol] = out[-1].time
        return out

    async def closed_bars(self) -> AsyncIterator[ClosedBar]:
        """Closed bars of every symbol as they close (per symbol oldest first, each once)."""
        self._hook()
        await self.sync_clock()
        tasks = [asyncio.create_task(self._watch(symbol)) for symbol in self.symbols]
        yielded = 0
        try:
            while self.max_bars is None or yielded < self.max_bars:
                await self._take_events()
                for symbol in self.symbols:
                    for bar in await self._ready(symbol):
                        self.lag_ms = self.now_ms() - (bar.time + self.step_ms)
                        yield bar
                        yielded += 1
                        if self.max_bars is not None and yielded >= self.max_bars:
                            return
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Close the exchange's connections."""
        await self.exchange.close()


def _number(x: Any) -> Any:
    """A kline field as a float (the text as is if it is not a number: the bar check names it)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return x
