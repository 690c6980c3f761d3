"""A module imported on first use: ``pd = lazy_module("pandas")`` costs nothing until ``pd.X``.

The pure core's modules need pandas only for their pandas face (``run``, ``targets``,
``validate_ohlcv``); the live runner steps them on plain bars and should not pay pandas'
import (a quarter of a second) at start. Each such module binds ``pd`` to a
:class:`LazyModule` at run time and to the real module for type checkers::

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas")

Annotations stay strings (``from __future__ import annotations``), so only executed code
(``pd.DataFrame(...)``, ``isinstance(x, pd.Series)``) imports the module.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module ``name``; the first attribute read imports it (once per process,
    through :func:`importlib.import_module`, so ``sys.modules`` holds the real module)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._module: types.ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self.__name__)
        return getattr(module, attr)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_module(name: str) -> LazyModule:
    """A stand-in for ``import name`` that imports ``name`` on first attribute access.

    Parameters
    ----------
    name : str
        The absolute module name, e.g. ``"pandas"``.

    Returns
    -------
    LazyModule
        Attribute access forwards to the imported module.
    """
    return LazyModule(name)


def lazy_exports(package: str, exports: dict[str, str], names: list[str],
                 before: Callable[[str, str], None] | None = None) -> tuple[Callable, Callable]:
    """PEP 562 ``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to
    the submodule that defines it, imported on the name's first use and cached in the package.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (it must be importing, i.e. in ``sys.modules``).
    exports : dict
        Public name → absolute module name.
    names : list of str
        The package's ``__all__`` (listed by ``dir()`` before anything is imported).
    before : callable, optional
        ``before(name, module)`` runs before the first import of a name (e.g. to fill a registry).
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if before is not None:
            before(name, module)
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__
