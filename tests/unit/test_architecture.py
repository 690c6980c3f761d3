"""The layers of ARCHITECTURE.md hold: import-linter's contracts (pyproject.toml) are kept,
and ``import coinswarm`` / ``coinswarm --help`` load nothing heavy."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_import_contracts_are_kept():
    done = subprocess.run(["lint-imports", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and "0 broken" in done.stdout


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_coinswarm_loads_no_heavy_library():
    loaded = _modules_after("import coinswarm")
    heavy = {"numba", "scipy", "matplotlib", "pandas", "sqlalchemy", "ccxt", "nats", "dask", "redis"}
    assert not heavy & {m.split(".")[0] for m in loaded}


def test_a_backtest_loads_no_scipy_matplotlib_or_servers():
    loaded = _modules_after("import coinswarm as cs\nbtc = cs.load_ohlcv('binance:BTC/USDT:1h', start='2024-06')\n"
                            "cs.simulate(btc, cs.Committee.default().targets(btc))")
    roots = {m.split(".")[0] for m in loaded}
    assert "numba" in roots
    assert not {"matplotlib", "sqlalchemy", "ccxt", "nats", "dask", "redis", "usearch", "tqdm"} & roots
    assert not {"scipy.stats", "scipy.spatial"} & loaded, "numba loads scipy's base package, nothing more"


def test_cli_help_does_not_import_numba():
    loaded = _modules_after("import sys\nfrom coinswarm.cli import build_parser\nbuild_parser().format_help()")
    assert not {"numba", "pandas", "scipy"} & {m.split(".")[0] for m in loaded}
