"""Quorum members as long-running processes: one manager node, or the applier, per process.

``coinswarm quorum node --name m1`` and ``coinswarm quorum applier`` run the same
:class:`~coinswarm.memory.nodes.QuorumNode` and :class:`~coinswarm.memory.nodes.Applier`
the tests use, against a NATS server and the store, until SIGINT or SIGTERM. Each manager
judges against memory as committed in the store (refreshed in the background every
``refresh_s`` seconds). Keys come from ``COINSWARM_QUORUM_SECRET`` (never the command line):
each manager's key is ``HMAC(secret, name)``, see :func:`~coinswarm.quorum.derive_keys`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from coinswarm.adapters.batching import stop_task
from coinswarm.adapters.bus import NatsBus
from coinswarm.errors import ConfigError
from coinswarm.memory.nodes import Applier, QuorumNode, wall_clock_ms
from coinswarm.quorum import Context, Manager, QuorumConfig, derive_keys

SECRET_ENV = "COINSWARM_QUORUM_SECRET"


@dataclass(frozen=True)
class QuorumSettings:
    """Where the quorum lives and who is in it."""

    nats_url: str
    store_url: str
    managers: tuple[str, ...] = ("m1", "m2", "m3", "m4")
    f: int = 1
    timeout_ms: int = 5_000
    failover_ms: int = 500
    refresh_s: float = 1.0
    poll_ms: float | None = 20.0  # the applier reads the commit stream in bursts (None: pushed, one by one)

    def __post_init__(self) -> None:
        self.config  # noqa: B018  (validates n ≥ 3f + 1 and the timeout before anything connects)

    @property
    def config(self) -> QuorumConfig:
        return QuorumConfig(self.managers, f=self.f, timeout_ms=self.timeout_ms)

    def keys(self) -> dict[str, bytes]:
        """Per-manager keys from the shared secret in ``COINSWARM_QUORUM_SECRET``."""
        secret = os.environ.get(SECRET_ENV, "")
        if not secret:
            raise ConfigError(f"set {SECRET_ENV} (the quorum's shared secret) in the environment")
        return derive_keys(secret.encode(), self.managers)


class StoreContext:
    """The managers' context from the store: committed patterns (one read of the patterns
    table, not a replay of every commit), refreshed in the background."""

    def __init__(self, store, refresh_s: float) -> None:
        self.store, self.refresh_s = store, refresh_s
        self.patterns: dict = store.patterns()
        self.stopping = False

    def __call__(self, now: int) -> Context:
        return Context(now=now, patterns=self.patterns)

    async def refresh_forever(self) -> None:
        """Reload the committed patterns every ``refresh_s`` seconds until ``stopping`` is set
        (or the task is cancelled)."""
        while not self.stopping:
            await asyncio.sleep(self.refresh_s)
            if not self.stopping:
                self.patterns = await asyncio.to_thread(self.store.patterns)


async def serve_node(settings: QuorumSettings, name: str, ready: Callable[[], None] | None,
                     stop: asyncio.Event) -> QuorumNode:
    """Run manager ``name`` until ``stop`` is set (``ready()`` once it is subscribed)."""
    from coinswarm.memory import Store

    if name not in settings.managers:
        raise ConfigError(f"manager {name!r} is not one of {settings.managers}")
    keys = settings.keys()
    store = Store(settings.store_url)
    store.migrate()
    context = StoreContext(store, settings.refresh_s)
    bus = await NatsBus.connect(settings.nats_url, name=f"coinswarm-{name}")
    node = QuorumNode(Manager(name, keys[name]), settings.config, keys, bus, context=context,
                      clock=wall_clock_ms, failover_ms=settings.failover_ms)
    await node.start()
    tasks = [asyncio.create_task(node.run_ticker()), asyncio.create_task(context.refresh_forever())]
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        context.stopping = True
        await node.stop()  # sets the ticker's stop flag
        for task in tasks:
            await stop_task(task, timeout=5.0)
        await bus.close()
        store.close()
    return node


async def serve_applier(settings: QuorumSettings, ready: Callable[[], None] | None,
                        stop: asyncio.Event) -> Applier:
    """Apply commits to the store until ``stop`` is set (``ready()`` once it is subscribed)."""
    from coinswarm.memory import Store

    store = Store(settings.store_url)
    store.migrate()
    bus = await NatsBus.connect(settings.nats_url, name="coinswarm-applier")
    applier = Applier(store, settings.config, settings.keys(), bus, poll_ms=settings.poll_ms)
    await applier.start()
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        await applier.stop()
        await bus.close()
        store.close()
    return applier


def run_until_signalled(serve, *args) -> object:
    """``asyncio.run(serve(*args, stop))`` where SIGINT/SIGTERM set ``stop`` (a clean shutdown).

    Everything loaded before serving (the libraries' objects) is frozen out of the garbage
    collector (:func:`gc.freeze`): a long-running process then pays for its own objects only."""
    gc.collect()
    gc.freeze()

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await serve(*args, stop)

    return asyncio.run(main())
