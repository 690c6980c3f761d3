"""Exchange market data through ccxt: candles, trades, order-book snapshots and funding-rate
history by REST with paging, and trades/candles by WebSocket through ccxt's pro interface.

One :class:`CcxtMarket` wraps one exchange (Binance, Coinbase, ...; rate limiter on) and is
shared by the sources of that exchange: :class:`CandleSource`, :class:`TradeSource`,
:class:`BookSource`, :class:`FundingSource` (REST, :meth:`fetch`) and :class:`TradeStream`,
:class:`CandleStream` (WebSocket, :meth:`stream`; on a reconnect the gap is backfilled by
REST and de-duplicated by trade id).

Rules kept here:

* **Rate limits**: ccxt's limiter spaces requests; a 429/418 (``RateLimitExceeded`` /
  ``DDoSProtection``) becomes a :class:`SourceError` carrying the venue's ``Retry-After``,
  which the scheduler waits out before the next request (never retried in a loop here).
* **Forming candles**: a candle is emitted only once it has closed by the *venue's* clock
  (server time, sampled by :meth:`CcxtMarket.venue_now`) or a later candle has been seen.
* **Symbols**: sources take any spelling (``BTC-USD``, ``BTCUSDT``) and emit the canonical
  ``BASE/QUOTE[:SETTLE]`` as the record key.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from coinswarm.adapters.sources.base import Batch, Health, Record, RecordError, SourceError, check_record
from coinswarm.adapters.sources.symbols import canonical_symbol
from coinswarm.data.validate import timeframe_ms
from coinswarm.errors import ConfigError

#: Binance answers ``aggTrades`` for at most one hour after ``startTime``.
TRADE_WINDOW_MS = {"binance": 3_600_000, "binanceusdm": 3_600_000}
#: Exchanges whose ``fetch_trades`` with ``since`` also needs ``until`` (Coinbase Advanced Trade).
TRADE_NEEDS_UNTIL = frozenset({"coinbase"})


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for k, v in dict(headers).items():
        if str(k).lower() == "retry-after":
            try:
                return max(float(v), 0.0)
            except (TypeError, ValueError):
                return None
    return None


class CcxtMarket:
    """One exchange through ccxt (async + pro), shared by its sources.

    Parameters
    ----------
    exchange : str
        ccxt id: ``binance``, ``coinbase``, ``coinbaseexchange``, ``binanceusdm`` ...
    api_url, ws_url : str, optional
        Base URLs replacing the venue's (a local fake venue in tests).
    options : dict, optional
        ccxt options merged in.
    wall : callable
        Wall clock in epoch ms (injected).
    exchange_obj : object, optional
        A ready ccxt exchange (tests); ``exchange`` is then only its name.
    label : str, optional
        The exchange's name in records and the store (default: ``exchange``), e.g. to keep
        two accounts or venues of one ccxt id apart.
    clock_every_ms : int
        How often the venue's clock offset is re-sampled (``fetch_time``).
    """

    def __init__(self, exchange: str, *, api_url: str | None = None, ws_url: str | None = None,
                 options: dict | None = None, wall: Callable[[], int] = _wall_ms, exchange_obj: Any = None,
                 label: str | None = None, clock_every_ms: int = 30_000) -> None:
        self.name, self.ccxt_id, self.wall = label or exchange, exchange, wall
        self.clock_every_ms = clock_every_ms
        self.ex = exchange_obj if exchange_obj is not None else self._make(exchange, options or {})
        if api_url:
            from coinswarm.adapters.fake_venue import binance_api_urls

            api = self.ex.urls["api"]
            api.update(binance_api_urls(api_url, {k: v for k, v in api.items() if isinstance(v, str)}))
        if ws_url:
            self.ex.urls["api"]["ws"] = {**self.ex.urls["api"].get("ws", {}), "spot": ws_url}
        self._offset_ms: int | None = None
        self._offset_at = -10**18

    @staticmethod
    def _make(exchange: str, options: dict) -> Any:
        import ccxt.pro as ccxtpro

        if not isinstance(exchange, str) or not hasattr(ccxtpro, exchange):
            raise ConfigError(f"ccxt pro has no exchange {exchange!r:.40}; e.g. binance, coinbase, coinbaseexchange")
        return getattr(ccxtpro, exchange)({"enableRateLimit": True, "options": options})

    async def call(self, method: str, *args: Any, source: str) -> Any:
        """``await exchange.<method>(*args)``; ccxt's failures as :class:`SourceError`."""
        import ccxt

        try:
            return await getattr(self.ex, method)(*args)
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
            wait = _retry_after(getattr(self.ex, "last_response_headers", None))
            raise SourceError(f"rate limited ({type(exc).__name__}); retry after {wait} s", source=source,
                              retry_after_s=wait if wait is not None else 1.0) from None
        except ccxt.BadSymbol as exc:
            raise SourceError(f"{self.name} does not list the symbol: {_short(exc)}", source=source) from None
        except (TimeoutError, ccxt.BaseError, OSError) as exc:
            raise SourceError(f"{method} failed: {type(exc).__name__}: {_short(exc)}", source=source) from None

    async def venue_now(self, source: str) -> int:
        """The venue's clock (epoch ms): wall clock + the offset sampled from ``fetch_time``."""
        wall = self.wall()
        if self._offset_ms is None or wall - self._offset_at >= self.clock_every_ms:
            try:
                server = await self.call("fetch_time", source=source)
            except SourceError:
                if self._offset_ms is None:
                    raise
                server = None
            if server is not None:
                self._offset_ms, self._offset_at = int(server) - self.wall(), wall
        return self.venue_clock()

    def venue_clock(self) -> int:
        """The venue's clock from the last sampled offset (no request; the wall clock before any)."""
        return self.wall() + (self._offset_ms or 0)

    async def close(self) -> None:
        """Close ccxt's sessions and sockets."""
        try:
            await self.ex.close()
        except Exception:  # closing a half-open ccxt client may raise anything; nothing to do about it
            pass


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


