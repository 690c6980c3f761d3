"""Lazy imports (PEP 562 packages, :mod:`coinswarm._lazy`): every public name still resolves,
and the live daemon's start path loads no pandas.

Each check runs in a fresh interpreter, so a name resolves on its own and not because an
earlier test imported its module."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import coinswarm
from coinswarm._lazy import LazyModule, lazy_module
from coinswarm.data.validate import iso_utc

ROOT = Path(__file__).parents[2]
PACKAGES = ["coinswarm"] + sorted(m.name for m in pkgutil.walk_packages(coinswarm.__path__, "coinswarm.")
                                  if m.ispkg)
HEAVY = {"pandas", "pyarrow", "matplotlib", "scipy.stats", "dask"}


def _run(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; it binds ``out`` (JSON-able), returned with the
    sorted ``sys.modules`` under ``"modules"``."""
    probe = f"{code}\nimport json, sys\nout['modules'] = sorted(sys.modules)\nprint(json.dumps(out))"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=240, cwd=ROOT,
                          env=environ)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _roots(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} | set(modules)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_all_resolves_in_a_fresh_process(package):
    out = _run(f"import importlib\nm = importlib.import_module({package!r})\nout = {{}}\n"
               "names = list(getattr(m, '__all__', []))\n"
               "out['missing'] = [n for n in names if getattr(m, n, None) is None]\n"
               "out['undir'] = [n for n in names if n not in dir(m)]\n"
               "out['names'] = names\n"
               f"exec('from {package} import *', {{}})")
    assert out["missing"] == [], f"{package}.__all__ names that do not resolve: {out['missing']}"
    assert out["undir"] == [], f"{package}: dir() misses {out['undir']}"
    if package in ("coinswarm", "coinswarm.agents", "coinswarm.data"):
        assert out["names"], f"{package} lost its __all__"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("package", ["coinswarm", "coinswarm.agents", "coinswarm.data"])
def test_no_public_name_is_shadowed_by_a_submodule_once_imported(package):
    """A lazy name that is also a submodule's name (``coinswarm.data.catalog``, the function and
    the module) would turn into the module as soon as anything imports the submodule."""
    out = _run(f"import importlib, pkgutil, types\nm = importlib.import_module({package!r})\n"
               "for sub in pkgutil.walk_packages(m.__path__, m.__name__ + '.'):\n"
               "    if not sub.name.endswith('__main__'):\n"
               "        importlib.import_module(sub.name)\n"
               "out = {'modules_as_names': [n for n in m.__all__ if isinstance(getattr(m, n), types.ModuleType)]}")
    assert out["modules_as_names"] == []


def test_unknown_names_still_raise_attribute_error():
    import coinswarm.agents
    import coinswarm.data

    for module in (coinswarm, coinswarm.agents, coinswarm.data):
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            module.nope  # noqa: B018


def test_old_agent_state_name_still_warns_and_resolves():
    import coinswarm.agents
    from coinswarm.agents.state import State

    with pytest.warns(DeprecationWarning, match="now coinswarm.agents.State"):
        assert coinswarm.agents.AgentState is State


@pytest.mark.timeout(120)
def test_importing_the_daemon_loads_no_heavy_library():
    out = _run("out = {}\nimport coinswarm.live.daemon")
    loaded = _roots(out["modules"])
    assert not {"pandas", "numba", "scipy", "sqlalchemy", "ccxt", "matplotlib", "pyarrow"} & loaded


@pytest.mark.timeout(300)
@pytest.mark.parametrize("strategy", ["committee", "trend"])
def test_paper_daemon_start_loads_no_pandas(tmp_path, strategy):
    """What ``coinswarm live run`` does before its first closed bar: build the paper runner of
    the config (ledger, stepper, paper broker), recover, step once. numba is off here (the
    check is about imports, not compiled code; it keeps the test free of compilation)."""
    code = f"""
from coinswarm.live.config import load_config
from coinswarm.live.daemon import build_runner
from coinswarm.live.recovery import recover
from coinswarm.agents.base import Bar
config = load_config(None, env={{"COINSWARM_DB_URL": "sqlite:///{tmp_path / 'run.db'}",
                                 "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT", "COINSWARM_STRATEGY": {strategy!r}}})
runner = build_runner(config)
recover(runner, mode="paper", venue="paper", init_cash=10_000.0, now_ms=1_600_000_000_000)
target = runner.stepper.decide([Bar(1_600_000_000_000, 100.0, 101.0, 99.0, 100.5, 10.0)] * 2)
runner.ledger.close()
out = {{"target": len(target)}}
"""
    out = _run(code, COINSWARM_DISABLE_NUMBA="1")
    assert out["target"] == 2
    loaded = _roots(out["modules"])
    assert "sqlalchemy" in loaded and "coinswarm.kernels.portfolio" in loaded, "the probe ran the start path"
    assert not HEAVY & loaded, f"the daemon's start imported {sorted(HEAVY & loaded)}"


@pytest.mark.timeout(120)
def test_the_pandas_face_still_imports_pandas_on_use():
    out = _run("import coinswarm as cs\nbtc = cs.load_ohlcv('binance:BTC/USDT:1h', start='2024-06-01', "
               "end='2024-06-03')\nout = {'n': len(cs.get_strategy('trend').targets(btc))}",
               COINSWARM_DISABLE_NUMBA="1")
    assert out["n"] == 72 and "pandas" in out["modules"]


def test_lazy_module_imports_on_first_attribute_and_forwards():
    lazy = lazy_module("json")
    assert isinstance(lazy, LazyModule) and "not imported yet" in repr(lazy)
    assert lazy.dumps([1]) == "[1]"
    assert "imported" in repr(lazy) and "not" not in repr(lazy)
    assert "loads" in dir(lazy)


def test_lazy_module_of_a_missing_module_fails_on_use_not_on_binding():
    lazy = lazy_module("coinswarm_no_such_module")
    with pytest.raises(ModuleNotFoundError, match="coinswarm_no_such_module"):
        lazy.anything  # noqa: B018


@pytest.mark.parametrize("ms", [0, 1, 999, -1, -1000, 1_600_000_000_123, 1_262_304_000_000,
                                -62_135_596_800_000, -62_135_596_800_001, 253_402_300_799_999,
                                253_402_300_800_000, 10**15, -(10**15)])
def test_iso_utc_is_the_text_pandas_gives(ms):
    assert iso_utc(ms) == pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


@pytest.mark.timeout(120)
def test_warm_writes_bytecode_even_when_python_would_not():
    """A container with PYTHONDONTWRITEBYTECODE=1 recompiles every module from source on each
    start unless ``coinswarm warm`` wrote the ``.pyc`` (the import system still reads them)."""
    import importlib.util

    import coinswarm._lazy

    pyc = Path(importlib.util.cache_from_source(coinswarm._lazy.__file__))
    pyc.unlink(missing_ok=True)
    _run("from coinswarm.cli.warm import _bytecode\n_bytecode()\nout = {}", PYTHONDONTWRITEBYTECODE="1")
    assert pyc.exists()
