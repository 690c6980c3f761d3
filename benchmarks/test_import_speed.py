"""Import time and memory of coinswarm, side by side with the libraries it stands on.

Each variant runs in a fresh interpreter (``python -c``), timed from outside, and reports
its own peak RSS. Issue target: ``import coinswarm`` (and what a backtest imports) within
1.3× the time and +40 MB the RSS of ``import numpy, pandas, numba``; ``coinswarm --help``
imports no numba at all.

    pytest benchmarks/test_import_speed.py --benchmark-only -s
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

RSS = "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
VARIANTS = {
    "numpy+pandas+numba": "import numpy, pandas, numba",
    "import coinswarm": "import coinswarm",
    "coinswarm backtest path": "import coinswarm as cs; cs.simulate; cs.Committee; cs.walk_forward; cs.load_ohlcv",
    "coinswarm --help": "from coinswarm.cli import build_parser; build_parser().format_help()",
}
ROUNDS = 7
_results: dict[str, tuple[float, float]] = {}


def _run(code: str) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", f"{code}; {RSS}"], capture_output=True, text=True, check=True,
                         timeout=120)
    return time.perf_counter() - start, int(out.stdout.split()[-1]) / 1024


@pytest.mark.parametrize("name", list(VARIANTS))
def test_import(benchmark, name):
    code = VARIANTS[name]
    _run(code)  # warm the OS page cache and __pycache__
    samples = [_run(code) for _ in range(ROUNDS)]
    seconds = statistics.median(s for s, _ in samples)
    rss = statistics.median(r for _, r in samples)
    _results[name] = (seconds, rss)
    benchmark.extra_info.update(seconds=seconds, rss_mb=rss)
    benchmark.pedantic(lambda: None, rounds=1)
    base = _results.get("numpy+pandas+numba")
    ratio = f"  ({seconds / base[0]:.2f}× time, {rss - base[1]:+.0f} MB vs numpy+pandas+numba)" if base else ""
    print(f"\n{name:26s} {seconds * 1000:7.0f} ms  {rss:6.0f} MB RSS{ratio}")
