"""``coinswarm warm``: compile and cache the kernels once, right after installing.

numba compiles each kernel on its first use and caches it (``__pycache__`` or
``NUMBA_CACHE_DIR``); on a fresh install the README's first committee walk-forward would
otherwise spend minutes compiling before its first number. ``coinswarm warm`` pays that once,
up front, by running every public path the README shows (a simulation, a sweep, walk-forwards,
the agents, the regimes, the committee, the pair committee) on one year of the bundled data,
and the live daemon's (a paper replay of a month through the runner, stepper and ledger).
It also writes the package's bytecode (``__pycache__/*.pyc``), which an environment with
``PYTHONDONTWRITEBYTECODE=1`` (common in containers) would otherwise recompile from source on
every start of the daemon (about 0.1 s of CPU).
Nothing it computes is kept except these caches: the same a first run would write.
"""

from __future__ import annotations

import sys
import time


def add_commands(sub) -> None:
    """Register ``warm`` on the top-level sub-parsers ``sub``."""
    p = sub.add_parser("warm", help="compile and cache the kernels once after installing (about 1–3 minutes)",
                       epilog="example:\n  pip install -e . && coinswarm warm")
    p.add_argument("--data", default="binance:BTC/USDT:1h", help="the data set to compile on (any will do)")
    p.set_defaults(func=cmd_warm)


def warm(data: str = "binance:BTC/USDT:1h", say=None) -> float:
    """Run every public path once on a year of ``data`` (compiling and caching each kernel);
    returns the seconds it took."""
    import warnings

    import coinswarm as cs

    start = time.perf_counter()
    say = say or (lambda text: None)
    prices = cs.load_ohlcv(data, start="2023-01-01", end="2023-12-31")
    steps = [
        ("bytecode", _bytecode),
        ("simulate and sweep", lambda: cs.sweep("sma_cross", prices, {"fast": [10, 20], "slow": [50, 100]})),
        ("walk-forward", lambda: cs.walk_forward("sma_cross", prices, {"fast": [10, 20], "slow": [50, 100]},
                                                 train="180D", test="90D")),
        ("agents and regimes", lambda: [cs.get_strategy(n).run(prices, gaps="ignore")
                                        for n in ("trend", "mean_reversion", "risk", "execution")]
         + [cs.regimes(prices, gaps="ignore")]),
        ("committee", lambda: cs.Committee.default().backtest(prices)),
        ("committee walk-forward", lambda: cs.walk_forward("committee", prices, cs.Committee.default().default_grid,
                                                           train="180D", test="90D")),
        ("live runner (paper replay)", lambda: _live(data)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, step in steps:
            t0 = time.perf_counter()
            step()
            say(f"{name}: {time.perf_counter() - t0:.1f} s")
    return time.perf_counter() - start


def _bytecode() -> None:
    """Write the ``.pyc`` of every module of the package (``compileall`` writes them even under
    ``PYTHONDONTWRITEBYTECODE``, which only stops the import system from writing)."""
    import compileall
    from pathlib import Path

    import coinswarm

    compileall.compile_dir(Path(coinswarm.__file__).parent, quiet=1)


def _live(data: str) -> None:
    """A month of ``data`` through the live runner (committee, paper broker, a scratch SQLite
    ledger): the kernels the daemon calls from Python at its start and on each bar."""
    import asyncio
    import tempfile
    from pathlib import Path

    from coinswarm.live.replay import ReplaySpec, replay

    with tempfile.TemporaryDirectory() as scratch:
        spec = ReplaySpec([data], "committee", f"sqlite:///{Path(scratch) / 'warm.db'}", start="2023-01-01",
                          end="2023-01-31")
        asyncio.run(replay(spec))


def cmd_warm(args) -> int:
    """``coinswarm warm``."""
    seconds = warm(args.data, say=lambda text: print(f"  {text}", flush=True))
    print(f"kernels compiled and cached in {seconds:.0f} s; later runs load them in a fraction of a second",
          file=sys.stdout, flush=True)
    return 0
