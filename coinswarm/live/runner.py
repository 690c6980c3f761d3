"""The live runner daemon: the pure core one closed bar at a time, crash-only.

Per closed bar (all symbols of one open time, or fewer when a later bar shows the others
are missing): the strategy's step → target weights → the kill switch (while halted only
reductions) → the paper broker's kernel step (:class:`~coinswarm.live.paper.PaperBroker`,
the very step ``cs.simulate`` scans) → one market order per fill, with a deterministic client
id → the ledger, write-ahead: ``NEW`` (with its ``agent.action`` outbox message, one
transaction), ``SENT`` (one transaction), the venue's acknowledgement and execution → the
sinks.

The checkpoint is **one transaction**: the fills executed since the last one (with their
``agent.trade`` messages), the processed bars and decision latencies, the strategy's and the
kernel's state and the kill switch — every :attr:`RunnerSettings.flush_bars` bars or
:attr:`RunnerSettings.flush_s` seconds, when the kill switch trips and at the end. After a
crash everything since the last checkpoint is processed again from it: exact, because the
strategy and the kernel are deterministic, and an order stored before the crash is found under
its deterministic id and executed, never sent twice (its fill was never booked: the paper
venue's executions are booked only with the checkpoint that holds the kernel's state).

Start-up is recovery (:mod:`coinswarm.live.recovery`): the checkpoint is loaded, in-flight
orders are matched to the bar that will re-decide them, positions and cash are compared with
the kernel's, and any unexplained difference halts trading (fails closed) before the first
decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from coinswarm.agents.base import Bar
from coinswarm.data.validate import iso_utc
from coinswarm.errors import DuplicateTimestampError, FundingHeldError, UnsortedTimestampError
from coinswarm.kernels.days import days_financed
from coinswarm.live import faults
from coinswarm.live import ledger_bulk as bulk
from coinswarm.live.config import RiskLimits
from coinswarm.live.dbretry import Guarded
from coinswarm.live.feeds import check_closed_bar
from coinswarm.live.killswitch import KillState, bankrupt, filter_intents, update
from coinswarm.live.ledger import Ledger
from coinswarm.live.outbox import Relay, heartbeat_message
from coinswarm.live.protocols import CashFlow, ClosedBar, Fill, OrderIntent
from coinswarm.live.signals import signal_stop  # noqa: F401  (the old import path)
from coinswarm.live.sinks import Sinks, Snapshot
from coinswarm.live.stepper import Stepper

if TYPE_CHECKING:  # the paper broker (the portfolio kernel) loads with the paper daemon, not the exchange one
    from coinswarm.live.funding import FundingBook
    from coinswarm.live.paper import PaperBroker

log = logging.getLogger("coinswarm.live")
DAY_MS = 86_400_000
BANKRUPT_DETAIL = ("the paper account went bankrupt (equity ≤ 0 at a close): every position was closed out there "
                   "and the deficit written off (ledger cash flow 'write_off'); it never trades again — start a new "
                   "run on another --db")
NO_LIMITS = RiskLimits(max_drawdown=1.0, daily_loss=1.0, max_position=1e12, max_order_notional=1e15)


@dataclass
class RunnerSettings:
    """How the runner books and reports.

    Attributes
    ----------
    strategy_id : str
        Part of every client order id (strategy name, by default).
    step_ms : int
        The bar length (for the UTC day end of the kernel's metrics).
    limits : RiskLimits
        The kill switch's drawdown and daily-loss limits (:data:`NO_LIMITS`: never trips).
    flush_bars, flush_s : int, float
        Checkpoint at least every this many bars / seconds of wall time.
    heartbeat_s : float
        A ``live.heartbeat`` goes out with the first checkpoint after this many seconds.
    one_commit_write_ahead : bool
        Store a bar's orders as NEW and SENT in one transaction (committed before the venue is
        called) instead of two. Only for a venue that cannot lose an order between NEW and
        SENT — the in-process paper broker, whose executions exist only in memory until the
        checkpoint books them (recovery re-decides NEW and SENT orders alike under the same
        ids). An exchange needs the two commits: SENT says "maybe at the venue, query first".
    """

    strategy_id: str
    step_ms: int
    limits: RiskLimits = field(default_factory=lambda: NO_LIMITS)
    flush_bars: int = 4096
    flush_s: float = 1.0
    heartbeat_s: float = 30.0
    one_commit_write_ahead: bool = False


STALE_BAR_ERRORS = (DuplicateTimestampError, UnsortedTimestampError)


def check_bar_order(bar: ClosedBar, last_time: int, group_time: int | None, group: Mapping[str, ClosedBar]) -> None:
    """The one ordering rule of both daemons (paper :class:`Runner`, exchange
    :class:`~coinswarm.live.venue.VenueRunner`): a closed bar must open after the last time
    processed, not before the time being gathered, and once per symbol and time.

    Raises
    ------
    DuplicateTimestampError, UnsortedTimestampError
        (:data:`STALE_BAR_ERRORS`) naming the symbol, the bar's time and what would be valid; the
        bar is not applied. The daemons' loops log it, count it and go on (:meth:`Telemetry.stale`).
    """
    where = f"{bar.symbol} bar at {iso_utc(bar.time)}"
    if bar.time <= last_time:
        error = DuplicateTimestampError if bar.time == last_time else UnsortedTimestampError
        raise error(f"{where} is not after the last processed ({iso_utc(last_time)}): valid bars open after it",
                    source=bar.symbol, column="time", value=bar.time)
    if group_time is not None and bar.time < group_time:
        raise UnsortedTimestampError(f"{where} arrived after a bar at {iso_utc(group_time)}: valid bars open at "
                                     "or after it", source=bar.symbol, column="time", value=bar.time)
    if bar.time == group_time and bar.symbol in group:
        raise DuplicateTimestampError(f"a second {where}: one bar per symbol and time is valid", source=bar.symbol,
                                      column="time", value=bar.time)


def bar_snapshot(t: int, target: np.ndarray, stepper: Stepper, *, positions: Mapping[str, float], cash: float,
                 equity: float, peak: float | None, latency_us: float, bars_processed: int, halted: bool,
                 lag_ms: int, step_ms: int) -> Snapshot:
    """The :class:`Snapshot` both daemons give their sinks after a closed time ``t`` of bars
    ``step_ms`` apart."""
    peak = peak or equity
    return Snapshot(
        bar_time=t, positions=dict(positions), cash=float(cash), equity=float(equity),
        drawdown=0.0 if peak <= 0 else max(0.0, 1 - equity / peak),
        targets={s: float(x) for s, x in zip(stepper.symbols, target, strict=True) if np.isfinite(x)},
        regimes=stepper.regimes(), weights=stepper.weights(), latency_us=latency_us,
        bars_processed=bars_processed, halted=halted, feed_lag_ms=max(0, int(lag_ms)), bar_interval_ms=int(step_ms))


async def warm_up_history(feed, symbols: tuple[str, ...], until_ms: int, bars: int,
                          memory=None) -> list[tuple[int, dict[str, ClosedBar], np.ndarray]]:
    """The warm-up history before ``until_ms``, oldest first: per open time, the bars the strategy
    steps (each symbol's ``feed.history(symbol, until_ms, bars)``, empty at a time only the memory
    proposer sees) and every symbol's close (NaN where none). With a ``memory`` proposer whose
    features need more closes than the strategy's warm-up (:data:`coinswarm.live.proposals.HISTORY`),
    they are read too, for it alone: the strategy steps exactly the same bars either way."""
    stepped: dict[int, dict[str, ClosedBar]] = {}
    closes: dict[int, np.ndarray] = {}
    need = max(bars, getattr(memory, "history", 0)) if memory is not None else bars
    for j, symbol in enumerate(symbols):
        own = await feed.history(symbol, until_ms, bars)
        for bar in (await feed.history(symbol, until_ms, need) if need > bars else []) + own:
            closes.setdefault(bar.time, np.full(len(symbols), np.nan))[j] = bar.close
        for bar in own:
            stepped.setdefault(bar.time, {})[symbol] = bar
    return [(t, stepped.get(t, {}), closes[t]) for t in sorted(closes)]


class Telemetry:
    """What both daemons share around their loop: the outbox :class:`~coinswarm.live.outbox.Relay`
    publishing to the bus beside the run (the in-process bus when none), the metrics watching
    the sinks and the relay, the feed's and the bus's reconnects told to the sinks, and stale
    bars logged and skipped.

    Parameters
    ----------
    ledger : Ledger
        Holds the outbox.
    sinks : Sinks
    bus : object, optional
        ``async stream_publish(subject, data, msg_id)``.
    metrics : PrometheusSink, optional
    clock : callable
        Epoch ms (the outbox's publish time).
    memory : MemoryProposer, optional
        The runner's memory proposer (its counters are reported by the metrics).
    """

    def __init__(self, ledger: Ledger, sinks: Sinks, bus=None, metrics=None,
                 clock: Callable[[], int] | None = None, memory=None) -> None:
        if bus is None:
            from coinswarm.adapters.bus import InProcessBus

            bus = InProcessBus()
        self.ledger, self.sinks, self.bus, self.metrics, self.memory = ledger, sinks, bus, metrics, memory
        self.relay = Relay(ledger, bus, clock or (lambda: time.time_ns() // 1_000_000))
        self.stale_bars = 0
        self._seen = {"feed": 0, "bus": 0}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Telemetry:
        if self.metrics is not None:
            self.metrics.watch(self.sinks, self.relay, self.memory)
        self._task = asyncio.create_task(self.relay.run(self._stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the relay after one last drain."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def drive(self, runner, feed, stop: asyncio.Event) -> None:
        """``runner.on_bar`` for each of ``feed``'s closed bars until it ends or ``stop`` is set;
        a stale bar is skipped (:meth:`stale`), reconnects are told after each bar."""
        async for bar in feed.closed_bars():
            try:
                await runner.on_bar(bar)
            except STALE_BAR_ERRORS as exc:
                self.stale(exc)
            except FundingHeldError:  # held for unpublished funding when stopped: not decided, taken on resume
                if stop.is_set():
                    break
                raise
            self.count_reconnects(feed)
            if stop.is_set():
                break

    def stale(self, exc: Exception) -> None:
        """A stale bar (:func:`check_bar_order`): one log line, a ``stale_bar`` event, not applied."""
        self.stale_bars += 1
        log.warning("stale bar skipped (not applied): %s", exc)
        self.sinks.on_event("stale_bar", {"detail": str(exc)})

    def count_reconnects(self, feed) -> None:
        """``reconnect`` events for the feed's and the bus's reconnects since the last call."""
        for component, now in (("feed", getattr(feed, "reconnects", 0)), ("bus", getattr(self.bus, "reconnects", 0))):
            for _ in range(max(0, int(now) - self._seen[component])):
                self.sinks.on_event("reconnect", {"component": component})
            self._seen[component] = max(self._seen[component], int(now))


class BarGrouping:
    """Both daemons' intake (paper :class:`Runner`, exchange
    :class:`~coinswarm.live.venue.VenueRunner`): closed bars gathered by open time and handed to
    ``self.process(t, group)`` once every symbol's bar of that time arrived (or a later bar
    shows the rest are missing). Needs ``symbols``, ``index`` (symbol → column), ``last_time``,
    ``_group``, ``_group_time`` and ``async process(t, group)`` on the instance."""

    symbols: list[str]
    index: dict[str, int]
    last_time: int
    _group: dict[str, ClosedBar]
    _group_time: int | None

    async def on_bar(self, bar: ClosedBar) -> None:
        """Take one closed bar. A malformed bar, or one not after the last processed
        (:func:`check_bar_order`), raises a typed :class:`~coinswarm.errors.DataError` and is
        not applied."""
        check_closed_bar(bar, bar.symbol)
        if bar.symbol not in self.index:
            return
        check_bar_order(bar, self.last_time, self._group_time, self._group)
        if self._group_time is not None and bar.time != self._group_time:
            await self.close_group()
        self._group_time = bar.time
        self._group[bar.symbol] = bar
        if len(self._group) == len(self.symbols):
            await self.close_group()

    async def close_group(self) -> None:
        """Process the bars gathered for the current time (if any)."""
        if self._group_time is None:
            return
        group, t = self._group, self._group_time
        self._group, self._group_time = {}, None
        await self.process(t, group)


class Runner(BarGrouping, Guarded):
    """One daemon: a feed of closed bars in, orders to the paper broker out, all in the ledger.

    Parameters
    ----------
    ledger : Ledger
        The crash-only book (migrated, claimed, recovered: see :func:`coinswarm.live.recovery.recover`).
    stepper : Stepper
        The strategy.
    broker : PaperBroker
        The venue (its state restored by recovery).
    settings : RunnerSettings
    sinks : Sinks, optional
        Hot state and metrics (never block trading).
    bus : object, optional
        ``async stream_publish(subject, data, msg_id)``; the outbox relay publishes to it
        (:class:`~coinswarm.adapters.bus.InProcessBus` when None).
    clock : callable
        Wall clock, epoch ms (injected).
    guard : DbGuard, optional
        Every ledger write and read of the loop goes through ``guard.call``: the database away
        pauses trading (no decision, no order) until it is back, then everything resumes in
        order, nothing lost (the writes are idempotent transactions). None: called directly.
    metrics : PrometheusSink, optional
        Told about the outbox relay (its counters are read at each scrape).
    """

    def __init__(self, ledger: Ledger, stepper: Stepper, broker: PaperBroker, settings: RunnerSettings, *,
                 sinks: Sinks | None = None, bus=None, clock: Callable[[], int] | None = None,
                 guard=None, metrics=None, funding: FundingBook | None = None) -> None:
        self.ledger, self.stepper, self.broker, self.settings = ledger, stepper, broker, settings
        self.funding = funding
        self._flows: list[CashFlow] = []  # financing booked with the next checkpoint
        self._financed: tuple[float, float, float] | None = None  # the kernel's totals at the last bar
        self.sinks = sinks or Sinks()
        self.bus = bus
        self.guard, self.metrics = guard, metrics
        self.relay: Relay | None = None
        self.telemetry: Telemetry | None = None
        self.memory = None  # a MemoryProposer (coinswarm.live.proposals.attach): episodes to the quorum
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.symbols = stepper.symbols
        self.index = {s: j for j, s in enumerate(self.symbols)}
        m = len(self.symbols)
        self.open_row, self.close_row = np.full(m, np.nan), np.full(m, np.nan)
        self.last_time = -1  # open time of the last bar processed (the checkpoint's, after recovery)
        self.kill = KillState()
        self.kill_written = KillState()
        self.bars_processed = 0
        self.latencies: list[float] = []  # closed bar → decision, wall µs (stored in the ledger)
        self._bars: list[tuple[str, int, float | None]] = []
        self._unbooked: list[Fill] = []
        self._flushed_at = time.monotonic()
        self._beat_at = -float("inf")
        self._group: dict[str, ClosedBar] = {}
        self._group_time: int | None = None

    # -- the loop -----------------------------------------------------------------------
    async def run(self, feed, stop: asyncio.Event | None = None) -> int:
        """Process ``feed``'s closed bars until it ends or ``stop`` is set; the outbox relay
        runs beside it (:class:`Telemetry`). Returns the number of bars processed in this run."""
        stop = stop or asyncio.Event()
        before = self.bars_processed
        async with Telemetry(self.ledger, self.sinks, self.bus, self.metrics, self.clock,
                             memory=self.memory) as telemetry:
            self.telemetry, self.relay, self.bus = telemetry, telemetry.relay, telemetry.bus
            await telemetry.drive(self, feed, stop)
            if stop.is_set():  # a time whose bars did not all arrive is taken again on resume
                self._group, self._group_time = {}, None
            else:
                await self.close_group()
            await self.aflush()
        return self.bars_processed - before

    # -- one closed time --------------------------------------------------------------------
    async def process(self, t: int, group: dict[str, ClosedBar]) -> None:
        """Decide, trade and book one closed time of ``group`` (bars by symbol)."""
        await self.refresh_funding(t)
        started = time.perf_counter_ns()
        bars = self._rows(group)
        due = self._tell_funding(t)
        target = self.stepper.decide(bars, self.settings.step_ms or None)
        if self.kill.halted:
            target = self._reductions_only(target)
        day_end = (t + self.settings.step_ms) // DAY_MS != t // DAY_MS
        days = days_financed(self.last_time if self.last_time >= 0 else None, t, self.settings.step_ms)
        if self._financed is None:
            self._financed = self.broker.financing()
        cash_before, was_bankrupt = self.broker.cash, self.broker.bankrupt
        fills, intents = self._preview(t, target, day_end, due, days)
        latency = (time.perf_counter_ns() - started) / 1000.0
        self.latencies.append(latency)
        first = next(iter(group))
        self._bars.extend((s, t, latency if s == first else None) for s in group)
        self.bars_processed += len(group)
        self.last_time = t
        booked = await self._trade(intents, fills) if intents else []
        if intents:
            self._unbooked.extend(booked)
        else:
            self.broker.adopt()
        self._book_financing(t)
        if self.broker.bankrupt and not was_bankrupt:
            self._book_write_off(t, cash_before, fills)
        if self.memory is not None:
            self.memory.on_bar(t, self.close_row, booked, self.stepper)
        tripped = self._observe(t)
        if tripped or len(self._bars) >= self.settings.flush_bars \
                or time.monotonic() - self._flushed_at >= self.settings.flush_s:
            await self.aflush()
        self._report(t, target, latency)

    async def refresh_funding(self, t: int) -> None:
        """A live funding book (:class:`~coinswarm.live.funding.LiveFundingBook`) fetches the
        settlements before this bar's close (a replay's book holds them all already)."""
        refresh = getattr(self.funding, "refresh", None)
        if refresh is not None:
            await refresh(t + self.settings.step_ms)

    def _tell_funding(self, t: int) -> np.ndarray | None:
        """Tell the strategy the funding settled since the last close, before this bar's close
        (what its backtest reads); the rates the kernel charges at this bar (None: none)."""
        if self.funding is None:
            return None
        since = self.last_time + self.settings.step_ms if self.last_time >= 0 else -(2 ** 62)
        for symbol, when, rate in self.funding.settled(since, t + self.settings.step_ms):
            self.stepper.observe_funding(symbol, when, rate)
        return self.funding.due(self.last_time, t)

    def _book_financing(self, t: int) -> None:
        """The cash the kernel moved at this bar besides fills (funding, interest, borrow) as
        ledger cash flows, booked with the next checkpoint under ids of (strategy, kind, bar)."""
        now = self.broker.financing()
        before, self._financed = self._financed, now
        for kind, sign, a, b in zip(("funding", "interest", "borrow"), (-1.0, 1.0, -1.0), before, now, strict=True):
            if b != a:
                self._flows.append(CashFlow(f"{self.settings.strategy_id}:{kind}:{t}", self.broker.quote, kind,
                                            sign * (b - a), int(t)))

    def _book_write_off(self, t: int, cash_before: float, fills: np.ndarray) -> None:
        """The kernel went bankrupt at this bar: it closed every position out at this close and
        wrote the deficit off (cash 0). The deficit — what this bar's fills and cash flows left
        of the cash, negated, in the ledger's order of terms — is booked as a ``write_off`` flow
        after them, so the ledger's cash is the kernel's 0 (:func:`~coinswarm.live.ledger_bulk.book_flows`)."""
        left = cash_before
        for row in fills:
            left -= float(row["qty"]) * float(row["price"])
            left -= float(row["fee"])
        for flow in self._flows:
            if flow.time_ms == t:
                left += flow.amount
        self._flows.append(CashFlow(f"{self.settings.strategy_id}:write_off:{t}", self.broker.quote, "write_off",
                                    max(0.0, self.broker.cash - left), int(t)))

    def _rows(self, group: dict[str, ClosedBar]) -> list[Bar | None]:
        bars: list[Bar | None] = []
        for j, symbol in enumerate(self.symbols):
            bar = group.get(symbol)
            if bar is None:
                self.open_row[j] = self.close_row[j] = np.nan
                bars.append(None)
            else:
                self.open_row[j], self.close_row[j] = bar.open, bar.close
                bars.append(Bar(bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume))
        return bars

    def _reductions_only(self, target: np.ndarray) -> np.ndarray:
        """While halted: a target passes only if it reduces the position's weight (same sign)."""
        out = target.copy()
        equity = self.broker.equity
        positions = self.broker.positions()
        for j, x in enumerate(target):
            if np.isnan(x):
                continue
            price = self.close_row[j]
            weight = positions[j] * price / equity if equity > 0 and np.isfinite(price) else 0.0
            if not (abs(x) < abs(weight) and x * weight >= 0):
                out[j] = np.nan
        return out

    def _preview(self, t: int, target: np.ndarray, day_end: bool, funding: np.ndarray | None = None,
                 days: int | None = None) -> tuple[np.ndarray, list[OrderIntent]]:
        """The kernel's fills of this bar and their orders; while halted, a pending order that
        would grow a position is withdrawn from the kernel and the bar previewed again."""
        from coinswarm.live.paper import intents_of

        for _ in range(len(self.symbols) + 1):
            fills = self.broker.preview(t, self.open_row, self.close_row, target, day_end=day_end, funding=funding,
                                        days=days)
            if not len(fills):
                return fills, []
            intents = intents_of(fills, self.symbols, self.settings.strategy_id, self.last_time)
            if not self.kill.halted:
                return fills, intents
            positions = {s: float(q) for s, q in zip(self.symbols, self.broker.positions(), strict=True)}
            blocked = filter_intents(intents, positions, self.kill)[1]
            if not blocked:
                return fills, intents
            self.broker.withdraw_pending([self.index[i.symbol] for i in blocked])
        raise RuntimeError("kill switch: the kernel kept growing a position while halted")

    async def _trade(self, intents: list[OrderIntent], fills: np.ndarray) -> list[Fill]:
        """Write-ahead: NEW (with agent.action), SENT (one commit with NEW when
        :attr:`RunnerSettings.one_commit_write_ahead`), the venue's ack, then the venue executes."""
        now = self.clock()
        self.broker.expect(intents)
        faults.point("before_new")
        if self.settings.one_commit_write_ahead:
            statuses = await self._db(bulk.record_sent_many, self.ledger, intents, now)
            faults.point("after_new")
        else:
            await self._db(bulk.record_new_many, self.ledger, intents, now)
            faults.point("after_new")
            statuses = await self._db(bulk.mark_sent, self.ledger, [i.client_order_id for i in intents], now)
        final = [cid for cid, status in statuses.items() if status.final]
        if final:
            raise RuntimeError(f"orders {final} are final but their bar was not booked: the ledger and the "
                               "checkpoint disagree")
        faults.point("after_sent")
        for intent in intents:
            await self.broker.submit(intent)
        booked = self.broker.execute(intents, fills)
        faults.point("after_ack")
        return booked

    def _observe(self, t: int) -> bool:
        """The kill switch sees the equity at this close; True when it just tripped."""
        before = self.kill
        self.kill = update(before, self.broker.equity, t, self.settings.limits)
        if self.broker.bankrupt:
            self.kill = bankrupt(self.kill, BANKRUPT_DETAIL, t)
        if self.kill.halted and (not before.halted or before.reason != self.kill.reason):
            log.warning("kill switch: halted (%s): %s", self.kill.reason, self.kill.detail)
            self.sinks.on_event("halt", {"reason": self.kill.reason, "detail": self.kill.detail})
            return True
        return False

    # -- persistence ----------------------------------------------------------------------
    def checkpoint(self) -> dict:
        """What a restart resumes from: the strategy's and the kernel's state after ``last_time``."""
        import base64

        return {"time": int(self.last_time), "strategy": self.stepper.to_record(),
                "paper": base64.b64encode(self.broker.to_bytes()).decode()}

    def flush(self) -> None:
        """One transaction: the fills executed since the last flush, the bars, the checkpoint and
        the kill switch (merged with a halt or resume that ``coinswarm live halt|resume`` stored
        meanwhile); then the sinks hear of the booked orders and fills. Without the guard:
        :meth:`aflush` is the loop's (guarded) form."""
        self._merge_external_kill(self.ledger.kill_state())
        fills, kwargs = self._commit_args()
        bulk.commit_bars(self.ledger, **kwargs)
        self._flushed(fills, self.ledger.order)

    async def aflush(self) -> None:
        """:meth:`flush` with every ledger call through the guard."""
        self._merge_external_kill(await self._db(self.ledger.kill_state))
        fills, kwargs = self._commit_args()
        try:
            await self._db(bulk.commit_bars, self.ledger, **kwargs)
        except BaseException:
            self._unbooked = fills + self._unbooked  # nothing was written: keep them for the next try
            self._flows = kwargs["flows"] + self._flows
            raise
        orders = {}
        if self.sinks.sinks and fills:
            cids = {f.client_order_id for f in fills}
            orders = await self._db(lambda: {c: self.ledger.order(c) for c in cids})
        self._flushed(fills, orders.get)

    def _commit_args(self) -> tuple[list[Fill], dict]:
        fills, self._unbooked = self._unbooked, []
        flows, self._flows = self._flows, []
        now = self.clock()
        beat = []
        if time.monotonic() - self._beat_at >= self.settings.heartbeat_s:
            beat = [heartbeat_message(self.settings.strategy_id, now, bar_time=self.last_time,
                                      bars_processed=self.bars_processed, halted=self.kill.halted)]
            self._beat_at = time.monotonic()
        meta = {"checkpoint": self.checkpoint()}
        if self.memory is not None:  # the episodes closed since the last checkpoint, and the tracker
            beat, meta[self.memory.meta_key] = beat + self.memory.outbox(now), self.memory.record()
        return fills, {"fills": fills, "flows": flows, "bars": self._bars, "meta": meta,
                       "kill": self.kill, "events": beat, "now_ms": now}

    def _flushed(self, fills: list[Fill], order_of) -> None:
        self.kill_written = self.kill
        self._bars = []
        if self.memory is not None:
            self.memory.flushed()
        self._flushed_at = time.monotonic()
        if self.sinks.sinks:
            for fill in fills:
                order = order_of(fill.client_order_id)
                if order is not None:
                    self.sinks.on_order(order)
                self.sinks.on_fill(fill)

    def _merge_external_kill(self, stored: KillState) -> None:
        if stored == self.kill_written:
            return
        if stored.halted and not self.kill.halted:
            self.kill = stored
            self.sinks.on_event("halt", {"reason": stored.reason, "detail": stored.detail})
        elif not stored.halted and self.kill.halted and self.kill_written.halted:
            from coinswarm.live.killswitch import resume

            self.kill = resume(self.kill, self.broker.equity)
            self.sinks.on_event("resume", {})

    def _report(self, t: int, target: np.ndarray, latency: float) -> None:
        if not self.sinks.sinks:
            return
        positions = dict(zip(self.symbols, map(float, self.broker.positions()), strict=True))
        self.sinks.on_bar(bar_snapshot(
            t, target, self.stepper, positions=positions,
            cash=self.broker.cash, equity=self.broker.equity, peak=self.kill.peak_equity, latency_us=latency,
            bars_processed=self.bars_processed, halted=self.kill.halted,
            lag_ms=self.clock() - (t + self.settings.step_ms), step_ms=self.settings.step_ms))

