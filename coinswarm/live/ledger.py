"""The live ledger: the runner's crash-only book of orders, fills, positions, cash, equity, bars,
decision latency, kill-switch state, the run's mode, the cash flows that are not fills
(funding, interest, borrow fees, a bankrupt paper account's write-off) and the outbox — SQLAlchemy 2 over SQLite
(embedded default) or PostgreSQL, schema by the Alembic environment in ``live/migrations``
(its own version table, ``alembic_version_live``; every table is prefixed ``live_``, so it can
share a database with the memory store).

Write-ahead discipline: an order is stored as ``NEW`` (:meth:`Ledger.record_new`) before
anything is sent, and every later change — a transition, a fill with its position, cash and
order update, a bar, a kill-switch change — is **one transaction** together with the outbox
messages that report it. A fill's ``fill_id`` is its primary key: a repeated report changes
nothing (:meth:`Ledger.apply_fill` returns False); so does a repeated ``flow_id`` of a
:class:`~coinswarm.live.protocols.CashFlow` (:meth:`Ledger.book_flow`).

Accounting: a position holds ``qty`` (base units, signed) and ``cost`` (quote spent: buys add
``qty × price``, sells subtract it, quote fees add), both plain sums, so the mark-to-market PnL
``qty × mark − cost`` does not depend on the order in which fills arrive. A fee in the base
asset reduces ``qty``; a fee in a third asset (BNB) is recorded with its fill only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from coinswarm.adapters.sql import open_database
from coinswarm.errors import CoinswarmError
from coinswarm.live.killswitch import KillState
from coinswarm.live.killswitch import halt as halted_state
from coinswarm.live.orders import StoredOrder, check_transition
from coinswarm.live.outbox import OutboxMessage, action_message, trade_message
from coinswarm.live.protocols import CASH_FLOW_KINDS, CashFlow, Fill, OrderIntent, OrderStatus, Side

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0002"  # the newest of migrations/versions (a unit test holds it to Alembic's head)
VERSION_TABLE = "alembic_version_live"
MODES = ("paper", "replay", "live")
IN_FLIGHT = (OrderStatus.NEW, OrderStatus.SENT, OrderStatus.UNKNOWN, OrderStatus.OPEN)
FILL_TOLERANCE = 1e-9


class LedgerError(CoinswarmError, ValueError):
    """The ledger refuses a write (unknown order, inconsistent fill, a db of another mode)."""


class LiveBase(DeclarativeBase):
    """Declarative base of the live tables (a metadata of their own)."""


class OrderRow(LiveBase):
    """One order, keyed by its deterministic client order id."""

    __tablename__ = "live_orders"
    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[float] = mapped_column(Float)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    bar_time: Mapped[int] = mapped_column(BigInteger)
    strategy: Mapped[str] = mapped_column(String(64))
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False)
    venue_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filled_qty: Mapped[float] = mapped_column(Float, default=0.0)
    avg_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(String(400), default="")
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    sent_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class FillRow(LiveBase):
    """One execution; ``fill_id`` (the venue's trade id) makes a repeated report a no-op."""

    __tablename__ = "live_fills"
    fill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(64), index=True)
    symbol: Mapped[str] = mapped_column(String(40))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    fee_currency: Mapped[str] = mapped_column(String(16))
    time_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)


class PositionRow(LiveBase):
    """Net position of one symbol (see the module docstring); ``baseline`` is the venue's
    balance of the base asset that the runner did not trade (adopted at the first reconcile)."""

    __tablename__ = "live_positions"
    symbol: Mapped[str] = mapped_column(String(40), primary_key=True)
    qty: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    baseline: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class CashRow(LiveBase):
    """Cash of one quote currency."""

    __tablename__ = "live_cash"
    currency: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[float] = mapped_column(Float, default=0.0)


class CashFlowRow(LiveBase):
    """A cash movement that is not a fill (funding, interest, borrow fee, write-off); ``flow_id``
    makes a repeated booking a no-op."""

    __tablename__ = "live_cash_flows"
    flow_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    currency: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[float] = mapped_column(Float)
    time_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    recorded_ms: Mapped[int] = mapped_column(BigInteger)


