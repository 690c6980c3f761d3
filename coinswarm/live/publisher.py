"""The daemon's publisher: the bus the outbox :class:`~coinswarm.live.outbox.Relay` publishes to.

``""`` (no URL) gives the embedded :class:`~coinswarm.adapters.bus.InProcessBus`; a ``nats://``
or ``tls://`` URL gives a :class:`~coinswarm.adapters.bus.NatsBus` with the stream
``COINSWARM_LIVE`` (``agent.action``, ``agent.trade``, ``live.heartbeat``, de-duplicated by
``Nats-Msg-Id`` over :data:`~coinswarm.live.outbox.DUPLICATE_WINDOW_S`) ensured. Credentials
come from the URL, as nats-py reads them: ``nats://user:password@host:4222`` or
``nats://TOKEN@host:4222``; no error message shows them.

While NATS is down a publish is retried for ``retry_for`` seconds only (short: the relay stops
at the first failure and the rows wait, in order, in the outbox for the next drain), and the
connection reconnects by itself (``max_reconnect_attempts=-1``: forever).
"""

from __future__ import annotations

from coinswarm.adapters.batching import bounded
from coinswarm.adapters.bus import InProcessBus, NatsBus
from coinswarm.errors import ConfigError
from coinswarm.live.logs import redact, safe_url, url_secrets
from coinswarm.live.outbox import ensure_live_stream

SCHEMES = ("nats", "tls")


async def connect_publisher(url: str = "", *, name: str = "coinswarm-live", connect_timeout: float = 10.0,
                            retry_for: float = 2.0, reconnect_wait: float = 0.25,
                            max_reconnect_attempts: int = -1) -> InProcessBus | NatsBus:
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
    try:
        bus = await NatsBus.connect(url, name=name, connect_timeout=connect_timeout, retry_for=retry_for,
                                    reconnect_wait=reconnect_wait, max_reconnect_attempts=max_reconnect_attempts)
    except ConfigError as exc:
        raise ConfigError(redact(str(exc), secrets)) from None
    try:
        await bounded(ensure_live_stream(bus), connect_timeout, "COINSWARM_LIVE stream creation")
    except Exception as exc:  # nats raises several unrelated types
        await bus.close()
        raise ConfigError(redact(f"cannot create the COINSWARM_LIVE stream on NATS at {url}: "
                                 f"{type(exc).__name__}: {exc}", secrets)) from None
    return bus