# ---- ccxt structures → records -----------------------------------------------------------------
def trade_record(t: dict, source: str, key: str, received_ms: int) -> Record:
    """A ccxt trade dict as a ``trade`` record (RecordError naming the field that is wrong)."""
    if not isinstance(t, dict):
        raise RecordError(f"a trade must be a dict, got {type(t).__name__}", source=source, field="trade")
    for f in ("id", "timestamp", "price", "amount"):
        if t.get(f) is None:
            raise RecordError(f"the trade has no {f}", source=source, field=f, value=None)
    rec = Record("trade", source, key, _int(t["timestamp"], source, "timestamp"),
                 {"trade_id": str(t["id"]), "side": t.get("side"), "price": t["price"], "amount": t["amount"]},
                 received_ms)
    return check_record(rec)


def candle_record(row: list, source: str, key: str, timeframe: str, received_ms: int) -> Record:
    """A ccxt OHLCV row ``[t, o, h, l, c, v]`` of a *closed* candle as a ``candle`` record."""
    if not isinstance(row, list | tuple) or len(row) < 6:
        raise RecordError(f"an OHLCV row must be [t, o, h, l, c, v], got {row!r:.60}", source=source, field="row")
    names = ("open", "high", "low", "close", "volume")
    values = {n: row[i + 1] for i, n in enumerate(names)}
    values.update(timeframe=timeframe, closed=True)
    return check_record(Record("candle", source, key, _int(row[0], source, "timestamp"), values, received_ms))