class EquityRow(LiveBase):
    """An equity snapshot (mark to market)."""

    __tablename__ = "live_equity"
    time_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    equity: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)


class BarRow(LiveBase):
    """The last closed bar processed per symbol, and how many."""

    __tablename__ = "live_bars"
    symbol: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_bar_time: Mapped[int] = mapped_column(BigInteger)
    bars_processed: Mapped[int] = mapped_column(BigInteger, default=0)


class LatencyRow(LiveBase):
    """One decision latency sample (closed bar → order decision), microseconds."""

    __tablename__ = "live_latency"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    micros: Mapped[float] = mapped_column(Float)


class KillRow(LiveBase):
    """The kill-switch state (one row, id 1)."""

    __tablename__ = "live_killswitch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    halted: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(String(1000), default="")
    since_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    peak_equity: Mapped[float | None] = mapped_column(Float, nullable=True)
    day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    day_start_equity: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class MetaRow(LiveBase):
    """Key/value facts about the run (``mode``, ``venue``, ``reconciled``)."""

    __tablename__ = "live_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)


class OutboxRow(LiveBase):
    """A message waiting for (or past) publication; ``msg_id`` de-duplicates."""

    __tablename__ = "live_outbox"
    __table_args__ = (Index("ix_live_outbox_pending", "published_ms", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    msg_id: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    published_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


@dataclass(frozen=True, slots=True)
class Position:
    """A symbol's net position: ``pnl(mark) = qty × mark − cost``."""

    symbol: str
    qty: float
    cost: float
    baseline: float | None = None

    def pnl(self, mark: float) -> float:
        """Mark-to-market PnL at ``mark`` (realized and unrealized together, fees included)."""
        return self.qty * mark - self.cost


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter: only the live tables (never the memory store's, owned by another environment)."""
    if type_ == "table":
        return name.startswith("live_")
    table = getattr(obj, "table", None)
    return table is None or table.name.startswith("live_")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``("BTC", "USDT")`` of ``"BTC/USDT"`` (or of the perpetual ``"BTC/USDT:USDT"``)."""
    base, sep, rest = symbol.partition("/")
    if not sep or not base or not rest:
        raise LedgerError(f"symbol {symbol!r} is not BASE/QUOTE (e.g. 'BTC/USDT')")
    return base, rest.split(":", 1)[0]


# synchronous=NORMAL under WAL: durable across a process crash (SIGKILL), not a power cut
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000")


def _finite(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise LedgerError(f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return float(value)


def _stored(row: OrderRow) -> StoredOrder:
    return StoredOrder(row.client_order_id, row.symbol, Side(row.side), row.qty, row.price, OrderStatus(row.status),
                       row.bar_time, row.strategy, row.reduce_only, row.venue_order_id, row.filled_qty, row.avg_price,
                       row.reason, row.created_ms, row.updated_ms, row.sent_ms)


def _fill(row: FillRow) -> Fill:
    return Fill(row.fill_id, row.client_order_id, row.symbol, Side(row.side), row.qty, row.price, row.fee,
                row.fee_currency, row.time_ms)


def cash_flow_of(row) -> CashFlow:
    """The :class:`~coinswarm.live.protocols.CashFlow` of a ``live_cash_flows`` row."""
    return CashFlow(row.flow_id, row.currency, row.kind, row.amount, row.time_ms)


class Ledger:
    """The runner's book (one instance per process: it owns a connection pool).

    Parameters
    ----------
    url : str
        ``sqlite:///file.db`` (embedded) or ``postgresql+psycopg://user:pw@host/db``.
    """

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.engine, self.sessions = open_database(url, "ledger", SQLITE_PRAGMAS, **engine_kwargs)
        self.url = url

    def migrate(self, revision: str = "head") -> None:
        """Bring the live tables to ``revision`` with the live Alembic environment (on PostgreSQL
        under an advisory lock, so processes starting together migrate one at a time). A database
        already at :data:`HEAD_REVISION` is left as is without importing Alembic (a faster start)."""
        if revision in ("head", HEAD_REVISION) and self.revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(7202618)"))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def revision(self) -> str | None:
        """The Alembic revision stored in the database (None: never migrated)."""
        from sqlalchemy import inspect

        with self.engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return None
            return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()

    def close(self) -> None:
        """Dispose of the pool."""
        self.engine.dispose()

    # -- mode ------------------------------------------------------------------------
    def claim(self, mode: str, venue: str) -> None:
        """Bind this database to one ``mode`` (paper | replay | live) and venue on first use, and
        refuse any other later: a live run refuses a db holding paper or replay history (and a
        paper run refuses a live db)."""
        if mode not in MODES:
            raise LedgerError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        with self.sessions.begin() as s:
            stored = s.get(MetaRow, "mode")
            if stored is None:
                history = s.scalar(select(OrderRow.client_order_id).limit(1))
                if history is not None and mode == "live":
                    raise LedgerError(f"{self._safe_url()}: holds orders but no mode; a live run needs a fresh db")
                s.add(MetaRow(key="mode", value={"mode": mode, "venue": venue}))
                return
            have = stored.value
            if (have.get("mode"), have.get("venue")) != (mode, venue):
                raise LedgerError(f"{self._safe_url()} holds {have.get('mode')} history on {have.get('venue')!r}; a "
                                  f"{mode} run on {venue!r} needs its own database (paper/replay and live never mix)")

    def mode(self) -> dict | None:
        """``{"mode": ..., "venue": ...}`` or None for a fresh db."""
        with self.sessions() as s:
            row = s.get(MetaRow, "mode")
            return None if row is None else dict(row.value)

    def _safe_url(self) -> str:
        from coinswarm.live.config import mask_url

        return mask_url(self.url)

    def get_meta(self, key: str) -> dict | None:
        """A stored fact (None if absent)."""
        with self.sessions() as s:
            row = s.get(MetaRow, key)
            return None if row is None else dict(row.value)

    def set_meta(self, key: str, value: dict) -> None:
        """Store a fact (one transaction)."""
        with self.sessions.begin() as s:
            s.merge(MetaRow(key=key, value=dict(value)))

    # -- orders ----------------------------------------------------------------------
    def record_new(self, intent: OrderIntent, now_ms: int, events: Sequence[OutboxMessage] = ()) -> bool:
        """Store ``intent`` as ``NEW`` (before it is sent), with its ``agent.action`` message and
        ``events``, in one transaction. False (and nothing written) when the id already exists:
        a re-decided bar sends nothing new."""
        _check_intent(intent)
        row = OrderRow(client_order_id=intent.client_order_id, symbol=intent.symbol, side=intent.side.value,
                       qty=float(intent.qty), price=intent.price, status=OrderStatus.NEW.value,
                       bar_time=int(intent.bar_time), strategy=intent.strategy, reduce_only=bool(intent.reduce_only),
                       venue_order_id=None, filled_qty=0.0, avg_price=None, reason="", created_ms=int(now_ms),
                       updated_ms=int(now_ms), sent_ms=None)
        try:
            with self.sessions.begin() as s:
                if s.get(OrderRow, intent.client_order_id) is not None:
                    return False
                s.add(row)
                s.flush()
                _enqueue(s, [action_message(intent), *events], now_ms)
        except IntegrityError:
            return False
        return True

    def transition(self, client_order_id: str, status: OrderStatus, now_ms: int, *, venue_order_id: str | None = None,
                   reason: str | None = None, events: Sequence[OutboxMessage] = ()) -> StoredOrder:
        """Move an order to ``status`` (legal transitions only: :func:`~coinswarm.live.orders.check_transition`
        raises :class:`~coinswarm.live.orders.OrderStateError`), in one transaction with ``events``."""
        status = OrderStatus(status)
        with self.sessions.begin() as s:
            row = self._order_row(s, client_order_id)
            check_transition(client_order_id, OrderStatus(row.status), status)
            if status is OrderStatus.SENT and row.sent_ms is None:
                row.sent_ms = int(now_ms)
            if status is not OrderStatus(row.status):
                row.status, row.updated_ms = status.value, int(now_ms)
            if venue_order_id:
                row.venue_order_id = str(venue_order_id)
            if reason is not None:
                row.reason = str(reason)[:400]
            _enqueue(s, events, now_ms)
            return _stored(row)

    def _order_row(self, s: Session, client_order_id: str) -> OrderRow:
        query = select(OrderRow).where(OrderRow.client_order_id == client_order_id)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        row = s.scalar(query)
        if row is None:
            raise LedgerError(f"order {client_order_id!r} is not in the ledger")
        return row

    def order(self, client_order_id: str) -> StoredOrder | None:
        """One stored order, or None."""
        with self.sessions() as s:
            row = s.get(OrderRow, client_order_id)
            return None if row is None else _stored(row)

    def orders(self, statuses: Iterable[OrderStatus] | None = None) -> list[StoredOrder]:
        """Stored orders (optionally only these statuses), oldest first."""
        query = select(OrderRow).order_by(OrderRow.created_ms, OrderRow.client_order_id)
        if statuses is not None:
            query = query.where(OrderRow.status.in_([OrderStatus(x).value for x in statuses]))
        with self.sessions() as s:
            return [_stored(row) for row in s.scalars(query)]

    def order_by_venue_id(self, venue_order_id: str) -> StoredOrder | None:
        """The stored order the venue knows as ``venue_order_id`` (None when no order has it)."""
        query = select(OrderRow).where(OrderRow.venue_order_id == str(venue_order_id)).limit(1)
        with self.sessions() as s:
            row = s.scalar(query)
            return None if row is None else _stored(row)

    def in_flight(self) -> list[StoredOrder]:
        """Orders that are NEW, SENT, UNKNOWN or OPEN."""
        return self.orders(IN_FLIGHT)

    def last_order(self, symbol: str) -> StoredOrder | None:
        """``symbol``'s latest order (by bar time, then creation), or None when it has none."""
        query = (select(OrderRow).where(OrderRow.symbol == symbol)
                 .order_by(OrderRow.bar_time.desc(), OrderRow.created_ms.desc(), OrderRow.client_order_id.desc())
                 .limit(1))
        with self.sessions() as s:
            row = s.scalar(query)
            return None if row is None else _stored(row)

    # -- fills, positions, cash ------------------------------------------------------
    def apply_fill(self, fill: Fill, now_ms: int, events: Sequence[OutboxMessage] = ()) -> bool:
        """Store ``fill`` and update its order, position and cash, with its ``agent.trade``
        message, in one transaction. False (nothing changed) when ``fill_id`` is known."""
        _check_fill(fill)
        try:
            with self.sessions.begin() as s:
                return self._apply_fill_in(s, fill, now_ms, events)
        except IntegrityError:
            return False

    def _apply_fill_in(self, s: Session, fill: Fill, now_ms: int, events: Sequence[OutboxMessage] = ()) -> bool:
        if s.get(FillRow, fill.fill_id) is not None:
            return False
        order = self._order_row(s, fill.client_order_id)
        if (order.symbol, order.side) != (fill.symbol, fill.side.value):
            raise LedgerError(f"fill {fill.fill_id}: {fill.side.value} {fill.symbol} does not match order "
                              f"{order.client_order_id} ({order.side} {order.symbol})")
        s.add(FillRow(fill_id=fill.fill_id, client_order_id=fill.client_order_id, symbol=fill.symbol,
                      side=fill.side.value, qty=fill.qty, price=fill.price, fee=fill.fee,
                      fee_currency=fill.fee_currency, time_ms=int(fill.time_ms), recorded_ms=int(now_ms)))
        s.flush()
        _fill_order(order, fill, now_ms)
        self._book(s, fill, now_ms)
        _enqueue(s, [trade_message(fill), *events], now_ms)
        return True

    def _book(self, s: Session, fill: Fill, now_ms: int) -> None:
        quote = split_symbol(fill.symbol)[1]
        position = s.get(PositionRow, fill.symbol) or PositionRow(symbol=fill.symbol, qty=0.0, cost=0.0,
                                                                   baseline=None, updated_ms=int(now_ms))
        cash = s.get(CashRow, quote) or CashRow(currency=quote, amount=0.0)
        book_into(position, cash, fill, now_ms)
        s.add_all([position, cash])

    def fills(self, client_order_id: str | None = None) -> list[Fill]:
        """Stored fills (of one order if given), by time then id."""
        query = select(FillRow).order_by(FillRow.time_ms, FillRow.fill_id)
        if client_order_id is not None:
            query = query.where(FillRow.client_order_id == client_order_id)
        with self.sessions() as s:
            return [_fill(row) for row in s.scalars(query)]

    def fills_booked_since(self, mark: dict | None) -> tuple[list[Fill], dict]:
        """The fills booked after ``mark`` (``{"ms": recorded ms, "ids": fills booked at that
        ms already taken}``; None: all), by time then id, and the mark after them."""
        ms, ids = (-1, set()) if not mark else (int(mark["ms"]), set(mark["ids"]))
        with self.sessions() as s:
            rows = [r for r in s.scalars(select(FillRow).where(FillRow.recorded_ms >= ms))
                    if r.recorded_ms > ms or r.fill_id not in ids]
        if rows:
            top = max(r.recorded_ms for r in rows)
            ids = (ids if top == ms else set()) | {r.fill_id for r in rows if r.recorded_ms == top}
            ms = top
        rows.sort(key=lambda r: (r.time_ms, r.fill_id))
        return [_fill(r) for r in rows], {"ms": ms, "ids": sorted(ids)}

    def last_fill_time(self) -> int | None:
        """Time of the newest stored fill (ms), None if none."""
        with self.sessions() as s:
            return s.scalar(select(FillRow.time_ms).order_by(FillRow.time_ms.desc()).limit(1))

    def positions(self) -> dict[str, Position]:
        """Positions by symbol."""
        with self.sessions() as s:
            return {r.symbol: Position(r.symbol, r.qty, r.cost, r.baseline) for r in s.scalars(select(PositionRow))}

    def set_baseline(self, symbol: str, baseline: float, now_ms: int) -> None:
        """Adopt the venue's untraded balance of ``symbol``'s base asset (first reconcile)."""
        _finite("baseline", baseline)
        with self.sessions.begin() as s:
            row = s.get(PositionRow, symbol) or PositionRow(symbol=symbol, qty=0.0, cost=0.0, updated_ms=int(now_ms))
            row.baseline, row.updated_ms = float(baseline), int(now_ms)
            s.add(row)

    def cash(self) -> dict[str, float]:
        """Cash by currency."""
        with self.sessions() as s:
            return {r.currency: r.amount for r in s.scalars(select(CashRow))}

    def book_flow(self, flow: CashFlow, now_ms: int) -> bool:
        """Store ``flow`` and add its amount to the cash of its currency, in one transaction.
        False (nothing changed) when ``flow_id`` is known with the same values; a known id with
        other values raises :class:`LedgerError` (see :func:`~coinswarm.live.ledger_bulk.book_flows`)."""
        from coinswarm.live.ledger_bulk import book_flows

        _check_flow(flow)
        try:
            with self.engine.begin() as conn:
                return book_flows(conn, [flow], now_ms) == 1
        except IntegrityError:  # booked by another connection meanwhile
            return False

    def cash_flows(self, kind: str | None = None) -> list[CashFlow]:
        """Stored cash flows (of one kind of :data:`~coinswarm.live.protocols.CASH_FLOW_KINDS` if
        given), by time then id."""
        query = select(CashFlowRow).order_by(CashFlowRow.time_ms, CashFlowRow.flow_id)
        if kind is not None:
            query = query.where(CashFlowRow.kind == _flow_kind(kind))
        with self.sessions() as s:
            return [cash_flow_of(row) for row in s.scalars(query)]

    def deposit(self, currency: str, amount: float) -> None:
        """Add ``amount`` of ``currency`` (the paper account's starting cash)."""
        _finite("deposit", amount)
        with self.sessions.begin() as s:
            row = s.get(CashRow, currency) or CashRow(currency=currency, amount=0.0)
            row.amount += float(amount)
            s.add(row)

    # -- equity, bars, latency -------------------------------------------------------
    def record_equity(self, time_ms: int, equity: float, cash: float) -> None:
        """Store an equity snapshot (a repeated ``time_ms`` overwrites)."""
        with self.sessions.begin() as s:
            s.merge(EquityRow(time_ms=int(time_ms), equity=_finite("equity", equity), cash=_finite("cash", cash)))

    def equity(self) -> tuple[int, float] | None:
        """``(time_ms, equity)`` of the newest snapshot, None if none."""
        with self.sessions() as s:
            row = s.scalars(select(EquityRow).order_by(EquityRow.time_ms.desc()).limit(1)).first()
            return None if row is None else (row.time_ms, row.equity)

    def record_bar(self, symbol: str, bar_time: int, now_ms: int, latency_us: float | None = None,
                   events: Sequence[OutboxMessage] = ()) -> bool:
        """Count a processed closed bar (one transaction with its latency sample and ``events``);
        False (nothing written) when ``bar_time`` is not after the last one of ``symbol``."""
        with self.engine.begin() as conn:
            fresh = _record_bar(conn, symbol, bar_time, now_ms, latency_us)
            if fresh and events:
                conn.execute(insert(OutboxRow.__table__), [
                    {"msg_id": m.msg_id, "subject": m.subject, "payload": m.payload, "created_ms": int(now_ms),
                     "published_ms": None} for m in events])
        return fresh

    def record_bars(self, bars: Sequence[tuple[str, int, float | None]], now_ms: int) -> int:
        """Count several ``(symbol, bar_time, latency_us)`` in one transaction (a replay's bars
        that decided nothing: after a crash they are simply processed again). Returns how many
        were new."""
        with self.engine.begin() as conn:
            return sum(_record_bar(conn, symbol, bar_time, now_ms, latency) for symbol, bar_time, latency in bars)

    def last_bars(self) -> dict[str, int]:
        """The last processed bar time per symbol."""
        with self.sessions() as s:
            return {r.symbol: r.last_bar_time for r in s.scalars(select(BarRow))}

    def bars_processed(self) -> int:
        """Closed bars processed, all symbols together."""
        with self.sessions() as s:
            return int(sum(r.bars_processed for r in s.scalars(select(BarRow))))

    def decision_latency_us(self) -> dict[str, float | None]:
        """``{"p50": ..., "p99": ...}`` of the stored latency samples (None without samples)."""
        with self.sessions() as s:
            samples = np.asarray(s.scalars(select(LatencyRow.micros)).all(), dtype=float)
        if samples.size == 0:
            return {"p50": None, "p99": None}
        p50, p99 = np.percentile(samples, [50, 99])
        return {"p50": float(p50), "p99": float(p99)}

    # -- kill switch -----------------------------------------------------------------
    def kill_state(self) -> KillState:
        """The stored kill-switch state (running, if never stored)."""
        with self.sessions() as s:
            row = s.get(KillRow, 1)
            if row is None:
                return KillState()
            return KillState(row.halted, row.reason, row.detail, row.since_ms, row.peak_equity, row.day,
                             row.day_start_equity)

    def save_kill_state(self, state: KillState, now_ms: int, events: Sequence[OutboxMessage] = ()) -> None:
        """Store the kill-switch state (one transaction with ``events``)."""
        with self.sessions.begin() as s:
            s.merge(KillRow(id=1, halted=state.halted, reason=state.reason, detail=state.detail[:1000],
                            since_ms=state.since_ms, peak_equity=state.peak_equity, day=state.day,
                            day_start_equity=state.day_start_equity, updated_ms=int(now_ms)))
            _enqueue(s, events, now_ms)

    def halt(self, reason: str, detail: str, now_ms: int) -> KillState:
        """Halt trading for ``reason`` (persisted); an existing halt keeps its first reason."""
        state = halted_state(self.kill_state(), reason, detail, now_ms)
        self.save_kill_state(state, now_ms)
        return state

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, events: Sequence[OutboxMessage], now_ms: int) -> None:
        """Queue messages on their own (a heartbeat), one transaction; repeated ids are ignored."""
        with self.sessions.begin() as s:
            _enqueue(s, events, now_ms)

    def pending_outbox(self, limit: int = 256) -> list[tuple[int, OutboxMessage]]:
        """Unpublished messages, oldest first."""
        query = select(OutboxRow).where(OutboxRow.published_ms.is_(None)).order_by(OutboxRow.id).limit(int(limit))
        with self.sessions() as s:
            return [(r.id, OutboxMessage(r.subject, r.msg_id, bytes(r.payload))) for r in s.scalars(query)]

    def mark_published(self, ids: Sequence[int], now_ms: int) -> None:
        """Mark outbox rows published (after the bus acknowledged them)."""
        with self.sessions.begin() as s:
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(list(ids))).values(published_ms=int(now_ms)))

    # -- report ----------------------------------------------------------------------
    def report(self, marks: dict[str, float] | None = None) -> dict:
        """The ``coinswarm live report --json`` object: orders, fills, positions, cash, equity,
        bars_processed, decision_latency_us, halted (and the halt's reason)."""
        positions, cash, kill, equity = self.positions(), self.cash(), self.kill_state(), self.equity()
        return {
            "orders": [{"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
                        "qty": o.qty, "price": o.price, "status": o.status.value, "bar_time": o.bar_time,
                        "filled_qty": o.filled_qty, "avg_price": o.avg_price, "reason": o.reason}
                       for o in self.orders()],
            "fills": [{"fill_id": f.fill_id, "client_order_id": f.client_order_id, "symbol": f.symbol,
                       "side": f.side.value, "qty": f.qty, "price": f.price, "fee": f.fee,
                       "fee_currency": f.fee_currency, "time_ms": f.time_ms} for f in self.fills()],
            "positions": {s: {"qty": p.qty, "cost": p.cost,
                              "pnl": None if not marks or s not in marks else p.pnl(marks[s])}
                          for s, p in positions.items()},
            "cash": cash,
            "equity": None if equity is None else equity[1],
            "bars_processed": self.bars_processed(),
            "decision_latency_us": self.decision_latency_us(),
            "halted": kill.halted,
            "halt_reason": kill.reason,
            "mode": self.mode(),
        }


