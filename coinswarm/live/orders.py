"""The order state machine, the write-ahead submit path, and start-up reconciliation.

Legal transitions (:data:`TRANSITIONS`; a transition to the same status is an idempotent
no-op, anything else raises :class:`OrderStateError`)::

    NEW     → SENT | CANCELED (dropped, never sent)
    SENT    → OPEN | FILLED | UNKNOWN | REJECTED | CANCELED | EXPIRED
    UNKNOWN → OPEN | FILLED | REJECTED | CANCELED | EXPIRED     (never back to NEW/SENT)
    OPEN    → FILLED | CANCELED | EXPIRED
    FILLED, CANCELED, REJECTED, EXPIRED: final

Write-ahead (:func:`submit`): the order is stored ``NEW``; ``SENT`` is committed **before**
the request leaves; the reply moves it on. So after a crash a ``NEW`` order was provably
never sent, and a ``SENT`` one may or may not have reached the venue. A submit that times out
or whose reply is unreadable is ``UNKNOWN`` — never resubmitted.

:func:`reconcile` is start-up (recovery), run before any new decision:

1. Mass status: the venue's open orders, its fills since ``min(last stored fill, oldest
   in-flight order)`` (at-or-after: repeats are de-duplicated by ``fill_id``) and its
   balances — read as balances → fills → balances, repeated until the two balance reads
   agree, so a fill landing in between cannot look like a position difference.
2. Fills of our orders are applied (idempotent); a fill of an order the ledger does not
   know is *unexplained* — except one the venue could not name because it still answers
   "order does not exist" (Binance's lag): :func:`owner_of` gives it to the stored order of
   its venue id, or to the one in-flight order it can only belong to (the trade history is
   the truth), never by a guess between several.
3. Each in-flight order (NEW, SENT, UNKNOWN, OPEN):

   * ``NEW`` (never sent): **sent** if it is at most ``new_max_age_ms`` old (by ``now_ms``
     — the replay clock in a replay), the stored kill switch lets it pass (while halted only
     a reduction does) and ``may_send`` allows it, else **dropped** (``CANCELED``, reason
     "never sent"). Sending keeps its client order id,
     which is safe because it never left.
   * otherwise the venue's view (open orders, else a query by client order id) sets the
     status. "Does not exist" within ``grace_ms`` of sending keeps it in flight (``SENT``
     becomes ``UNKNOWN``); after the grace the trade history decides: fully filled →
     ``FILLED``, partly → ``CANCELED``, none → ``REJECTED`` (never acknowledged) or
     ``EXPIRED`` (acknowledged once, then gone). A venue error leaves it in flight
     (``unresolved``: run reconcile again).
4. An open order at the venue that the ledger does not know, or a base-asset balance that
   differs from the ledger's position (plus the untraded baseline adopted at the first
   reconcile) by more than ``tolerance`` is unexplained: reconcile **fails closed** —
   the kill switch is set (reason ``reconcile``, with why) and trading stops until a human
   resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from coinswarm.errors import CoinswarmError, OrderRejectedError, VenueError
from coinswarm.live.killswitch import filter_intents
from coinswarm.live.protocols import Balance, Broker, Fill, OrderIntent, OrderStatus, Side, VenueOrder

if TYPE_CHECKING:
    from coinswarm.live.ledger import Ledger

S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.SENT, S.CANCELED}),
    S.SENT: frozenset({S.OPEN, S.FILLED, S.UNKNOWN, S.REJECTED, S.CANCELED, S.EXPIRED}),
    S.UNKNOWN: frozenset({S.OPEN, S.FILLED, S.REJECTED, S.CANCELED, S.EXPIRED}),
    S.OPEN: frozenset({S.FILLED, S.CANCELED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


class OrderStateError(CoinswarmError, ValueError):
    """An illegal order transition (names the order, from and to, and what is legal)."""


def check_transition(client_order_id: str, old: OrderStatus, new: OrderStatus) -> None:
    """Raise :class:`OrderStateError` unless ``old → new`` is legal (or ``old == new``)."""
    if old is new or new in TRANSITIONS[old]:
        return
    legal = ", ".join(sorted(s.value for s in TRANSITIONS[old])) or "nothing (final)"
    raise OrderStateError(f"order {client_order_id}: {old.value} → {new.value} is not a legal transition; "
                          f"from {old.value} only: {legal}")


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the ledger holds it."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float | None
    status: OrderStatus
    bar_time: int
    strategy: str
    reduce_only: bool
    venue_order_id: str | None
    filled_qty: float
    avg_price: float | None
    reason: str
    created_ms: int
    updated_ms: int
    sent_ms: int | None

    def intent(self) -> OrderIntent:
        """The intent this order was stored from."""
        return OrderIntent(self.client_order_id, self.symbol, self.side, self.qty, self.bar_time, self.strategy,
                           self.price, self.reduce_only)


# -- the write-ahead submit path ----------------------------------------------------------
async def submit(ledger: Ledger, broker: Broker, intent: OrderIntent, now_ms: int,
                 events: Sequence = ()) -> StoredOrder:
    """Store ``intent`` as NEW (with ``events``), then send it; an id already beyond NEW is
    returned as stored and **not** sent again (a restart re-deciding a bar sends nothing new)."""
    ledger.record_new(intent, now_ms, events)
    stored = ledger.order(intent.client_order_id)
    if stored is None or stored.status is not OrderStatus.NEW:
        return stored
    return await send_new(ledger, broker, stored, now_ms)


async def send_new(ledger: Ledger, broker: Broker, order: StoredOrder, now_ms: int) -> StoredOrder:
    """Send a NEW order: ``SENT`` is committed first; the reply (or its absence) moves it on.
    A definite refusal → REJECTED; a timeout, a rate limit or an unreadable reply → UNKNOWN
    (reconciliation resolves it); any other exception → UNKNOWN and re-raised."""
    cid = order.client_order_id
    ledger.transition(cid, OrderStatus.SENT, now_ms)
    try:
        venue = await broker.submit(order.intent())
    except OrderRejectedError as exc:
        return ledger.transition(cid, OrderStatus.REJECTED, now_ms, reason=f"rejected: {exc.problem}")
    except VenueError as exc:
        return ledger.transition(cid, OrderStatus.UNKNOWN, now_ms, reason=f"{type(exc).__name__}: {exc.problem}")
    except BaseException as exc:
        ledger.transition(cid, OrderStatus.UNKNOWN, now_ms, reason=f"submit interrupted: {type(exc).__name__}")
        raise
    return apply_venue(ledger, order, venue, now_ms)


def apply_venue(ledger: Ledger, order: StoredOrder, venue: VenueOrder, now_ms: int) -> StoredOrder:
    """Move ``order`` to the status the venue reports (NEW/SENT/UNKNOWN from a venue read as OPEN)."""
    target = venue.status if venue.status.final or venue.status is OrderStatus.OPEN else OrderStatus.OPEN
    return ledger.transition(order.client_order_id, target, now_ms, venue_order_id=venue.venue_order_id)


# -- reconciliation -------------------------------------------------------------------------
@dataclass
class ReconcileReport:
    """What :func:`reconcile` did and found."""

    resolved: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    unresolved: dict[str, str] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    fills_applied: int = 0
    fills_duplicate: int = 0
    adopted: dict[str, float] = field(default_factory=dict)
    attributed: dict[str, str] = field(default_factory=dict)
    booked: list[Fill] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    halted: bool = False

    @property
    def settled(self) -> bool:
        """Every in-flight order resolved (none waiting out its grace, none unreadable) and no halt."""
        return not (self.pending or self.unresolved or self.halted)


async def reconcile(ledger: Ledger, broker: Broker, symbols: Sequence[str], now_ms: int, grace_ms: int, *,
                    new_max_age_ms: int = 0, may_send: Callable[[StoredOrder], bool] | None = None,
                    tolerance: float = 1e-8, attempts: int = 3) -> ReconcileReport:
    """Recover: bring the ledger in line with the venue, or halt saying why (module docstring).

    Parameters
    ----------
    ledger, broker
        The book and the venue.
    symbols : sequence of str
        The runner's symbols (orders, fills and balances of others are not looked at).
    now_ms, grace_ms : int
        The time now and how long "does not exist" after sending keeps an order in flight.
    new_max_age_ms : int
        A never-sent NEW order at most this old is sent, older ones are dropped (0: drop all).
    may_send : callable, optional
        Extra veto for sending a NEW order (the stored kill switch is always applied); a
        vetoed order is dropped.
    tolerance : float
        Largest base-asset difference (units) between venue and ledger taken as equal.
    attempts : int
        Balance → fills → balance reads until two balance reads agree.
    """
    symbols = list(symbols)
    report = ReconcileReport()
    in_flight = [o for o in ledger.in_flight() if o.symbol in symbols]
    venue_open = {o.client_order_id: o for o in await broker.open_orders(symbols)}
    balances = await _sync_fills(ledger, broker, symbols, in_flight, now_ms, attempts, report)
    for order in in_flight:
        if order.status is not OrderStatus.NEW:
            await _resolve(ledger, broker, order, venue_open.get(order.client_order_id), now_ms, grace_ms, report)
    known = {o.client_order_id for o in ledger.orders()}
    report.unexplained += [f"the venue holds open order {cid} ({o.symbol}) that the ledger does not know"
                           for cid, o in venue_open.items() if cid not in known]
    if balances is not None:
        _check_positions(ledger, symbols, balances, tolerance, now_ms, report)
    if report.unexplained:
        ledger.halt("reconcile", "; ".join(report.unexplained)[:1000], now_ms)
        report.halted = True
    for order in in_flight:
        if order.status is OrderStatus.NEW:
            await _resolve_new(ledger, broker, order, now_ms, new_max_age_ms, may_send, report)
    return report


async def _sync_fills(ledger: Ledger, broker: Broker, symbols: list[str], in_flight: list[StoredOrder], now_ms: int,
                      attempts: int, report: ReconcileReport) -> dict[str, Balance] | None:
    """Apply the venue's fills; the balances read consistently around them (None if they
    kept moving: then the position check is skipped and that is unexplained)."""
    starts = [t for t in [ledger.last_fill_time(), *(o.created_ms for o in in_flight)] if t is not None]
    since = min(starts) if starts else 0
    for _ in range(max(1, attempts)):
        before = await broker.balances()
        fills = await broker.fills_since(symbols, since)
        after = await broker.balances()
        _apply_fills(ledger, fills, symbols, now_ms, report)
        if _same_balances(before, after):
            return after
    report.unexplained.append(f"balances kept changing over {attempts} reads; positions not verified")
    return None


def _apply_fills(ledger: Ledger, fills: list[Fill], symbols: list[str], now_ms: int, report: ReconcileReport) -> None:
    for fill in sorted(fills, key=lambda f: (f.time_ms, f.fill_id)):
        if fill.symbol not in symbols:
            continue
        owner = owner_of(ledger, fill, now_ms)
        if owner is not None and owner != fill.client_order_id:
            report.attributed[fill.fill_id] = owner
            fill = replace(fill, client_order_id=owner)
        if owner is None:
            note = f"fill {fill.fill_id} ({fill.side.value} {fill.qty} {fill.symbol}) belongs to order " \
                   f"{fill.client_order_id!r}, unknown to the ledger"
            if note not in report.unexplained:
                report.unexplained.append(note)
            continue
        if ledger.apply_fill(fill, now_ms):
            report.fills_applied += 1
            report.booked.append(fill)
        else:
            report.fills_duplicate += 1


FOREIGN = "venue-"  # the client id a broker gives a fill whose order the venue cannot name (yet)


def owner_of(ledger: Ledger, fill: Fill, now_ms: int, skew_ms: int = 60_000) -> str | None:
    """The client id of the stored order ``fill`` belongs to, or None (unexplained).

    A fill named ``venue-<order id>`` is one whose order the venue answered "does not exist"
    for (Binance may, for minutes after a submit; its trade history is the truth): it belongs
    to the stored order of that venue id, else to the **only** in-flight order without a venue
    id (its reply was lost) of the same symbol and side, sent before the fill (``skew_ms``
    allowed) and with at least the fill's quantity left — which then gets the venue id. Two
    such candidates are ambiguous: None (the reconciliation halts; never guessed).
    """
    cid = fill.client_order_id
    if ledger.order(cid) is not None:
        return cid
    if not cid.startswith(FOREIGN):
        return None
    venue_id = cid[len(FOREIGN):]
    known = ledger.order_by_venue_id(venue_id)
    if known is not None:
        return known.client_order_id
    left = [o for o in ledger.in_flight()
            if o.symbol == fill.symbol and o.side is fill.side and not o.venue_order_id
            and o.status in (OrderStatus.SENT, OrderStatus.UNKNOWN) and o.created_ms - skew_ms <= fill.time_ms
            and o.qty - o.filled_qty >= fill.qty * (1 - 1e-9)]
    if len(left) != 1:
        return None
    ledger.transition(left[0].client_order_id, left[0].status, now_ms, venue_order_id=venue_id)
    return left[0].client_order_id


def _same_balances(a: dict[str, Balance], b: dict[str, Balance]) -> bool:
    return {k: v.total for k, v in a.items()} == {k: v.total for k, v in b.items()}


async def _resolve(ledger: Ledger, broker: Broker, order: StoredOrder, venue: VenueOrder | None, now_ms: int,
                   grace_ms: int, report: ReconcileReport) -> None:
    """Settle one SENT/UNKNOWN/OPEN order from the venue's view, or keep it in flight."""
    cid = order.client_order_id
    if venue is None:
        try:
            venue = await broker.order_status(cid, order.symbol)
        except VenueError as exc:
            report.unresolved[cid] = f"{type(exc).__name__}: {exc.problem}"
            if order.status is OrderStatus.SENT:
                ledger.transition(cid, OrderStatus.UNKNOWN, now_ms, reason="status query failed at recovery")
            return
    order = ledger.order(cid) or order  # fills applied above may have moved it
    try:
        if venue is not None:
            stored = apply_venue(ledger, order, venue, now_ms) if not order.status.final else order
        else:
            stored = _missing(ledger, order, now_ms, grace_ms, report)
    except OrderStateError as exc:
        report.unexplained.append(str(exc))
        return
    if stored is not None:
        report.resolved[cid] = stored.status.value


