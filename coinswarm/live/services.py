"""The runner's connections to the outside, built from its configuration in one place: the JSON
logs with every secret of the configuration redacted, the sinks (Prometheus ``/metrics`` when a
port is given, Redis hot state when a URL is given), the outbox's bus (NATS or in-process) and
the database guard. The runner owns the order: see :func:`open_services` and
:meth:`Services.close`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from coinswarm.live.dbretry import DbGuard
from coinswarm.live.hotstate import RedisHotState
from coinswarm.live.logs import configure_logging, secrets_of
from coinswarm.live.metrics import PrometheusSink
from coinswarm.live.publisher import connect_publisher
from coinswarm.live.sinks import Sinks

log = logging.getLogger("coinswarm.live.services")


@dataclass
class Services:
    """What :func:`open_services` built (``metrics``/``hot`` None when not configured)."""

    sinks: Sinks
    bus: Any
    guard: DbGuard
    metrics: PrometheusSink | None = None
    hot: RedisHotState | None = None
    log_handler: logging.Handler | None = field(default=None, repr=False)

    async def close(self) -> None:
        """Close the bus, then the sinks (the /metrics server last); idempotent."""
        bus, self.bus = self.bus, None
        if bus is not None:
            await bus.close()
        self.sinks.close()


def build_sinks(config: Any, run: str, *, metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
                start_equity: float | None = None, hot_interval_s: float = 0.0
                ) -> tuple[Sinks, PrometheusSink | None, RedisHotState | None]:
    """``(sinks, metrics, hot)``: a :class:`PrometheusSink` serving ``/metrics`` on
    ``metrics_port`` (None: ``config.metrics_port``; 0: no server) and a
    :class:`RedisHotState` when ``config.servers.redis`` is set, fanned out by one :class:`Sinks`
    whose failures the metrics report. ``hot_interval_s``: the hot state's ``min_interval_s``
    (a replay at ``--speed max`` passes e.g. 0.25)."""
    port = config.metrics_port if metrics_port is None else metrics_port
    metrics = PrometheusSink(port=port, host=metrics_host, start_equity=start_equity) if port else None
    hot = RedisHotState(config.servers.redis, run, min_interval_s=hot_interval_s) if config.servers.redis else None
    sinks = Sinks([s for s in (metrics, hot) if s is not None])
    if metrics is not None:
        metrics.watch(sinks)
    return sinks, metrics, hot


async def open_services(config: Any, run: str, *, metrics_port: int | None = None, start_equity: float | None = None,
                        hot_interval_s: float = 0.0, log_level: int | str = "INFO", log_stream: IO[str] | None = None,
                        env: Mapping[str, str] | None = None, connect_timeout: float = 10.0) -> Services:
    """Logs first (so nothing after can leak a secret), then the sinks, then the bus.

    Raises
    ------
    ConfigError
        A busy metrics port, a bad Redis URL, NATS unreachable or refusing the credentials.
    """
    handler = configure_logging(log_level, log_stream, secrets=secrets_of(config, env=env))
    sinks, metrics, hot = build_sinks(config, run, metrics_port=metrics_port, start_equity=start_equity,
                                      hot_interval_s=hot_interval_s)
    try:
        bus = await connect_publisher(config.servers.nats, connect_timeout=connect_timeout)
    except BaseException:
        sinks.close()
        raise
    guard = DbGuard(notify=sinks.on_event)
    log.info("services up", extra={"metrics": metrics.url if metrics else None, "redis": hot is not None,
                                   "bus": type(bus).__name__})
    return Services(sinks, bus, guard, metrics, hot, handler)
