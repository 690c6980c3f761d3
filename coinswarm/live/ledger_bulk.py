"""The runner's batched writes to the :class:`~coinswarm.live.ledger.Ledger`: the same rows and
the same arithmetic as its one-at-a-time methods (``record_new``, ``transition`` to SENT,
``apply_fill``, ``record_bars``), in one transaction each and in SQLAlchemy Core statements
(executemany), so a replay books thousands of bars per second.

* :func:`record_new_many` — the bar's orders as ``NEW`` with their ``agent.action`` messages;
* :func:`mark_sent` — ``NEW`` → ``SENT`` before the venue is called;
* :func:`record_sent_many` — both in one transaction (a venue that cannot lose an order
  between them: the paper broker);
* :func:`commit_bars` — the crash-only checkpoint: fills (positions, cash, orders, their
  ``agent.trade`` messages), cash flows that are not fills (funding, interest, borrow fees, a
  bankrupt paper account's write-off: :func:`book_flows`), processed bars and latency samples,
  facts (the strategy's and the paper kernel's state), the kill switch and a deposit, all or
  nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select, update

from coinswarm.live.killswitch import KillState
from coinswarm.live.ledger import (
    BarRow,
    CashFlowRow,
    CashRow,
    FillRow,
    KillRow,
    LatencyRow,
    Ledger,
    LedgerError,
    MetaRow,
    OrderRow,
    OutboxRow,
    PositionRow,
    _check_fill,
    _check_flow,
    _check_intent,
    _fill_order,
    _finite,
    book_into,
    cash_flow_of,
    insert_ignoring,
    outbox_rows,
    split_symbol,
)
from coinswarm.live.outbox import action_message, trade_message
from coinswarm.live.protocols import CashFlow, Fill, OrderIntent, OrderStatus

_O, _B = OrderRow.__table__, BarRow.__table__
# built once: a statement's construction and cache key cost more than its execution on SQLite
_STATUS_OF = select(_O.c.client_order_id, _O.c.status).where(_O.c.client_order_id.in_(bindparam("ids", expanding=True)))
_INSERT_ORDERS = insert(_O)
_INSERT_OUTBOX: dict[str, object] = {}  # by dialect: insert_ignoring(live_outbox, msg_id)
_MARK_SENT = update(_O).where(_O.c.client_order_id.in_(bindparam("ids", expanding=True)),
                              _O.c.status == OrderStatus.NEW.value).values(
    status=OrderStatus.SENT.value, sent_ms=bindparam("now"), updated_ms=bindparam("now"))
_LAST_BARS = select(_B.c.symbol, _B.c.last_bar_time)
_MOVE_BARS = update(_B).where(_B.c.symbol == bindparam("sym")).values(
    last_bar_time=bindparam("last"), bars_processed=_B.c.bars_processed + bindparam("n"))
_INSERT_LATENCY = insert(LatencyRow.__table__)
WRITE_OFF_TOLERANCE = 1e-6  # relative; the tolerance recovery compares the ledger's cash with the kernel's by


def _outbox(conn, messages: Sequence, now_ms: int) -> None:
    """Queue ``messages``; an id already queued is skipped (a checkpoint retried after its
    commit's acknowledgement was lost writes its heartbeat once)."""
    if messages:
        dialect = conn.dialect.name
        statement = _INSERT_OUTBOX.get(dialect)
        if statement is None:
            statement = _INSERT_OUTBOX[dialect] = insert_ignoring(OutboxRow.__table__, dialect, "msg_id")
        conn.execute(statement, outbox_rows(messages, now_ms))


def record_new_many(ledger: Ledger, intents: Sequence[OrderIntent], now_ms: int) -> dict[str, OrderStatus]:
    """Store the intents not yet stored as ``NEW`` (with their ``agent.action`` messages) in one
    transaction; returns every intent's stored status."""
    for intent in intents:
        _check_intent(intent)
    ids = [i.client_order_id for i in intents]
    with ledger.engine.begin() as conn:
        have = {cid: OrderStatus(st) for cid, st in conn.execute(_STATUS_OF, {"ids": ids})}
        fresh = [i for i in intents if i.client_order_id not in have]
        if fresh:
            conn.execute(_INSERT_ORDERS, [
                {"client_order_id": i.client_order_id, "symbol": i.symbol, "side": i.side.value, "qty": float(i.qty),
                 "price": i.price, "status": OrderStatus.NEW.value, "bar_time": int(i.bar_time),
                 "strategy": i.strategy, "reduce_only": bool(i.reduce_only), "venue_order_id": None,
                 "filled_qty": 0.0, "avg_price": None, "reason": "", "created_ms": int(now_ms),
                 "updated_ms": int(now_ms), "sent_ms": None} for i in fresh])
            _outbox(conn, [action_message(i) for i in fresh], now_ms)
    return {cid: have.get(cid, OrderStatus.NEW) for cid in ids}


def record_sent_many(ledger: Ledger, intents: Sequence[OrderIntent], now_ms: int) -> dict[str, OrderStatus]:
    """:func:`record_new_many` then :func:`mark_sent` in **one** transaction: the intents not yet
    stored go in as ``SENT`` (with their ``agent.action`` messages), stored ``NEW`` ones move to
    ``SENT``; returns every intent's stored status. The write-ahead of one bar's orders for a
    venue that cannot lose an order between NEW and SENT (the in-process paper broker: what it
    was sent lives only in memory until the checkpoint books its fills, so NEW and SENT are
    resolved alike on recovery); the commit still precedes the venue call."""
    for intent in intents:
        _check_intent(intent)
    ids = [i.client_order_id for i in intents]
    now = int(now_ms)
    with ledger.engine.begin() as conn:
        have = {cid: OrderStatus(st) for cid, st in conn.execute(_STATUS_OF, {"ids": ids})}
        fresh = [i for i in intents if i.client_order_id not in have]
        if fresh:
            conn.execute(_INSERT_ORDERS, [
                {"client_order_id": i.client_order_id, "symbol": i.symbol, "side": i.side.value, "qty": float(i.qty),
                 "price": i.price, "status": OrderStatus.SENT.value, "bar_time": int(i.bar_time),
                 "strategy": i.strategy, "reduce_only": bool(i.reduce_only), "venue_order_id": None,
                 "filled_qty": 0.0, "avg_price": None, "reason": "", "created_ms": now,
                 "updated_ms": now, "sent_ms": now} for i in fresh])
            _outbox(conn, [action_message(i) for i in fresh], now)
        stale = [cid for cid, st in have.items() if st is OrderStatus.NEW]
        if stale:
            conn.execute(_MARK_SENT, {"ids": stale, "now": now})
    return {cid: OrderStatus.SENT if have.get(cid, OrderStatus.NEW) is OrderStatus.NEW else have[cid]
            for cid in ids}


def mark_sent(ledger: Ledger, client_order_ids: Sequence[str], now_ms: int) -> dict[str, OrderStatus]:
    """Move the ``NEW`` ones of these orders to ``SENT`` in one transaction (committed before the
    venue is called); the others keep their status. Returns every status."""
    ids = list(client_order_ids)
    with ledger.engine.begin() as conn:
        conn.execute(_MARK_SENT, {"ids": ids, "now": int(now_ms)})
        out = {cid: OrderStatus(st) for cid, st in conn.execute(_STATUS_OF, {"ids": ids})}
    missing = [cid for cid in ids if cid not in out]
    if missing:
        raise LedgerError(f"orders {missing} are not in the ledger")
    return out


def commit_bars(ledger: Ledger, *, fills: Sequence[Fill] = (), flows: Sequence[CashFlow] = (),
                bars: Sequence[tuple[str, int, float | None]] = (), meta: dict[str, dict] | None = None,
                kill: KillState | None = None, deposit: tuple[str, float] | None = None, events: Sequence = (),
                now_ms: int = 0) -> int:
    """The crash-only checkpoint in **one** transaction (see the module docstring), with outbox
    ``events`` (a heartbeat). Returns how many fills were new (a repeated ``fill_id`` changes
    nothing, as a repeated ``flow_id`` of ``flows``: :func:`book_flows`); on any error nothing
    is written."""
    for fill in fills:
        _check_fill(fill)
    for flow in flows:
        _check_flow(flow)
    with ledger.engine.begin() as conn:
        fresh = _book_fills(conn, fills, now_ms, _store_flows(conn, flows, now_ms))
        if deposit is not None:
            _deposit(conn, deposit[0], _finite("deposit", deposit[1]))
        _record_bar_batch(conn, bars, now_ms)
        _outbox(conn, events, now_ms)
        for key, value in (meta or {}).items():
            _upsert(conn, MetaRow.__table__, "key", key, {"value": dict(value)})
        if kill is not None:
            _upsert(conn, KillRow.__table__, "id", 1, {
                "halted": kill.halted, "reason": kill.reason, "detail": kill.detail[:1000], "since_ms": kill.since_ms,
                "peak_equity": kill.peak_equity, "day": kill.day, "day_start_equity": kill.day_start_equity,
                "updated_ms": int(now_ms)})
    return fresh


def _upsert(conn, table, key: str, value, columns: dict) -> None:
    moved = conn.execute(update(table).where(table.c[key] == value).values(**columns))
    if moved.rowcount == 0:
        conn.execute(insert(table).values(**{key: value}, **columns))


def _deposit(conn, currency: str, amount: float) -> None:
    table = CashRow.__table__
    row = conn.execute(select(table.c.amount).where(table.c.currency == currency)).first()
    _upsert(conn, table, "currency", currency, {"amount": (row[0] if row else 0.0) + amount})


def book_flows(conn, flows: Sequence[CashFlow], now_ms: int) -> int:
    """Store the ``flows`` (checked: ``_check_flow``) not stored yet and add their amounts, in
    time order, to the cash of their currencies, in ``conn``'s open transaction; returns how many
    were new. A ``write_off`` leaves its currency's cash at exactly 0 (the bankrupt kernel's)
    when the rest is rounding (:data:`WRITE_OFF_TOLERANCE`). A ``flow_id`` already stored (or
    repeated in ``flows``) with the same values changes nothing; with other values it raises
    :class:`LedgerError`: two flows sharing an id, the second would be lost and the ledger's
    cash would drift from the venue's."""
    fresh = _store_flows(conn, flows, now_ms)
    _book_fills(conn, (), now_ms, fresh)
    return len(fresh)


def _store_flows(conn, flows: Sequence[CashFlow], now_ms: int) -> list[CashFlow]:
    """Insert the flows not stored yet (see :func:`book_flows`); the new ones, cash not touched."""
    if not flows:
        return []
    unique: dict[str, CashFlow] = {}
    for flow in flows:
        flow = CashFlow(flow.flow_id, flow.currency, flow.kind, float(flow.amount), int(flow.time_ms))
        _same_flow(unique.setdefault(flow.flow_id, flow), flow)
    table = CashFlowRow.__table__
    for row in conn.execute(select(table).where(table.c.flow_id.in_(list(unique)))):
        _same_flow(cash_flow_of(row), unique.pop(row.flow_id))
    if unique:
        conn.execute(insert(table), [{"flow_id": f.flow_id, "currency": f.currency, "kind": f.kind,
                                      "amount": f.amount, "time_ms": f.time_ms, "recorded_ms": int(now_ms)}
                                     for f in unique.values()])
    return list(unique.values())


def _same_flow(stored: CashFlow, flow: CashFlow) -> None:
    if stored != flow:
        raise LedgerError(f"cash flow {flow.flow_id!r} is booked as {stored} but comes again as {flow}: two flows "
                          "share an id (make flow_id unique per flow, e.g. kind, symbol and bar time)")


def _book_fills(conn, fills: Sequence[Fill], now_ms: int, flows: Sequence[CashFlow] = ()) -> int:
    """Fills, their orders, positions and cash, with the arithmetic of ``Ledger.apply_fill``; the
    new cash ``flows`` (already stored) join the cash in time order with them (at one time, fills
    first), so the cash is the same sum of the same terms however the bars were checkpointed."""
    fresh = _fresh_fills(conn, fills)
    if not fresh and not flows:
        return 0
    orders, positions, cash = _load_books(conn, fresh, now_ms, {f.currency for f in flows})
    events = sorted([(f.time_ms, 0, k) for k, f in enumerate(fresh)] + [(f.time_ms, 1, k) for k, f in enumerate(flows)])
    for _, is_flow, k in events:
        if is_flow:
            _book_flow(cash[flows[k].currency], flows[k])
            continue
        fill = fresh[k]
        order = orders.get(fill.client_order_id)
        if order is None:
            raise LedgerError(f"order {fill.client_order_id!r} is not in the ledger")
        if (order.symbol, order.side) != (fill.symbol, fill.side.value):
            raise LedgerError(f"fill {fill.fill_id}: {fill.side.value} {fill.symbol} does not match order "
                              f"{order.client_order_id} ({order.side} {order.symbol})")
        _fill_order(order, fill, now_ms)
        book_into(positions[fill.symbol], cash[split_symbol(fill.symbol)[1]], fill, now_ms)
    if fresh:
        conn.execute(insert(FillRow.__table__), [
            {"fill_id": f.fill_id, "client_order_id": f.client_order_id, "symbol": f.symbol, "side": f.side.value,
             "qty": f.qty, "price": f.price, "fee": f.fee, "fee_currency": f.fee_currency,
             "time_ms": int(f.time_ms), "recorded_ms": int(now_ms)} for f in fresh])
    _write_books(conn, orders, positions, cash)
    _outbox(conn, [trade_message(f) for f in fresh], now_ms)
    return len(fresh)


def _book_flow(account, flow: CashFlow) -> None:
    """Add ``flow`` to ``account``'s cash. A ``write_off`` closes a bankrupt account: the kernel's
    cash is exactly 0 after it, so a residue within :data:`WRITE_OFF_TOLERANCE` of the deficit
    (the rounding of the ledger's and the kernel's sums of the same fills, in another order) is
    written off with it; a larger one is left for recovery to report (``reconcile``)."""
    after = account.amount + flow.amount
    if flow.kind == "write_off" and abs(after) <= WRITE_OFF_TOLERANCE * max(1.0, abs(flow.amount)):
        after = 0.0
    account.amount = after


def _fresh_fills(conn, fills: Sequence[Fill]) -> list[Fill]:
    """The fills not stored yet (each once)."""
    if not fills:
        return []
    known = {r[0] for r in conn.execute(select(FillRow.fill_id).where(FillRow.fill_id.in_([f.fill_id for f in fills])))}
    fresh, seen = [], set(known)
    for fill in fills:
        if fill.fill_id not in seen:
            seen.add(fill.fill_id)
            fresh.append(fill)
    return fresh


def _load_books(conn, fills: Sequence[Fill], now_ms: int, currencies=frozenset()) -> tuple[dict, dict, dict]:
    ot, pt, ct = OrderRow.__table__, PositionRow.__table__, CashRow.__table__
    cids = sorted({f.client_order_id for f in fills})
    symbols = sorted({f.symbol for f in fills})
    quotes = sorted({split_symbol(s)[1] for s in symbols} | set(currencies))
    orders = {r.client_order_id: SimpleNamespace(**r._mapping)
              for r in conn.execute(select(ot).where(ot.c.client_order_id.in_(cids)))}
    positions = {r.symbol: SimpleNamespace(**r._mapping, stored=True)
                 for r in conn.execute(select(pt).where(pt.c.symbol.in_(symbols)))}
    for s in symbols:
        positions.setdefault(s, SimpleNamespace(symbol=s, qty=0.0, cost=0.0, baseline=None, updated_ms=int(now_ms),
                                                stored=False))
    cash = {r.currency: SimpleNamespace(**r._mapping, stored=True)
            for r in conn.execute(select(ct).where(ct.c.currency.in_(quotes)))}
    for q in quotes:
        cash.setdefault(q, SimpleNamespace(currency=q, amount=0.0, stored=False))
    return orders, positions, cash


def _write_books(conn, orders: dict, positions: dict, cash: dict) -> None:
    ot, pt, ct = OrderRow.__table__, PositionRow.__table__, CashRow.__table__
    if orders:
        conn.execute(update(ot).where(ot.c.client_order_id == bindparam("cid")).values(
            status=bindparam("st"), filled_qty=bindparam("fq"), avg_price=bindparam("ap"), reason=bindparam("rs"),
            updated_ms=bindparam("um")), [
            {"cid": o.client_order_id, "st": o.status, "fq": o.filled_qty, "ap": o.avg_price, "rs": o.reason,
             "um": o.updated_ms} for o in orders.values()])
    for p in positions.values():
        values = {"qty": p.qty, "cost": p.cost, "updated_ms": p.updated_ms}
        if p.stored:
            conn.execute(update(pt).where(pt.c.symbol == p.symbol).values(**values))
        else:
            conn.execute(insert(pt).values(symbol=p.symbol, baseline=p.baseline, **values))
    for c in cash.values():
        if c.stored:
            conn.execute(update(ct).where(ct.c.currency == c.currency).values(amount=c.amount))
        else:
            conn.execute(insert(ct).values(currency=c.currency, amount=c.amount))


def _record_bar_batch(conn, bars: Sequence[tuple[str, int, float | None]], now_ms: int) -> None:
    """Many bars: one statement per symbol and one insert of every latency sample. Bars not after
    a symbol's stored last bar are not counted (as ``Ledger.record_bar``)."""
    stored = {r.symbol: r.last_bar_time for r in conn.execute(_LAST_BARS)}
    counts: dict[str, tuple[int, int]] = {}
    samples = []
    floor = -(2**62)
    for symbol, bar_time, latency in bars:
        if bar_time <= stored.get(symbol, floor) or bar_time <= counts.get(symbol, (floor, 0))[0]:
            continue
        counts[symbol] = (int(bar_time), counts.get(symbol, (0, 0))[1] + 1)
        if latency is not None:
            samples.append({"time_ms": int(now_ms), "micros": _finite("latency_us", latency)})
    for symbol, (last, n) in counts.items():
        if symbol in stored:
            conn.execute(_MOVE_BARS, {"sym": symbol, "last": last, "n": n})
        else:
            conn.execute(insert(_B).values(symbol=symbol, last_bar_time=last, bars_processed=n))
    if samples:
        conn.execute(_INSERT_LATENCY, samples)
