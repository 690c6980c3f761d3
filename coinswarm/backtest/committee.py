"""The committee with its backtest: :class:`Committee` (``cs.Committee``) is the pure
:class:`coinswarm.committee.Committee` plus :meth:`~Committee.backtest`, which simulates its
targets with :func:`~coinswarm.backtest.engine.simulate` and attributes the PnL.

The pure committee (what the live runner drives) knows nothing of the backtester; this
subclass adds the research convenience one layer up.
"""

from __future__ import annotations

import pandas as pd

from coinswarm.backtest.attribution import attribute
from coinswarm.backtest.engine import Result, simulate
from coinswarm.committee import Committee as PureCommittee
from coinswarm.committee import CommitteeParams
from coinswarm.costs import Costs


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
            :meth:`run` table).
        """
        table = self.run(prices, params, gaps="ignore")
        # one frame was validated by run; several are simulated on the union of their bars (run uses
        # the common bars), so simulate checks those itself
        result = simulate(prices, self._orders(prices, table), costs=costs, init_cash=init_cash, execution=execution,
                          allow_short=self.allow_short, validate=not isinstance(prices, pd.DataFrame))
        result.attribution = attribute(result, table, self.agent_names)
        result.committee = table
        return result
