"""Deterministic proposals of every kind, half of them violating some rule (synthetic by nature)."""

from __future__ import annotations

import numpy as np

from coinswarm.quorum import Proposal

NOW = 1_735_689_600_000  # 2025-01-01, the tests' injected clock


def make_proposal(i: int, rng: np.random.Generator, now: int = NOW) -> Proposal:
    kind = ("add_episode", "update_pattern", "promote_pattern", "deprecate_pattern", "planner_weights")[i % 5]
    good = rng.random() < 0.5
    data, justification = {}, {}
    if kind == "add_episode":
        data = {"embedding": [float(x) for x in rng.normal(size=384 if good else 383)], "action": "buy",
                "outcome": 0.01}
    elif kind == "update_pattern":
        data = {"key": "normal-vol/up|trend", "stats": {"n": 150, "mean": 0.002, "std": 0.01, "win_rate": 0.56,
                                                          "p05": -0.01, "p95": 0.02,
                                                          "mean_slippage_bps": 3.0 if good else 40.0}}
    elif kind == "promote_pattern":
        data = {"key": "normal-vol/up|trend"}
        justification = {"n": 400 if good else 60, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0,
                         "kurtosis": 3.0, "periods_per_year": 365.0, "fold_sharpes": [1.1, 2.0, 0.7, 1.4]}
    elif kind == "deprecate_pattern":
        data = {"key": "high-vol/down|trend"}
        justification = {"recent_sharpe": -0.5 if good else 0.8}
    else:
        w = 1.0 / 3.0
        data = {"weights": {"trend": w, "mean_reversion": w, "arbitrage": w + (0.0 if good else 1e-6)},
                "limits": {"max_position": 1.0, "max_daily_loss": 0.05}}
    return Proposal(id=f"p{i:06d}", kind=kind, submitter="agent", timestamp=now - 1000, data_time=now - 3_600_000,
                    data=data, justification=justification)


def seeded_patterns() -> dict:
    return {"normal-vol/up|trend": {"enabled": False}, "high-vol/down|trend": {"enabled": True}}
