"""The trial ledger: append, de-duplicate by configuration, summarize, refuse nonsense."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.honest import deflate, returns_statistics
from coinswarm.backtest.ledger import LEDGER_ENV, TrialLedger, default_ledger, trial_id


def _daily(seed, n=200, mean=0.0):
    """Synthetic daily returns (the ledger's statistics need only a shape, not a market)."""
    index = pd.date_range("2023-01-01", periods=n, freq="D", tz="UTC")
    return pd.Series(np.random.default_rng(seed).normal(mean, 0.01, n), index=index)


def _near_copy(daily, seed):
    """``daily`` plus small zero-mean noise (ρ ≈ 0.98): the same book under another name or variant."""
    noise = np.random.default_rng(seed).normal(0, 0.002, len(daily))
    return daily + (noise - noise.mean())


def test_record_and_summary(tmp_path):
    book = TrialLedger(tmp_path / "trials" / "t.jsonl")
    assert book.summary()["n_trials"] == 0
    first = book.record({"strategy": "a", "x": 1}, _daily(0))
    book.record({"strategy": "a", "x": 1}, _daily(0))  # the same configuration again: one trial
    book.record({"x": 1, "strategy": "a"}, _daily(0))  # key order does not matter
    book.record({"strategy": "b"}, _daily(1))
    book.record({"strategy": "c"}, _daily(0) * 1.5)  # a scaled copy of a: same cluster
    summary = book.summary()
    assert summary["n_trials"] == 3 and summary["n_effective"] == 2 and summary["sharpe_variance"] > 0
    assert summary["sharpe_variance_trials"] > 0
    assert first == trial_id({"x": 1, "strategy": "a"})
    assert list(book.returns_matrix().columns)[0] == first


def test_near_copies_of_a_trial_cannot_lower_the_sharpe_variance_below_the_clusters(tmp_path):
    """Recording the same books again under other names (financed next to unfinanced, say) adds trials
    but no cluster: the clusters' V[SR] stays put while the variance over every trial shrinks; the DSR's
    V[SR] is the larger of the two, so the copies cannot take it below the clusters' figure."""
    book = TrialLedger(tmp_path / "t.jsonl")
    books = {name: _daily(seed, 400, mean) for name, seed, mean in (("a", 1, 0.002), ("b", 2, 0.0), ("c", 3, -0.001))}
    for name, daily in books.items():
        book.record({"strategy": name}, daily)
    before = book.summary()
    for k in range(20):
        book.record({"strategy": "a", "financed": k}, _near_copy(books["a"], 10 + k))
    after = book.summary()
    assert (before["n_trials"], after["n_trials"]) == (3, 23)
    assert before["n_effective"] == after["n_effective"] == 3
    assert after["sharpe_variance_clusters"] == pytest.approx(before["sharpe_variance_clusters"], rel=0.05)
    assert after["sharpe_variance_trials"] < 0.5 * before["sharpe_variance_trials"]
    for s in (before, after):
        assert s["sharpe_variance"] == max(s["sharpe_variance_clusters"], s["sharpe_variance_trials"])
    assert after["sharpe_variance"] >= 0.95 * before["sharpe_variance_clusters"]
    floor = before["sharpe_variance_clusters"]
    for daily in books.values():
        dsr = deflate(daily, 0.0, after["n_effective"], after["sharpe_variance"])["dsr_excess"]
        assert dsr <= deflate(daily, 0.0, 3, floor)["dsr_excess"] + 0.01


def test_one_cluster_deflates_nothing_its_dsr_is_the_psr(tmp_path):
    book = TrialLedger(tmp_path / "t.jsonl")
    daily = _daily(4, 400, 0.001)
    book.record({"strategy": "a"}, daily)
    for k in range(3):
        book.record({"strategy": "a", "variant": k}, _near_copy(daily, 20 + k))
    summary = book.summary()
    assert summary["n_trials"] == 4 and summary["n_effective"] == 1
    assert summary["sharpe_variance_clusters"] == 0.0 < summary["sharpe_variance_trials"] == summary["sharpe_variance"]
    dsr = deflate(daily, 0.0, summary["n_effective"], summary["sharpe_variance"])["dsr_excess"]
    assert dsr == returns_statistics(daily, 0.0)["psr_excess"]


def test_bad_ledgers_are_refused(tmp_path):
    with pytest.raises(cs.ConfigError, match=".jsonl"):
        TrialLedger(tmp_path / "t.csv")
    book = TrialLedger(tmp_path / "t.jsonl")
    with pytest.raises(cs.ConfigError):
        book.record({}, _daily(0))
    with pytest.raises(cs.ConfigError):
        book.record({"a": 1}, [0.1, 0.2])
    (tmp_path / "t.jsonl").write_text("not json\n")
    with pytest.raises(cs.ConfigError, match="line 1"):
        book.entries()
    with pytest.raises(cs.ConfigError):
        default_ledger(42)


def test_default_ledger_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(LEDGER_ENV, raising=False)
    assert default_ledger() is None
    monkeypatch.setenv(LEDGER_ENV, str(tmp_path / "env.jsonl"))
    assert default_ledger().path == tmp_path / "env.jsonl"
