"""Resampling to coarser bars and aligning several assets onto one grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coinswarm._lazy import lazy_module
from coinswarm.data.validate import OHLCV_COLUMNS, timeframe_ms
from coinswarm.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resample_ohlcv(df: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregate candles into ``timeframe`` bars (UTC, labelled by bar open).

    Open is the first open, high the max, low the min, close the last close and
    volume the sum of the bars that exist in each period; periods with no bar
    are left out (gaps stay gaps). This reproduces the shipped ``*_1d_resampled``
    files exactly from the hourly ones.

    Raises
    ------
    ConfigError
        If ``timeframe`` is not coarser than the data's bar length.
    """
    target = timeframe_ms(timeframe)
    source_tf = df.attrs.get("timeframe")
    source_ms = timeframe_ms(source_tf) if source_tf else None
    if target is None or (source_ms is not None and (target < source_ms or target % source_ms)):
        raise ConfigError(f"cannot resample {source_tf} bars to {timeframe}")
    rule = pd.Timedelta(milliseconds=target)
    out = df[list(OHLCV_COLUMNS)].resample(rule, label="left", closed="left").agg(_AGG)
    out = out.dropna(subset=["open"])
    out.index.name = "time"
    out.attrs = {**df.attrs, "timeframe": timeframe}
    return out


def align(frames: dict[str, pd.DataFrame], how: str = "outer") -> dict[str, pd.DataFrame]:
    """Put several assets on one time grid.

    Parameters
    ----------
    frames : dict of str to DataFrame
        Candles per symbol.
    how : {"outer", "inner"}
        ``"outer"``: union of all timestamps; an asset's missing bars are NaN (the
        engine does not trade it there and values it at its last close).
        ``"inner"``: only timestamps every asset has.

    Returns
    -------
    dict of str to DataFrame
        Same keys, every frame on the same index.
    """
    if how not in ("outer", "inner"):
        raise ConfigError(f"how must be 'outer' or 'inner', not {how!r}")
    if not frames:
        raise ConfigError("align needs at least one frame")
    index = None
    for df in frames.values():
        if index is None:
            index = df.index
        elif how == "outer":
            index = index.union(df.index)
        else:
            index = index.intersection(df.index)
    out = {}
    for symbol, df in frames.items():
        aligned = df.reindex(index)
        aligned.attrs = dict(df.attrs)
        out[symbol] = aligned
    return out