def _record_bar(conn, symbol: str, bar_time: int, now_ms: int, latency_us: float | None) -> bool:
    """One bar in an open transaction (Core statements, not the ORM: this runs once per bar)."""
    if latency_us is not None:
        latency_us = _finite("latency_us", latency_us)
    bars = BarRow.__table__
    moved = conn.execute(update(bars).where(bars.c.symbol == symbol, bars.c.last_bar_time < int(bar_time))
                         .values(last_bar_time=int(bar_time), bars_processed=bars.c.bars_processed + 1))
    if moved.rowcount == 0:
        if conn.execute(select(bars.c.symbol).where(bars.c.symbol == symbol)).first() is not None:
            return False
        conn.execute(insert(bars).values(symbol=symbol, last_bar_time=int(bar_time), bars_processed=1))
    if latency_us is not None:
        conn.execute(insert(LatencyRow.__table__).values(time_ms=int(now_ms), micros=latency_us))
    return True


def book_into(position, cash, fill: Fill, now_ms: int) -> None:
    """A fill's effect on its position (``qty``, ``cost``) and its quote's cash (any objects with
    those attributes: ORM rows or plain records)."""
    base, quote = split_symbol(fill.symbol)
    sign = 1.0 if fill.side is Side.BUY else -1.0
    position.qty += sign * fill.qty
    position.cost += sign * fill.qty * fill.price
    cash.amount -= sign * fill.qty * fill.price
    if fill.fee_currency == quote:
        position.cost += fill.fee
        cash.amount -= fill.fee
    elif fill.fee_currency == base:
        position.qty -= fill.fee
    position.updated_ms = int(now_ms)


