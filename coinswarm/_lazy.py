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
import types
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
