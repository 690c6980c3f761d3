"""Market data: catalog, loading, validation, resampling, alignment, download."""

from coinswarm.data.catalog import CatalogEntry, catalog, find_entry
from coinswarm.data.load import fill_gaps, load_funding, load_ohlcv
from coinswarm.data.resample import align, resample_ohlcv
from coinswarm.data.validate import GapReport, validate_ohlcv

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
