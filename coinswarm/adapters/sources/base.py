"""The source protocol shared by every ingestor: records, batches, health, typed errors.

A :class:`Source` turns an outside feed into :class:`Batch` es of :class:`Record` s. A batch keeps
the good records of a fetch and lists the rejected ones as :class:`RecordError` s (each naming the
source, the record and the field), so one malformed record never costs the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from coinswarm.errors import CoinswarmError


class RecordError(CoinswarmError, ValueError):
    """A record from a source is malformed.

    Attributes
    ----------
    source : str
        The source's name (``binance:trades:BTC/USDT``, ``fred:DGS10``...).
    field : str or None
        The offending field.
    value : object
        The offending value.
    """

    def __init__(self, problem: str, *, source: str, field: str | None = None, value: object = None) -> None:
        self.problem, self.source, self.field, self.value = problem, source, field, value
        where = f"{source}, field {field!r}" if field else source
        super().__init__(f"{where}: {problem}")


class SourceError(CoinswarmError, RuntimeError):
    """A source could not be reached or answered nonsense as a whole (the scheduler backs off)."""

    def __init__(self, problem: str, *, source: str, retry_after_s: float | None = None) -> None:
        self.problem, self.source, self.retry_after_s = problem, source, retry_after_s
        super().__init__(f"{source}: {problem}")


@dataclass(frozen=True, slots=True)
class Record:
    """One observation from a source.

    Attributes
    ----------
    kind : str
        The schema: ``candle``, ``trade``, ``book``, ``funding``, ``macro``, ``news``...
    source : str
        Where it came from (the source's name).
    key : str
        What it is about, in canonical form (``BTC/USDT``, ``DGS10``, a feed URL).
    time_ms : int
        Event time in epoch milliseconds (UTC).
    values : Mapping[str, Any]
        The fields of its kind (see :data:`KIND_FIELDS`).
    received_ms : int
        When the ingestor received it (the caller passes the time).
    """

    kind: str
    source: str
    key: str
    time_ms: int
    values: Mapping[str, Any]
    received_ms: int = 0

    KINDS: ClassVar[tuple[str, ...]] = ("candle", "trade", "book", "funding", "macro", "news", "sentiment")


KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "candle": ("open", "high", "low", "close", "volume", "timeframe"),
    "trade": ("trade_id", "side", "price", "amount"),
    "book": ("bids", "asks"),
    "funding": ("rate",),
    "macro": ("value",),
    "news": ("title", "url"),
    "sentiment": ("score",),
}
"""The fields every record of a kind must carry (more are allowed)."""


def check_record(record: Record) -> Record:
    """``record`` if its kind, time and required fields are valid, else :class:`RecordError`."""
    if record.kind not in KIND_FIELDS:
        raise RecordError(f"unknown kind {record.kind!r}; valid: {sorted(KIND_FIELDS)}",
                          source=record.source, field="kind", value=record.kind)
    if isinstance(record.time_ms, bool) or not isinstance(record.time_ms, int) or record.time_ms < 0:
        raise RecordError(f"time_ms must be a non-negative int of epoch milliseconds, got {record.time_ms!r}",
                          source=record.source, field="time_ms", value=record.time_ms)
    missing = [f for f in KIND_FIELDS[record.kind] if f not in record.values]
    if missing:
        raise RecordError(f"a {record.kind} record needs {list(KIND_FIELDS[record.kind])}; missing {missing}",
                          source=record.source, field=missing[0])
    return record


def iso_time_ms(raw: Any, *, source: str, field: str, where: str = "") -> int:
    """Epoch milliseconds of ``raw``, an ISO 8601 time with a time zone (``Z`` accepted).

    Raises
    ------
    RecordError
        ``raw`` is no such time: names ``field`` and the value; the message starts with
        ``where`` (``"article 3: "``).
    """
    try:
        when = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise RecordError(f"{where}{field} must be ISO 8601 with a time zone, got {raw!r}", source=source,
                          field=field, value=raw)
    return int(when.timestamp() * 1000)


@dataclass(slots=True)
class Batch:
    """The outcome of one fetch: the good records and the rejected ones (never silently dropped)."""

    source: str
    records: list[Record] = field(default_factory=list)
    rejected: list[RecordError] = field(default_factory=list)


@dataclass(slots=True)
class Health:
    """A source's health, as shown by ``coinswarm ingest status`` and on ``/metrics``."""

    source: str
    healthy: bool = True
    last_success_ms: int | None = None
    lag_ms: int | None = None
    errors: int = 0
    rejected: int = 0
    reconnects: int = 0
    last_error: str | None = None

    def copy(self) -> Health:
        """A copy (what a source's ``health()`` hands out: the caller cannot change the source's own)."""
        return Health(self.source, self.healthy, self.last_success_ms, self.lag_ms, self.errors, self.rejected,
                      self.reconnects, self.last_error)


@runtime_checkable
class Source(Protocol):
    """What the scheduler drives. ``fetch`` pulls a time range (REST, paging inside); ``stream``
    yields batches as they arrive (WebSocket), and may be absent (``None``)."""

    name: str

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Records with ``since_ms <= time_ms < until_ms``; :class:`SourceError` when unreachable."""
        ...

    def health(self) -> Health:
        """The source's current health."""
        ...

