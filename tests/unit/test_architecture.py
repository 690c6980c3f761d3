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


MAX_FUNCTION_LINES = 60  # docstring included: node.end_lineno - node.lineno + 1
MAX_MODULE_LINES = 800


def _sources() -> list[Path]:
    return sorted((ROOT / "coinswarm").rglob("*.py"))


def test_functions_stay_short():
    """The style rule: no function (method, nested function) in ``coinswarm/`` longer than 60 lines."""
    import ast

    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them into named helpers):\n" + "\n".join(long)


def test_modules_stay_under_800_lines():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _sources()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_MODULE_LINES]
    assert not big, f"modules of {MAX_MODULE_LINES} lines or more (split them):\n" + "\n".join(big)
