"""Memory inside backtests: a fold sees only memory committed from data before its test
window, so a pattern learned from later data cannot change an earlier fold's result."""

import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.quorum import LocalQuorum, Proposal, QuorumConfig, derive_keys
from coinswarm.strategies.gated import trend_key

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"wf-memory", MANAGERS)


def ms(ts: str) -> int:
    return int(pd.Timestamp(ts, tz="UTC").value // 1_000_000)


def learn(quorum: LocalQuorum, cell: int, data_time: str) -> None:
    """Commit stats for a cell's trend pattern, then promote it (both through the quorum)."""
    key, now = trend_key(cell), ms(data_time) + 1
    stats = {"n": 300, "mean": 0.003, "std": 0.01, "win_rate": 0.58, "p05": -0.01, "p95": 0.02,
             "mean_slippage_bps": 2.0}
    proof = {"n": 300, "sharpe": 2.5, "max_drawdown": 0.05, "skew": 0.0, "kurtosis": 3.0, "periods_per_year": 365.0,
             "fold_sharpes": [1.5, 2.0, 2.2, 1.1]}
    for kind, data, justification in (("update_pattern", {"key": key, "stats": stats}, {}),
                                      ("promote_pattern", {"key": key}, proof)):
        p = Proposal(f"{kind}-{cell}-{data_time}", kind, "research", now, ms(data_time), data, justification)
        assert quorum.submit(p, now).status == "committed"


def same(x: dict, y: dict) -> bool:
    """Equal metric dicts, NaN equal to NaN."""
    return pd.Series(x, dtype=float).equals(pd.Series(y, dtype=float))


@pytest.fixture(scope="module")
def btc(btc_1h):
    return btc_1h.loc["2021":"2023"]


def test_later_memory_cannot_change_earlier_folds(btc):
    early = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    learn(early, 4, "2021-09-01")          # normal-vol/range learned from 2021 data
    both = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    learn(both, 4, "2021-09-01")
    learn(both, 5, "2022-12-01")           # normal-vol/up learned from December 2022 data
    learn(both, 2, "2022-12-01")
    args = dict(grid={"fast": [24]}, train="180D", test="90D")
    a = cs.walk_forward("gated_trend", btc, memory=early.memory, **args)
    b = cs.walk_forward("gated_trend", btc, memory=both.memory, **args)
    cutoff = pd.Timestamp("2022-12-01", tz="UTC")
    before = [k for k, f in enumerate(a.folds) if f["test_start"] <= cutoff]
    after = [k for k, f in enumerate(a.folds) if f["test_start"] > cutoff]
    assert before and after
    for k in before:
        assert same(a.folds[k]["oos"], b.folds[k]["oos"]), f"fold {k} changed by memory learned later"
    assert any(a.folds[k]["oos"]["n_fills"] > 0 for k in before), "early folds should trade"
    first_after = a.folds[after[0]]["test_start"]
    pd.testing.assert_series_equal(a.oos.equity[:first_after], b.oos.equity[:first_after])
    assert any(not same(a.folds[k]["oos"], b.folds[k]["oos"]) for k in after), "later memory should matter later"


def test_memory_needs_a_memory_aware_strategy(btc):
    with pytest.raises(cs.ConfigError, match="does not use memory"):
        cs.walk_forward("trend", btc, None, memory=LocalQuorum(QuorumConfig(MANAGERS), KEYS).memory)