def insert_ignoring(table, dialect: str, key: str):
    """An ``INSERT`` into ``table`` that skips a row whose ``key`` (a unique column) is already
    stored — ``ON CONFLICT (key) DO NOTHING`` on SQLite and PostgreSQL — so a write retried after
    its commit's acknowledgement was lost (:class:`~coinswarm.live.dbretry.DbGuard`) is a no-op,
    not an integrity error. Another dialect gets the plain insert."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return insert(table)
    return dialect_insert(table).on_conflict_do_nothing(index_elements=[key])


def outbox_rows(events: Iterable[OutboxMessage], now_ms: int) -> list[dict]:
    """The ``live_outbox`` rows of ``events`` (unpublished, created at ``now_ms``)."""
    return [{"msg_id": m.msg_id, "subject": m.subject, "payload": m.payload, "created_ms": int(now_ms),
             "published_ms": None} for m in events]


def _enqueue(s: Session, events: Iterable[OutboxMessage], now_ms: int) -> None:
    """Queue ``events`` in the session's transaction; an id already queued is skipped."""
    rows = outbox_rows(events, now_ms)
    if rows:
        s.execute(insert_ignoring(OutboxRow.__table__, s.get_bind().dialect.name, "msg_id"), rows)


def _fill_order(order: OrderRow, fill: Fill, now_ms: int) -> None:
    """An order's filled quantity, average price and status after ``fill``."""
    filled = order.filled_qty + fill.qty
    order.avg_price = ((order.avg_price or 0.0) * order.filled_qty + fill.price * fill.qty) / filled
    order.filled_qty, order.updated_ms = filled, int(now_ms)
    status = OrderStatus(order.status)
    if status.final:
        if status is not OrderStatus.FILLED:
            order.reason = (order.reason + f"; fill {fill.fill_id} after {status.value}")[-400:]
        return
    if filled >= order.qty * (1 - FILL_TOLERANCE):
        target = OrderStatus.FILLED
    else:
        target = OrderStatus.OPEN
    if target is not status:
        check_transition(order.client_order_id, status, target)
        order.status = target.value


