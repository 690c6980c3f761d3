"""Memory proposals from the daemon: one ``add_episode`` per closed round-trip trade, sent to the
quorum through the ledger's outbox.

**What is proposed.** A round trip opens when a symbol's position leaves flat and closes when it
is flat again (a reversal closes one and opens the next). Its episode is what the quorum's
``add_episode`` takes (:func:`coinswarm.quorum.manager.check_episode`): ``action`` ``buy`` (a
long trip) or ``sell`` (a short one), ``outcome`` the trip's PnL **after fees** as a fraction of
the notional it entered, and ``embedding`` the market state when the entry was decided, in the
space of :mod:`coinswarm.memory.episodic` (its 25 :data:`~coinswarm.memory.episodic.FEATURES`
through :func:`~coinswarm.memory.episodic.embed`). The daemon measures those features causally
from what it holds: log returns over 1–168 bars and realised volatility over 24/168 bars from
the last :data:`HISTORY` closes, a trend t-statistic of the last 72 returns, the committee's
regime cell and its trend and mean-reversion votes (``vote · confidence``: vote = its sign,
confidence = its size), the session of the decision bar; the spread (which needs highs and lows)
is not measured and stays 0, as does anything not yet known (a replay's first bars, a
strategy without a committee). The data also carries symbol, strategy, decision/entry/exit bar times, prices, PnL,
fees, regime label, agent weights and votes at the decision. ``data_time`` is the exit fill's
bar time; ``timestamp`` the wall clock when the episode is written, set again by the outbox
relay when it publishes it (:meth:`coinswarm.live.outbox.Relay.stamped`).

**From the first traded bar.** The daemons' warm-up (the history stepped through before the
first decision, :func:`coinswarm.live.daemon.warm_up` and the exchange runner's) goes through
:meth:`MemoryProposer.warm` too, so a trip opened right after it has its returns, volatility
and trend measured; only a replay's own first bars (it starts trading at once) are unknown.

**Exactly once.** The id is a digest of (run, symbol, entry fill id, exit fill id): the run is
the ledger's stored run spec, fill ids are deterministic, so a replay resumed after a crash
proposes the same ids. The episodes closed since the last checkpoint go into the outbox
(subject :data:`~coinswarm.live.outbox.PROPOSAL_SUBJECT`, msg id = proposal id, the bytes
:func:`coinswarm.memory.nodes.submit` publishes) **in the checkpoint's transaction**, with this
tracker's state (open trips, recent closes) under the meta key :data:`META_KEY`: after a
crash, the bars since the checkpoint are processed again from the same state and give the same
proposals, none written twice; the relay publishes them when NATS is there (nothing lost while
it is down; the quorum's ``mem.propose`` stream and the store de-duplicate by id). The relay
stamps a proposal when it publishes it, so one that waited in the outbox longer than the
managers' ``max_age_ms`` (1 h) is not refused as stale (it is counted and logged as delayed).

**Never in the way.** Per bar the tracker copies one row of closes and, for the committee, its
regime cells, votes and weights (a few µs, after the decision is taken and timed); features and
the embedding are computed only when a trip opens or closes. A proposal that cannot be built
(non-finite numbers) is counted in :attr:`MemoryProposer.skipped`, never raised into trading.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from coinswarm.errors import MessageError
from coinswarm.live.outbox import PROPOSAL_SUBJECT, OutboxMessage
from coinswarm.live.protocols import Fill, Side
from coinswarm.quorum.proposals import Proposal, canonical

log = logging.getLogger("coinswarm.live.proposals")
META_KEY = "memory"
SUBMITTER = "live"
HISTORY = 169  # closes kept per symbol: the 168-bar return and volatility
TREND_WINDOW = 72
RECORD_VERSION = 1
_TOL = 1e-9


def proposal_message(proposal: Proposal) -> OutboxMessage:
    """The outbox row of ``proposal``: what :func:`coinswarm.memory.nodes.submit` publishes."""
    return OutboxMessage(PROPOSAL_SUBJECT, proposal.id, proposal.encode())


def run_key(spec: Mapping[str, Any]) -> str:
    """A short digest of the ledger's run spec (strategy, symbols, params, costs, cash)."""
    return hashlib.blake2b(canonical(dict(spec)), digest_size=8).hexdigest()


def episode_id(run: str, symbol: str, entry_fill: str, exit_fill: str) -> str:
    """The deterministic proposal id of one round trip."""
    text = "\n".join((run, symbol, entry_fill, exit_fill)).encode()
    return "live-" + hashlib.blake2b(text, digest_size=16).hexdigest()


