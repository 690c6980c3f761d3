"""Prometheus metrics of the runner: a :class:`~coinswarm.live.sinks.Sink` on its own
``CollectorRegistry`` (never the process-global one, so two runners or a test suite never
collide), served over HTTP at ``/metrics`` (``coinswarm live run|replay --metrics-port N``).

Metrics (prefix ``coinswarm_live_``):

====================================  =========  ===============================================
``bars_total``                        counter    closed bars processed by this process
``bars_processed``                    gauge      bars processed by the run (resumes included)
``decision_latency_seconds``          histogram  closed bar → order decision
``orders_total{status}``              counter    orders created (``new``) or moved to ``status``
``fills_total{symbol,side}``          counter    new fills
``rejects_total{reason}``             counter    rejected orders by reason (at most 32 reasons)
``pnl``, ``equity``, ``cash``         gauge      quote currency; PnL = equity − ``start_equity``
``drawdown``                          gauge      fraction below the equity peak
``position{symbol}``                  gauge      units held
``halted``                            gauge      kill switch: 1 halted, 0 trading
``halts_total{reason}``               counter    halts
``feed_lag_seconds``                  gauge      wall clock at decision − the bar's close
``reconnects_total{component}``       counter    feed/bus/Redis reconnects
``sink_failures_total{sink}``         counter    failed sink calls (read from :class:`Sinks` at scrape)
``outbox_published_total``, …         counter    the outbox relay's published/duplicates/failures
``outbox_proposals_delayed_total``    counter    memory proposals published > 1 h after written
                                                 (stamped at publish, so not stale)
``outbox_proposals_unreadable_total`` counter    memory proposals the relay could not re-stamp
``memory_proposals_total``            counter    memory proposals written to the outbox (the
                                                 run's, resumes included: read from the proposer)
``memory_proposals_skipped_total``    counter    closed trips whose proposal could not be built
``memory_proposal_failures_total``    counter    bars the proposer failed to track (logged)
``last_bar_timestamp_seconds``        gauge      open time of the last bar processed
``bar_interval_seconds``              gauge      the bars' interval (the run's timeframe; 0 before
                                                 the first bar): the no-bar alert scales with it
``db_paused``, ``db_pauses_total``    gauge      the ledger's database is away (DbGuard), pauses so far
``funding_held``                      gauge      1 while a bar waits for a funding settlement the
                                                 venue announced but has not yet published
``funding_late_total``                counter    bars held so (LiveFundingBook ``funding_late``)
====================================  =========  ===============================================

Labels are bounded: a reject reason is cut to its first 48 characters of ``[a-z0-9_ -]``
and, past 32 distinct reasons, counted as ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from coinswarm.errors import ConfigError
from coinswarm.live.orders import StoredOrder
from coinswarm.live.protocols import Fill, OrderStatus
from coinswarm.live.sinks import Sinks, Snapshot

PREFIX = "coinswarm_live"
LATENCY_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.5, 1.0)
MAX_REASONS = 32


def reason_label(reason: object) -> str:
    """A bounded label of a free-text reason: lower case, ``[a-z0-9_ -]`` only, 48 characters."""
    text = re.sub(r"[^a-z0-9_ -]+", " ", str(reason).lower())
    return re.sub(r"\s+", " ", text).strip()[:48] or "unknown"


class _Watched:
    """A custom collector: counters read at scrape time from :class:`Sinks` and the relay."""

    def __init__(self) -> None:
        self.sinks: Sinks | None = None
        self.relay = None
        self.memory = None  # a coinswarm.live.proposals.MemoryProposer

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        failures = CounterMetricFamily(f"{PREFIX}_sink_failures", "Failed sink calls", labels=["sink"])
        for name, count in sorted((self.sinks.failures if self.sinks is not None else {}).items()):
            failures.add_metric([name], float(count))
        yield failures
        for attr in ("published", "duplicates", "failures"):
            yield CounterMetricFamily(f"{PREFIX}_outbox_{attr}", f"Outbox relay: {attr}",
                                      value=float(getattr(self.relay, attr, 0)) if self.relay is not None else 0.0)
        for attr, doc in (("delayed", "Memory proposals published more than 1 h after written (stamped at publish)"),
                          ("unreadable", "Memory proposals the relay could not re-stamp (published unchanged)")):
            yield CounterMetricFamily(f"{PREFIX}_outbox_proposals_{attr}", doc,
                                      value=float(getattr(self.relay, attr, 0)))
        for name, attr, doc in (("memory_proposals", "proposed", "Memory proposals written to the outbox"),
                                ("memory_proposals_skipped", "skipped", "Closed trips whose proposal was not built"),
                                ("memory_proposal_failures", "failures", "Bars the memory proposer failed to track")):
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(getattr(self.memory, attr, 0)))


class PrometheusSink:
    """The runner's metrics (see the module docstring), optionally served on ``/metrics``.

    Parameters
    ----------
    port : int or None
        Serve ``/metrics`` on this TCP port (0: any free port, read back from :attr:`port`);
        None: no server (:meth:`render` still gives the text).
    host : str
        Address to bind (loopback by default; bind wider only behind a firewall).
    start_equity : float, optional
        The PnL's origin (the account's starting equity); default: the first snapshot's equity.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", *, start_equity: float | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise ConfigError(f"metrics port must be an integer in [0, 65535] or None, got {port!r}")
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.start_equity = start_equity

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)

        self.bars = counter("bars", "Closed bars processed by this process")
        self.bars_processed = gauge("bars_processed", "Closed bars processed by the run (resumes included)")
        self.latency = Histogram(f"{PREFIX}_decision_latency_seconds", "Closed bar to order decision",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.orders = counter("orders", "Orders created (new) or moved to a status", ("status",))
        self.fills = counter("fills", "New fills", ("symbol", "side"))
        self.rejects = counter("rejects", "Rejected orders by reason", ("reason",))
        self.pnl, self.equity = gauge("pnl", "Equity minus start equity"), gauge("equity", "Equity marked at close")
        self.cash, self.drawdown = gauge("cash", "Quote cash"), gauge("drawdown", "Fraction below the equity peak")
        self.position = gauge("position", "Units held", ("symbol",))
        self.halted = gauge("halted", "Kill switch: 1 halted, 0 trading")
        self.halts = counter("halts", "Halts by reason", ("reason",))
        self.feed_lag = gauge("feed_lag_seconds", "Wall clock at decision minus the bar's close")
        self.reconnects = counter("reconnects", "Reconnects by component", ("component",))
        self.last_bar = gauge("last_bar_timestamp_seconds", "Open time of the last bar processed")
        self.bar_interval = gauge("bar_interval_seconds", "The bars' interval (the run's timeframe)")
        self.db_paused = gauge("db_paused", "1 while the ledger's database is unavailable and trading waits")
        self.db_pauses = counter("db_pauses", "Pauses for an unavailable ledger database")
        self.funding_held = gauge("funding_held", "1 while a bar waits for a funding settlement not yet published")
        self.funding_late = counter("funding_late", "Bars held for a funding settlement published late")
        self._watched = _Watched()
        registry.register(self._watched)
        self._reasons: set[str] = set()
        self.server = self._thread = None
        self.port: int | None = None
        if port is not None:
            self._serve(host, port)

    def _serve(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            self.server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}; pick a free port "
                              "(--metrics-port) or 0 for none") from None
        self.port = self.server.server_address[1]

    @property
    def url(self) -> str | None:
        """``http://host:port/metrics`` when served."""
        return None if self.server is None else f"http://{self.server.server_address[0]}:{self.port}/metrics"

    def watch(self, sinks: Sinks | None = None, relay=None, memory=None) -> None:
        """Report ``sinks.failures``, the outbox ``relay``'s counters and the memory proposer's
        (``memory``: proposed, skipped, failures), read at each scrape."""
        if sinks is not None:
            self._watched.sinks = sinks
        if relay is not None:
            self._watched.relay = relay
        if memory is not None:
            self._watched.memory = memory

    def render(self) -> str:
        """The text exposition format (what ``/metrics`` serves)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    # -- Sink ------------------------------------------------------------------------
    def on_order(self, order: StoredOrder) -> None:
        """Count the order's status; a rejection also by its reason."""
        self.orders.labels(order.status.value).inc()
        if order.status is OrderStatus.REJECTED:
            self._reject(order.reason)

    def _reject(self, reason: object) -> None:
        label = reason_label(reason)
        if label not in self._reasons:
            if len(self._reasons) >= MAX_REASONS:
                label = "other"
            self._reasons.add(label)
        self.rejects.labels(label).inc()

    def on_fill(self, fill: Fill) -> None:
        """Count the fill."""
        self.fills.labels(fill.symbol, fill.side.value).inc()

    def on_bar(self, snapshot: Snapshot) -> None:
        """Update every gauge from the snapshot and observe its latency."""
        if self.start_equity is None:
            self.start_equity = float(snapshot.equity)
        self.bars.inc()
        self.bars_processed.set(snapshot.bars_processed)
        self.latency.observe(max(float(snapshot.latency_us), 0.0) / 1e6)
        self.equity.set(snapshot.equity)
        self.cash.set(snapshot.cash)
        self.pnl.set(float(snapshot.equity) - self.start_equity)
        self.drawdown.set(snapshot.drawdown)
        self.halted.set(1.0 if snapshot.halted else 0.0)
        self.feed_lag.set(max(int(snapshot.feed_lag_ms), 0) / 1000.0)
        self.last_bar.set(snapshot.bar_time / 1000.0)
        if snapshot.bar_interval_ms > 0:
            self.bar_interval.set(snapshot.bar_interval_ms / 1000.0)
        for symbol, qty in snapshot.positions.items():
            self.position.labels(symbol).set(float(qty))

    def on_event(self, name: str, fields: Mapping[str, object]) -> None:
        """``reject`` (``reason``), ``reconnect`` (``component``), ``halt`` (``reason``), ``resume``,
        ``db_pause`` / ``db_resume`` (from :class:`~coinswarm.live.dbretry.DbGuard`), ``funding_late`` /
        ``funding_resume`` (from :class:`~coinswarm.live.funding.LiveFundingBook`)."""
        if name == "reject":
            self._reject(fields.get("reason", "unknown"))
        elif name == "reconnect":
            self.reconnects.labels(reason_label(fields.get("component", "feed"))).inc()
        elif name == "halt":
            self.halted.set(1.0)
            self.halts.labels(reason_label(fields.get("reason", "manual"))).inc()
        elif name == "resume":
            self.halted.set(0.0)
        elif name == "db_pause":
            self.db_paused.set(1.0)
            self.db_pauses.inc()
        elif name == "db_resume":
            self.db_paused.set(0.0)
        elif name == "funding_late":
            self.funding_held.set(1.0)
            self.funding_late.inc()
        elif name == "funding_resume":
            self.funding_held.set(0.0)

    def close(self) -> None:
        """Stop the HTTP server (idempotent)."""
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
