"""Helpers shared by the live daemon's unit and integration tests (``from tests.helpers.live import …``):
the paper replay's feed wrappers and book readers, the fake Binance venue's config and broker, and
PostgreSQL's fast stop."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from sqlalchemy import select

from coinswarm.adapters.fake_venue import DUMMY_KEY, DUMMY_SECRET, FakeVenue
from coinswarm.adapters.servers import Server
from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker
from coinswarm.live.config import BrokerConfig, Credentials, LiveConfig, RiskLimits, ServerUrls, StrategyConfig
from coinswarm.live.ledger import Ledger, OutboxRow
from coinswarm.live.outbox import PROPOSAL_SUBJECT
from coinswarm.live.replay import ReplaySpec, build, feed_for
from coinswarm.live.venue import run_venue
from coinswarm.quorum.proposals import Proposal

HOUR = 3_600_000
SYMBOL = "BTC/USDT"
BOOK_KEYS = ("positions", "cash", "bars_processed", "halted")  # the report's part two ledgers must agree on


# -- the paper replay ------------------------------------------------------------------------


class StopAfter:
    """A feed wrapper that sets ``stop`` after ``n`` bars."""

    def __init__(self, feed, n: int, stop: asyncio.Event) -> None:
        self.feed, self.n, self.stop = feed, n, stop

    async def closed_bars(self):
        k = 0
        async for bar in self.feed.closed_bars():
            yield bar
            k += 1
            if k >= self.n:
                self.stop.set()


async def run_until(spec: ReplaySpec, n: int) -> None:
    """Replay ``spec`` (resuming its ledger) and stop it after ``n`` bars."""
    runner, _ = build(spec)
    try:
        stop = asyncio.Event()
        await runner.run(StopAfter(feed_for(spec, runner), n, stop), stop)
    finally:
        runner.ledger.close()


class Replaying:
    """A feed that, after its ``at``-th bar, yields its first bar and its last bar again (stale)."""

    def __init__(self, feed, at: int) -> None:
        object.__setattr__(self, "feed", feed)
        object.__setattr__(self, "at", at)

    def __getattr__(self, name: str):
        return getattr(self.feed, name)

    def __setattr__(self, name: str, value) -> None:  # run_venue moves the feed's resume point
        setattr(self.feed, name, value)

    async def closed_bars(self):
        seen = []
        async for bar in self.feed.closed_bars():
            yield bar
            seen.append(bar)
            if len(seen) == self.at:
                yield seen[0]
                yield seen[-1]


def book(db: str, keys: tuple[str, ...] | None = None) -> tuple[list, list, dict]:
    """A ledger's sorted orders and fills and its report (only ``keys`` of it, if given)."""
    ledger = Ledger(db)
    try:
        orders = sorted((o.client_order_id, o.symbol, o.side.value, o.qty, o.status.value, o.bar_time)
                        for o in ledger.orders())
        fills = sorted((f.fill_id, f.time_ms, f.qty, f.price, f.fee) for f in ledger.fills())
        report = ledger.report()
        return orders, fills, report if keys is None else {k: report[k] for k in keys}
    finally:
        ledger.close()


def ledger_rows(db: str) -> tuple[list, list, list]:
    """A ledger's orders, fills and outbox rows ``(subject, msg_id, published_ms)``."""
    ledger = Ledger(db)
    try:
        orders, fills = ledger.orders(), ledger.fills()
        with ledger.sessions() as s:
            rows = s.execute(select(OutboxRow.subject, OutboxRow.msg_id, OutboxRow.published_ms)).all()
        return orders, fills, rows
    finally:
        ledger.close()


# -- the exchange daemon on the fake Binance venue -------------------------------------------


def make_venue(start: str = "2024-03-01T00:30", data_start: str = "2024-02-01",
               data_end: str = "2024-03-20") -> FakeVenue:
    """The fake Binance venue on 127.0.0.1 serving real BTC/USDT 1h candles; its clock moves when told."""
    return FakeVenue({SYMBOL: "binance:BTC/USDT:1h"}, start=start, speed=0.0, data_start=data_start,
                     data_end=data_end)


def make_config(venue: FakeVenue, db: str, *, grace_ms: int = 2 * HOUR, strategy: str = "trend",
                nats: str = "") -> LiveConfig:
    """A sandbox Binance config pointed at ``venue`` with loose risk limits."""
    return LiveConfig(symbols=(SYMBOL,), timeframe="1h", strategy=StrategyConfig(strategy),
                      broker=BrokerConfig("binance", sandbox=True, grace_ms=grace_ms, api_url=venue.url),
                      risk=RiskLimits(max_drawdown=0.9, daily_loss=0.9, max_position=10.0, max_order_notional=1e6),
                      servers=ServerUrls(db=db, nats=nats), credentials=Credentials("binance", DUMMY_KEY, DUMMY_SECRET))


def broker_of(venue: FakeVenue) -> CcxtBroker:
    """A ccxt broker on ``venue`` (dummy keys)."""
    broker = CcxtBroker("binance", keys=ApiKeys(DUMMY_KEY, DUMMY_SECRET), api_url=venue.url, timeout_ms=2_000)
    broker._ex.enableRateLimit = False  # ccxt's client-side spacing: real wall time wasted on a loopback venue
    return broker


async def run(venue: FakeVenue, config: LiveConfig, bars: int, sleeps: list | None = None, on_sleep=None, **kwargs):
    """``run_venue`` for ``bars`` bars; each sleep of the feed moves the venue clock instead of waiting."""
    async def sleep(seconds: float) -> None:  # the feed waits for the next close: move the venue clock
        if sleeps is not None:
            sleeps.append(seconds)
        if on_sleep is not None:
            on_sleep(len(sleeps or ()))
        venue.advance(max(int(seconds * 1000), 1))

    async with broker_of(venue) as broker:
        return await run_venue(config, broker=broker, max_bars=bars, sleep=sleep, **kwargs)


# -- real servers ----------------------------------------------------------------------------


def fast_stop(server: Server) -> None:
    """PostgreSQL's fast shutdown (SIGINT: sessions ended, clean checkpoint), then the usual stop."""
    os.killpg(server.pid, signal.SIGINT)
    deadline = time.monotonic() + 20
    while server.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(timeout=5)


def proposals_in(db: str) -> list[Proposal]:
    """The memory proposals in a ledger's outbox, in write order."""
    ledger = Ledger(db)
    try:
        with ledger.sessions() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.subject == PROPOSAL_SUBJECT).order_by(OutboxRow.id))
            return [Proposal.decode(bytes(r.payload)) for r in rows]
    finally:
        ledger.close()


class Crash(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs (not even a flush)."""


def crash_at(point: str, k: int):
    """A stand-in for :func:`coinswarm.live.faults.point` that raises :class:`Crash` the ``k``-th time
    ``point`` is reached (monkeypatch it over ``faults.point``)."""
    seen = {"n": 0}

    def boom(name: str) -> None:
        if name == point:
            seen["n"] += 1
            if seen["n"] >= k:
                raise Crash(name)

    return boom