def _missing(ledger: Ledger, order: StoredOrder, now_ms: int, grace_ms: int,
             report: ReconcileReport) -> StoredOrder | None:
    """The venue says the order does not exist: wait out the grace, then ask the trade history."""
    cid = order.client_order_id
    if order.status.final:
        return order
    since = order.sent_ms if order.sent_ms is not None else order.updated_ms
    if now_ms - since < grace_ms:
        if order.status is OrderStatus.SENT:
            ledger.transition(cid, OrderStatus.UNKNOWN, now_ms, reason="venue: does not exist (within grace)")
        report.pending.append(cid)
        return None
    if order.filled_qty > 0:  # fills known: it existed; what was not filled is gone
        return ledger.transition(cid, OrderStatus.CANCELED, now_ms,
                                 reason=f"gone from the venue after {order.filled_qty:g} of {order.qty:g} filled")
    gone = OrderStatus.EXPIRED if order.venue_order_id or order.status is OrderStatus.OPEN else OrderStatus.REJECTED
    return ledger.transition(cid, gone, now_ms, reason=f"not at the venue {grace_ms} ms after sending and no trades")


async def _resolve_new(ledger: Ledger, broker: Broker, order: StoredOrder, now_ms: int, new_max_age_ms: int,
                       may_send: Callable[[StoredOrder], bool] | None, report: ReconcileReport) -> None:
    """A NEW order was never sent: send it while fresh and allowed, else drop it."""
    cid = order.client_order_id
    fresh = now_ms - order.created_ms <= new_max_age_ms
    positions = {s: p.qty for s, p in ledger.positions().items()}
    passes_switch = bool(filter_intents([order.intent()], positions, ledger.kill_state())[0])
    allowed = not report.halted and passes_switch and (may_send is None or may_send(order))
    if fresh and allowed:
        try:
            stored = await send_new(ledger, broker, order, now_ms)
        except Exception as exc:  # noqa: BLE001 — recorded as UNKNOWN by send_new
            report.unresolved[cid] = f"send at recovery: {type(exc).__name__}"
            return
        report.sent.append(cid)
        report.resolved[cid] = stored.status.value
        if stored.status is OrderStatus.UNKNOWN:
            report.pending.append(cid)
        return
    why = "too old" if not fresh else "halted" if report.halted or not passes_switch else "vetoed"
    ledger.transition(cid, OrderStatus.CANCELED, now_ms, reason=f"never sent; dropped at recovery ({why})")
    report.dropped.append(cid)
    report.resolved[cid] = OrderStatus.CANCELED.value


def _check_positions(ledger: Ledger, symbols: list[str], balances: dict[str, Balance], tolerance: float,
                     now_ms: int, report: ReconcileReport) -> None:
    """Compare each base asset's venue balance with the ledger's positions plus baseline."""
    from coinswarm.live.ledger import split_symbol

    positions = ledger.positions()
    by_base: dict[str, list[str]] = {}
    for symbol in sorted(symbols):
        by_base.setdefault(split_symbol(symbol)[0], []).append(symbol)
    for base, members in by_base.items():
        venue = balances[base].total if base in balances else 0.0
        held = [positions.get(s) for s in members]
        ours = sum(p.qty for p in held if p is not None)
        if all(p is None or p.baseline is None for p in held):
            ledger.set_baseline(members[0], venue - ours, now_ms)
            report.adopted[base] = venue - ours
            continue
        expected = ours + sum(p.baseline or 0.0 for p in held if p is not None)
        if abs(venue - expected) > tolerance:
            report.unexplained.append(f"{base}: the venue holds {venue:.10g}, the ledger expects {expected:.10g} "
                                      f"(difference {venue - expected:+.10g}) — unexplained position difference")
