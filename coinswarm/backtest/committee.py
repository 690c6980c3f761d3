"""The committee with its backtest: :class:`Committee` (``cs.Committee``) is the pure
:class:`coinswarm.committee.Committee` plus :meth:`~Committee.backtest`, which simulates its
targets with :func:`~coinswarm.backtest.engine.simulate` and attributes the PnL.

The pure committee (what the live runner drives) knows nothing of the backtester; this
subclass adds the research convenience one layer up.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from coinswarm.agents.execution import orders_only
from coinswarm.backtest.attribution import attribute
from coinswarm.backtest.engine import Deferred, Result, simulate
from coinswarm.committee import Committee as PureCommittee
from coinswarm.committee import CommitteeParams
from coinswarm.costs import Costs
from coinswarm.data.resample import align


class Committee(PureCommittee):
    """The committee of :mod:`coinswarm.committee`, with :meth:`backtest`."""

    def backtest(self, prices, params: CommitteeParams | None = None, *, costs: Costs | None = None,
                 init_cash: float = 10_000.0, execution: str = "next_open") -> Result:
        """Simulate the committee and attach ``Result.attribution`` (PnL by agent and regime).

        Parameters
        ----------
        prices : DataFrame or dict of DataFrame
            One symbol's candles, or several (aligned on their common bars).
        params : CommitteeParams, optional
            The committee's knobs (defaults when omitted).
        costs, init_cash, execution
            As in :func:`coinswarm.simulate`.

        Returns
        -------
        Result
            The simulation, with ``attribution`` (agent × regime PnL) and ``committee`` (the
            :meth:`run` table), both computed on first read.
        """
        frames, single = self._frames(prices, "ignore")
        out = self._history(frames, self._params(params))
        index, symbols = next(iter(frames.values())).index, list(frames)
        # one frame was validated by _frames; several are simulated on the union of their bars (the
        # committee runs on the common bars), so simulate checks those itself
        result = simulate(prices, _orders(prices, out[0], index, symbols, single), costs=costs, init_cash=init_cash,
                          execution=execution, allow_short=self.allow_short, validate=not single)
        # the run table and the attribution are built on first read (same values, paid only when used),
        # from this simulation as returned (a shallow copy: fields the caller rebinds do not leak in)
        simulated = copy.copy(result)
        result.committee = Deferred(lambda: self._frame(out, symbols, index, single))
        result.attribution = Deferred(lambda: attribute(simulated, result.committee, self.agent_names))
        return result


def _orders(prices, target: np.ndarray, index: pd.DatetimeIndex, symbols: list[str],
            single: bool) -> pd.Series | pd.DataFrame:
    """The engine's orders from the committee's executed targets (NaN: no order on that bar), on
    the prices' grid (the union of the bars of several frames)."""
    if single:
        return pd.Series(orders_only(target[:, 0]), index=index, name="target")
    shaped = pd.DataFrame(orders_only(target), index=index, columns=symbols, copy=False)
    return shaped.reindex(next(iter(align(prices).values())).index)
