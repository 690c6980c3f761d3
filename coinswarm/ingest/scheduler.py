"""The ingest scheduler: every ingestor of a config on its own asyncio task and schedule.

* **Poll** ingestors (REST: candles, trades, books, funding) fetch ``[cursor, venue now]`` every
  ``every_s``; the cursor starts after what the store already holds (or ``lookback_s`` back), so
  a restart resumes and a venue outage is backfilled on recovery.
* **Stream** ingestors (WebSocket trades/candles) write each batch as it arrives.
* **Macro and news** ingestors (:mod:`coinswarm.ingest.altsources`: FRED, NewsAPI, RSS) poll a
  sliding window of ``lookback_s`` on the wall clock every ``every_s``; the store drops what it
  already holds (macro by series and date, news and sentiment by URL).
* **Isolation**: an ingestor's failure (any exception) is counted in its health and retried
  after an exponential back-off (``base_s · 2^(n-1)`` up to ``max_s``, at least the venue's
  ``Retry-After``); the other ingestors never notice.
* Every batch is written to the store (idempotent, malformed records counted as ``rejected``)
  and, when a bus is given, published on ``ingest.<kind>.<exchange>.<BASE-QUOTE>``.
* Health goes to the status file (``coinswarm ingest status``) and to Prometheus gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from coinswarm.adapters.sources.base import Batch, Health, SourceError
from coinswarm.adapters.sources.symbols import path_symbol
from coinswarm.ingest.config import IngestConfig
from coinswarm.ingest.health import Metrics, status_dict, write_status
from coinswarm.ingest.store import Store, WriteResult, open_store, write_records

_KINDS = {"candles": "candle", "candles-ws": "candle", "trades": "trade", "trades-ws": "trade", "book": "book",
          "funding": "funding"}


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Ingestor:
    """One source on its schedule."""

    source: Any
    mode: str  # "poll" | "stream"
    every_s: float
    lookback_ms: int
    exchange: str
    kind: str
    key: str
    timeframe: str | None = None
    cursor: int | None = None
    failures: int = 0
    rows_written: int = 0
    subject: str = ""  # NATS subject of its batches (default ingest.<kind>.<exchange>.<BASE-QUOTE>)

    @property
    def health(self) -> Health:
        """The source's health object (shared)."""
        return self.source.health()


def build_ingestors(config: IngestConfig) -> tuple[list[Any], list[Ingestor]]:
    """The markets and headline index (to close) and the ingestors of a config."""
    from coinswarm.adapters.sources import ccxt_market as cm
    from coinswarm.ingest.altsources import build_alt_ingestors

    markets, out = [], []
    for ex in config.exchanges:
        market = cm.CcxtMarket(ex.name, api_url=ex.api_url or None, ws_url=ex.ws_url or None,
                               options=dict(ex.options), label=ex.label or None,
                               clock_every_ms=int(ex.clock_every_s * 1000))
        markets.append(market)
        lookback = int(ex.lookback_s * 1000)

        def add(source: Any, mode: str, timeframe: str | None = None, ex=ex, lookback=lookback) -> None:
            kind = _KINDS[source.name.split(":")[1]]
            out.append(Ingestor(source, mode, ex.every_s, lookback, source.market.name, kind, source.key, timeframe))

        for symbol in ex.symbols:
            for tf in ex.candles:
                add(cm.CandleSource(market, symbol, tf), "poll", tf)
            for tf in ex.candles_ws:
                add(cm.CandleStream(market, symbol, tf), "stream", tf)
            if ex.trades:
                add(cm.TradeSource(market, symbol), "poll")
            if ex.trades_ws:
                add(cm.TradeStream(market, symbol), "stream")
            if ex.book_depth:
                add(cm.BookSource(market, symbol, depth=ex.book_depth), "poll")
            if ex.funding:
                add(cm.FundingSource(market, symbol), "poll")
    closables, alt = build_alt_ingestors(config)
    return markets + closables, out + alt


