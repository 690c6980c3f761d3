"""Pattern statistics per (regime, signal bucket), updated in O(1) per trade.

A pattern is what memory knows about trading one signal bucket in one regime: sample
size, mean and standard deviation of PnL (Welford), Sharpe, win rate, 5 %/95 % tails
(P² estimators), mean slippage, an ``enabled`` flag and the time of its last update.
Statistics change through ``update_pattern`` proposals; ``enabled`` only through
``promote_pattern`` / ``deprecate_pattern`` decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from coinswarm.kernels.steps import P2_SIZE, p2_push_py, p2_value_py


def pattern_key(regime: str, bucket: str) -> str:
    """``"high-vol/up|trend>0.5"``-style key."""
    return f"{regime}|{bucket}"


@dataclass
class PatternStats:
    """Running statistics of one pattern (all O(1) to update)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    wins: int = 0
    slippage_sum: float = 0.0
    last_update: int = 0
    enabled: bool = False
    tails: np.ndarray = field(default_factory=lambda: np.zeros(2 * P2_SIZE))

    def add(self, pnl: float, slippage_bps: float, time_ms: int) -> None:
        """One closed trade's PnL (fraction) and slippage, at ``time_ms`` (data time)."""
        self.n += 1
        delta = pnl - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (pnl - self.mean)
        self.wins += pnl > 0
        self.slippage_sum += slippage_bps
        self.last_update = max(self.last_update, int(time_ms))
        p2_push_py(self.tails, 0, 0.05, pnl)
        p2_push_py(self.tails, P2_SIZE, 0.95, pnl)

    @property
    def std(self) -> float:
        """Sample standard deviation (0 below two trades)."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def sharpe(self, periods_per_year: float) -> float:
        """Annualised Sharpe of per-trade PnL given trades per year."""
        return self.mean / self.std * math.sqrt(periods_per_year) if self.std > 0 else 0.0

    def summary(self) -> dict:
        """The ``stats`` object of an ``update_pattern`` proposal."""
        p05, p95 = p2_value_py(self.tails, 0), p2_value_py(self.tails, P2_SIZE)
        return {"n": self.n, "mean": self.mean, "std": self.std, "win_rate": self.wins / self.n if self.n else 0.0,
                "p05": p05 if math.isfinite(p05) else self.mean, "p95": p95 if math.isfinite(p95) else self.mean,
                "mean_slippage_bps": self.slippage_sum / self.n if self.n else 0.0, "last_update": self.last_update}
