"""Cold start of the live daemon: from a fresh interpreter to its first decision.

``coinswarm live run`` (paper, the committee on BTC/USDT + ETH/USDT) imports the daemon, builds
the paper runner (ledger, stepper, paper broker), recovers from the ledger and steps the
strategy on each closed bar. Each variant runs in a fresh ``python -c`` and is timed from the
parent: spawn → the child's "ready" (its first decision made), so interpreter start-up is
included and interpreter shutdown is not. No network: the candles' source is not part of this
(``CcxtBroker``'s ``import ccxt.async_support`` adds about 0.7 s on its own).

* ``import daemon``: ``import coinswarm.live.daemon`` (what ``coinswarm live run`` imports first);
* ``start, fresh db``: the first start on an empty SQLite ledger (its Alembic migration included);
* ``start, restart``: a start on a ledger already at the head revision (a daemon's restart).

Side by side with another checkout (the same code before a change) when
``COINSWARM_BASELINE`` names its root, e.g.::

    COINSWARM_BASELINE=/work/main pytest benchmarks/test_live_start_speed.py --benchmark-only -s

(the baseline's numba cache is used, or compiled on its first run).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ROUNDS = 7
HEAVY = ("pandas", "pyarrow", "numba", "scipy", "sqlalchemy", "alembic", "ccxt")

IMPORT = "import coinswarm.live.daemon"
START = """
import sys
from coinswarm.live.config import load_config
from coinswarm.live.daemon import build_runner
from coinswarm.live.recovery import recover
from coinswarm.agents.base import Bar
config = load_config(None, env={"COINSWARM_DB_URL": "sqlite:///" + sys.argv[1],
                                "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT", "COINSWARM_STRATEGY": "committee"})
runner = build_runner(config)
recover(runner, mode="paper", venue="paper", init_cash=10_000.0, now_ms=1_600_000_000_000)
runner.stepper.decide([Bar(1_600_000_000_000, 100.0, 101.0, 99.0, 100.5, 10.0)] * 2)
"""
REPORT = ("\nimport json, resource, sys, time\nu = resource.getrusage(resource.RUSAGE_SELF)\n"
          "print(json.dumps([time.time(), u.ru_utime + u.ru_stime, [m for m in {heavy!r} if m in sys.modules]]))")


def _trees() -> dict[str, Path]:
    trees = {"this tree": ROOT}
    baseline = os.environ.get("COINSWARM_BASELINE")
    if baseline:
        trees["baseline"] = Path(baseline)
    return trees


def _once(tree: Path, code: str, db: Path) -> tuple[float, float, list[str]]:
    """Wall seconds from spawn to ready, the child's CPU seconds by then, the heavy modules it loaded."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COINSWARM_COMPILE_NOTICE": "0"}
    start = time.time()  # noqa: TID251  (the child reports its "ready" on the same wall clock)
    done = subprocess.run([sys.executable, "-c", code + REPORT.format(heavy=HEAVY), str(db)], capture_output=True,
                          text=True, env=env, cwd=tree, timeout=900, check=True)
    ready, cpu, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return ready - start, cpu, loaded


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("variant", ["import daemon", "start, fresh db", "start, restart"])
def test_live_cold_start(benchmark, tmp_path, variant):
    """The trees alternate round by round, so a busy machine slows both alike."""
    code = IMPORT if variant == "import daemon" else START
    trees = _trees()
    samples: dict[str, list[tuple[float, float, list[str]]]] = {name: [] for name in trees}
    for name, root in trees.items():
        _once(root, code, tmp_path / f"{name}-warm.db")  # page cache, __pycache__ and the numba cache warm
    for k in range(ROUNDS):
        for name, root in trees.items():
            db = tmp_path / (f"{name}-warm.db" if variant == "start, restart" else f"{name}-fresh{k}.db")
            samples[name].append(_once(root, code, db))
    for name, runs in samples.items():
        seconds = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        benchmark.extra_info[name] = {"seconds": seconds, "cpu_seconds": cpu, "loaded": runs[-1][2]}
        print(f"\n{name:9s} {variant:16s} {seconds * 1000:6.0f} ms to ready, {cpu * 1000:5.0f} ms CPU (medians of "
              f"{ROUNDS}), loaded {', '.join(runs[-1][2])}")
    benchmark.pedantic(lambda: None, rounds=1)
