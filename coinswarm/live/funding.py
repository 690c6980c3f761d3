"""Settled funding rates of the perpetuals a run trades, as the runner needs them per bar.

The backtest engine charges a perpetual's funding on the first bar at or after each funding
time, on the position held into that bar (:func:`coinswarm.backtest.engine.funding_matrix`), and
the portfolio committee's carry sleeve reads the rates settled strictly before a decision's
close. :class:`FundingBook` answers both questions for one closed bar of open time ``t``:

* :meth:`FundingBook.due` — the rates the paper kernel charges at ``t``: settled in
  ``(previous bar, t]``;
* :meth:`FundingBook.settled` — the settlements to tell the strategy before it decides at the
  close ``t + bar``: settled in ``[previous close, t + bar)``.

A replay reads the series from the dataset (``binance-perp:BTC/USDT:funding``). The paper
daemon on live candles (``coinswarm live run``) uses :class:`LiveFundingBook`: the same
questions, over settlements fetched from the venue as they happen
(:meth:`LiveFundingBook.refresh`, awaited by the runner before each bar).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from coinswarm.costs import check_funding
from coinswarm.data.validate import iso_utc
from coinswarm.errors import ConfigError, DataError, FundingHeldError, StateError

DAY_MS = 86_400_000
JITTER_MS = 60_000  # a published settlement's time may differ from the announced one by a few ms
log = logging.getLogger(__name__)


class FundingBook:
    """The funding series of a run's perpetuals (symbol → Series of rates per interval).

    Parameters
    ----------
    series : mapping of symbol → Series
        Rates (fractions, longs pay when positive) on a sorted UTC DatetimeIndex of settlement
        times (checked as ``Costs.funding`` is).
    symbols : sequence of str
        The run's symbols, in target order; every perpetual among them (``BASE/QUOTE:SETTLE``)
        needs a series.
    sources : mapping of symbol → str, optional
        Where each series was read (a replay's funding sources: part of its run spec, so a run
        is not resumed on other rates).
    """

    def __init__(self, series: Mapping[str, object], symbols: Sequence[str],
                 sources: Mapping[str, str] | None = None) -> None:
        self.symbols = tuple(symbols)
        self.sources = dict(sorted((sources or {}).items()))
        check_funding(dict(series), "funding")
        missing = [s for s in self.symbols if ":" in s and s not in series]
        if missing:
            raise ConfigError(f"perpetual(s) {missing} have no funding series; give one per perpetual "
                              "(a replay finds binance-perp:BASE/QUOTE:funding for a binance-perp source)")
        unknown = sorted(set(series) - set(self.symbols))
        if unknown:
            raise ConfigError(f"funding given for {unknown}, which this run does not trade ({list(self.symbols)})")
        self._series = {self.symbols.index(s): (v.index.as_unit("ms").asi8.astype(np.int64), v.to_numpy(np.float64))
                        for s, v in series.items()}

    def due(self, after_ms: int, upto_ms: int) -> np.ndarray | None:
        """Per symbol, the sum of the rates settled in ``(after_ms, upto_ms]`` (None: none due)."""
        row = np.zeros(len(self.symbols))
        for j, (stamps, rates) in self._series.items():
            lo = int(np.searchsorted(stamps, after_ms, side="right"))
            hi = int(np.searchsorted(stamps, upto_ms, side="right"))
            row[j] = rates[lo:hi].sum()
        return row if row.any() else None

    def settled(self, from_ms: int, before_ms: int) -> list[tuple[str, int, float]]:
        """``(symbol, time_ms, rate)`` of the settlements in ``[from_ms, before_ms)``, by time."""
        out = []
        for j, (stamps, rates) in self._series.items():
            lo = int(np.searchsorted(stamps, from_ms, side="left"))
            hi = int(np.searchsorted(stamps, before_ms, side="left"))
            out += [(self.symbols[j], int(stamps[k]), float(rates[k])) for k in range(lo, hi)]
        return sorted(out, key=lambda x: (x[1], x[0]))


class FundingSource(Protocol):
    """Where :class:`LiveFundingBook` fetches settlements (a
    :class:`~coinswarm.live.ccxt_broker.CcxtBroker` opened with ``perpetuals=True``)."""

    async def funding(self, symbol: str, since_ms: int, limit: int) -> list[tuple[int, float]]: ...

    # optional: ``async next_funding(symbol) -> int``, the next settlement's time (epoch ms)


def lookback_ms(params: Any) -> int:
    """How far before a run's first close its funding must be fetched so the strategy holds what a
    replay given the whole series holds: the carry window (``funding_days``, 7 by default) plus
    the slack the committee keeps (:data:`coinswarm.committee.portfolio_state.FUNDING_SLACK_DAYS`)
    plus a day."""
    from coinswarm.committee.portfolio_state import FUNDING_SLACK_DAYS

    days = float(getattr(params, "funding_days", 7.0))
    return int(math.ceil(days + FUNDING_SLACK_DAYS + 1) * DAY_MS)


class LiveFundingBook(FundingBook):
    """A :class:`FundingBook` filled as settlements happen: the paper daemon's funding.

    Before each closed bar of open time ``t`` the runner awaits :meth:`refresh` up to its close
    ``t + bar``; :meth:`due` and :meth:`settled` then answer as for a replay given the whole
    series (the same bars, the same rates, the same moments). A settlement is taken once, in time
    order.

    A venue publishes a settlement a little after its time (Binance: seconds to minutes), so on
    short bars the bar that charges it can close before it is published. The book knows it is
    due: a source with ``next_funding(symbol)`` (the venue's ``nextFundingTime``) is asked for the
    next settlement each time the one it announced is held (asked after a settlement's time — at a
    start, after an outage — it announces the one after: when that is two of the held series'
    intervals after the last held, the one between is due). :meth:`refresh` up to a close after
    an announced settlement not yet published waits for it — polling every ``poll_s`` for up to
    ``wait_s``, quietly — and then holds: it logs, emits ``funding_late`` (``events``), and keeps
    polling every ``retry_s`` until the venue publishes it (then ``funding_resume``). The bar is
    not decided meanwhile (no rate is guessed, none skipped, none charged twice); the candle feed
    resumes after the last bar processed, so no bar is lost. A held refresh raises
    :class:`~coinswarm.errors.FundingHeldError` only once ``stop`` is set (a graceful stop: the
    bar is taken again on resume). A settlement published after a bar that needed it was decided
    without the book knowing it was due (a source without ``next_funding``) is still a
    :class:`~coinswarm.errors.DataError`, never silently left out.

    Parameters
    ----------
    source : FundingSource
        ``async funding(symbol, since_ms, limit)`` → ``[(time_ms, rate), …]`` oldest first;
        optionally ``async next_funding(symbol)`` → the next settlement's time (ms).
    symbols : sequence of str
        The run's symbols; every perpetual among them is fetched.
    limit : int
        Settlements per request (Binance serves at most 1000).
    call : async callable, optional
        ``call(fn, *args)`` wraps every fetch (the daemon passes its feed's back-off, so an outage
        or a rate limit waits instead of failing); default: called directly.
    wait_s, poll_s, retry_s : float
        The quiet wait for an announced settlement, its polling interval, and the polling
        interval once held (seconds; ``0 < poll_s``, ``0 < retry_s``, ``0 ≤ wait_s``).
    sleep : async callable
        ``await sleep(seconds)`` between polls (injected: the daemon passes its feed's).
    """

    def __init__(self, source: FundingSource, symbols: Sequence[str], *, limit: int = 1000,
                 call: Callable[..., Awaitable[Any]] | None = None, wait_s: float = 120.0, poll_s: float = 5.0,
                 retry_s: float = 60.0, sleep: Callable[[float], Awaitable[Any]] | None = None) -> None:
        import asyncio

        import pandas as pd

        if not callable(getattr(source, "funding", None)):
            raise ConfigError(f"{getattr(source, 'name', type(source).__name__)} has no funding feed "
                              "(async funding(symbol, since_ms, limit)): it cannot fund perpetuals")
        empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
        super().__init__({s: empty for s in symbols if ":" in s}, symbols)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit {limit!r}: settlements per request must be an int ≥ 1 (Binance: ≤ 1000)")
        for name, value, low in (("wait_s", wait_s, 0.0), ("poll_s", poll_s, None), ("retry_s", retry_s, None)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0 or (low is None and value == 0):
                raise ConfigError(f"{name} {value!r}: expected finite seconds {'≥ 0' if low is not None else '> 0'}")
        self.source, self.limit = source, limit
        self.wait_s, self.poll_s, self.retry_s = float(wait_s), float(poll_s), float(retry_s)
        self._call = call or _direct
        self._sleep = sleep or asyncio.sleep
        self._announces = callable(getattr(source, "next_funding", None))
        self.start_ms: int | None = None
        self.horizon_ms: int | None = None  # every settlement before this is known
        self.next_ms: dict[int, int] = {}  # per perpetual column: the next settlement the venue announced
        self.fetches = 0
        self.held = 0  # refreshes held past wait_s for a settlement not yet published
        self.waited_s = 0.0  # seconds waited for announced settlements (quiet waits and holds)
        self.events: Callable[[str, Mapping[str, object]], None] | None = None  # the runner's sinks.on_event
        self.stop = None  # an asyncio.Event: a held refresh gives up (FundingHeldError) once it is set

    def start_at(self, start_ms: int) -> None:
        """Fetch settlements from ``start_ms`` on (before the first :meth:`refresh`)."""
        if self.horizon_ms is not None and self.horizon_ms > self.start_ms:
            raise StateError(f"funding book already refreshed up to {iso_utc(self.horizon_ms)}: start_at "
                             "comes before the first refresh")
        self.start_ms = self.horizon_ms = int(start_ms)

    def append(self, symbol: str, time_ms: int, rate: float) -> bool:
        """Add one settlement of perpetual ``symbol``; False when it repeats one already held.

        Raises
        ------
        ConfigError
            ``symbol`` is not a perpetual of this book.
        DataError
            A time that is not epoch ms, a rate that is not a finite fraction with ``|rate| < 1``,
            another rate at a time already held, a time older than the last one held that is not
            held, or one before the refreshed horizon (it would be neither told nor charged).
        """
        j = self.symbols.index(symbol) if symbol in self.symbols else -1
        if j not in self._series:
            raise ConfigError(f"funding for {symbol!r}: not a perpetual of this run "
                              f"({[s for s in self.symbols if ':' in s]})")
        if isinstance(time_ms, bool) or not isinstance(time_ms, int | np.integer) or time_ms < 0:
            raise DataError(f"funding for {symbol}: time {time_ms!r} is not epoch milliseconds", source=symbol)
        if isinstance(rate, bool) or not isinstance(rate, int | float | np.number) \
                or not math.isfinite(float(rate)) or not abs(float(rate)) < 1.0:
            raise DataError(f"funding for {symbol} at {iso_utc(int(time_ms))}: rate {rate!r} is not a finite "
                            "fraction with |rate| < 1", source=symbol)
        stamps, rates = self._series[j]
        where = f"funding for {symbol} at {iso_utc(int(time_ms))} ({float(rate)!r})"
        if stamps.size and time_ms <= stamps[-1]:
            k = int(np.searchsorted(stamps, time_ms))
            if stamps[k] == time_ms and rates[k] == float(rate):
                return False
            held = f"{float(rates[k])!r} is held at that time" if stamps[k] == time_ms else \
                f"settlements up to {iso_utc(int(stamps[-1]))} are held"
            raise DataError(f"{where} conflicts with the book: {held}; settlements arrive once, in time order",
                            source=symbol)
        if self.horizon_ms is not None and time_ms < self.horizon_ms:
            raise DataError(f"{where} is before the book's horizon {iso_utc(self.horizon_ms)} (its start, or the "
                            "close it was refreshed up to): the bars before it were decided without it; a venue "
                            "publishes settlements once, in time order", source=symbol)
        self._series[j] = (np.append(stamps, np.int64(time_ms)), np.append(rates, float(rate)))
        return True

    async def refresh(self, upto_ms: int) -> None:
        """Fetch every settlement before ``upto_ms`` not yet held (paged; a symbol whose last held
        settlement is at or after ``upto_ms - 1`` is not asked: the venue publishes in time order),
        waiting for (then holding on) an announced one not yet published (see the class docstring).

        Raises
        ------
        StateError
            Before :meth:`start_at`.
        FundingHeldError
            Held for an unpublished settlement when ``stop`` is set (the horizon is not moved).
        DataError, MalformedReplyError
            A settlement the book cannot take (:meth:`append`), a malformed reply, an announced
            settlement time that is not after the book's horizon.
        """
        if self.start_ms is None:
            raise StateError("funding book: call start_at(ms) before the first refresh")
        if upto_ms <= self.horizon_ms:
            return
        late = await self._fetch(upto_ms)
        waited, held = 0.0, False
        while late:
            if self.stop is not None and self.stop.is_set():
                raise FundingHeldError(late, int(upto_ms), waited)
            if not held and waited >= self.wait_s:
                held = True
                self.held += 1
                self._tell("funding_late", late, upto_ms, waited)
            pause = self.retry_s if held else min(self.poll_s, max(self.wait_s - waited, 1e-3))
            await self._sleep(pause)
            waited += pause
            self.waited_s += pause
            late = await self._fetch(upto_ms)
        if held:
            self._tell("funding_resume", [], upto_ms, waited)
        self.horizon_ms = int(upto_ms)

    def pending(self, upto_ms: int) -> list[tuple[str, int]]:
        """``(symbol, time_ms)`` of the announced settlements before ``upto_ms`` not yet held."""
        out = []
        for j, announced in sorted(self.next_ms.items()):
            due = self._due(j, announced)
            if due < upto_ms and not self._holds(j, due):
                out.append((self.symbols[j], due))
        return out

    def _due(self, j: int, announced: int) -> int:
        """The first settlement of column ``j`` still to come: the announced one, or — announced
        after a settlement's time (a start, an outage, a catch-up), two of the held series'
        intervals after the last held — the one between (unless bars up to it are decided
        already). A venue that lengthens the interval (4 h → 8 h) looks the same: the bars wait
        (``funding_late``) until the announced settlement is published."""
        stamps = self._series[j][0]
        if stamps.size >= 2:
            last, step = int(stamps[-1]), int(stamps[-1] - stamps[-2])
            if last + step + JITTER_MS < announced <= last + 2 * step + JITTER_MS and last + step >= self.horizon_ms:
                return last + step
        return announced

    def _holds(self, j: int, due: int) -> bool:
        """Whether column ``j`` holds the settlement announced at ``due`` (published times may
        differ from the announced one by a few ms: :data:`JITTER_MS`)."""
        stamps = self._series[j][0]
        return bool(stamps.size) and int(stamps[-1]) >= due - JITTER_MS

    async def _fetch(self, upto_ms: int) -> list[tuple[str, int]]:
        """One pass: the settlements before ``upto_ms`` not yet held, then the venue's next
        settlement of each perpetual whose announced one is held; the announced ones still missing."""
        for j, symbol in ((j, self.symbols[j]) for j in sorted(self._series)):
            stamps = self._series[j][0]
            cursor = int(stamps[-1]) + 1 if stamps.size else self.start_ms
            while cursor < upto_ms:
                rows = await self._call(self.source.funding, symbol, cursor, self.limit)
                self.fetches += 1
                new = sum(self.append(symbol, when, rate) for when, rate in rows)
                if len(rows) < self.limit:
                    break
                if not new:
                    raise DataError(f"funding for {symbol}: a full page from {iso_utc(cursor)} held nothing new "
                                    "(the venue ignores the start time?)", source=symbol)
                cursor = int(self._series[j][0][-1]) + 1
            if self._announces:
                await self._announced(j, symbol)
        return self.pending(upto_ms)

    async def _announced(self, j: int, symbol: str) -> None:
        """Ask the venue for ``symbol``'s next settlement unless the one it announced is not held yet."""
        if j in self.next_ms and not self._holds(j, self.next_ms[j]):
            return
        when = await self._call(self.source.next_funding, symbol)
        if isinstance(when, bool) or not isinstance(when, int | np.integer) or when <= 0:
            raise DataError(f"next funding of {symbol}: 'fundingTimestamp' {when!r} is not epoch milliseconds",
                            source=symbol, column="fundingTimestamp", value=when)
        if self._holds(j, int(when)):
            return  # the venue's answer lags the settlement just published: ask again at the next pass
        if when < self.horizon_ms:
            raise DataError(f"next funding of {symbol}: 'fundingTimestamp' {iso_utc(int(when))} is before the "
                            f"book's horizon {iso_utc(self.horizon_ms)} (bars up to it are decided); expected a "
                            "settlement still to come", source=symbol, column="fundingTimestamp", value=when)
        self.next_ms[j] = int(when)

    def _tell(self, name: str, late: list[tuple[str, int]], upto_ms: int, waited: float) -> None:
        """Log and emit (``events``) a hold (``funding_late``) or its end (``funding_resume``)."""
        fields: dict[str, object] = {"close": iso_utc(int(upto_ms)), "waited_s": round(waited, 3),
                                     "due": [f"{s} at {iso_utc(t)}" for s, t in late]}
        if name == "funding_late":
            log.warning("funding not yet published for %s: the bar closing at %s is held (waited %.0f s); "
                        "retrying every %.0f s", ", ".join(fields["due"]), fields["close"], waited, self.retry_s)
        else:
            log.warning("funding published after %.0f s: the bar closing at %s proceeds", waited, fields["close"])
        if self.events is not None:
            self.events(name, fields)


async def _direct(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return await fn(*args)
