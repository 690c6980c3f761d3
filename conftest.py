"""Fixtures shared by tests/ and benchmarks/: real servers on loopback ports."""

from __future__ import annotations

import contextlib

import pytest

# Per-marker deadlines (seconds) for tests without their own ``@pytest.mark.timeout``; the
# ini's ``timeout`` covers the rest. A cold numba cache compiles kernels inside the first test
# that needs them, which is why a unit test may take a minute or two once.
MARKER_TIMEOUTS = {"slow": 1800, "integration": 600}
# An integration test that overruns is ended by pytest-timeout's ``thread`` method (stacks
# dumped, the process exits): a hung event loop can swallow the ``signal`` method's exception
# while asyncio.run waits for tasks that refuse to die. Its servers die with it (watchdogs).
MARKER_METHODS = {"integration": "thread"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        limits = [t for m, t in MARKER_TIMEOUTS.items() if item.get_closest_marker(m) is not None]
        methods = [x for m, x in MARKER_METHODS.items() if item.get_closest_marker(m) is not None]
        if limits:
            item.add_marker(pytest.mark.timeout(max(limits), **({"method": methods[0]} if methods else {})))


def pytest_sessionfinish(session, exitstatus):
    """Fail the session loudly if a server it started is still running (and stop it)."""
    import sys

    servers = sys.modules.get("coinswarm.adapters.servers")
    left = servers.leftovers() if servers is not None else []
    if not left:
        return
    names = ", ".join(f"{s.name} (pid {s.pid}, {s.url})" for s in left)
    for server in left:
        server.stop(timeout=2.0)
    message = f"LEAKED SERVERS: the test session left {len(left)} server(s) running: {names}; now stopped"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED

# -- real servers (integration) ---------------------------------------------------------
# Each fixture starts a real server from its pip-installed binary on a free loopback port
# and stops it at the end of the session; COINSWARM_{NATS,REDIS,POSTGRES}_URL points the
# tests at an external server instead. Each server leads its own process group and dies
# with this process, even if it is SIGKILLed (coinswarm.adapters.servers.launch).


def _server(kind: str, env: str):
    import os

    from coinswarm.adapters.servers import STARTERS

    url = os.environ.get(env)
    if url:
        yield url, None
        return
    with _server_dir(kind) as workdir:
        server = STARTERS[kind](workdir)
        try:
            yield server.url, server
        finally:
            server.stop()


@contextlib.contextmanager
def _server_dir(kind: str):
    """A fresh directory directly under the temp root, removed afterwards. Not under pytest's
    ``tmp_path``: as root, PostgreSQL runs as a service user that must traverse every parent,
    and each pytest session that starts (another suite running at the same time) resets
    ``<tmp>/pytest-of-<user>`` to mode 0700 — a PostgreSQL inside it PANICs."""
    import shutil
    import tempfile
    from pathlib import Path

    workdir = Path(tempfile.mkdtemp(prefix=f"coinswarm-test-{kind}-"))
    workdir.chmod(0o755)
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def server_dir():
    """A directory for a server a test starts itself (see ``_server_dir``)."""
    with _server_dir("own") as workdir:
        yield workdir


@pytest.fixture(scope="session")
def nats_server():
    """``(url, Server or None)`` of a NATS server with JetStream."""
    yield from _server("nats", "COINSWARM_NATS_URL")


@pytest.fixture(scope="session")
def redis_server():
    """``(url, Server or None)`` of a Redis 8 server (vector sets)."""
    yield from _server("redis", "COINSWARM_REDIS_URL")


@pytest.fixture(scope="session")
def postgres_server():
    """``(url, Server or None)`` of a PostgreSQL 18 server with pgvector."""
    yield from _server("postgres", "COINSWARM_POSTGRES_URL")


@pytest.fixture
def postgres_url(postgres_server, request):
    """A fresh, empty database on the PostgreSQL server for one test."""
    import re
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_server[0])
    name = "t_" + re.sub(r"\W", "_", request.node.name)[:40].lower() + "_" + uuid.uuid4().hex[:6]
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def nats_url(nats_server):
    """The NATS server with coinswarm's stream emptied and its consumers removed (test isolation)."""
    import asyncio

    async def reset() -> None:
        import nats
        from nats.js.errors import NotFoundError

        from coinswarm.adapters.bus import STREAM_NAME

        nc = await nats.connect(nats_server[0], allow_reconnect=False, connect_timeout=5)
        try:
            await nc.jetstream(timeout=10).delete_stream(STREAM_NAME)
        except NotFoundError:
            pass
        finally:
            await nc.close()

    asyncio.run(asyncio.wait_for(reset(), 30))
    return nats_server[0]
