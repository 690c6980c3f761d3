"""Numba switch: one place decides whether kernels are compiled.

Kernels are written once as plain Python (``foo_py``) and compiled with
:func:`jit` (``foo_nb = jit(foo_py)``). Setting ``COINSWARM_DISABLE_NUMBA=1``
before import makes :func:`jit` return the plain-Python function unchanged, so
the whole pipeline runs as Python (for debugging, coverage and the twin tests).

Compiled code is cached next to the sources (``__pycache__/*.nbi|nbc``). numba checks
only the cached function's own file, so a kernel that inlined a helper from *another*
file would keep the helper's old code after an edit. :func:`drop_stale_caches` (run at
import) therefore fingerprints every source file of the package and deletes the cached
kernels whenever the fingerprint changed (the twin tests in ``tests/soundness`` caught
the problem before this existed).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable)

NUMBA_DISABLED: bool = os.environ.get("COINSWARM_DISABLE_NUMBA", "").strip() not in ("", "0")

PACKAGE = Path(__file__).parent
STAMP = "coinswarm-sources.sha1"


def sources_digest(package: Path = PACKAGE) -> str:
    """SHA-1 over the relative path and bytes of every ``.py`` file under ``package``."""
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def drop_stale_caches(package: Path = PACKAGE, cache_dir: str | None = None) -> bool:
    """Delete numba's cached kernels of ``package`` if any of its sources changed since the
    last check; returns whether it did. ``cache_dir`` is ``NUMBA_CACHE_DIR`` when set.
    Unwritable locations are left alone (numba then caches elsewhere or recompiles)."""
    stamp = package / "__pycache__" / STAMP
    digest = sources_digest(package)
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    cached = list(package.rglob("*.nb[ic]"))
    if cache_dir:
        cached += [f for f in Path(cache_dir).rglob("*.nb[ic]") if package.name in f.parts]
    try:
        for path in cached:
            path.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:
        return False
    return True


if NUMBA_DISABLED:
    prange = range
else:
    from numba import prange  # noqa: F401  (re-exported)

    drop_stale_caches(cache_dir=os.environ.get("NUMBA_CACHE_DIR"))


# Division by zero gives inf/NaN as in numpy instead of raising: Python's check is a branch on
# every division, and a loop with a possible raise does not compile to vector code (measured:
# the committee's loop 154 → 138 ns/bar). The kernels guard their divisions themselves (the
# plain-Python twins, which do raise, run the same tests).
ERROR_MODEL = "numpy"


def jit(fn: F | None = None, *, parallel: bool = False, inline: bool = False, refcount: bool = True) -> F:
    """Compile ``fn`` with ``numba.njit(cache=True, error_model="numpy")`` unless numba is disabled.

    Parameters
    ----------
    fn : callable
        Plain-Python kernel using only numba-compatible constructs.
    parallel : bool, default False
        Compile with ``parallel=True`` so ``prange`` loops use every core.
    inline : bool, default False
        Inline the function into compiled callers (``inline="always"``): for the small
        per-bar steps, so a committee bar is one straight-line body instead of a chain
        of calls that pass their array arguments by value. Calls from Python are unchanged.
    refcount : bool, default True
        ``False`` compiles without numba's reference-counting runtime (NRT): for the hot
        per-bar loops, where every row view or inlined array argument otherwise costs an
        atomic increment and decrement (measured: half the time of a one-asset simulation).
        Such a function must not allocate arrays or return them; its callers allocate and
        own every array it touches (see :func:`coinswarm.backtest.nb.simulate_py`).

    Returns
    -------
    callable
        The compiled dispatcher, or ``fn`` itself when numba is disabled.
    """

    def wrap(f: F) -> F:
        if NUMBA_DISABLED:
            return f
        from numba import njit

        options = {"_nrt": False} if not refcount else {}
        return njit(cache=True, parallel=parallel, nogil=True, error_model=ERROR_MODEL,
                    inline="always" if inline else "never", **options)(f)

    return wrap(fn) if fn is not None else wrap  # type: ignore[return-value]
