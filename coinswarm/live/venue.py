"""The live runner on an exchange: closed bars in, orders to a :class:`~coinswarm.live.ccxt_broker.CcxtBroker`
out, every order and fill in the ledger, start-up is recovery.

Per closed time ``t`` (every symbol's bar that opened at ``t``, or fewer when a later bar shows
the rest are missing), :meth:`VenueRunner.process`:

1. **mass status** (:func:`coinswarm.live.orders.reconcile`): open orders, fills since the last
   stored one (de-duplicated by fill id, so repeated and out-of-order reports book once),
   in-flight orders resolved by client id ("does not exist" within ``grace_ms`` stays in
   flight), base-asset balances against the ledger's positions — an unexplained difference
   halts (fails closed);
2. the strategy steps on the bars (targets: fractions of equity, NaN = no order). The daily
   portfolio committee is told what is actually held (:meth:`VenueRunner.holdings`: the ledger's
   reconciled positions plus what in-flight orders still have to fill, marked at the bar's close,
   over the equity), so its no-trade band compares each target with the venue's book and not
   with its own last targets — an order refused, cut to the lot step or the free balance,
   dropped under the minimums or blocked by the kill switch is traded again at the next decision.
   An orders-only strategy (the hourly ``committee``, ``execution``) holds (NaN) while its target
   equals its last *executed* one — the backtest's "keep the quantity" — so an order that ended
   short of what it asked (refused, canceled, expired, dropped, or filled in part) would never
   be sent again: when such a symbol holds, its latest order (the ledger's) ended short and
   nothing is in flight for it, the last executed target is re-sent (:meth:`VenueRunner._unfinished`,
   client-id sequence :data:`RESEND_SEQ`), at most what that order left unfilled and only in its
   direction — it completes the strategy's decision and never trades weight drift; with every
   order filled nothing is re-sent (the orders are the backtest's);
3. targets → quantities: equity = the venue's quote balance + the ledger's positions marked at
   the bar's close; the change from the position plus what in-flight orders still have to fill,
   capped by free balances (spot: never short), rounded down to the market's lot step and dropped
   under its minimum amount or notional (ccxt markets);
4. :func:`~coinswarm.live.killswitch.limit_intents` (max position, max order notional), then the
   kill switch (while halted only reductions);
5. write-ahead per order, deterministic client id (strategy, symbol, bar time, 0 — or
   :data:`RESEND_SEQ` for a re-send): ``NEW`` →
   ``SENT`` → submit once → the venue's reply. A timeout is ``UNKNOWN`` and is **never** sent
   again: the next mass status finds it by client id;
6. the checkpoint (the strategy's state after ``t``) and the bars, then the kill switch sees
   the equity.

After a crash the bars since the checkpoint are decided again: an order already stored under
its deterministic id is not sent again (``record_new`` refuses the id), so a restart never
duplicates an order; start-up runs the mass status before the first decision.

Wired like the paper :class:`~coinswarm.live.runner.Runner`, through the same pieces of
:mod:`coinswarm.live.runner`: :class:`~coinswarm.live.runner.BarGrouping` (one intake and one
stale-bar rule), :class:`~coinswarm.live.runner.Telemetry` (the outbox relay beside the loop,
reconnect events, stale bars logged and skipped) and :func:`~coinswarm.live.runner.bar_snapshot`.
The sinks hear every order created or moved (here and by the mass status), every fill booked,
each closed time's snapshot and halts; ``agent.action``/``agent.trade``/``live.heartbeat`` leave
through the outbox. :func:`run_venue` opens the services (JSON logs, ``/metrics``, Redis, NATS)
from the config, as :func:`~coinswarm.live.daemon.run_paper` does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coinswarm.agents.base import Bar
from coinswarm.errors import ConfigError, OrderRejectedError, RateLimitedError, VenueError
from coinswarm.live import faults
from coinswarm.live import ledger_bulk as bulk
from coinswarm.live.config import LiveConfig, RiskLimits, spot_only
from coinswarm.live.dbretry import Guarded
from coinswarm.live.killswitch import KillState, filter_intents, limit_intents, update
from coinswarm.live.ledger import Ledger, split_symbol
from coinswarm.live.orders import ReconcileReport, StoredOrder, apply_venue, reconcile
from coinswarm.live.outbox import heartbeat_message
from coinswarm.live.protocols import ClosedBar, OrderIntent, OrderStatus, Side, client_order_id
from coinswarm.live.runner import BarGrouping, Telemetry, bar_snapshot, warm_up_history
from coinswarm.live.signals import signal_stop
from coinswarm.live.sinks import Sinks
from coinswarm.live.stepper import Stepper

log = logging.getLogger("coinswarm.live.venue")
RUN_KEY = "venue_run"
CHECKPOINT_KEY = "venue_checkpoint"
POLL_ENV = "COINSWARM_LIVE_POLL_S"
RESEND_SEQ = 1  # the client-id sequence of a re-sent target (the strategy's own orders are 0)
_SHORT = (OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED)  # ended, maybe short of its quantity


@dataclass(frozen=True)
class VenueSettings:
    """How the venue runner sizes and resolves orders.

    Attributes
    ----------
    strategy_id : str
        Part of every client order id.
    step_ms : int
        The bar length.
    grace_ms : int
        How long "order does not exist" after sending keeps an order in flight.
    limits : RiskLimits
        Kill switch and sizing limits.
    buy_headroom : float
        A market buy uses at most free quote / (close × (1 + headroom)) (fees, price move).
    """

    strategy_id: str
    step_ms: int
    grace_ms: int
    limits: RiskLimits
    buy_headroom: float = 0.06


class VenueRunner(BarGrouping, Guarded):
    """The daemon on an exchange broker (see the module docstring).

    Parameters
    ----------
    ledger : Ledger
    stepper : Stepper
    broker : CcxtBroker
        Started (markets loaded).
    settings : VenueSettings
    venue : str
        The ledger's venue claim (``binance``, ``binance-sandbox`` …).
    sleep : async callable
        Waits between read retries (injected in tests).
    sinks : Sinks, optional
        Told every order created or moved, every new fill, each closed time's
        :class:`~coinswarm.live.sinks.Snapshot`, halts, reconnects and stale bars (never block trading).
    bus : object, optional
        The outbox relay publishes ``agent.action``/``agent.trade``/``live.heartbeat`` to it
        (in-process when None), as for the paper :class:`~coinswarm.live.runner.Runner`.
    metrics : PrometheusSink, optional
        Told about the relay (its counters at each scrape).
    heartbeat_s : float
        A ``live.heartbeat`` goes to the outbox with the first checkpoint after this many seconds.
    guard : DbGuard, optional
        Every ledger read and write goes through ``guard`` (as the paper runner's): the database
        away pauses trading — no decision, no order — until it is back. None: called directly.
    """

    def __init__(self, ledger: Ledger, stepper: Stepper, broker, settings: VenueSettings, venue: str, *,
                 sleep=asyncio.sleep, sinks: Sinks | None = None, bus=None, metrics=None,
                 heartbeat_s: float = 30.0, guard=None) -> None:
        self._sleep, self.guard = sleep, guard
        self.memory = None  # a MemoryProposer (attach_memory): episodes to the quorum
        self._mark: dict | None = None  # the fills booked up to the checkpoint (Ledger.fills_booked_since)
        self.sinks, self.bus, self.metrics = sinks or Sinks(), bus, metrics
        self.telemetry: Telemetry | None = None
        self.heartbeat_s = float(heartbeat_s)
        self._beat_at = -float("inf")
        self.rate_limited = 0
        self.ledger, self.stepper, self.broker, self.settings, self.venue = ledger, stepper, broker, settings, venue
        self.symbols = stepper.symbols
        self.index = {s: j for j, s in enumerate(self.symbols)}
        self.last_time = -1
        self.bars_processed = 0
        self.last_report: ReconcileReport | None = None
        self.submitted = 0
        self._group: dict[str, ClosedBar] = {}
        self._group_time: int | None = None
        self._resend_logged: set[tuple[str, str]] = set()  # (symbol, why): logged once at WARNING (logs only)

    # -- start-up --------------------------------------------------------------------------
    def spec(self) -> dict:
        """What a resumed run must share with the stored one."""
        return {"strategy": self.stepper.name, "symbols": list(self.symbols),
                "params": self.stepper.params._asdict(), "venue": self.venue}

    async def recover(self) -> ReconcileReport:
        """Start-up is recovery: claim the ledger (live, this venue), load the checkpoint, then
        mass-status the venue and resolve every in-flight order **before** any decision."""
        await self._db(self.ledger.migrate)
        await self._db(self.ledger.claim, "live", self.venue)
        stored = await self._db(self.ledger.get_meta, RUN_KEY)
        if stored is None:
            await self._db(self.ledger.set_meta, RUN_KEY, self.spec())
        elif stored != self.spec():
            raise ConfigError(f"the ledger holds another run ({stored}); this run is {self.spec()}: use another db")
        checkpoint = await self._db(self.ledger.get_meta, CHECKPOINT_KEY)
        if checkpoint is not None:
            self.stepper.load_record(checkpoint["strategy"])
            self.last_time = int(checkpoint["time"])
            self._mark = checkpoint.get("fills")
        self.bars_processed = await self._db(self.ledger.bars_processed)
        return await self.read(self.sync, await self.read(self.broker.server_time_ms))

    async def attach_memory(self):
        """Memory proposals to the quorum (:func:`~coinswarm.live.proposals.attach`, the run spec
        under :data:`RUN_KEY`), after :meth:`recover`. The fills booked since the checkpoint (a
        crash between a mass status and its checkpoint) reach it with the next checkpoint."""
        from coinswarm.live.proposals import META_KEY, attach

        held = await self._db(self.ledger.positions)
        positions = [held[s].qty if s in held else 0.0 for s in self.symbols]
        if await self._db(self.ledger.get_meta, META_KEY) is None:  # memory starts now: open positions, no episode
            self._mark = (await self._db(self.ledger.fills_booked_since, self._mark))[1]
        return await self._db(attach, self, run_meta_key=RUN_KEY, positions=positions)

    async def read(self, fn, *args, attempts: int = 8):
        """A read (never a submit) retried on rate limits — waiting the venue's ``Retry-After``
        (else a doubling back-off) — and on outages; the last error is raised."""
        delay = 0.5
        for k in range(attempts):
            try:
                return await fn(*args)
            except RateLimitedError as exc:
                self.rate_limited += 1
                if k == attempts - 1:
                    raise
                await self._sleep(exc.retry_after if exc.retry_after is not None else delay)
            except VenueError:
                if k == attempts - 1:
                    raise
                await self._sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def sync(self, now_ms: int) -> ReconcileReport:
        """One mass status (:func:`~coinswarm.live.orders.reconcile`); a halt is logged with why."""
        report = await self._adb(reconcile, self.ledger, self.broker, self.symbols, now_ms, self.settings.grace_ms,
                                 new_max_age_ms=self.settings.step_ms)
        if report.halted:
            log.error("reconcile: halted: %s", "; ".join(report.unexplained))
            self.sinks.on_event("halt", {"reason": "reconcile", "detail": "; ".join(report.unexplained)})
        self.last_report = report
        await self._tell(report)
        return report

    async def _tell(self, report: ReconcileReport) -> None:
        """The sinks hear of the orders the mass status moved and the fills it booked."""
        if not self.sinks.sinks:
            return
        for cid in dict.fromkeys([*report.resolved, *report.pending, *(f.client_order_id for f in report.booked)]):
            order = await self._db(self.ledger.order, cid)
            if order is not None:
                self.sinks.on_order(order)
        for fill in report.booked:
            self.sinks.on_fill(fill)

    # -- the loop ------------------------------------------------------------------------
    async def run(self, feed, stop: asyncio.Event | None = None) -> int:
        """Process ``feed``'s closed bars until it ends or ``stop`` is set; the outbox relay runs
        beside it (:class:`~coinswarm.live.runner.Telemetry`, shared with the paper runner)."""
        stop = stop or asyncio.Event()
        before = self.bars_processed
        async with Telemetry(self.ledger, self.sinks, self.bus, self.metrics, memory=self.memory) as telemetry:
            self.telemetry, self.bus = telemetry, telemetry.bus
            await telemetry.drive(self, feed, stop)
            if not stop.is_set():
                await self.close_group()
        return self.bars_processed - before

    async def process(self, t: int, group: dict[str, ClosedBar]) -> list[OrderIntent]:
        """Decide, size, send and checkpoint one closed time; returns the intents sent."""
        started = time.perf_counter_ns()
        bars = [None if group.get(s) is None else Bar(b.time, b.open, b.high, b.low, b.close, b.volume)
                for s in self.symbols for b in [group.get(s)]]
        now = await self.read(self.broker.server_time_ms)
        await self.read(self.sync, now)
        closes = {s: b.close for s, b in group.items()}
        balances = await self.read(self.broker.balances)
        positions = {s: p.qty for s, p in (await self._db(self.ledger.positions)).items()}
        in_flight = await self._db(self.ledger.in_flight)
        equity = self._equity(balances, closes, positions)
        held = self.holdings(closes, positions, in_flight, equity) if self.stepper.daily else None
        target = self.stepper.decide(bars, self.settings.step_ms, held).copy()
        caps = self._resend(target, await self._db(self._unfinished, target, in_flight))
        intents = self._intents(t, target, closes, balances, equity, positions, in_flight,
                                await self._db(self.ledger.kill_state), caps)
        latency = (time.perf_counter_ns() - started) / 1000.0
        sent = []
        for intent in intents:
            if await self.submit(intent, now):
                sent.append(intent)
        kill = await self._checkpoint(t, group, latency, now, equity)
        if self.sinks.sinks:
            await self._report(t, target, balances, equity, kill, latency, now)
        return sent

    async def _report(self, t: int, target: np.ndarray, balances: dict, equity: float, kill: KillState,
                      latency: float, now: int) -> None:
        """The sinks' :func:`~coinswarm.live.runner.bar_snapshot` of this closed time."""
        quote = split_symbol(self.symbols[0])[1]
        positions = {s: p.qty for s, p in (await self._db(self.ledger.positions)).items() if s in self.symbols}
        self.sinks.on_bar(bar_snapshot(
            t, target, self.stepper, positions=positions, cash=balances[quote].total if quote in balances else 0.0,
            equity=equity, peak=kill.peak_equity, latency_us=latency, bars_processed=self.bars_processed,
            halted=kill.halted, lag_ms=now - (t + self.settings.step_ms), step_ms=self.settings.step_ms))

    # -- sizing ------------------------------------------------------------------------------
    def _equity(self, balances: dict, closes: dict[str, float], positions: dict[str, float]) -> float:
        quote = split_symbol(self.symbols[0])[1]
        cash = balances[quote].total if quote in balances else 0.0
        held = sum(positions[s] * closes[s] for s in closes if s in positions)
        return float(cash + held)

    def holdings(self, closes: dict[str, float], positions: dict[str, float], in_flight: list,
                 equity: float) -> np.ndarray | None:
        """The weights the venue holds, as the strategy's targets count them: per symbol, the
        ledger's reconciled position plus what its in-flight orders still have to fill (the same
        base the sizing trades from, so an order still working is not chased twice, and one that
        stays UNKNOWN counts until the mass status resolves it), marked at the bar's close, over
        ``equity``. A symbol holding nothing is 0 with or without a bar; None when the equity is
        not positive or a symbol with a position or an order in flight has no close at this time
        (the equity would miss it): the strategy then keeps its own belief."""
        if not (math.isfinite(equity) and equity > 0):
            return None
        pending = _pending(in_flight)
        out = np.zeros(len(self.symbols))
        for j, symbol in enumerate(self.symbols):
            qty = positions.get(symbol, 0.0) + pending.get(symbol, 0.0)
            if qty == 0.0 and symbol not in pending:
                continue
            close = closes.get(symbol)
            if close is None:
                return None
            out[j] = qty * close / equity
        return out

    def _unfinished(self, target: np.ndarray, in_flight: list) -> dict[str, StoredOrder]:
        """The symbols of an orders-only strategy whose last executed target an order did not
        reach, with that order: the strategy holds (``target`` NaN) and has executed a target,
        nothing is in flight for the symbol, and its latest order ended (refused, canceled,
        expired or dropped) with less than its quantity filled — never a ``FILLED`` one (its
        fills may still be on their way). Read from the ledger only (after the mass status), so
        a bar decided again after a restart finds the same."""
        if not self.stepper.orders_only:
            return {}
        busy = {o.symbol for o in in_flight}
        out = {}
        for j, symbol in enumerate(self.symbols):
            if math.isfinite(target[j]) or not math.isfinite(self.stepper.last[j]) or symbol in busy:
                continue
            order = self.ledger.last_order(symbol)
            if order is not None and order.status in _SHORT and order.filled_qty < order.qty * (1.0 - 1e-9):
                out[symbol] = order
        return out

    def _resend(self, target: np.ndarray, unfinished: dict[str, StoredOrder]) -> dict[str, float]:
        """Put the last executed target back into ``target`` for each unfinished symbol; returns
        each re-send's cap, signed: what the failed order left unfilled (a re-send completes
        the strategy's decision, never more and never the other way). Logged at WARNING once per
        symbol and reason (a venue refusing every bar the same way), then at DEBUG."""
        caps = {}
        for symbol, order in unfinished.items():
            j = self.index[symbol]
            target[j] = self.stepper.last[j]
            left = order.qty - order.filled_qty
            caps[symbol] = left if order.side is Side.BUY else -left
            why = order.reason.split(" (", 1)[0] or order.status.value
            level = logging.DEBUG if (symbol, why) in self._resend_logged else logging.WARNING
            self._resend_logged.add((symbol, why))
            log.log(level, "%s: re-sending the last executed target %.6g: order %s ended %s (%s), %.10g of %.10g "
                    "filled", symbol, target[j], order.client_order_id, order.status.value, why, order.filled_qty,
                    order.qty)
        return caps

    def _intents(self, t: int, target: np.ndarray, closes: dict[str, float], balances: dict, equity: float,
                 positions: dict[str, float], in_flight: list, kill: KillState,
                 caps: dict[str, float] | None = None) -> list[OrderIntent]:
        """Targets to sized orders; a symbol in ``caps`` is a re-send (:meth:`_resend`): its change
        is cut to the cap (none when it points the other way), its client-id sequence is
        :data:`RESEND_SEQ`."""
        pending, caps = _pending(in_flight), caps or {}
        intents = []
        for j, symbol in enumerate(self.symbols):
            w, close = float(target[j]), closes.get(symbol)
            if not math.isfinite(w) or close is None or equity <= 0:
                continue
            desired = min(max(w, 0.0), 1.0) * equity / close  # spot: long-only, no leverage
            delta = desired - positions.get(symbol, 0.0) - pending.get(symbol, 0.0)
            cap = caps.get(symbol)
            if cap is not None:
                delta = math.copysign(min(abs(delta), abs(cap)), cap) if delta * cap > 0 else 0.0
            qty = self._sized(symbol, delta, close, balances)
            if qty > 0:
                side = Side.BUY if delta > 0 else Side.SELL
                seq = 0 if cap is None else RESEND_SEQ
                intents.append(OrderIntent(client_order_id(self.settings.strategy_id, symbol, t, seq), symbol, side,
                                           qty, t, self.settings.strategy_id))
        passed, blocked = limit_intents(intents, positions, closes, self.settings.limits)
        for intent, why in blocked:
            log.warning("order %s blocked: %s", intent.client_order_id, why)
        passed, halted = filter_intents(passed, positions, kill)
        for intent in halted:
            log.warning("order %s blocked: kill switch halted", intent.client_order_id)
        return passed

    def _sized(self, symbol: str, delta: float, close: float, balances: dict) -> float:
        """|delta| capped by free balances, rounded down to the lot step; 0 under the minimums."""
        base, quote = split_symbol(symbol)
        if delta > 0:
            free = balances[quote].free if quote in balances else 0.0
            qty = min(delta, free / (close * (1.0 + self.settings.buy_headroom)))
        else:
            qty = min(-delta, balances[base].free if base in balances else 0.0)
        return round_to_market(self.broker.markets.get(symbol, {}), qty, close)

    # -- sending ------------------------------------------------------------------------------
    async def submit(self, intent: OrderIntent, now_ms: int) -> bool:
        """Write-ahead: NEW, SENT, one submit, the reply. False when the id is already stored
        (a re-decided bar after a restart: never sent twice)."""
        faults.point("before_new")
        if not await self._db(self.ledger.record_new, intent, now_ms):
            return False
        faults.point("after_new")
        cid = intent.client_order_id
        self._told(await self._db(self.ledger.order, cid))
        self._told(await self._db(self.ledger.transition, cid, OrderStatus.SENT, now_ms))
        faults.point("after_sent")
        self.submitted += 1
        try:
            venue = await self.broker.submit(intent)
        except OrderRejectedError as exc:
            self._told(await self._db(self.ledger.transition, cid, OrderStatus.REJECTED, now_ms,
                                      reason=reject_reason(exc.problem)))
            return True
        except VenueError as exc:
            self._told(await self._db(self.ledger.transition, cid, OrderStatus.UNKNOWN, now_ms,
                                      reason=f"{type(exc).__name__}: {exc.problem}"))
            return True
        except BaseException as exc:
            self.ledger.transition(cid, OrderStatus.UNKNOWN, now_ms, reason=f"submit interrupted: {type(exc).__name__}")
            raise
        faults.point("after_ack")
        stored = await self._db(self.ledger.order, cid)
        if stored is not None and not stored.status.final:
            self._told(await self._db(apply_venue, self.ledger, stored, venue, now_ms))
        return True

    def _told(self, order) -> None:
        if order is not None and self.sinks.sinks:
            self.sinks.on_order(order)

    async def _checkpoint(self, t: int, group: dict[str, ClosedBar], latency: float, now_ms: int,
                          equity: float) -> KillState:
        """One transaction (:func:`~coinswarm.live.ledger_bulk.commit_bars`): the bars, the
        strategy's state and the fills it has seen, a heartbeat when due, the memory proposals of
        the round trips those fills closed and the proposer's state, the kill switch (returned)."""
        first = next(iter(group))
        fills, mark = await self._db(self.ledger.fills_booked_since, self._mark)
        meta = {CHECKPOINT_KEY: {"time": int(t), "strategy": self.stepper.to_record(), "fills": mark}}
        before = await self._db(self.ledger.kill_state)
        after = update(before, equity, t, self.settings.limits)
        events = []
        if time.monotonic() - self._beat_at >= self.heartbeat_s:
            self._beat_at = time.monotonic()
            events.append(heartbeat_message(self.settings.strategy_id, now_ms, bar_time=int(t),
                                            bars_processed=self.bars_processed + len(group), halted=after.halted))
        if self.memory is not None:
            row = np.array([group[s].close if s in group else np.nan for s in self.symbols])
            self.memory.on_bar(t, row, fills, self.stepper)
            events += self.memory.outbox(now_ms)
            meta[self.memory.meta_key] = self.memory.record()
        await self._db(bulk.commit_bars, self.ledger, bars=[(s, t, latency if s == first else None) for s in group],
                       meta=meta, kill=after if after != before else None, events=events, now_ms=now_ms)
        if self.memory is not None:
            self.memory.flushed()
        self._mark, self.last_time = mark, t
        self.bars_processed += len(group)
        if after.halted and not before.halted:
            log.warning("kill switch: halted (%s): %s", after.reason, after.detail)
            self.sinks.on_event("halt", {"reason": after.reason, "detail": after.detail})
        return after


def _pending(in_flight) -> dict[str, float]:
    """What in-flight orders still have to fill, signed, by symbol."""
    out: dict[str, float] = {}
    for order in in_flight:
        left = max(order.qty - order.filled_qty, 0.0)
        out[order.symbol] = out.get(order.symbol, 0.0) + (left if order.side is Side.BUY else -left)
    return out


def reject_reason(problem: str) -> str:
    """The ledger's reason of a refused order: ``rejected: <the venue's message> (<problem>)`` —
    the venue's own words first (Binance's ``"msg"``), so the ``rejects_total{reason}`` label,
    cut to 48 characters, says why."""
    import re

    found = re.search(r'"msg"\s*:\s*"([^"]{1,200})"', problem)
    return f"rejected: {found.group(1)} ({problem})" if found else f"rejected: {problem}"


def round_to_market(market: dict, qty: float, price: float) -> float:
    """``qty`` rounded down to the market's amount precision (a step size or a number of
    decimals, from ccxt's ``markets``); 0 when under the minimum amount or notional."""
    if not (math.isfinite(qty) and qty > 0):
        return 0.0
    precision = (market.get("precision") or {}).get("amount")
    if precision is not None:
        p = float(precision)  # ccxt TICK_SIZE mode: the step; DECIMAL_PLACES mode: a count of decimals
        step = p if p < 1 or p != int(p) else 10.0 ** -int(p)
        qty = math.floor(qty / step + 1e-9) * step
        qty = float(f"{qty:.12g}")
    limits = market.get("limits") or {}
    min_amount = (limits.get("amount") or {}).get("min") or 0.0
    min_cost = (limits.get("cost") or {}).get("min") or 0.0
    if qty <= 0 or qty < float(min_amount) or qty * price < float(min_cost):
        return 0.0
    return qty


# -- the daemon -------------------------------------------------------------------------------
def build_broker(config: LiveConfig):
    """The :class:`~coinswarm.live.ccxt_broker.CcxtBroker` of ``config`` (keys from the config's
    credentials, read from the environment; ``broker.api_url`` overrides the exchange's URLs; ccxt's
    client-side request spacing is kept except for a loopback venue)."""
    from urllib.parse import urlparse

    from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker

    creds = config.credentials
    if creds is None:
        raise ConfigError(f"broker.kind = {config.broker.kind!r} needs keys in the environment: "
                          f"COINSWARM_{config.broker.kind.upper()}_API_KEY and _SECRET")
    broker = CcxtBroker(config.broker.kind, keys=ApiKeys(creds.api_key, creds.secret), sandbox=config.broker.sandbox,
                        api_url=config.broker.api_url or None)
    if urlparse(config.broker.api_url).hostname in ("127.0.0.1", "localhost", "::1"):
        broker._ex.enableRateLimit = False  # a loopback (fake) venue: it answers 429 itself, no client-side spacing
    return broker


async def run_venue(config: LiveConfig, *, broker=None, max_bars: int | None = None, sleep=None,
                    stop: asyncio.Event | None = None, log_stream=None, services=None) -> VenueRunner:
    """Run the daemon of ``config`` on its exchange until ``stop``, SIGTERM/SIGINT or ``max_bars``:
    recovery first, warm-up on a fresh ledger, then one closed bar at a time. Its sinks, bus
    (the outbox relay's), JSON logs and ``/metrics`` come from
    :func:`~coinswarm.live.services.open_services` (the config's server URLs and
    ``metrics_port``), as for the paper daemon; pass ``services`` to share open ones (not closed here)."""
    from coinswarm.live.services import open_services

    own_services = services is None
    if own_services:
        services = await open_services(config, config.strategy.name, log_stream=log_stream)
    try:
        return await _run_venue(config, services, broker=broker, max_bars=max_bars, sleep=sleep, stop=stop)
    finally:
        if own_services:
            await services.close()


async def _run_venue(config: LiveConfig, services, *, broker, max_bars: int | None, sleep,
                     stop: asyncio.Event | None) -> VenueRunner:
    from coinswarm.data.validate import timeframe_ms
    from coinswarm.live.feeds import CcxtFeed

    spot_only(config.symbols, "the exchange daemon")
    own = broker is None
    broker = broker or build_broker(config)
    stepper = Stepper(config.strategy.name, config.symbols, config.strategy.params)
    settings = VenueSettings(stepper.name, int(timeframe_ms(config.timeframe)), config.broker.grace_ms, config.risk)
    venue = config.venue + (f"@{config.broker.api_url}" if config.broker.api_url else "")
    sleep = sleep or _capped_sleep()
    runner = VenueRunner(Ledger(config.servers.db), stepper, broker, settings, venue, sleep=sleep,
                         sinks=services.sinks, bus=services.bus, metrics=services.metrics, guard=services.guard)
    try:
        if own:
            await runner.read(broker.start)
        await runner.recover()
        if config.memory.enabled:
            await runner.attach_memory()
        stop = stop or signal_stop()
        feed = CcxtFeed(broker, config.symbols, config.timeframe, max_bars=max_bars,
                        after_ms=runner.last_time if runner.last_time >= 0 else None, sleep=sleep)
        if runner.last_time < 0:
            await _warm_up(runner, feed, await broker.server_time_ms())
            feed.last_ms = {s: runner.last_time if runner.last_time >= 0 else None for s in config.symbols}
        await runner.run(feed, stop)
    finally:
        if own:
            await broker.close()
        runner.ledger.close()
    return runner


async def _warm_up(runner: VenueRunner, feed, until_ms: int) -> None:
    """Step the strategy (and the memory proposer, if any) over its warm-up history (no
    trading), then checkpoint both in one transaction."""
    stepped = False
    bars = runner.stepper.warmup(runner.settings.step_ms)
    for t, group, closes in await warm_up_history(feed, runner.symbols, until_ms, bars,
                                                  runner.memory):
        if group:
            runner.stepper.decide([None if (b := group.get(s)) is None else
                                   Bar(b.time, b.open, b.high, b.low, b.close, b.volume) for s in runner.symbols],
                                  runner.settings.step_ms)
            runner.last_time, stepped = t, True
        if runner.memory is not None:  # memory proposals measure their features from this history too
            runner.memory.warm(t, closes, runner.stepper)
    if stepped:
        meta = {CHECKPOINT_KEY: {"time": runner.last_time, "strategy": runner.stepper.to_record(),
                                 "fills": runner._mark}}
        if runner.memory is not None:
            meta[runner.memory.meta_key] = runner.memory.record()
        await runner._db(bulk.commit_bars, runner.ledger, meta=meta, events=(), now_ms=until_ms)


def _capped_sleep():
    """asyncio.sleep, at most ``COINSWARM_LIVE_POLL_S`` seconds when set (poll at least that often)."""
    text = os.environ.get(POLL_ENV, "")
    try:
        cap = float(text) if text else None
    except ValueError:
        raise ConfigError(f"{POLL_ENV}={text!r} is not a number of seconds") from None
    if cap is not None and not (math.isfinite(cap) and cap > 0):
        raise ConfigError(f"{POLL_ENV}={text!r}: expected seconds > 0")

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds if cap is None else min(seconds, cap))

    return sleep


def venue_summary(ledger: Ledger, symbols: Sequence[str]) -> dict:
    """Orders by status and positions (for logs and tests)."""
    counts: dict[str, int] = {}
    for order in ledger.orders():
        counts[order.status.value] = counts.get(order.status.value, 0) + 1
    return {"orders": counts, "positions": {s: p.qty for s, p in ledger.positions().items() if s in symbols}}
