"""Typed errors. Every message says what is wrong and where."""

from __future__ import annotations


class CoinswarmError(Exception):
    """Base class of every error coinswarm raises on purpose."""


class ConfigError(CoinswarmError, ValueError):
    """A parameter, grid or configuration value is invalid."""


class DataError(CoinswarmError, ValueError):
    """Market data is missing or malformed.

    Attributes
    ----------
    source : str or None
        File or catalog name the data came from.
    row : int or None
        0-based data row (the CSV line is ``row + 2``: one header line, 1-based lines).
    column : str or None
        Offending column.
    value : object
        Offending value.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
        timestamp: object = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.row = row
        self.column = column
        self.value = value
        self.timestamp = timestamp
        where = []
        if source:
            where.append(str(source))
        if row is not None:
            where.append(f"row {row} (CSV line {row + 2})")
        if timestamp is not None:
            where.append(f"at {timestamp}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class DatasetNotFoundError(DataError):
    """A catalog name or path does not resolve to a file."""


class SchemaError(DataError):
    """Columns are missing or not numeric."""


class MissingValueError(DataError):
    """A NaN or empty cell."""


class NonPositivePriceError(DataError):
    """A price is zero or negative."""


class InconsistentBarError(DataError):
    """high < low, or open/close outside [low, high]."""


class NegativeVolumeError(DataError):
    """Volume below zero."""


class DuplicateTimestampError(DataError):
    """Two rows share a timestamp."""


class UnsortedTimestampError(DataError):
    """Timestamps go backwards."""


class OffGridTimestampError(DataError):
    """A timestamp is not a multiple of the bar length."""


class GapError(DataError):
    """Missing bars where the gap policy is ``"raise"``."""


class GapWarning(UserWarning):
    """Candles have missing bars (the ``gaps="warn"`` policy); agents count bars, so a gap is
    treated as one step.

    Issued once per dataset (its source, timeframe and first and last bar) per process, not on
    every call over the same candles; :func:`coinswarm.agents.reset_gap_warnings` shows them
    again, and ``gaps="raise"`` turns them into a :class:`GapError` every time."""


class ChecksumError(DataError):
    """A file's sha256 differs from the catalog's."""


class StateError(CoinswarmError, ValueError):
    """A persisted component state is not a coinswarm state, is damaged, or does not belong to
    the component it is given to."""


class StaleStateError(StateError):
    """A state written by another format or layout version (or for another configuration):
    re-initialise the component and replay its warm-up."""


class MessageError(CoinswarmError, ValueError):
    """A proposal, vote or bus message is malformed; says which field and why."""

    def __init__(self, problem: str, *, field: str | None = None, message_id: str | None = None) -> None:
        self.problem = problem
        self.field = field
        self.message_id = message_id
        where = ", ".join(p for p in (f"message {message_id}" if message_id else "",
                                      f"field '{field}'" if field else "") if p)
        super().__init__(f"{where}: {problem}" if where else problem)


class FundingHeldError(CoinswarmError):
    """A bar's processing is held for a funding settlement the venue announced but has not yet
    published, and the daemon is stopping: the bar was not decided and is taken again on resume.

    Attributes
    ----------
    due : list of (symbol, time_ms)
        The settlements waited for.
    close_ms : int
        The close of the held bar.
    waited_s : float
        Seconds waited.
    """

    def __init__(self, due: list[tuple[str, int]], close_ms: int, waited_s: float) -> None:
        import datetime

        def iso_utc(ms: int) -> str:
            return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()  # as data.validate.iso_utc

        self.due, self.close_ms, self.waited_s = list(due), int(close_ms), float(waited_s)
        names = ", ".join(f"{s} at {iso_utc(t)}" for s, t in self.due)
        super().__init__(f"the bar closing at {iso_utc(self.close_ms)} waits for funding {names}, not yet published "
                         f"after {self.waited_s:.0f} s; stopping without deciding it (it is taken again on resume)")


class VenueError(CoinswarmError):
    """An exchange (or the fake venue) answered in a way the runner cannot act on."""

    def __init__(self, problem: str, *, venue: str | None = None, client_order_id: str | None = None) -> None:
        where = ", ".join(f"{k}={v}" for k, v in (("venue", venue), ("client_order_id", client_order_id)) if v)
        super().__init__(f"{problem} ({where})" if where else problem)
        self.problem, self.venue, self.client_order_id = problem, venue, client_order_id


class MalformedReplyError(VenueError):
    """A venue reply that does not parse or lacks a field the runner needs (names the field)."""


class OrderRejectedError(VenueError):
    """The venue refused the order for certain (insufficient balance, bad quantity, …)."""


class OrderUnknownError(VenueError):
    """The outcome of a submit is unknown (timeout, connection lost after sending): the order
    stays in flight until reconciliation says what happened. Never resubmit blindly."""


class RateLimitedError(VenueError):
    """The venue asked us to slow down (HTTP 429/418); ``retry_after`` seconds if it said."""

    def __init__(self, problem: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(problem, **kwargs)
        self.retry_after = retry_after
class ConflictError(MessageError):
    """A proposal re-uses the id of an already decided proposal with different content."""
