"""The quorum as separate processes (``coinswarm quorum node|applier``) on real NATS and PostgreSQL."""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from coinswarm.adapters.batching import run_with_deadline
from coinswarm.adapters.bus import NatsBus
from coinswarm.adapters.servers import die_with_parent
from coinswarm.memory import Store
from coinswarm.memory.models import DecisionRow
from coinswarm.memory.nodes import submit, wall_clock_ms
from coinswarm.quorum import COMMITTED, Context, Manager, Proposal

sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "quorum"))
from proposals_factory import make_proposal  # noqa: E402

pytestmark = pytest.mark.integration
MANAGERS = ("m1", "m2", "m3", "m4")


def _start(role: str, *extra: str, env: dict, urls: tuple[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "coinswarm.cli", "quorum", role, "--nats", urls[0], "--store", urls[1],
           "--managers", ",".join(MANAGERS), "--failover-ms", "300", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=die_with_parent())  # never outlives this test process


def _wait_ready(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if "ready" in line:
                return line
            assert line, f"quorum process exited: {proc.wait()}"
    raise AssertionError("quorum process not ready in time")


def _finish(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """The output of a process asked to stop; SIGKILLed if it has not stopped within ``timeout``."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate(timeout=10)[0] + f"\n[killed: no clean stop within {timeout:g} s]"


def _proposals(n: int) -> list[Proposal]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        p = make_proposal(i, rng)
        if p.kind in ("planner_weights", "add_episode"):  # judged without memory state
            out.append(Proposal(**{**p.to_dict(), "id": f"proc-{p.id}", "timestamp": wall_clock_ms()}))
    return out


def test_manager_and_applier_processes_decide_like_the_rules_and_survive_a_dead_manager(nats_url, postgres_url):
    env = {**os.environ, "COINSWARM_QUORUM_SECRET": "process-test", "PYTHONUNBUFFERED": "1"}
    urls = (nats_url, postgres_url)
    procs = [_start("node", "--name", m, env=env, urls=urls) for m in MANAGERS[:3]]  # m4 never starts
    procs.append(_start("applier", env=env, urls=urls))
    try:
        for proc in procs:
            _wait_ready(proc)
        batch = _proposals(100)

        async def send():
            bus = await NatsBus.connect(nats_url, name="proc-proposer", max_reconnect_attempts=40)
            try:
                for p in batch:
                    await submit(bus, p)
            finally:
                await bus.close()

        run_with_deadline(send(), 60)
        store = Store(postgres_url)
        deadline = time.monotonic() + 60
        while store.count(DecisionRow) < len(batch) and time.monotonic() < deadline:
            time.sleep(0.1)
        with store.sessions() as s:
            got = {r.proposal_id: r.status for r in s.query(DecisionRow)}
        store.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outputs = [_finish(proc) for proc in procs]
    judge = Manager("judge", b"k")
    want = {p.id: judge.evaluate(p, Context(now=p.timestamp)).approve for p in batch}
    assert {pid: s == COMMITTED for pid, s in got.items()} == want, "every proposal decided as the rules say"
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    assert "stopped after" in outputs[-1] and "0 refused, 0 failed" in outputs[-1], outputs[-1]
