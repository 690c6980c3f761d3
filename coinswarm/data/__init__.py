"""Market data: catalog, loading, validation, resampling, alignment, download.

The loaders, resampling and validation are imported on first use (PEP 562):
``coinswarm.data.validate`` (what the live runner needs: timeframes, bar checks) loads without
the loaders and pandas. The catalog is imported here, because its function ``catalog`` shares
its name with its module: a lazy name would be shadowed by the submodule once imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coinswarm._lazy import lazy_exports
from coinswarm.data.catalog import CatalogEntry, catalog, find_entry

# public name → the module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("fill_gaps", "load_funding", "load_ohlcv"), "coinswarm.data.load"),
    **dict.fromkeys(("align", "resample_ohlcv"), "coinswarm.data.resample"),
    **dict.fromkeys(("GapReport", "validate_ohlcv"), "coinswarm.data.validate"),
}

__all__ = [
    "CatalogEntry",
    "GapReport",
    "align",
    "catalog",
    "fill_gaps",
    "find_entry",
    "load_funding",
    "load_ohlcv",
    "resample_ohlcv",
    "validate_ohlcv",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:  # names for type checkers and IDEs
    from coinswarm.data.load import fill_gaps, load_funding, load_ohlcv
    from coinswarm.data.resample import align, resample_ohlcv
    from coinswarm.data.validate import GapReport, validate_ohlcv
