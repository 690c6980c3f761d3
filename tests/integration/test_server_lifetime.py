"""Servers never outlive the process that started them, and never hang their start.

Each server is started in a child Python (from its main thread, or from a thread that ends
at once — the case where the kernel's parent-death signal alone would fire too early), the
child is SIGKILLed, and the server's whole process group must be gone within seconds.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coinswarm.adapters import servers
from coinswarm.adapters.servers import Server, alive_pids, family, free_port, group_members, launch, start_nats
from coinswarm.errors import ConfigError

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent("""
    import json, sys, threading, time
    from coinswarm.adapters.servers import STARTERS

    kind, workdir, from_thread = sys.argv[1], sys.argv[2], sys.argv[3] == "thread"
    box = {}
    start = lambda: box.update(server=STARTERS[kind](workdir))
    if from_thread:
        worker = threading.Thread(target=start)
        worker.start()
        worker.join()
    else:
        start()
    print(json.dumps(box["server"].to_dict()), flush=True)
    time.sleep(600)
""")


def _wait_gone(pgid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.05)
    return group_members(pgid)


def _wait_all_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive_pids(pids):
        time.sleep(0.05)
    return alive_pids(pids)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["main", "thread"])
@pytest.mark.parametrize("kind", ["nats", "redis", "postgres"])
def test_a_server_dies_with_its_sigkilled_starter(server_dir, kind, where):
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(server_dir / kind), where],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        line = child.stdout.readline()
        assert line, f"the child did not start a server: {child.stderr.read()[-2000:]}"
        server = Server(**json.loads(line))
        processes = family(server.pid)  # the server, its group and its children (postgres's backends)
        assert server.pid in processes, "the server runs"
        assert server.watchdog is not None and group_members(server.watchdog) == [server.watchdog]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        left = _wait_all_gone(processes, 10.0)
        assert left == [], f"{kind} processes {left} outlived their SIGKILLed starter"
        assert _wait_gone(server.watchdog, 5.0) == [], "the watchdog leaves once its server is gone"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_a_server_that_never_listens_is_killed_when_its_start_times_out(tmp_path):
    log = tmp_path / "silent.log"
    args = [sys.executable, "-c", "import time; time.sleep(120)"]  # alive, never listening
    before = set(s.pid for s in servers.started())
    with pytest.raises(ConfigError, match="did not accept connections .* within 0.5 s"):
        launch("silent", args, port=free_port(), url="x://", workdir=tmp_path, log=log, ready_timeout=0.5)
    (server,) = [s for s in servers.started() if s.pid not in before]
    assert _wait_gone(server.pid, 5.0) == [], "a server that failed to come up is killed"
    assert not server.alive() and server not in servers.leftovers()


@pytest.mark.timeout(60)
def test_a_server_that_exits_at_once_fails_its_start_at_once(tmp_path):
    args = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(ConfigError, match="exited with code 3 before accepting connections"):
        launch("crashing", args, port=free_port(), url="x://", workdir=tmp_path, log=tmp_path / "c.log",
               ready_timeout=120)  # noticed when it exits, not after the timeout (the test's own is 60 s)


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    taken = start_nats(tmp_path / "first")
    try:
        count = len(servers.started())
        with pytest.raises(ConfigError, match="is in use already"):
            start_nats(tmp_path / "second", port=taken.port)
        assert len(servers.started()) == count, "nothing was started"
    finally:
        taken.stop()
    assert not taken.alive()


def test_stop_ends_the_whole_process_group_and_the_watchdog(server_dir):
    pg = servers.start_postgres(server_dir / "pg")
    processes = family(pg.pid)
    assert len(processes) > 1, "postgres forks its helpers"
    pg.stop()
    assert alive_pids(processes) == [] and not pg.alive()
    assert _wait_gone(pg.watchdog, 5.0) == []


def test_the_session_fails_loudly_when_a_test_leaves_a_server_running(tmp_path):
    test = tmp_path / "test_leak.py"
    test.write_text(textwrap.dedent(f"""
        from coinswarm.adapters.servers import start_redis

        def test_leaks():
            start_redis({str(tmp_path / "redis")!r}, detach=True)  # no watchdog: only the check stops it
    """))
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                           "--rootdir", str(tmp_path), str(test)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])})
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert "LEAKED SERVERS" in done.stdout and "redis" in done.stdout, done.stdout
    pid = int(done.stdout.split("redis (pid ")[1].split(",")[0])
    assert _wait_gone(pid, 5.0) == [], "the check stops what leaked"
