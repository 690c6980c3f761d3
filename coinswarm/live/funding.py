"""Settled funding rates of the perpetuals a run trades, as the runner needs them per bar.

The backtest engine charges a perpetual's funding on the first bar at or after each funding
time, on the position held into that bar (:func:`coinswarm.backtest.engine.funding_matrix`), and
the portfolio committee's carry sleeve reads the rates settled strictly before a decision's
close. :class:`FundingBook` answers both questions for one closed bar of open time ``t``:

* :meth:`FundingBook.due` — the rates the paper kernel charges at ``t``: settled in
  ``(previous bar, t]``;
* :meth:`FundingBook.settled` — the settlements to tell the strategy before it decides at the
  close ``t + bar``: settled in ``[previous close, t + bar)``.

A replay reads the series from the dataset (``binance-perp:BTC/USDT:funding``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from coinswarm.costs import check_funding
from coinswarm.errors import ConfigError


class FundingBook:
    """The funding series of a run's perpetuals (symbol → Series of rates per interval).

    Parameters
    ----------
    series : mapping of symbol → Series
        Rates (fractions, longs pay when positive) on a sorted UTC DatetimeIndex of settlement
        times (checked as ``Costs.funding`` is).
    symbols : sequence of str
        The run's symbols, in target order; every perpetual among them (``BASE/QUOTE:SETTLE``)
        needs a series.
    sources : mapping of symbol → str, optional
        Where each series was read (a replay's funding sources: part of its run spec, so a run
        is not resumed on other rates).
    """

    def __init__(self, series: Mapping[str, object], symbols: Sequence[str],
                 sources: Mapping[str, str] | None = None) -> None:
        self.symbols = tuple(symbols)
        self.sources = dict(sorted((sources or {}).items()))
        check_funding(dict(series), "funding")
        missing = [s for s in self.symbols if ":" in s and s not in series]
        if missing:
            raise ConfigError(f"perpetual(s) {missing} have no funding series; give one per perpetual "
                              "(a replay finds binance-perp:BASE/QUOTE:funding for a binance-perp source)")
        unknown = sorted(set(series) - set(self.symbols))
        if unknown:
            raise ConfigError(f"funding given for {unknown}, which this run does not trade ({list(self.symbols)})")
        self._series = {self.symbols.index(s): (v.index.as_unit("ms").asi8.astype(np.int64), v.to_numpy(np.float64))
                        for s, v in series.items()}

    def due(self, after_ms: int, upto_ms: int) -> np.ndarray | None:
        """Per symbol, the sum of the rates settled in ``(after_ms, upto_ms]`` (None: none due)."""
        row = np.zeros(len(self.symbols))
        for j, (stamps, rates) in self._series.items():
            lo = int(np.searchsorted(stamps, after_ms, side="right"))
            hi = int(np.searchsorted(stamps, upto_ms, side="right"))
            row[j] = rates[lo:hi].sum()
        return row if row.any() else None

    def settled(self, from_ms: int, before_ms: int) -> list[tuple[str, int, float]]:
        """``(symbol, time_ms, rate)`` of the settlements in ``[from_ms, before_ms)``, by time."""
        out = []
        for j, (stamps, rates) in self._series.items():
            lo = int(np.searchsorted(stamps, from_ms, side="left"))
            hi = int(np.searchsorted(stamps, before_ms, side="left"))
            out += [(self.symbols[j], int(stamps[k]), float(rates[k])) for k in range(lo, hi)]
        return sorted(out, key=lambda x: (x[1], x[0]))