@dataclass
class Trip:
    """One open round trip of a symbol (JSON-able: it is part of the checkpoint)."""

    side: int  # +1 long, -1 short
    qty: float  # units still open
    peak: float  # most units held
    avg: float  # average entry price
    entered: float  # notional entered (sum of qty · price of the entry-side fills)
    entered_qty: float  # units entered
    gross: float  # realised PnL before fees
    fees: float
    exit_value: float  # sum of qty · price of the reducing fills
    exited: float  # units reduced
    entry_fill: str
    entry_ms: int
    decided_ms: int
    features: list[float] = field(default_factory=list)
    regime: str = ""
    weights: dict[str, float] = field(default_factory=dict)
    votes: dict[str, float] = field(default_factory=dict)


def decision_features(closes: np.ndarray, cell: int, trend_vc: float, mr_vc: float, decided_ms: int) -> np.ndarray:
    """The 25 :data:`~coinswarm.memory.episodic.FEATURES` of one symbol at a decision (see the
    module docstring; what is unknown is 0). ``closes``: oldest first, NaN where missing."""
    from coinswarm.regime.detector import session_of_py

    out = np.zeros(25)
    with np.errstate(invalid="ignore", divide="ignore"):
        lc = np.log(closes)
        for k, h in enumerate((1, 4, 24, 72, 168)):
            if len(lc) > h:
                out[k] = lc[-1] - lc[-1 - h]
        r1 = np.diff(lc)
        for k, n in ((5, 24), (6, 168)):
            if len(r1) >= n:
                out[k] = np.std(r1[-n:])
        if len(r1) >= TREND_WINDOW:
            tail = r1[-TREND_WINDOW:]
            sd = np.std(tail)
            out[7] = np.mean(tail) / sd * math.sqrt(TREND_WINDOW) if sd > 0 else 0.0
    if 0 <= cell < 9:
        out[9 + cell] = 1.0
    out[18 + int(session_of_py(int(decided_ms)))] = 1.0
    for k, vc in ((21, trend_vc), (23, mr_vc)):
        if math.isfinite(vc):
            out[k], out[k + 1] = float(np.sign(vc)), min(1.0, abs(vc))
    out[~np.isfinite(out)] = 0.0
    return out


