"""walk_forward on a dict of pairs runs the portfolio committee in one continuous run, with the honest fields."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.ledger import TrialLedger
from coinswarm.committee.portfolio import PortfolioCommittee

FIELDS = ("sharpe_excess", "sharpe_lo", "psr_excess", "dsr_excess", "n_trials", "n_trials_effective",
          "pbo_ledger", "daily_win_rate", "win_rate", "turnover", "cost_share", "sleeves", "cash_rate")


@pytest.fixture(scope="module")
def spot():
    return {f"{a}/USDT": cs.load_ohlcv(f"binance:{a}/USDT:1h", start="2021-01-01", end="2022-06-30")
            for a in ("BTC", "ETH", "LTC")}


@pytest.mark.timeout(300)
def test_default_committee_on_pairs_is_the_portfolio_committee(spot, tmp_path):
    ledger = tmp_path / "trials.jsonl"
    report = cs.walk_forward(cs.Committee.default(), spot, None, train="120D", test="60D",
                             costs=cs.Costs(fee_bps=10), cash_rate=0.04, ledger=ledger)
    assert report.strategy == "portfolio"
    for key in FIELDS:
        assert key in report.stats
    assert report.stats["n_trials"] == 1 and report.stats["trials_source"] == str(ledger)
    assert math.isfinite(report.stats["sharpe_excess"]) and 0 <= report.stats["dsr_excess"] <= 1
    assert len(TrialLedger(ledger).entries()) == 1
    # one continuous run: the OOS orders are the full run's, sliced (no restart per fold)
    full = PortfolioCommittee().targets(spot)
    lo = report.folds[0]["test_start"]
    held = report.oos.positions.abs().sum(axis=1)
    assert (held > 0).mean() > 0.2
    held_before = full.loc[full.index < lo].ffill().iloc[-1]
    assert (held_before.abs() > 0).any()
    # the run holds what it ordered before the window: those weights are bought at the first open
    assert report.oos.fills["time"].min() == lo + pd.Timedelta(hours=1)
    later = full.loc[full.index >= lo + pd.Timedelta(hours=1)].dropna(how="all")
    fill_times = set(report.oos.fills["time"])
    assert all(t + pd.Timedelta(hours=1) in fill_times for t in later.index[:5])
    assert "stats" in report.to_dict() and "excess of 4.0% cash" in str(report)
    again = cs.walk_forward(cs.Committee.default(), spot, None, train="120D", test="60D",
                            costs=cs.Costs(fee_bps=10), cash_rate=0.04, ledger=ledger)
    assert again.stats["n_trials"] == 1  # the same configuration is one trial
    np.testing.assert_array_equal(again.oos_equity.to_numpy(), report.oos_equity.to_numpy())


def test_bad_cash_rate_is_refused_before_work(spot):
    with pytest.raises(cs.ConfigError, match="cash_rate"):
        cs.walk_forward("buy_and_hold", spot, None, train="120D", test="60D", cash_rate=5.0)