class Scheduler:
    """Runs ingestors until :meth:`stop` (see the module docstring).

    Parameters
    ----------
    ingestors : list of Ingestor
    store : Store
    bus : optional
        A :mod:`coinswarm.adapters.bus` bus (``publish(subject, data)``), or None.
    base_s, max_s : float
        Back-off after consecutive failures.
    stale_after_s : float
        A poll ingestor without success for ``max(stale_after_s, 3·every_s)`` (a stream: for
        ``stale_after_s``) is reported unhealthy.
    wall : callable
        Wall clock, epoch ms.
    """

    def __init__(self, ingestors: list[Ingestor], store: Store, *, bus: Any = None, base_s: float = 1.0,
                 max_s: float = 60.0, stale_after_s: float = 30.0, status_file: str | None = None,
                 metrics: Metrics | None = None, wall: Callable[[], int] = _wall_ms) -> None:
        self.ingestors, self.store, self.bus = ingestors, store, bus
        self.base_s, self.max_s, self.stale_after_s = base_s, max_s, stale_after_s
        self.status_file, self.metrics, self.wall = status_file, metrics, wall
        self._stop = asyncio.Event()
        self.on_stored: Callable[[Ingestor, Batch, WriteResult], None] | None = None  # benchmarks, tests

    def stop(self) -> None:
        """Ask every task to finish."""
        self._stop.set()

    async def run(self) -> None:
        """Run every ingestor and the status writer until :meth:`stop`."""
        tasks = [asyncio.create_task(self._poll(i) if i.mode == "poll" else self._stream(i), name=i.source.name)
                 for i in self.ingestors]
        tasks.append(asyncio.create_task(self._report_loop(), name="status"))
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.report()

    # ---- the loops ----------------------------------------------------------------------------
    async def _poll(self, ing: Ingestor) -> None:
        while not self._stop.is_set():
            delay = ing.every_s
            try:
                clock = getattr(ing.source, "venue_now", None)  # exchanges have their own clock; others use ours
                now = await clock() if clock is not None else self.wall()
                if ing.cursor is None:
                    ing.cursor = await asyncio.to_thread(self._start_cursor, ing, now)
                timeout = max(30.0, 3 * ing.every_s)
                batch = await asyncio.wait_for(ing.source.fetch(ing.cursor, now + 1, self.wall()), timeout)
                await self._store(ing, batch)
                self._advance(ing, batch)
                self._succeeded(ing)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # isolation: whatever one source does, the others go on
                delay = self._failed(ing, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _stream(self, ing: Ingestor) -> None:
        while not self._stop.is_set():
            try:
                async for batch in ing.source.stream():
                    await self._store(ing, batch)
                    ing.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a stream that dies is restarted after a back-off
                delay = self._failed(ing, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    def _start_cursor(self, ing: Ingestor, now: int) -> int:
        """``lookback`` before now, or earlier: from the newest stored row when that is older
        (a long outage is backfilled whole; the store drops what it already holds). Not simply
        the newest stored row: a stream may have stored newer rows with a hole before them."""
        last = self.store.last_time(ing.kind, ing.exchange, ing.key, ing.timeframe) \
            if ing.kind in ("candle", "trade", "funding") else None
        return now - ing.lookback_ms if last is None else min(last, now - ing.lookback_ms)

    def _advance(self, ing: Ingestor, batch: Batch) -> None:
        if ing.kind in ("macro", "news"):
            ing.cursor = None  # a sliding window: the next poll starts lookback before its now
            return
        if not batch.records:
            return
        newest = max(r.time_ms for r in batch.records)
        if ing.kind == "candle":
            ing.cursor = newest + ing.source.step
        elif ing.kind == "funding":
            ing.cursor = newest + 1
        elif ing.kind == "trade":
            ing.cursor = newest  # trades sharing the newest millisecond come again; the store drops them

    async def _store(self, ing: Ingestor, batch: Batch) -> None:
        if not batch.records:
            result = WriteResult(ing.kind)
        elif len(batch.records) <= 64:  # a stream's few records: a thread hop would cost more than the write
            result = write_records(self.store, batch.records)
        else:
            result = await asyncio.to_thread(write_records, self.store, batch.records)
        ing.rows_written += result.rows_written
        ing.health.rejected += len(batch.rejected) + len(result.rejected)
        if self.bus is not None and batch.records:
            payload = orjson.dumps([{"t": r.time_ms, "k": r.key, "v": dict(r.values)} for r in batch.records])
            subject = ing.subject or f"ingest.{ing.kind}.{ing.exchange}.{path_symbol(ing.key)}"
            await self.bus.publish(subject, payload)
        ing.health.last_success_ms, ing.health.healthy = self.wall(), True
        if self.on_stored is not None:
            self.on_stored(ing, batch, result)

    def _succeeded(self, ing: Ingestor) -> None:
        ing.failures = 0
        ing.health.healthy, ing.health.last_success_ms = True, self.wall()

    def _failed(self, ing: Ingestor, exc: BaseException) -> float:
        ing.failures += 1
        h = ing.health
        h.errors += 1
        h.healthy = False
        h.last_error = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        h.last_error = " ".join(h.last_error.split())[:300]
        delay = min(self.base_s * 2 ** (ing.failures - 1), self.max_s)
        retry = getattr(exc, "retry_after_s", None)
        return max(delay, retry or 0.0)

    # ---- health -------------------------------------------------------------------------------
    def healths(self) -> list[Health]:
        """Every ingestor's health, staleness applied."""
        now = self.wall()
        out = []
        for ing in self.ingestors:
            h = ing.health
            limit = self.stale_after_s if ing.mode == "stream" else max(self.stale_after_s, 3 * ing.every_s)
            if h.healthy and h.last_success_ms is not None and now - h.last_success_ms > limit * 1000:
                h.healthy = False
                h.last_error = f"no success for {(now - h.last_success_ms) / 1000:.0f} s"
            if h.last_success_ms is None and ing.failures == 0 and h.errors == 0:
                h.healthy = False  # not yet succeeded
                h.last_error = h.last_error or "starting"
            out.append(h)
        return out

    def report(self) -> dict:
        """Write the status file and the gauges; returns the status."""
        healths = self.healths()
        extra = {i.health.source: {"rows_written": i.rows_written, "mode": i.mode} for i in self.ingestors}
        status = status_dict(healths, self.wall(), extra)
        if self.status_file:
            write_status(self.status_file, status)
        if self.metrics is not None:
            for ing in self.ingestors:
                self.metrics.update(ing.health, ing.rows_written)
        return status

    async def _report_loop(self, every_s: float = 0.5) -> None:
        while not self._stop.is_set():
            self.report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every_s)


async def run_config(config: IngestConfig, stop: asyncio.Event) -> dict:
    """Build everything a config names, run until ``stop`` is set, close; returns the last status."""
    store = open_store(config.store)
    markets, ingestors = build_ingestors(config)
    bus = metrics = None
    try:
        if config.nats_url:
            from coinswarm.adapters.bus import NatsBus

            bus = await NatsBus.connect(config.nats_url, name="coinswarm-ingest")
        if config.metrics_port:
            metrics = Metrics()
            metrics.serve(config.metrics_port)
        sched = Scheduler(ingestors, store, bus=bus, base_s=config.backoff_base_s, max_s=config.backoff_max_s,
                          stale_after_s=config.stale_after_s, status_file=config.status_file, metrics=metrics)
        runner = asyncio.create_task(sched.run())
        await stop.wait()
        sched.stop()
        await runner
        return sched.report()
    finally:
        for m in markets:
            await m.close()
        if bus is not None:
            await bus.close()
        if metrics is not None:
            metrics.close()
        store.close()


async def run_until_signal(config: IngestConfig, *, seconds: float | None = None) -> dict:
    """:func:`run_config` until SIGINT/SIGTERM (or ``seconds``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    return await run_config(config, stop)
