"""Pattern statistics (``coinswarm.quorum.PatternStats``): Welford mean/std, win rate, P² tails
and slippage agree with numpy on the same trades, in O(1) per trade."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinswarm.quorum import PatternStats, pattern_key


def test_pattern_key_joins_regime_and_bucket():
    assert pattern_key("high-vol/up", "trend>0.5") == "high-vol/up|trend>0.5"


def test_statistics_match_numpy_on_the_same_trades():
    rng = np.random.default_rng(7)
    pnl = rng.normal(0.002, 0.01, 2000)
    slip = rng.uniform(0.0, 4.0, 2000)
    stats = PatternStats()
    for i, (p, s) in enumerate(zip(pnl, slip, strict=True)):
        stats.add(float(p), float(s), time_ms=1_000 * (2000 - i))  # out of order: last_update is the max
    out = stats.summary()
    assert out["n"] == 2000 and out["last_update"] == 2_000_000
    assert out["mean"] == pytest.approx(pnl.mean(), rel=1e-12)
    assert out["std"] == pytest.approx(pnl.std(ddof=1), rel=1e-10)
    assert out["win_rate"] == pytest.approx((pnl > 0).mean())
    assert out["mean_slippage_bps"] == pytest.approx(slip.mean(), rel=1e-12)
    assert out["p05"] == pytest.approx(np.quantile(pnl, 0.05), abs=0.002)
    assert out["p95"] == pytest.approx(np.quantile(pnl, 0.95), abs=0.002)
    assert out["p05"] < out["mean"] < out["p95"]
    assert stats.sharpe(252) == pytest.approx(pnl.mean() / pnl.std(ddof=1) * math.sqrt(252), rel=1e-10)


def test_few_trades_give_zero_spread_and_fall_back_to_the_mean_for_tails():
    empty = PatternStats().summary()
    assert empty["n"] == 0 and empty["win_rate"] == 0.0 and empty["mean_slippage_bps"] == 0.0
    stats = PatternStats()
    stats.add(0.01, 1.0, 5)
    assert stats.std == 0.0 and stats.sharpe(252) == 0.0, "one trade: no spread, no Sharpe"
    out = stats.summary()
    assert out["p05"] == out["p95"] == out["mean"] == 0.01, "no P² estimate before five trades"
    stats.add(0.01, 1.0, 6)
    assert stats.std == 0.0 and stats.sharpe(252) == 0.0, "identical trades: zero std, Sharpe 0 not inf"
    assert not stats.enabled, "statistics never enable a pattern by themselves"