class MemoryProposer:
    """Round trips from the runner's fills, as ``add_episode`` proposals for the outbox.

    The runner calls :meth:`on_bar` after each closed time (with the fills it executed then),
    :meth:`outbox` and :meth:`record` when it builds a checkpoint and :meth:`flushed` once the
    checkpoint is committed. Build one with :func:`attach`.

    Parameters
    ----------
    symbols : sequence of str
        The runner's symbols, in target-row order.
    strategy : str
        The strategy's name (in every episode).
    run : str
        :func:`run_key` of the stored run (part of every proposal id).
    agents : sequence of str
        The committee's agent names (empty for another strategy).
    """

    meta_key = META_KEY  # where the runner stores :meth:`record` in its checkpoint's transaction
    history = HISTORY  # closes the features need (the daemons' warm-up reads at least this many)

    def __init__(self, symbols: Sequence[str], strategy: str, run: str, agents: Sequence[str] = ()) -> None:
        self.symbols, self.strategy, self.run, self.agents = tuple(symbols), strategy, run, tuple(agents)
        self.index = {s: j for j, s in enumerate(self.symbols)}
        m = len(self.symbols)
        self.closes = np.full((HISTORY, m), np.nan)
        self.count = 0  # closes pushed (the ring's next row is count % HISTORY)
        self.positions = np.zeros(m)
        self.trips: dict[str, Trip] = {}
        self.prev: dict[str, Any] | None = None  # the committee's view at the last bar (the decision's)
        self.closed: list[tuple[Trip, str, Fill]] = []  # closed since the last checkpoint
        self._taken = 0
        self.proposed = 0
        self.skipped = 0
        self.failures = 0

    # -- the runner's hooks -------------------------------------------------------------
    def on_bar(self, t: int, close_row: np.ndarray, fills: Sequence[Fill], stepper) -> None:
        """This time's fills (decided at the previous bar), then its closes and the committee's
        view. A failure here is logged and counted (:attr:`failures`), never raised into trading."""
        try:
            for fill in fills:
                if fill.symbol in self.index:
                    self._on_fill(fill)
            self.closes[self.count % HISTORY] = close_row
            self.count += 1
            self.prev = _view(stepper, t)
        except Exception as exc:  # a bug here must not stop trading
            self.failures += 1
            if self.failures in (1, 10, 100) or self.failures % 1000 == 0:
                log.error("memory proposals: bar %s not tracked (%d failures): %s: %s", t, self.failures,
                          type(exc).__name__, exc)

    def warm(self, t: int, close_row: np.ndarray, stepper) -> None:
        """A warm-up bar (history stepped through before trading, no fills): its closes and the
        committee's view, as :meth:`on_bar` takes them. A time not after the last one tracked (a
        warm-up repeated after a crash, on a restored record) is ignored."""
        if self.prev is not None and int(t) <= int(self.prev.get("t", -1)):
            return
        self.on_bar(t, close_row, (), stepper)

    def outbox(self, now_ms: int) -> list[OutboxMessage]:
        """The proposals of the trips closed since the last checkpoint, stamped ``now_ms``
        (kept until :meth:`flushed`: a failed checkpoint builds them again)."""
        out = []
        self._taken = len(self.closed)
        for trip, symbol, fill in self.closed:
            try:
                out.append(proposal_message(self.proposal(trip, symbol, fill, now_ms)))
            except Exception as exc:  # MessageError (invalid), or anything unexpected: never into trading
                self.skipped += 1
                log.warning("memory proposal of %s %s not built: %s", symbol, fill.fill_id, exc)
        return out

    def flushed(self) -> None:
        """The checkpoint holding :meth:`outbox`'s messages is committed."""
        self.proposed += self._taken
        del self.closed[:self._taken]
        self._taken = 0

    # -- round trips --------------------------------------------------------------------
    def _on_fill(self, fill: Fill) -> None:
        j = self.index[fill.symbol]
        sign = 1 if fill.side is Side.BUY else -1
        pos, qty = float(self.positions[j]), float(fill.qty)
        if qty <= 0:
            return
        trip = self.trips.get(fill.symbol)
        if abs(pos) <= _TOL * max(qty, 1.0) or pos * sign > 0:  # opens or adds
            if trip is None and abs(pos) <= _TOL * max(qty, 1.0):
                self.trips[fill.symbol] = self._open(fill, sign, qty, fill.fee)
            elif trip is not None:
                trip.avg = (trip.avg * trip.qty + fill.price * qty) / (trip.qty + qty)
                trip.qty += qty
                trip.peak = max(trip.peak, trip.qty)
                trip.entered += fill.price * qty
                trip.entered_qty += qty
                trip.fees += fill.fee
            self.positions[j] = pos + sign * qty
            return
        closing = min(qty, abs(pos))
        rest = qty - closing
        if rest <= _TOL * qty:
            closing, rest = qty, 0.0
        self.positions[j] = pos + sign * qty
        if trip is not None:
            trip.gross += (fill.price - trip.avg) * closing * trip.side
            trip.fees += fill.fee * closing / qty
            trip.exit_value += fill.price * closing
            trip.exited += closing
            trip.qty -= closing
        if abs(self.positions[j]) <= _TOL * max(abs(pos), qty) or rest > 0:
            self.positions[j] = 0.0 if rest == 0 else sign * rest
            if trip is not None:
                self.closed.append((trip, fill.symbol, fill))
                del self.trips[fill.symbol]
            if rest > 0:
                self.trips[fill.symbol] = self._open(fill, sign, rest, fill.fee * rest / qty)

    def _open(self, fill: Fill, sign: int, qty: float, fee: float) -> Trip:
        j = self.index[fill.symbol]
        prev = self.prev or {}
        cells, votes, weights = prev.get("cells"), prev.get("votes"), prev.get("weights")
        cell = int(cells[j]) if cells is not None and np.isfinite(cells[j]) else -1
        vc = np.nan_to_num(votes[j]) if votes is not None else np.zeros(3)
        decided = int(prev.get("t", fill.time_ms))
        features = decision_features(self._history(j), cell, float(vc[0]), float(vc[1]), decided)
        trip = Trip(sign, qty, qty, fill.price, fill.price * qty, qty, 0.0, fee, 0.0, 0.0, fill.fill_id, fill.time_ms,
                    decided, [float(x) for x in features], _label(cell))
        if weights is not None:
            trip.weights = {a: float(w) for a, w in zip(self.agents, weights[j], strict=False) if math.isfinite(w)}
        if votes is not None:
            trip.votes = {a: float(v) for a, v in zip(self.agents, vc, strict=False)}
        return trip

    def _history(self, j: int) -> np.ndarray:
        k = min(self.count, HISTORY)
        rows = (self.count - k + np.arange(k)) % HISTORY
        return self.closes[rows, j]

    # -- the proposal -------------------------------------------------------------------
    def proposal(self, trip: Trip, symbol: str, fill: Fill, now_ms: int) -> Proposal:
        """The ``add_episode`` proposal of a closed trip (raises :class:`MessageError` if invalid)."""
        from coinswarm.memory.episodic import embed

        pnl = trip.gross - trip.fees
        outcome = pnl / trip.entered if trip.entered > 0 else float("nan")
        vector = embed(np.asarray([trip.features]))[0]
        data = {"embedding": [round(float(x), 7) for x in vector], "action": "buy" if trip.side > 0 else "sell",
                "outcome": outcome, "symbol": symbol, "strategy": self.strategy, "decided_ms": trip.decided_ms,
                "entry_ms": trip.entry_ms, "exit_ms": fill.time_ms, "entry_price": trip.entered / trip.entered_qty,
                "exit_price": trip.exit_value / trip.exited if trip.exited > 0 else fill.price,
                "qty": trip.peak, "pnl": pnl, "fees": trip.fees, "regime": trip.regime,
                "weights": trip.weights, "votes": trip.votes}
        from coinswarm.memory.episodic import FEATURES

        justification = {"source": "coinswarm live", "run": self.run, "entry_fill": trip.entry_fill,
                         "exit_fill": fill.fill_id, "features": dict(zip(FEATURES, trip.features, strict=True))}
        if int(now_ms) < int(fill.time_ms):
            raise MessageError(f"the clock ({now_ms}) is before the exit bar ({fill.time_ms})", field="timestamp")
        return Proposal(id=episode_id(self.run, symbol, trip.entry_fill, fill.fill_id), kind="add_episode",
                        submitter=SUBMITTER, timestamp=int(now_ms), data_time=int(fill.time_ms), data=data,
                        justification=justification)

    # -- the checkpoint -----------------------------------------------------------------
    def record(self) -> dict:
        """This tracker's state as JSON (no NaN): stored with the runner's checkpoint."""
        k = min(self.count, HISTORY)
        rows = [self.closes[(self.count - k + i) % HISTORY] for i in range(k)]
        return {"version": RECORD_VERSION, "run": self.run, "count": self.count,
                "closes": [[_num(x) for x in row] for row in rows], "positions": [float(x) for x in self.positions],
                "trips": {s: asdict(t) for s, t in self.trips.items()}, "prev": _json_view(self.prev)}

    def load(self, record: Mapping[str, Any] | None, positions: Sequence[float]) -> None:
        """Restore :meth:`record`; without one (memory enabled on a run that had it off), the
        broker's open ``positions`` are tracked without an entry (they close without an episode)."""
        if not record or record.get("version") != RECORD_VERSION or record.get("run") != self.run:
            self.positions = np.asarray(positions, dtype=np.float64).copy()
            return
        self.count = int(record["count"])
        rows = record["closes"]
        for i, row in enumerate(rows):
            self.closes[(self.count - len(rows) + i) % HISTORY] = [np.nan if x is None else x for x in row]
        self.positions = np.asarray(record["positions"], dtype=np.float64)
        self.trips = {s: Trip(**t) for s, t in record["trips"].items()}
        prev = record.get("prev")
        self.prev = None if prev is None else {k: (v if k == "t" else np.array(v, dtype=np.float64))
                                              for k, v in prev.items()}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _label(cell: int) -> str:
    if not 0 <= cell < 9:
        return ""
    from coinswarm.regime.detector import TREND_LABELS, VOLATILITY_LABELS

    return f"{VOLATILITY_LABELS[cell // 3]}/{TREND_LABELS[cell % 3]}"