def _check_intent(intent: OrderIntent) -> None:
    if not isinstance(intent, OrderIntent):
        raise LedgerError(f"expected an OrderIntent, got {type(intent).__name__}")
    if not intent.client_order_id or len(intent.client_order_id) > 64:
        raise LedgerError(f"client_order_id must be 1-64 characters, got {intent.client_order_id!r}")
    split_symbol(intent.symbol)
    Side(intent.side)
    _finite(f"order {intent.client_order_id}: qty", intent.qty, positive=True)
    if intent.price is not None:
        _finite(f"order {intent.client_order_id}: price", intent.price, positive=True)


def _check_fill(fill: Fill) -> None:
    if not isinstance(fill, Fill):
        raise LedgerError(f"expected a Fill, got {type(fill).__name__}")
    if not fill.fill_id or len(fill.fill_id) > 64:
        raise LedgerError(f"fill_id must be 1-64 characters, got {fill.fill_id!r}")
    split_symbol(fill.symbol)
    _finite(f"fill {fill.fill_id}: qty", fill.qty, positive=True)
    _finite(f"fill {fill.fill_id}: price", fill.price, positive=True)
    _finite(f"fill {fill.fill_id}: fee", fill.fee)


def _flow_kind(kind: str, where: str = "cash flow") -> str:
    if kind not in CASH_FLOW_KINDS:
        raise LedgerError(f"{where}: kind {kind!r} is not one of {', '.join(CASH_FLOW_KINDS)}")
    return kind


