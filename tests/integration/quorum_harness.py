"""A quorum cluster on real servers: four manager nodes and an applier, each with its own
NATS connection, one PostgreSQL store."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "quorum"))

from proposals_factory import NOW, seeded_patterns  # noqa: E402,F401  (NOW re-exported: the oracle's epoch)

from coinswarm.adapters.batching import run_with_deadline, stop_task  # noqa: E402,F401  (re-exported)
from coinswarm.adapters.bus import NatsBus  # noqa: E402
from coinswarm.memory import Store  # noqa: E402
from coinswarm.memory.nodes import Applier, QuorumNode, wall_clock_ms  # noqa: E402
from coinswarm.quorum import Context, Manager, QuorumConfig, derive_keys  # noqa: E402

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"integration", MANAGERS)
CONFIG = QuorumConfig(MANAGERS, f=1, timeout_ms=3_000)


_START = time.monotonic()
_START_MS = wall_clock_ms()

# every wait of a test is bounded: a connection gives up after 60 s without a server, a publish
# retries for 20 s, a close drains for 3 s at most
BUS_BOUNDS = {"max_reconnect_attempts": 240, "reconnect_wait": 0.25, "retry_for": 20.0, "close_timeout": 3.0}


async def connect(url: str, name: str) -> NatsBus:
    """A bus whose every wait is bounded (:data:`BUS_BOUNDS`)."""
    return await NatsBus.connect(url, name=name, **BUS_BOUNDS)


def clock() -> int:
    """The cluster's injected clock: the wall clock when the tests started plus real elapsed
    milliseconds (monotonic). On the wall's time scale because the managers judge a proposal's
    age against the time NATS received it, on the server's (same host's) clock."""
    return _START_MS + int((time.monotonic() - _START) * 1000)


def fixed_context(now: int) -> Context:
    """Managers judge against a fixed snapshot of memory (what the pure-rule oracle uses)."""
    return Context(now=now, patterns=seeded_patterns())


def stamped(proposal):
    """The proposal re-stamped with the cluster clock at submission."""
    return proposal.__class__(**{**proposal.to_dict(), "timestamp": clock()})


@dataclass
class Cluster:
    store: Store
    nodes: dict = field(default_factory=dict)
    applier: Applier | None = None
    buses: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    stops: list = field(default_factory=list)

    async def close(self) -> None:
        """Stop every node and the applier (flags, then bounded cancels), then close the buses."""
        for node in self.nodes.values():
            await node.stop()
        for task in self.tasks:
            assert await stop_task(task, timeout=5.0), "a node's ticker did not stop"
        for stop in self.stops:
            assert await stop() is not False, "the applier's poller did not stop"
        for bus in self.buses:
            await bus.close()


async def start_cluster(nats_url: str, store: Store, *, live=MANAGERS, behaviours=None, prefix="t",
                        persist_audit: bool = True, applier_poll_ms: float | None = None,
                        config: QuorumConfig = CONFIG, node_clock=clock, together: bool = False) -> Cluster:
    """Four nodes (or ``live``) and an applier — pushed commits, or with ``applier_poll_ms``
    reading the stream in bursts as the ``coinswarm quorum applier`` process does; ``config``
    (default :data:`CONFIG`, a 3 s deadline) for nodes and applier alike; ``node_clock`` the
    nodes' clock (default :func:`clock`). With ``together`` every node connects first and
    they start at once (a backlog in the stream reaches them all within a few ms, not one
    connection after another)."""
    cluster = Cluster(store)
    for name in live:
        bus = await connect(nats_url, f"{prefix}-{name}")
        cluster.buses.append(bus)
        node = QuorumNode(Manager(name, KEYS[name]), config, KEYS, bus, context=fixed_context,
                          clock=node_clock, behaviour=(behaviours or {}).get(name, _honest()),
                          durable_prefix=f"{prefix}-mgr", failover_ms=300,
                          audit_subject="mem.audit" if persist_audit else None)
        if not together:
            await node.start()
            cluster.tasks.append(asyncio.create_task(node.run_ticker()))
        cluster.nodes[name] = node
    if together:
        await asyncio.gather(*(node.start() for node in cluster.nodes.values()))
        cluster.tasks += [asyncio.create_task(node.run_ticker()) for node in cluster.nodes.values()]
    bus = await connect(nats_url, f"{prefix}-applier")
    cluster.buses.append(bus)
    cluster.applier = Applier(store, config, KEYS, bus, durable=f"{prefix}-applier", persist_audit=persist_audit,
                              poll_ms=applier_poll_ms)
    await cluster.applier.start()
    cluster.stops.append(cluster.applier.stop)
    return cluster


def _honest():
    from coinswarm.quorum import honest

    return honest


async def wait_until(condition, timeout: float, step: float = 0.02) -> bool:
    """Poll ``condition()`` (in a worker thread: it may query the store) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(step)
    return await asyncio.to_thread(condition)


def seed_store(store: Store) -> None:
    """Commit the patterns the proposal factory refers to (through the pure quorum)."""
    from test_faults import seeded

    from coinswarm.quorum import LocalQuorum

    quorum = seeded(LocalQuorum(CONFIG, KEYS))
    for proposal in quorum.memory.commits:
        store.apply_commit(proposal, quorum.coordinator.decided[proposal.id])
