"""The daemon's publisher: the bus the outbox :class:`~coinswarm.live.outbox.Relay` publishes to.

``""`` (no URL) gives the embedded :class:`~coinswarm.adapters.bus.InProcessBus`; a ``nats://``
or ``tls://`` URL gives a :class:`~coinswarm.adapters.bus.NatsBus` with the stream
``COINSWARM_LIVE`` (``agent.action``, ``agent.trade``, ``live.heartbeat``, de-duplicated by
``Nats-Msg-Id`` over :data:`~coinswarm.live.outbox.DUPLICATE_WINDOW_S`) ensured. Credentials
come from the URL, as nats-py reads them: ``nats://user:password@host:4222`` or
``nats://TOKEN@host:4222``; no error message shows them.

While NATS is down a publish is retried for ``retry_for`` seconds only (short: the relay stops
at the first failure and the rows wait, in order, in the outbox for the next drain), and the
connection reconnects by itself (``max_reconnect_attempts=-1``: forever — the outbox holds what
waits). The first connection is bounded (``connect_attempts``): an unreachable NATS at start is
a :class:`~coinswarm.errors.ConfigError`, not a retry loop.

Logs: nats-py's own error callback prints a traceback for every failed attempt; the daemon's
:class:`ConnectionLog` replaces it with **one line per failed (re)connect attempt** (warning for
the first :attr:`ConnectionLog.loud` of an outage, then debug, with a warning summary every
``every_s`` seconds) and one line when the connection is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coinswarm.adapters.batching import bounded
from coinswarm.adapters.bus import InProcessBus, NatsBus
from coinswarm.errors import ConfigError
from coinswarm.live.logs import redact, safe_url, url_secrets
from coinswarm.live.outbox import ensure_live_stream

SCHEMES = ("nats", "tls")
log = logging.getLogger("coinswarm.live.publisher")


class ConnectionLog:
    """nats-py's ``error_cb`` / ``disconnected_cb``: one log line per failed (re)connect attempt
    or lost connection, never a traceback, secrets of the URL redacted.

    Parameters
    ----------
    url : str
        The NATS URL (shown masked).
    loud : int
        Failed attempts of one outage logged as warnings; later ones at debug level, with a
        warning summary every ``every_s`` seconds.
    """

    def __init__(self, url: str, *, loud: int = 3, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.where, self.secrets = safe_url(url), url_secrets(url)
        self.loud, self.every_s, self.clock = int(loud), float(every_s), clock
        self.failures = 0  # failed attempts in the current outage
        self.total = 0
        self.connected = False  # a first connection succeeded (a later loss is worth a line)
        self._warned_at = -float("inf")

    async def error(self, exc: BaseException) -> None:
        """One failed attempt (or another asynchronous error of the connection)."""
        self.failures += 1
        self.total += 1
        text = redact(" ".join(f"{type(exc).__name__}: {exc}".split()), self.secrets)[:300]
        now = self.clock()
        if self.failures <= self.loud or now - self._warned_at >= self.every_s:
            self._warned_at = now
            log.warning("NATS at %s: connect attempt %d failed: %s", self.where, self.failures, text)
        else:
            log.debug("NATS at %s: connect attempt %d failed: %s", self.where, self.failures, text)

    async def disconnected(self) -> None:
        """The connection was lost (reconnection follows; the outbox keeps what waits)."""
        self.failures = 0
        if not self.connected:  # the first connection failing: its attempts said it all
            return
        log.warning("NATS at %s: disconnected; reconnecting (outbox messages wait in the ledger)", self.where)


async def connect_publisher(url: str = "", *, name: str = "coinswarm-live", connect_timeout: float = 10.0,
                            retry_for: float = 2.0, reconnect_wait: float = 0.25,
                            max_reconnect_attempts: int = -1, connect_attempts: int = 3,
                            connection_log: ConnectionLog | None = None) -> InProcessBus | NatsBus:
    """The bus the runner's outbox relay publishes to, with the live stream ensured.

    Parameters
    ----------
    url : str
        ``""``: the in-process bus (embedded default); else ``nats://[user:password@|token@]host:port``.
    name : str
        The connection's name on the server (``nats-server`` monitoring shows it).
    connect_timeout : float
        Seconds the first connection and the stream's creation may take.
    retry_for : float
        Seconds one publish retries while NATS is unreachable before the relay gives up until
        its next drain.
    reconnect_wait, max_reconnect_attempts : float, int
        Reconnection after the connection drops (-1: never give up).
    connect_attempts : int
        Failed attempts of the first connection before it gives up (ConfigError).
    connection_log : ConnectionLog, optional
        Logs each failed attempt in one line (a fresh one by default).

    Raises
    ------
    ConfigError
        A URL of another scheme, or NATS unreachable / refusing the credentials within
        ``connect_timeout`` (the message masks the password or token).
    """
    if url == "":
        return InProcessBus()
    if not isinstance(url, str) or url.split("://", 1)[0] not in SCHEMES or "://" not in url:
        shown = safe_url(url) if isinstance(url, str) else url
        raise ConfigError(f"NATS URL {shown!r} is not valid: expected nats://[user:password@]host:port, "
                          "nats://token@host:port, or \"\" for the in-process bus")
    secrets = url_secrets(url)
    events = connection_log or ConnectionLog(url)
    try:
        bus = await NatsBus.connect(url, name=name, connect_timeout=connect_timeout, retry_for=retry_for,
                                    reconnect_wait=reconnect_wait, max_reconnect_attempts=max(1, connect_attempts - 1),
                                    error_cb=events.error, disconnected_cb=events.disconnected)
    except ConfigError as exc:
        log.error("NATS at %s: gave up after %d failed connect attempts", events.where, events.total)
        raise ConfigError(redact(str(exc), secrets)) from None
    bus.nc.options["max_reconnect_attempts"] = max_reconnect_attempts  # after the first connection: the runtime bound
    events.failures, events.connected = 0, True
    try:
        await bounded(ensure_live_stream(bus), connect_timeout, "COINSWARM_LIVE stream creation")
    except Exception as exc:  # nats raises several unrelated types
        await bus.close()
        raise ConfigError(redact(f"cannot create the COINSWARM_LIVE stream on NATS at {url}: "
                                 f"{type(exc).__name__}: {exc}", secrets)) from None
    return bus
