"""Where the runner reports what it did, besides the ledger: Redis hot state, Prometheus metrics,
logs. A sink observes; it never decides and never blocks trading: :class:`Sinks` calls every sink
inside a guard, counts its failures and goes on (Redis down → trading continues).

The runner calls, in this order per closed bar: ``on_order`` for every order it created or moved,
``on_fill`` for every new fill, then ``on_bar`` with the :class:`Snapshot` after the bar.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from coinswarm.live.orders import StoredOrder
from coinswarm.live.protocols import Fill

log = logging.getLogger("coinswarm.live")


@dataclass(frozen=True)
class Snapshot:
    """The runner's state after one closed bar (what a dashboard or ``live status`` shows).

    Attributes
    ----------
    bar_time : int
        Open time of the bar just processed, epoch ms.
    positions : Mapping[str, float]
        Units held per symbol.
    cash, equity : float
        Quote currency, equity marked at the bar's close.
    drawdown : float
        Fraction below the equity peak (0 at a peak).
    regimes : Mapping[str, str]
        Regime label per symbol (empty when the strategy has none).
    weights : Mapping[str, Mapping[str, float]]
        Committee weight per symbol and agent (empty when not a committee).
    targets : Mapping[str, float]
        Target fraction of equity per symbol decided at this bar.
    latency_us : float
        Closed bar → order decision, microseconds.
    bars_processed : int
        Bars processed since the run began (resumes included).
    halted : bool
        Kill-switch state.
    feed_lag_ms : int
        Wall clock at decision minus the bar's close time (0 in a replay at max speed).
    bar_interval_ms : int
        The bars' interval (the run's timeframe), ms; 0 when unknown.
    """

    bar_time: int
    positions: Mapping[str, float]
    cash: float
    equity: float
    drawdown: float = 0.0
    regimes: Mapping[str, str] = field(default_factory=dict)
    weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    targets: Mapping[str, float] = field(default_factory=dict)
    latency_us: float = 0.0
    bars_processed: int = 0
    halted: bool = False
    feed_lag_ms: int = 0
    bar_interval_ms: int = 0


@runtime_checkable
class Sink(Protocol):
    """An observer of the runner (see the module docstring for the call order)."""

    def on_order(self, order: StoredOrder) -> None:
        """An order was created or changed status."""

    def on_fill(self, fill: Fill) -> None:
        """A new (de-duplicated) fill was stored."""

    def on_bar(self, snapshot: Snapshot) -> None:
        """A closed bar was processed."""

    def on_event(self, name: str, fields: Mapping[str, object]) -> None:
        """Anything else worth counting: ``reject`` (reason), ``reconnect``, ``halt``, ``resume``."""

    def close(self) -> None:
        """Release connections and servers (idempotent)."""


class Sinks:
    """Fan-out to several sinks; a failing sink is logged and counted, never raised.

    Attributes
    ----------
    failures : dict[str, int]
        Failed calls per sink class name.
    """

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks = list(sinks)
        self.failures: dict[str, int] = {}

    def _each(self, method: str, *args: object) -> None:
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # a sink must never stop trading
                name = type(sink).__name__
                self.failures[name] = self.failures.get(name, 0) + 1
                if self.failures[name] in (1, 10, 100) or self.failures[name] % 1000 == 0:
                    log.warning("sink %s.%s failed (%d so far): %s: %s", name, method, self.failures[name],
                                type(exc).__name__, exc)

    def on_order(self, order: StoredOrder) -> None:
        self._each("on_order", order)

    def on_fill(self, fill: Fill) -> None:
        self._each("on_fill", fill)

    def on_bar(self, snapshot: Snapshot) -> None:
        self._each("on_bar", snapshot)

    def on_event(self, name: str, fields: Mapping[str, object]) -> None:
        self._each("on_event", name, fields)

    def close(self) -> None:
        self._each("close")
