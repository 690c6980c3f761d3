"""The trial ledger: append, de-duplicate by configuration, summarize, refuse nonsense."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.ledger import LEDGER_ENV, TrialLedger, default_ledger, trial_id


def _daily(seed, n=200):
    index = pd.date_range("2023-01-01", periods=n, freq="D", tz="UTC")
    return pd.Series(np.random.default_rng(seed).normal(0, 0.01, n), index=index)


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
    assert first == trial_id({"x": 1, "strategy": "a"})
    assert list(book.returns_matrix().columns)[0] == first


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
