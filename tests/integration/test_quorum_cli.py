"""``coinswarm quorum submit`` and ``coinswarm quorum decisions`` against four node processes and
the applier on real NATS and PostgreSQL, with output redirected (no PYTHONUNBUFFERED): the
"ready" and decision lines arrive as they happen."""

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from coinswarm.adapters.servers import die_with_parent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "coinswarm.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent(), cwd=ROOT)


def _line_with(stream, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([stream], [], [], 0.2)[0]:
            line = stream.readline()
            assert line, f"stream closed before {needle!r}: {stream.read()}"
            if needle in line:
                return line
    raise AssertionError(f"no line with {needle!r} within {timeout} s")


def test_submit_a_proposal_from_json_and_follow_its_decision(nats_url, postgres_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(COINSWARM_QUORUM_SECRET="cli-test", COINSWARM_NATS_URL=nats_url, COINSWARM_POSTGRES_URL=postgres_url,
               PYTHONPATH=str(ROOT))
    members = [_cli("quorum", "node", "--name", m, env=env) for m in ("m1", "m2", "m3", "m4")]
    members.append(_cli("quorum", "applier", env=env))
    follower = None
    try:
        for proc in members:
            _line_with(proc.stdout, "ready")
        follower = _cli("quorum", "decisions", "--count", "2", "--idle", "60", env=env)
        _line_with(follower.stderr, "following the decisions") if follower.poll() is None else None
        assert follower.poll() is None, follower.communicate()
        proposal = json.loads((ROOT / "runners" / "proposal.example.json").read_text())
        good = {**proposal, "id": f"good-{uuid.uuid4().hex[:8]}"}
        bad = {**proposal, "id": f"bad-{uuid.uuid4().hex[:8]}",
               "data": {**proposal["data"], "weights": {"trend": 0.9, "mean_reversion": 0.9}}}
        path = tmp_path / "p.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        submit = subprocess.run([sys.executable, "-m", "coinswarm.cli", "quorum", "submit", str(path)], env=env,
                                capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert submit.returncode == 0, submit.stderr
        assert f"{good['id']}: submitted" in submit.stdout and f"{bad['id']}: submitted" in submit.stdout
        again = subprocess.run([sys.executable, "-m", "coinswarm.cli", "quorum", "submit", str(path)], env=env,
                               capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert "already in the stream" in again.stdout, again.stdout
        out, err = follower.communicate(timeout=120)
        assert follower.returncode == 0, err
        lines = {line.split()[0]: line for line in out.splitlines()}
        assert " committed kind=planner_weights" in lines[good["id"]], out
        assert " rejected " in lines[bad["id"]], out
    finally:
        for proc in members + ([follower] if follower else []):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in members:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
