"""The gate report and the evidence table carry each sleeve's net contribution and the ledger's PBO;
identical out-of-sample records are one trial (real data)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.ledger import TrialLedger
from coinswarm.backtest.portfolio_evidence import render
from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams


@pytest.mark.timeout(600)
def test_walk_forward_reports_net_contributions_and_ledger_pbo(pairs_2021_22, tmp_path):
    prices, funding = pairs_2021_22
    costs, ledger = cs.Costs(fee_bps=10, funding=funding), tmp_path / "trials.jsonl"
    kwargs = dict(train="120D", test="60D", costs=costs, cash_rate=0.04, ledger=ledger)
    first = cs.walk_forward(cs.Committee.default(), prices, None, **kwargs)
    assert math.isnan(first.stats["pbo_ledger"])  # one trial: nothing to overfit yet
    learned = PortfolioCommittee(funding, "portfolio_learned", PortfolioParams(learn=True, learn_halflife=30.0))
    report = cs.walk_forward(learned, prices, None, **kwargs)
    contribution = report.stats["sleeves"]["contribution"]
    pnl = float(report.oos.equity.iloc[-1]) - report.oos.assumptions["init_cash"]
    assert contribution["trend"]["net_pnl"] + contribution["carry"]["net_pnl"] == pytest.approx(pnl, abs=1e-6)
    assert contribution["trend"]["days_on"] < 1.0  # the learned weights switched trend off at times
    assert 0.0 <= report.stats["pbo_ledger"] <= 1.0 and report.stats["n_trials"] == 2
    # one configuration has no PBO of its own: the gate judges the ledger's
    assert math.isnan(first.pbo) and any("PBO" in r for r in first.reasons)
    assert report.pbo == report.stats["pbo_ledger"] and report.stats["pbo_source"] == "trial ledger"
    assert not any("PBO" in r for r in report.reasons) or report.pbo > 0.5
    text = str(report)
    assert "net contribution of each sleeve" in text and "PBO over the ledger's trials" in text
    assert first.stats["sleeves"]["contribution"]["trend"]["days_on"] == 1.0  # no learning: always weighted


def _daily(seed, n=100):
    index = pd.date_range("2023-01-01", periods=n, freq="D", tz="UTC")
    return pd.Series(np.random.default_rng(seed).normal(0, 0.01, n), index=index)


def test_the_same_record_under_two_names_is_one_trial(tmp_path):
    book = TrialLedger(tmp_path / "t.jsonl")
    book.record({"strategy": "a", "params": {"x": 1}}, _daily(0))
    book.record({"strategy": "a", "params": {"x": 1, "new_default": False}}, _daily(0))  # a field added later
    assert book.summary()["n_trials"] == 1
    book.record({"strategy": "a", "params": {"x": 2}}, _daily(0) + 1e-4)  # a different record: a new trial
    assert book.summary()["n_trials"] == 2
    assert len(book.entries()) == 3  # nothing is dropped from the file


def test_evidence_table_shows_pbo_trials_and_contributions():
    contribution = {"trend": {"net_pnl": 500.0, "net_return": 0.05, "fees": 30.0, "funding": 0.0, "days_on": 0.8},
                    "carry": {"net_pnl": 800.0, "net_return": 0.08, "fees": 60.0, "funding": 900.0, "days_on": 1.0},
                    "unattributed": 0.0, "init_cash": 10_000.0}
    row = {"universe": 2, "phase": "development", "strategy": "committee_learned", "start": "2019-01-01",
           "end": "2023-12-31", "sharpe_excess": 1.2, "sharpe_lo": 1.0, "psr_excess": 0.99, "dsr_excess": 0.8,
           "total_return": 1.3, "max_drawdown": 0.1, "n_trades": 100, "turnover": 12.0, "cost_share": 0.05,
           "pbo_ledger": 0.25, "sleeves": {"contribution": contribution}}
    evidence = {"rows": [row], "ledger": {"n_trials": 49, "n_effective": 6, "path": "ledger.jsonl",
                                                   "sharpe_variance": 1.13e-3, "sharpe_variance_clusters": 1.06e-4,
                                                   "sharpe_variance_trials": 1.13e-3},
                "settings": {"start": "2018-01-01", "dev_end": "2023-12-31", "holdout": "2024-01-01 … 2024-12-31",
                             "fee_bps": 10.0, "cash_rate": 0.04, "train": "365D", "test": "90D"}}
    text = render(evidence)
    assert "49 trials, 6 effective clusters" in text and "development 0.250" in text
    assert "V[SR] 1.13e-03 a day, the larger of the variance of the clusters' Sharpe ratios" in text
    assert "López de Prado 2019: 1.06e-04) and of every trial's (1.13e-03)" in text
    assert "| 2 | committee_learned | 5.0% | 0.3% | 80% | 8.0% | 0.6% | 9.0% | 100% |" in text
