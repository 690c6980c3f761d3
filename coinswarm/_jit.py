"""Numba switch: one place decides whether kernels are compiled.

Kernels are written once as plain Python (``foo_py``) and compiled with
:func:`jit` (``foo_nb = jit(foo_py)``). Setting ``COINSWARM_DISABLE_NUMBA=1``
before import makes :func:`jit` return the plain-Python function unchanged, so
the whole pipeline runs as Python (for debugging, coverage and the twin tests).

Compiled code is cached next to the sources (``__pycache__/*.nbi|nbc``). numba checks
only the cached function's own file, so after editing a kernel that others call from
*other* files, delete the cache (``find coinswarm -name '*.nb[ic]' -delete``); the
twin tests in ``tests/soundness`` catch a stale one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

NUMBA_DISABLED: bool = os.environ.get("COINSWARM_DISABLE_NUMBA", "").strip() not in ("", "0")

if NUMBA_DISABLED:
    prange = range
else:
    from numba import prange  # noqa: F401  (re-exported)


def jit(fn: F | None = None, *, parallel: bool = False, inline: bool = False, refcount: bool = True) -> F:
    """Compile ``fn`` with ``numba.njit(cache=True)`` unless numba is disabled.

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
        return njit(cache=True, parallel=parallel, nogil=True, inline="always" if inline else "never", **options)(f)

    return wrap(fn) if fn is not None else wrap  # type: ignore[return-value]
