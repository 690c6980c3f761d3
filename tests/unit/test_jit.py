"""Stale numba caches are dropped when any source of the package changes."""

from coinswarm._jit import drop_stale_caches, sources_digest


def _package(tmp_path):
    package = tmp_path / "coinswarm"
    (package / "agents" / "__pycache__").mkdir(parents=True)
    (package / "agents" / "trend.py").write_text("x = 1\n")
    (package / "agents" / "execution.py").write_text("y = 2\n")
    return package


def test_caches_survive_until_a_source_changes_then_all_go(tmp_path):
    package = _package(tmp_path)
    assert drop_stale_caches(package), "no fingerprint yet: start clean"
    cached = package / "agents" / "__pycache__" / "execution.run-1.py311.nbi"
    cached.write_bytes(b"index")
    elsewhere = tmp_path / "numba-cache" / "coinswarm" / "agents" / "trend.step-1.py311.1.nbc"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"code")
    other = tmp_path / "numba-cache" / "otherpkg" / "f.nbi"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"other")
    cache_dir = str(tmp_path / "numba-cache")
    assert not drop_stale_caches(package, cache_dir) and cached.exists() and elsewhere.exists()
    before = sources_digest(package)
    (package / "agents" / "trend.py").write_text("x = 3\n")  # execution.py untouched
    assert sources_digest(package) != before
    assert drop_stale_caches(package, cache_dir)
    assert not cached.exists() and not elsewhere.exists(), "a change anywhere drops every cached kernel"
    assert other.exists(), "other packages' caches are not ours"
    assert not drop_stale_caches(package, cache_dir)