def _int(value: Any, source: str, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RecordError(f"{field}={value!r:.30} is not epoch milliseconds", source=source, field=field, value=value)
    return int(value)


class _Source:
    """Shared by every source of one market: name, key, health."""

    kind = ""

    def __init__(self, market: CcxtMarket, symbol: str, *, perpetual: bool = False) -> None:
        self.market, self.key = market, canonical_symbol(symbol, perpetual=perpetual)
        self.name = f"{market.name}:{self.kind}:{self.key}"
        self._health = Health(self.name)

    def health(self) -> Health:
        """This source's health (the scheduler updates success, errors and lag)."""
        return self._health

    async def venue_now(self) -> int:
        """The venue's clock (epoch ms), for the scheduler's fetch windows."""
        return await self.market.venue_now(self.name)

    def _parse(self, items: list, make: Callable[[Any], Record], batch: Batch) -> None:
        for item in items:
            try:
                batch.records.append(make(item))
            except RecordError as exc:
                batch.rejected.append(exc)


class CandleSource(_Source):
    """Closed candles of one market by REST (paging ``fetch_ohlcv``)."""

    kind = "candles"

    def __init__(self, market: CcxtMarket, symbol: str, timeframe: str = "1m", *, limit: int = 1000,
                 max_pages: int = 50) -> None:
        super().__init__(market, symbol)
        step = timeframe_ms(timeframe)
        if step is None:
            raise ConfigError(f"{symbol}: candles need a fixed-length timeframe (1m … 1d), got {timeframe!r}")
        self.timeframe, self.step, self.limit, self.max_pages = timeframe, step, limit, max_pages
        self.name = f"{market.name}:candles:{self.key}:{timeframe}"
        self._health = Health(self.name)

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Closed candles opening in ``[since_ms, until_ms)``; the forming candle is left out."""
        venue_now = await self.market.venue_now(self.name)
        last_open = (min(until_ms, venue_now - self.step + 1) - 1) // self.step * self.step  # last CLOSED open
        batch, cursor = Batch(self.name), since_ms // self.step * self.step
        for _ in range(self.max_pages):
            if cursor > last_open:
                break
            page = await self.market.call("fetch_ohlcv", self.key, self.timeframe, cursor, self.limit,
                                          source=self.name)
            rows = [r for r in page or [] if isinstance(r, list | tuple) and r and isinstance(r[0], int | float)
                    and cursor <= r[0] <= last_open]
            self._parse(rows, lambda r: candle_record(r, self.name, self.key, self.timeframe, now_ms), batch)
            if not rows:
                break
            cursor = int(max(r[0] for r in rows)) + self.step
        if batch.records:
            self._health.lag_ms = venue_now - (max(r.time_ms for r in batch.records) + self.step)
        return batch


class TradeSource(_Source):
    """Trades (ticks) of one market by REST, paging ``fetch_trades`` by time; de-duplicated by id."""

    kind = "trades"

    def __init__(self, market: CcxtMarket, symbol: str, *, limit: int = 1000, max_pages: int = 200) -> None:
        super().__init__(market, symbol)
        self.limit, self.max_pages = limit, max_pages
        self.window_ms = TRADE_WINDOW_MS.get(market.ccxt_id)

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Trades with ``since_ms <= time < until_ms``, each id once."""
        batch, cursor, seen = Batch(self.name), since_ms, set()
        for _ in range(self.max_pages):
            if cursor >= until_ms:
                break
            params = {"until": until_ms} if self.market.ccxt_id in TRADE_NEEDS_UNTIL else {}
            page = await self.market.call("fetch_trades", self.key, cursor, self.limit, params, source=self.name)
            fresh = [t for t in page or [] if isinstance(t, dict) and isinstance(t.get("timestamp"), int | float)
                     and cursor <= t["timestamp"] < until_ms and t.get("id") not in seen]
            seen.update(t.get("id") for t in fresh)
            self._parse(fresh, lambda t: trade_record(t, self.name, self.key, now_ms), batch)
            stamps = [int(t["timestamp"]) for t in page or [] if isinstance(t, dict)
                      and isinstance(t.get("timestamp"), int | float)]
            if len(page or []) >= self.limit and stamps:  # more in this window: go on from the newest
                cursor = max(stamps) if max(stamps) > cursor else cursor + 1
            elif self.window_ms is not None:
                cursor += self.window_ms
            else:
                break
        if batch.records:
            self._health.lag_ms = self.market.venue_clock() - max(r.time_ms for r in batch.records)
        return batch


class BookSource(_Source):
    """Order-book snapshots (``fetch_order_book``, ``depth`` levels a side)."""

    kind = "book"

    def __init__(self, market: CcxtMarket, symbol: str, *, depth: int = 20) -> None:
        super().__init__(market, symbol)
        self.depth = depth

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """One snapshot now (the range is ignored: a venue serves no past books)."""
        book = await self.market.call("fetch_order_book", self.key, self.depth, source=self.name)
        batch = Batch(self.name)
        try:
            if not isinstance(book, dict) or not isinstance(book.get("bids"), list):
                raise RecordError("the order book has no bids/asks lists", source=self.name, field="bids")
            stamp = book.get("timestamp") or await self.market.venue_now(self.name)
            batch.records.append(check_record(Record("book", self.name, self.key, int(stamp),
                                                     {"bids": book["bids"], "asks": book.get("asks") or []},
                                                     now_ms)))
        except RecordError as exc:
            batch.rejected.append(exc)
        return batch


class FundingSource(_Source):
    """Funding-rate history of a perpetual swap (paging ``fetch_funding_rate_history``)."""

    kind = "funding"

    def __init__(self, market: CcxtMarket, symbol: str, *, limit: int = 1000, max_pages: int = 50) -> None:
        super().__init__(market, symbol, perpetual=":" not in symbol)
        self.limit, self.max_pages = limit, max_pages

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Funding rates with ``since_ms <= time < until_ms``."""
        batch, cursor = Batch(self.name), since_ms
        for _ in range(self.max_pages):
            page = await self.market.call("fetch_funding_rate_history", self.key, cursor, self.limit,
                                          source=self.name)
            rows = [f for f in page or [] if isinstance(f, dict) and isinstance(f.get("timestamp"), int | float)
                    and cursor <= f["timestamp"] < until_ms]
            self._parse(rows, lambda f: check_record(Record(
                "funding", self.name, self.key, int(f["timestamp"]), {"rate": f.get("fundingRate")}, now_ms)), batch)
            if len(page or []) < self.limit or not rows:
                break
            cursor = int(max(f["timestamp"] for f in rows)) + 1
        return batch


class RecentIds:
    """The last ``size`` ids seen (a bounded, ordered set)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size, self._ids = size, OrderedDict()

    def add(self, key: str) -> bool:
        """True if ``key`` is new (and remember it)."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


class TradeStream(TradeSource):
    """Trades by WebSocket (``watch_trades``); after a disconnect, the gap is refilled by REST.

    Each yielded batch holds only trades not yielded before (ids remembered), so duplicated
    or replayed messages never reach the store twice; out-of-order trades are yielded as they
    come (the store orders by time).
    """

    kind = "trades"

    def __init__(self, market: CcxtMarket, symbol: str, *, reconnect_s: float = 0.2, max_reconnect_s: float = 5.0,
                 overlap_ms: int = 10_000, **kw: Any) -> None:
        super().__init__(market, symbol, **kw)
        self.overlap_ms = overlap_ms  # the backfill starts this long before the newest trade seen
        self.name = f"{market.name}:trades-ws:{self.key}"
        self._health = Health(self.name)
        self.reconnect_s, self.max_reconnect_s = reconnect_s, max_reconnect_s
        self.ids, self.last_ms = RecentIds(), None

    def _new(self, trades: list, now_ms: int) -> Batch:
        batch = Batch(self.name)
        for t in trades:
            try:
                rec = trade_record(t, self.name, self.key, now_ms)
            except RecordError as exc:
                batch.rejected.append(exc)
                continue
            if self.ids.add(rec.values["trade_id"]):
                batch.records.append(rec)
                self.last_ms = rec.time_ms if self.last_ms is None else max(self.last_ms, rec.time_ms)
        return batch

    async def stream(self) -> AsyncIterator[Batch]:
        """Batches of new trades forever (cancel the consumer to stop)."""
        wait, gap_from = self.reconnect_s, None
        while True:
            try:
                if self.market._offset_ms is None:  # the clock offset, for the lag (once: not in the hot path)
                    await self.market.venue_now(self.name)
                trades = await self.market.call("watch_trades", self.key, source=self.name)
            except SourceError as exc:
                self._health.reconnects += 1
                self._health.errors += 1
                self._health.last_error = str(exc)
                self._health.healthy = False
                if gap_from is None and self.last_ms is not None:
                    gap_from = self.last_ms - self.overlap_ms  # messages in flight may be older than the newest
                await asyncio.sleep(max(wait, exc.retry_after_s or 0.0))
                wait = min(wait * 2, self.max_reconnect_s)
                continue
            now = self.market.wall()
            if gap_from is not None:  # back after a drop: what was missed, by REST
                try:
                    stamps = [t["timestamp"] for t in trades or [] if isinstance(t, dict)
                              and isinstance(t.get("timestamp"), int | float)]
                    until = int(max(stamps)) + 1 if stamps else await self.market.venue_now(self.name) + 1
                    filled = await self.fetch(gap_from, until, now)  # up to what the new connection brought
                    yield self._new([_as_trade(r) for r in filled.records], now)
                    gap_from = None
                except SourceError as exc:
                    self._health.last_error = str(exc)
            wait = self.reconnect_s
            batch = self._new(trades, now)
            self._health.healthy, self._health.last_success_ms = True, now
            if batch.records:
                self._health.lag_ms = self.market.venue_clock() - max(r.time_ms for r in batch.records)
            if batch.records or batch.rejected:
                yield batch


def _as_trade(rec: Record) -> dict:
    v = rec.values
    return {"id": v["trade_id"], "timestamp": rec.time_ms, "side": v.get("side"), "price": v["price"],
            "amount": v["amount"]}


class CandleStream(CandleSource):
    """Candles by WebSocket (``watch_ohlcv``): a candle is yielded once, when it has closed.

    ccxt's OHLCV rows carry no "closed" flag, so a candle counts as closed when a later one
    arrives or the venue's clock has passed its close; the forming one is held back.
    """

    def __init__(self, market: CcxtMarket, symbol: str, timeframe: str = "1m", **kw: Any) -> None:
        super().__init__(market, symbol, timeframe, **kw)
        self.name = f"{market.name}:candles-ws:{self.key}:{timeframe}"
        self._health = Health(self.name)
        self.pending: dict[int, list] = {}
        self.done = RecentIds(10_000)

    async def stream(self) -> AsyncIterator[Batch]:
        """Batches of newly closed candles forever."""
        while True:
            try:
                rows = await self.market.call("watch_ohlcv", self.key, self.timeframe, source=self.name)
            except SourceError as exc:
                self._health.reconnects += 1
                self._health.errors += 1
                self._health.last_error = str(exc)
                self._health.healthy = False
                self.pending.clear()  # a candle seen before the drop may lack its final update: the poller brings it
                await asyncio.sleep(max(0.2, exc.retry_after_s or 0.0))
                continue
            for r in rows or []:
                if isinstance(r, list | tuple) and r and isinstance(r[0], int | float):
                    self.pending[int(r[0])] = list(r)
            now = self.market.wall()
            venue_now = await self.market.venue_now(self.name)
            newest = max(self.pending, default=None)
            closed = sorted(t for t in self.pending if t < newest or t + self.step <= venue_now)
            batch = Batch(self.name)
            rows_closed = [row for row in (self.pending.pop(t) for t in closed) if self.done.add(str(int(row[0])))]
            self._parse(rows_closed, lambda r, t=now: candle_record(r, self.name, self.key, self.timeframe, t), batch)
            self._health.healthy, self._health.last_success_ms = True, now
            if batch.records or batch.rejected:
                yield batch
