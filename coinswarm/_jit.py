"""Numba switch: one place decides whether kernels are compiled.

Kernels are written once as plain Python (``foo_py``) and compiled with
:func:`jit` (``foo_nb = jit(foo_py)``). Setting ``COINSWARM_DISABLE_NUMBA=1``
before import makes :func:`jit` return the plain-Python function unchanged, so
the whole pipeline runs as Python (for debugging, coverage and the twin tests).

Compiled code is cached by numba (``__pycache__/*.nbi|nbc``, or ``NUMBA_CACHE_DIR``). numba
checks only the cached function's own file, so a kernel that inlined a helper from *another*
file would keep the helper's old code after an edit. Kernels of this package are therefore
cached under a stamp of the *whole package's* sources (:class:`PackageLocator`): any edit
anywhere makes every cached kernel stale, and numba recompiles and overwrites it. Nothing is
written on import.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

F = TypeVar("F", bound=Callable)

NUMBA_DISABLED: bool = os.environ.get("COINSWARM_DISABLE_NUMBA", "").strip() not in ("", "0")

PACKAGE = Path(__file__).parent


# what compiled code can depend on: the pure core, the kernels, and any file that compiles
COMPILED_PARTS = ("_jit.py", "costs.py", "agents", "committee", "kernels", "quorum", "regime", "strategies")


def sources_digest(package: Path = PACKAGE) -> str:
    """SHA-1 over the relative path and bytes of every ``.py`` file under ``package`` that
    compiled kernels can depend on: those in :data:`COMPILED_PARTS` and any that imports
    this module (an edit of, say, the CLI or the store leaves the cached kernels alone)."""
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        text = path.read_bytes()
        if rel.parts[0] in COMPILED_PARTS or b"coinswarm._jit" in text:
            digest.update(rel.as_posix().encode() + b"\0" + text)
    return digest.hexdigest()


@functools.cache
def package_digest() -> str:
    """:func:`sources_digest` of this package, computed once per process."""
    return sources_digest(PACKAGE)


def _in_package(py_file: str, package: Path = PACKAGE) -> bool:
    try:
        return Path(py_file).resolve().is_relative_to(package.resolve())
    except OSError:
        return False


def package_locators() -> tuple[type, ...]:
    """numba cache locators for this package's kernels: numba's own (in-tree, or
    ``NUMBA_CACHE_DIR``), but stamped with :func:`sources_digest` instead of the kernel's
    own file, so a cached kernel is used only if no source of the package changed."""
    from numba.core import caching

    class Stamped:
        def get_source_stamp(self):
            return package_digest()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _in_package(py_file):
                return None
            return super().from_function(py_func, py_file)

    class UserDirLocator(Stamped, caching.UserProvidedCacheLocator):
        """``NUMBA_CACHE_DIR`` when set."""

    class TreeLocator(Stamped, caching.InTreeCacheLocator):
        """``__pycache__`` beside the sources."""

    return UserDirLocator, TreeLocator


if NUMBA_DISABLED:
    prange = range
else:
    from numba import prange  # noqa: F401  (re-exported)
    from numba.core.caching import CacheImpl

    if not any(getattr(k, "__module__", "") == __name__ for k in CacheImpl._locator_classes):
        CacheImpl._locator_classes[:0] = package_locators()


def compile_notice_wanted() -> bool:
    """Whether to say "compiling kernels" on stderr: a terminal or a notebook reads it; a
    redirected stderr (a log, a test, a pipe) is kept to errors. ``COINSWARM_COMPILE_NOTICE=0``
    silences it, ``=1`` forces it."""
    import sys

    forced = os.environ.get("COINSWARM_COMPILE_NOTICE", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    stream = sys.stderr
    return bool(stream is not None and (getattr(stream, "isatty", lambda: False)() or "ipykernel" in sys.modules))


def install_compile_notice() -> None:
    """One line on stderr the first time a coinswarm kernel compiles in this process (a fresh
    install, or after an upgrade or an edit of the package): the minute of waiting is explained
    once; a cached kernel loads without it."""
    from numba.core import event

    class Notice(event.Listener):
        said = False

        def on_start(self, ev) -> None:
            dispatcher = (ev.data or {}).get("dispatcher")
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if Notice.said or not module.startswith("coinswarm.") or not compile_notice_wanted():
                return
            Notice.said = True
            import sys

            print("coinswarm: compiling kernels (first run only: cached for every later run)…", file=sys.stderr,
                  flush=True)

        def on_end(self, ev) -> None:
            pass

    event.register("numba:compile", Notice())


if not NUMBA_DISABLED:
    install_compile_notice()


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
        own every array it touches (see :func:`coinswarm.kernels.portfolio.simulate_py`).

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
