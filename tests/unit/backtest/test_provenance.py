"""The frozen default's walk-forward deflates by the search that froze it (real data; the ledger
is the repository's research/trials/ledger.jsonl)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import coinswarm as cs
from coinswarm.backtest.provenance import DEFAULT_SEARCH, recompute, search_behind
from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams
from tests.conftest import spot_and_perp

LEDGER = Path(__file__).resolve().parents[3] / DEFAULT_SEARCH.ledger


def test_the_constants_are_what_the_ledger_holds():
    found = recompute(str(LEDGER))
    assert (found.n_trials, found.n_effective) == (DEFAULT_SEARCH.n_trials, DEFAULT_SEARCH.n_effective)
    assert found.sharpe_variance == DEFAULT_SEARCH.sharpe_variance and found.pbo == DEFAULT_SEARCH.pbo


def test_only_the_frozen_default_carries_the_search(pairs_2021):
    _, funding = pairs_2021
    frozen = PortfolioCommittee.default(funding)
    assert search_behind(frozen, [PortfolioParams()]) is DEFAULT_SEARCH
    assert search_behind(frozen, [PortfolioParams(band=0.1)]) is None
    assert search_behind(frozen, [PortfolioParams(), PortfolioParams(band=0.1)]) is None
    tuned = PortfolioCommittee(funding, "p", PortfolioParams(band=0.1))
    assert search_behind(tuned, [PortfolioParams(band=0.1)]) is None
    assert search_behind(cs.get_strategy("sma_cross"), [()]) is None


@pytest.mark.timeout(600)
def test_the_default_walk_forward_deflates_by_its_search_and_judges_its_pbo(pairs_2021, monkeypatch):
    monkeypatch.delenv("COINSWARM_TRIAL_LEDGER", raising=False)
    prices, funding = pairs_2021
    report = cs.walk_forward(cs.Committee.default(), prices, None, train="120D", test="30D",
                             costs=cs.Costs(fee_bps=10, funding=funding))
    stats = report.stats
    assert (stats["n_trials"], stats["n_trials_effective"]) == (DEFAULT_SEARCH.n_trials, DEFAULT_SEARCH.n_effective)
    assert report.n_trials == DEFAULT_SEARCH.n_trials and stats["trials_source"] == DEFAULT_SEARCH.describe()
    assert stats["sharpe_variance"] >= DEFAULT_SEARCH.sharpe_variance
    assert report.dsr == stats["dsr_excess"] < stats["psr_excess"]  # deflated, not the plain PSR
    assert report.pbo == DEFAULT_SEARCH.pbo and not any("PBO" in r for r in report.reasons)
    assert "search that froze this default" in str(report)
    # 2021 lies inside the span the default was frozen on: the gate says so and fails
    assert stats["in_sample_for_search"] and any(r.startswith("in-sample: this default was frozen on 2019-01-01")
                                                 for r in report.reasons) and not report.passed


@pytest.mark.timeout(600)
def test_on_days_after_the_search_the_default_is_out_of_sample(monkeypatch):
    monkeypatch.delenv("COINSWARM_TRIAL_LEDGER", raising=False)
    prices, funding = spot_and_perp("2024-01-01", "2024-12-31")
    report = cs.walk_forward(cs.Committee.default(), prices, None, train="120D", test="30D",
                             costs=cs.Costs(fee_bps=10, funding=funding))
    assert report.stats["trials_source"] == DEFAULT_SEARCH.describe() and not report.stats["in_sample_for_search"]
    assert not any("in-sample" in r or "PBO" in r for r in report.reasons)


def test_knobs_that_change_nothing_keep_the_search(pairs_2021):
    _, funding = pairs_2021
    frozen = PortfolioCommittee.default(funding)
    assert search_behind(frozen, [PortfolioParams(cost_bps=20.0, learn_halflife=90.0)]) is DEFAULT_SEARCH
    assert search_behind(frozen, [PortfolioParams(learn=True)]) is None


@pytest.mark.timeout(600)
def test_another_configuration_without_a_ledger_fails_on_an_undefined_pbo_and_says_why(pairs_2021, monkeypatch):
    monkeypatch.delenv("COINSWARM_TRIAL_LEDGER", raising=False)
    prices, funding = pairs_2021
    tuned = PortfolioCommittee(funding, "portfolio_band10", PortfolioParams(band=0.10))
    report = cs.walk_forward(tuned, prices, None, train="120D", test="30D", costs=cs.Costs(fee_bps=10, funding=funding))
    assert report.stats["trials_source"] == "this walk-forward's grid" and math.isnan(report.pbo)
    reason = next(r for r in report.reasons if "PBO" in r)
    assert "undefined" in reason and "ledger=" in reason and "max_pbo=None" in reason
    waived = cs.walk_forward(tuned, prices, None, train="120D", test="30D", gate=cs.Gate(max_pbo=None),
                             costs=cs.Costs(fee_bps=10, funding=funding))
    assert not any("PBO" in r for r in waived.reasons)


def test_the_report_states_fees_plainly_when_the_gross_is_a_loss():
    from coinswarm.backtest.walkforward import _cost_text

    assert _cost_text({"cost_share": 0.066, "fees_paid": 1164.2, "gross_pnl": 17611.6}) == "costs 7% of gross"
    assert _cost_text({"cost_share": math.nan, "fees_paid": 23.56, "gross_pnl": -169.54}) == \
        "fees 23.56 on a gross PnL of -169.54 (no gain)"


@pytest.mark.timeout(600)
def test_the_report_sets_the_baselines_beside_the_committee_on_the_same_days(pairs_2021):
    prices, funding = pairs_2021
    kwargs = dict(train="120D", test="60D", costs=cs.Costs(fee_bps=10, funding=funding), cash_rate=0.04)
    report = cs.walk_forward(cs.Committee.default(), prices, None, **kwargs)
    rows = report.stats["baselines"]
    assert list(rows) == ["buy_and_hold", "trend_portfolio"]
    for name, row in rows.items():  # each equals the baseline's own walk-forward over the same folds
        alone = cs.walk_forward(name, prices, None, **kwargs)
        assert row["sharpe_excess"] == alone.stats["sharpe_excess"] and row["n_trades"] == alone.oos.metrics["n_trades"]
        assert alone.stats["baselines"] == {}  # only a committee of sleeves is set beside them
    assert "baselines on the same days and costs" in str(report)