def _check_flow(flow: CashFlow) -> None:
    if not isinstance(flow, CashFlow):
        raise LedgerError(f"expected a CashFlow, got {type(flow).__name__}")
    if not isinstance(flow.flow_id, str) or not 0 < len(flow.flow_id) <= 200:
        raise LedgerError(f"cash flow flow_id must be 1-200 characters, got {flow.flow_id!r}")
    where = f"cash flow {flow.flow_id}"
    _flow_kind(flow.kind, where)
    if not isinstance(flow.currency, str) or not 0 < len(flow.currency) <= 16:
        raise LedgerError(f"{where}: currency must be 1-16 characters (e.g. 'USDT'), got {flow.currency!r}")
    amount = _finite(f"{where}: amount", flow.amount)
    if (flow.kind in ("interest", "write_off") and amount < 0) or (flow.kind == "borrow" and amount > 0):
        sense, bound = ("debits", "≤") if flow.kind == "borrow" else ("credits", "≥")
        raise LedgerError(f"{where}: {flow.kind} {sense} cash, so its amount must be {bound} 0, got {amount!r}")
    time_ms = flow.time_ms
    if isinstance(time_ms, bool) or not isinstance(time_ms, numbers.Integral) or time_ms < 0:
        raise LedgerError(f"{where}: time_ms must be a non-negative integer (epoch ms), got {time_ms!r}")
