"""The portfolio evidence protocol (``coinswarm evidence --suite portfolio``) on a short window of
real data: every strategy gets a development and a holdout row, every run is a counted trial,
the holdout is scored on its own window only, and the report is written."""

from __future__ import annotations

import argparse
import json
import math
import re

import pandas as pd
import pytest

from coinswarm.backtest.portfolio_evidence import FINANCED, STRATEGIES, run_portfolio_evidence, universe_prices
from coinswarm.cli.edge import cmd_portfolio_evidence
from coinswarm.errors import ConfigError


@pytest.mark.timeout(900)
def test_a_small_protocol_run_counts_every_trial_and_writes_the_report(tmp_path):
    out = tmp_path / "reports"
    evidence = run_portfolio_evidence((2,), start="2021-01-01", dev_end="2022-06-30", end="2022-12-31",
                                      train="120D", test="60D", ledger=tmp_path / "ledger.jsonl", out=out)
    rows = evidence["rows"]
    trials = evidence["ledger"]["n_trials"]  # identical out-of-sample records are one trial (on a short
    assert len(rows) // 2 <= trials <= len(rows)  # window a committee may equal its baseline or variant)
    assert [(r["strategy"], r["phase"], r["financed"]) for r in rows] == [
        (name, phase, financed) for name in STRATEGIES for financed in ((False, True) if name in FINANCED else (False,))
        for phase in ("development", "holdout")]
    for r in rows:
        assert r["universe"] == 2 and r["n_trials"] == trials
        if r["phase"] == "holdout":
            assert r["start"] == "2022-07-01" and r["end"].startswith("2022-12-31")
        else:
            assert "2021-01-01" <= r["start"] and r["end"] <= "2022-06-30"
        assert 0.0 <= r["max_drawdown"] < 1.0
        if r["max_drawdown"] > 0:  # a book that never held anything has no Sharpe to deflate (NaN)
            assert 0.0 <= r["dsr_excess"] <= 1.0
        else:
            assert math.isnan(r["dsr_excess"])
    assert 1 <= evidence["ledger"]["n_effective"] <= trials
    # every row is deflated with the ledger's V[SR]: the larger of its clusters' and its trials' figures
    led = evidence["ledger"]
    assert {r["sharpe_variance"] for r in rows} == {led["sharpe_variance"]}
    assert led["sharpe_variance"] == max(led["sharpe_variance_clusters"], led["sharpe_variance_trials"])
    assert len((tmp_path / "ledger.jsonl").read_text().splitlines()) == len(rows)  # every run is recorded
    assert json.loads((out / "portfolio_evidence.json").read_text())["settings"]["holdout"] == "2022-07-01 … 2022-12-31"
    text = (out / "portfolio_evidence.md").read_text()
    table = [line for line in text.splitlines()  # the main table: universe, phase, strategy, book, window
             if re.match(r"\| 2 \| (development|holdout) \| \w+ \| (cash 0|financed) \| \d{4}-\d\d-\d\d → ", line)]
    assert len(table) == len(rows)
    by = {(r["strategy"], r["phase"], r["financed"]): r for r in rows}
    for name in ("committee", "trend_portfolio"):  # idle cash credited: the same targets, a better excess return
        for phase in ("development", "holdout"):
            assert by[(name, phase, True)]["sharpe_excess"] > by[(name, phase, False)]["sharpe_excess"]
            assert by[(name, phase, True)]["n_trades"] == by[(name, phase, False)]["n_trades"]
    assert "Liquidation audit" in text


def test_the_holdout_and_unknown_universes_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="after 2024-12-31: later data is reserved"):
        universe_prices(("BTC",), "2024-01-01", "2025-01-31")
    with pytest.raises(ConfigError, match=r"universe size 3 is not one of \[2, 4, 6\]"):
        run_portfolio_evidence((3,), ledger=tmp_path / "l.jsonl")
    assert not (tmp_path / "l.jsonl").exists()


def test_universe_prices_add_the_perpetuals_with_funding():
    prices, funding = universe_prices(("BTC", "LTC"), "2022-01-01", "2022-01-31")
    assert sorted(prices) == ["BTC/USDT", "BTC/USDT:USDT", "LTC/USDT"]
    assert list(funding) == ["BTC/USDT:USDT"]
    assert funding["BTC/USDT:USDT"].index[-1] <= prices["BTC/USDT"].index[-1] + pd.Timedelta(days=1)


@pytest.mark.parametrize(("sizes", "end", "why"), [
    ("2,5", "2024-12-31", "--sizes '2,5': give universe sizes among 2,4,6"),
    ("two", "2024-12-31", "--sizes 'two'"), (",", "2024-12-31", "--sizes ','"),
    ("2", "2025-03-01", "--end 2025-03-01: data after 2024-12-31 is reserved"),
])
def test_the_cli_refuses_bad_sizes_and_the_holdout(sizes, end, why):
    args = argparse.Namespace(sizes=sizes, end=end, fee_bps=10.0, cash_rate=0.04, ledger="unused", out="unused")
    with pytest.raises(ConfigError, match=why.replace("(", r"\(")):
        cmd_portfolio_evidence(args)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("rate", [-0.01, -0.2])
def test_a_cash_rate_idle_cash_cannot_earn_is_refused_before_any_trial_is_recorded(tmp_path, rate):
    """The financed rows credit idle cash at ``cash_rate``, which ``Costs`` refuses below 0: such a
    rate must stop the run before the first (unfinanced) walk-forward records its trials — it
    does, as a hurdle below the 0 unfinanced idle cash earns."""
    ledger = tmp_path / "ledger.jsonl"
    with pytest.raises(ConfigError, match=r"cash_rate -0\.\d+ is below the 0\.0 idle cash earns"):
        run_portfolio_evidence((2,), start="2021-01-01", dev_end="2022-06-30", end="2022-12-31",
                               train="120D", test="60D", cash_rate=rate, ledger=ledger, out=tmp_path / "reports")
    assert not ledger.exists() or ledger.read_text() == ""
