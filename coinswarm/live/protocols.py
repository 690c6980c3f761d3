"""The seams of the live runner: order and fill records, the :class:`Broker` and :class:`Feed`
protocols that the paper broker, the ccxt brokers and the replay/exchange feeds implement, and
deterministic client order ids.

An order's life (:class:`OrderStatus`): ``NEW`` (persisted, not yet sent) → ``SENT`` (handed
to the venue) → ``OPEN`` (acknowledged) → ``FILLED`` | ``CANCELED`` | ``REJECTED`` |
``EXPIRED``. A submit whose outcome is not known (timeout, lost connection, a venue that says
"does not exist" right after submission) is ``UNKNOWN`` and stays so until reconciliation
(query by client order id, then trade history) resolves it — it is never resubmitted blindly.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class OrderStatus(StrEnum):
    """Where an order is in its life (see the module docstring)."""

    NEW = "new"
    SENT = "sent"
    UNKNOWN = "unknown"
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        """Nothing more can happen to the order."""
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What the runner decided to send: ``price`` None means a market order."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    bar_time: int
    strategy: str
    price: float | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order (parsed from its reply)."""

    client_order_id: str
    venue_order_id: str | None
    symbol: str
    side: Side
    qty: float
    filled_qty: float
    avg_price: float | None
    status: OrderStatus
    updated_ms: int


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution; ``fill_id`` is the venue's trade id (the key that de-duplicates reports)."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    fee_currency: str
    time_ms: int


CASH_FLOW_KINDS = ("funding", "interest", "borrow", "write_off")


@dataclass(frozen=True, slots=True)
class CashFlow:
    """A movement of cash that is not a fill: a perpetual's funding payment, interest credited on
    idle cash or a borrow fee charged on a short (the paper kernel's financing, as
    ``cs.Costs(funding=…, cash_rate=…, borrow_rate=…)`` in a backtest), or the write-off of a
    bankrupt paper account's deficit.

    The ledger books it into the cash of ``currency`` in the same transaction as the checkpoint
    (:func:`coinswarm.live.ledger_bulk.commit_bars`), so the ledger's cash stays the kernel's.

    Parameters
    ----------
    flow_id : str
        Deterministic key, 1-200 characters: the same flow always gets the same id (e.g.
        ``f"{strategy}:{kind}:{symbol}:{bar_time}"``), so a repeated booking changes nothing.
    currency : str
        The cash currency it moves (the quote, e.g. ``"USDT"``), 1-16 characters.
    kind : str
        One of :data:`CASH_FLOW_KINDS`: ``"funding"`` (either sign), ``"interest"`` (credits:
        ``amount ≥ 0``), ``"borrow"`` (debits: ``amount ≤ 0``) or ``"write_off"`` (credits,
        ``amount ≥ 0``: a bankrupt paper account's deficit, forgiven when the kernel closes the
        book out; the ledger's cash of ``currency`` is exactly 0 after it, see
        :func:`coinswarm.live.ledger_bulk.book_flows`).
    amount : float
        Signed and finite: positive credits cash, negative debits it.
    time_ms : int
        When it accrued (epoch ms UTC, ≥ 0): the bar it belongs to.
    """

    flow_id: str
    currency: str
    kind: str
    amount: float
    time_ms: int


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset's balance."""

    asset: str
    free: float
    total: float


@runtime_checkable
class Broker(Protocol):
    """Where orders go: the paper broker (the portfolio kernel) or an exchange through ccxt.

    Every method raises a :class:`~coinswarm.errors.VenueError` subclass on a reply it cannot
    use: :class:`~coinswarm.errors.OrderUnknownError` when a submit's outcome is unknown,
    :class:`~coinswarm.errors.OrderRejectedError` when refused for certain,
    :class:`~coinswarm.errors.RateLimitedError` on 429/418,
    :class:`~coinswarm.errors.MalformedReplyError` on a reply that does not parse.
    """

    name: str

    async def submit(self, intent: OrderIntent) -> VenueOrder:
        """Send one order (never retried inside: a timeout raises OrderUnknownError)."""
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Cancel an open order."""
        ...

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's view of an order, or None when the venue says it does not exist."""
        ...

    async def open_orders(self, symbols: Sequence[str]) -> list[VenueOrder]:
        """Every open order on ``symbols``."""
        ...

    async def fills_since(self, symbols: Sequence[str], since_ms: int) -> list[Fill]:
        """Every fill on ``symbols`` at or after ``since_ms`` (may repeat earlier reports)."""
        ...

    async def balances(self) -> dict[str, Balance]:
        """Balances by asset."""
        ...

    async def server_time_ms(self) -> int:
        """The venue's clock (for the skew offset and recvWindow)."""
        ...


@dataclass(frozen=True, slots=True)
class ClosedBar:
    """One closed candle of one symbol from a feed (``time`` = the bar's open, epoch ms UTC)."""

    symbol: str
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@runtime_checkable
class Feed(Protocol):
    """Closed bars, oldest first, never the forming one; after a reconnect the gap is
    backfilled and duplicates dropped before anything is yielded."""

    async def history(self, symbol: str, until_ms: int, bars: int) -> list[ClosedBar]:
        """Up to ``bars`` closed bars of ``symbol`` ending before ``until_ms`` (warm-up)."""
        ...

    def closed_bars(self) -> AsyncIterator[ClosedBar]:
        """The stream of closed bars of every symbol."""
        ...


def client_order_id(strategy: str, symbol: str, bar_time: int, seq: int) -> str:
    """A deterministic client order id: the same (strategy, symbol, bar time, sequence) always
    gives the same id, so a restart that re-decides a bar sends nothing new. 32 characters
    of ``[0-9a-z]`` after a ``cs`` prefix (Binance allows 36, Coinbase any UUID-like text)."""
    key = f"{strategy}|{symbol}|{int(bar_time)}|{int(seq)}".encode()
    return "cs" + hashlib.blake2b(key, digest_size=16).hexdigest()
