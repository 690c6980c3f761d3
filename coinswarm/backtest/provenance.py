"""The search that froze the default portfolio committee, so its walk-forward deflates by it.

``cs.Committee.default()`` on a dict of pairs runs the daily portfolio committee at
:class:`~coinswarm.committee.portfolio.PortfolioParams`' defaults. Those defaults were chosen on
data up to 2023 after the configurations recorded in ``research/trials/ledger.jsonl`` had been
evaluated (issue 19's protocol). A walk-forward of that frozen default given no trial ledger of
its own therefore deflates its DSR by *that* search (its effective trial count and Sharpe
variance) rather than by its folds alone, and judges PBO by the selection that produced it
(CSCV over the ledger's trials on the development days) — a single configuration selects nothing
on the data it is given, so its own PBO is undefined.

The figures are constants, so the library needs no file outside the package; a test recomputes
them from ``research/trials/ledger.jsonl`` (:func:`recompute`) and fails when the ledger moves
without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from coinswarm.backtest.ledger import TrialLedger


@dataclass(frozen=True)
class Search:
    """A recorded search: what the DSR and the gate's PBO need of it.

    Attributes
    ----------
    ledger : str
        Where the trials are recorded (relative to the repository root).
    n_trials, n_effective : int
        Distinct trials and their correlation clusters (:meth:`TrialLedger.summary`).
    sharpe_variance : float
        V[SR] of per-day Sharpe ratios (:meth:`TrialLedger.summary`'s ``sharpe_variance``).
    pbo : float
        CSCV PBO (16 splits) over the ledger's trials that cover every day of ``pbo_span``.
    pbo_span : tuple of str
        The development days (UTC, inclusive) the selection was made on.
    """

    ledger: str
    n_trials: int
    n_effective: int
    sharpe_variance: float
    pbo: float
    pbo_span: tuple[str, str]

    def describe(self) -> str:
        """Where the trial count comes from, as the report states it."""
        return f"the search that froze this default ({self.ledger})"

    def overlaps(self, first_day) -> bool:
        """Whether days from ``first_day`` on include some the selection was made on (in-sample)."""
        return pd.Timestamp(first_day).tz_localize(None) <= pd.Timestamp(self.pbo_span[1])


#: The search behind ``PortfolioParams()`` (recomputed from the ledger by the tests).
DEFAULT_SEARCH = Search(ledger="research/trials/ledger.jsonl", n_trials=90, n_effective=4,
                        sharpe_variance=0.0011273536959916122, pbo=0.00947940947940948,
                        pbo_span=("2019-01-01", "2023-12-31"))


def search_behind(strategy, combos: list) -> Search | None:
    """:data:`DEFAULT_SEARCH` when ``strategy`` runs only the frozen default portfolio committee, else None."""
    from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams

    if not isinstance(strategy, PortfolioCommittee) or len(combos) != 1:
        return None
    frozen = PortfolioParams()
    return DEFAULT_SEARCH if _effective(strategy.defaults) == _effective(PortfolioParams(*combos[0])) == frozen \
        else None


def _effective(p):
    """``p`` with the fields that change nothing reset (the learning knobs when ``learn`` is off)."""
    from coinswarm.committee.portfolio import PortfolioParams

    if p.learn:
        return p
    base = PortfolioParams()
    return p._replace(learn_halflife=base.learn_halflife, cost_bps=base.cost_bps)


def recompute(path: str, pbo_span: tuple[str, str] = DEFAULT_SEARCH.pbo_span) -> Search:
    """The :class:`Search` a ledger file holds (what :data:`DEFAULT_SEARCH` must equal)."""
    from coinswarm.backtest.honest import ledger_pbo

    book = TrialLedger(path)
    summary = book.summary()
    days = pd.date_range(pbo_span[0], pbo_span[1], freq="D", tz="UTC")
    pbo = ledger_pbo(book, days)
    return Search(ledger=path, n_trials=summary["n_trials"], n_effective=summary["n_effective"],
                  sharpe_variance=summary["sharpe_variance"], pbo=pbo if math.isfinite(pbo) else math.nan,
                  pbo_span=pbo_span)
