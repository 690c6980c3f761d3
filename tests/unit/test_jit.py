"""numba's cache of this package is stamped with every source of the package (an edit of an
inlined helper in another file makes every cached kernel stale), and importing writes nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coinswarm._jit import NUMBA_DISABLED, PACKAGE, _in_package, package_digest, sources_digest


def test_digest_changes_with_any_source(tmp_path):
    package = tmp_path / "coinswarm"
    (package / "agents").mkdir(parents=True)
    (package / "agents" / "trend.py").write_text("x = 1\n")
    (package / "agents" / "execution.py").write_text("y = 2\n")
    before = sources_digest(package)
    assert sources_digest(package) == before
    (package / "agents" / "trend.py").write_text("x = 3\n")
    assert sources_digest(package) != before
    changed = sources_digest(package)
    (package / "cli.py").write_text("z = 1\n")
    assert sources_digest(package) == changed, "a file no kernel can depend on"
    (package / "cli.py").write_text("from coinswarm._jit import jit\n")
    assert sources_digest(package) != changed, "a file that compiles"


@pytest.mark.skipif(NUMBA_DISABLED, reason="numba is off")
def test_package_kernels_are_stamped_with_the_package_digest():
    from numba.core.caching import CacheImpl

    from coinswarm.kernels.steps import ewma_nb

    locator = next(k for k in CacheImpl._locator_classes if k.__module__ == "coinswarm._jit")
    found = locator.from_function(ewma_nb.py_func, ewma_nb.py_func.__code__.co_filename)
    if found is None:  # NUMBA_CACHE_DIR unset: the in-tree locator takes it
        found = CacheImpl._locator_classes[1].from_function(ewma_nb.py_func, ewma_nb.py_func.__code__.co_filename)
    assert found.get_source_stamp() == package_digest() == sources_digest(PACKAGE)
    assert not _in_package(os.__file__), "other packages keep numba's own stamps"


def _tree(root: Path) -> set[tuple[str, float]]:
    return {(str(p), p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


def test_import_writes_nothing():
    before = _tree(PACKAGE)
    code = "import coinswarm as cs; cs.Committee; cs.simulate; cs.walk_forward"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert _tree(PACKAGE) == before
