"""The ledger's database going away (PostgreSQL restarted, the network to it cut): a typed
error, and a pause-and-retry the runner wraps its ledger writes in.

Why retrying a ledger write is safe: every write of :class:`~coinswarm.live.ledger.Ledger` is
one transaction (nothing half-written: it commits whole or not at all), and each is
idempotent — ``record_new`` and ``apply_fill`` return False for an id they hold already,
``record_bar`` for a bar not after the last, a repeated ``transition`` to the same status
changes nothing. So a write whose commit was lost with the connection can be sent again.

While the database is down the runner waits inside :meth:`DbGuard.call`: no new decision is
made and no order is sent (trading pauses), the feed keeps the bars (it resumes from the
last one yielded), and the first write that succeeds resumes everything in order.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from coinswarm.errors import CoinswarmError
from coinswarm.live.logs import redact

T = TypeVar("T")
# PostgreSQL SQLSTATEs of a server that is away or going away: connection exceptions (08…),
# admin/crash shutdown and "cannot connect now" (57P01-57P03), too many connections (53300).
_PG_TRANSIENT = ("08", "57P01", "57P02", "57P03", "53300")


class LedgerUnavailableError(CoinswarmError, ConnectionError):
    """The ledger's database cannot be reached; the write did not happen (its transaction
    rolled back) and may be retried as is."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unreachable or busy (worth a retry), rather than a
    refused statement (a bug or a constraint: never retried)."""
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return "locked" in text or "busy" in text or "disk i/o" in text
    state = getattr(orig, "sqlstate", None)
    if state:
        return state.startswith(_PG_TRANSIENT[0]) or state in _PG_TRANSIENT[1:]
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)  # refused, reset, no state


def _typed(exc: BaseException, what: str) -> LedgerUnavailableError:
    """The typed error: the driver's first line only (SQLAlchemy's text carries the statement
    and its parameters), passwords masked."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0][:300]
    return LedgerUnavailableError(redact(f"ledger database unavailable during {what}: {type(orig).__name__}: {first}"))


@contextmanager
def _typed_unavailable(what: str) -> Iterator[None]:
    """An unreachable database inside the block raises :class:`LedgerUnavailableError` (other
    errors pass unchanged)."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        if is_unavailable(exc):
            raise _typed(exc, what) from None
        raise


def db_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` once; a database that is unreachable raises
    :class:`LedgerUnavailableError` (other errors pass unchanged)."""
    with _typed_unavailable(getattr(fn, "__name__", "a ledger call")):
        return fn(*args, **kwargs)


async def adb_call(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """:func:`db_call` of a coroutine function (a step that mixes venue reads and ledger writes,
    such as the mass status :func:`~coinswarm.live.orders.reconcile`)."""
    with _typed_unavailable(getattr(fn, "__name__", "a ledger call")):
        return await fn(*args, **kwargs)


class DbGuard:
    """Pause-and-retry around ledger writes.

    Parameters
    ----------
    max_wait_s : float
        Give up after this long without the database: :class:`LedgerUnavailableError` (the
        runner then stops; on restart, recovery starts from the ledger as it was).
    backoff_s, max_backoff_s : float
        First wait between attempts, doubling up to the maximum.
    notify : callable, optional
        ``notify(name, fields)`` — pass :meth:`Sinks.on_event <coinswarm.live.sinks.Sinks.on_event>`:
        ``db_pause`` (``what``, ``error``) when a pause starts, ``db_resume`` (``what``,
        ``paused_s``, ``attempts``) when it ends.
    sleep, clock : callables
        Injected (tests).

    Attributes
    ----------
    paused : bool
        A call is waiting for the database now.
    pauses : int
        Pauses so far; ``paused_s`` their total length.
    """

    def __init__(self, *, max_wait_s: float = 600.0, backoff_s: float = 0.1, max_backoff_s: float = 2.0,
                 notify: Callable[[str, Mapping[str, object]], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_wait_s, self.backoff_s, self.max_backoff_s = float(max_wait_s), float(backoff_s), float(max_backoff_s)
        self.notify, self.sleep, self.clock = notify, sleep, clock
        self.paused, self.pauses, self.paused_s = False, 0, 0.0

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` (a synchronous ledger method), retried while the database is
        unavailable; any other error is raised at once. :class:`LedgerUnavailableError` after
        ``max_wait_s``."""
        async def once() -> T:
            return db_call(fn, *args, **kwargs)

        return await self._retry(getattr(fn, "__name__", "a ledger call"), once)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """:meth:`call` of a coroutine function whose ledger writes are idempotent transactions
        (retried whole while the database is unavailable)."""
        return await self._retry(getattr(fn, "__name__", "a ledger call"), lambda: adb_call(fn, *args, **kwargs))

    async def _retry(self, what: str, once: Callable[[], Awaitable[T]]) -> T:
        started, delay, attempts = None, self.backoff_s, 0
        while True:
            attempts += 1
            try:
                result = await once()
            except LedgerUnavailableError as exc:
                now = self.clock()
                if started is None:
                    started, self.paused = now, True
                    self.pauses += 1
                    self._tell("db_pause", {"what": what, "error": str(exc)})
                if now - started >= self.max_wait_s:
                    self._end(what, now - started, attempts)
                    raise LedgerUnavailableError(f"{exc} (gave up after {now - started:.1f} s, "
                                                 f"{attempts} attempts)") from None
                await self.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            if started is not None:
                self._end(what, self.clock() - started, attempts)
            return result

    def _end(self, what: str, paused_s: float, attempts: int) -> None:
        self.paused = False
        self.paused_s += paused_s
        self._tell("db_resume", {"what": what, "paused_s": round(paused_s, 3), "attempts": attempts})

    def _tell(self, name: str, fields: Mapping[str, object]) -> None:
        if self.notify is not None:
            try:
                self.notify(name, fields)
            except Exception:  # noqa: BLE001 - a sink never stops the ledger
                pass


class Guarded:
    """Both daemons' ledger access (paper :class:`~coinswarm.live.runner.Runner`, exchange
    :class:`~coinswarm.live.venue.VenueRunner`): through ``self.guard`` (a :class:`DbGuard`) when
    set — the database away pauses the loop until it is back — else called directly."""

    guard: DbGuard | None

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the guard (pause-and-retry while the database is away)."""
        if self.guard is None:
            return fn(*args, **kwargs)
        return await self.guard.call(fn, *args, **kwargs)

    async def _adb(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through the guard (:meth:`DbGuard.acall`)."""
        if self.guard is None:
            return await fn(*args, **kwargs)
        return await self.guard.acall(fn, *args, **kwargs)