def _view(stepper, t: int) -> dict[str, Any]:
    """The committee's regime cells, last votes (``vote · confidence``) and weights after the
    bar at ``t`` (copies: the state moves on); only ``t`` for another strategy."""
    weights = getattr(stepper, "_weights", None)
    if not getattr(stepper, "joint", False) or weights is None:
        return {"t": int(t)}
    from coinswarm.committee.kernel import _REGIME

    arrays = stepper.states[0].arrays
    return {"t": int(t), "cells": arrays[5][:, _REGIME].copy(), "votes": arrays[4].copy(),
            "weights": np.array(weights, copy=True)}


def _json_view(view: dict[str, Any] | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {k: (v if k == "t" else [[_num(x) for x in row] if np.ndim(row) else _num(row) for row in v])
            for k, v in view.items()}


def attach(runner, *, run_meta_key: str | None = None, positions: Sequence[float] | None = None) -> MemoryProposer:
    """Give a recovered ``runner`` its proposer (state from the ledger's :data:`META_KEY`).

    ``run_meta_key``: the ledger meta key of the run spec (the paper runner's
    :data:`coinswarm.live.recovery.RUN_KEY` when None; the exchange runner's is ``venue_run``);
    ``positions``: the open positions in symbol order when no record is stored (the paper
    broker's when None)."""
    from coinswarm.live.recovery import RUN_KEY
    from coinswarm.memory.episodic import embed
    from coinswarm.regime.detector import session_of_py

    embed(np.zeros((1, 25)))  # imports and first calls now, not inside the first bar that trades
    session_of_py(0)
    spec = runner.ledger.get_meta(run_meta_key or RUN_KEY) or {}
    agents = getattr(runner.stepper.strategy, "agent_names", ()) if runner.stepper.joint else ()
    proposer = MemoryProposer(runner.symbols, runner.stepper.name, run_key(spec), agents)
    proposer.load(runner.ledger.get_meta(META_KEY), runner.broker.positions() if positions is None else positions)
    runner.memory = proposer
    return proposer
