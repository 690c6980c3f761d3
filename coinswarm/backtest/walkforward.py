"""Walk-forward optimisation with an honest out-of-sample gate.

Each fold chooses parameters on its train window by ``objective`` and trades
them on the following test window. The out-of-sample (OOS) target series is the
concatenation of every fold's targets (each computed with enough past data for
its warm-up, never with future data) and is simulated once, so positions carry
across fold boundaries and every fee is paid. The gate then judges the OOS
Sharpe (daily, √365), the Deflated Sharpe Ratio over *all* trials of all folds,
and optionally PBO.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coinswarm.backtest.engine import (
    Result,
    _json_safe,
    as_price_dict,
    bar_length,
    day_end_mask,
    simulate,
)
from coinswarm.backtest.sweep import sweep
from coinswarm.backtest.trials import daily_returns_matrix, window_metrics
from coinswarm.costs import Costs
from coinswarm.errors import ConfigError
from coinswarm.stats import (
    deflated_sharpe_ratio,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_moments,
)
from coinswarm.strategies.base import Strategy, engine_limits, expand_grid, get_strategy


@dataclass(frozen=True)
class Gate:
    """Out-of-sample acceptance criteria (all must hold).

    Parameters
    ----------
    min_sharpe : float
        OOS Sharpe (daily returns, √365), after fees and slippage.
    min_dsr : float
        Deflated Sharpe Ratio over every trial of every fold.
    max_pbo : float, optional
        Probability of backtest overfitting (CSCV); not checked when None.
    min_trades : int
        Minimum OOS round trips (a gate on 2 trades says nothing).
    """

    min_sharpe: float = 1.5
    min_dsr: float = 0.95
    max_pbo: float | None = None
    min_trades: int = 10

    def evaluate(self, sharpe: float, dsr: float, pbo: float, n_trades: float) -> list[str]:
        """Reasons the gate fails (empty list: passed)."""
        reasons = []
        if not (sharpe >= self.min_sharpe):
            reasons.append(f"OOS Sharpe {sharpe:.3f} < {self.min_sharpe}")
        if not (dsr >= self.min_dsr):
            reasons.append(f"DSR {dsr:.3f} < {self.min_dsr}")
        if self.max_pbo is not None and not (pbo <= self.max_pbo):
            reasons.append(f"PBO {pbo:.3f} > {self.max_pbo}")
        if not (n_trades >= self.min_trades):
            reasons.append(f"{int(n_trades)} OOS trades < {self.min_trades}")
        return reasons


@dataclass
class WalkForwardReport:
    """Everything a walk-forward found; ``to_json()`` for machines, ``plot()`` for people."""

    strategy: str
    folds: list[dict]
    oos: Result
    n_trials: int
    psr: float
    dsr: float
    pbo: float
    passed: bool
    reasons: list[str]
    gate: Gate
    settings: dict = field(default_factory=dict)

    @property
    def oos_equity(self) -> pd.Series:
        """Stitched out-of-sample equity."""
        return self.oos.equity

    @property
    def oos_metrics(self) -> dict:
        """Metrics of the stitched out-of-sample run."""
        return self.oos.metrics

    @property
    def oos_sharpe(self) -> float:
        """OOS Sharpe (daily, √365)."""
        return self.oos.metrics["sharpe"]

    def to_dict(self) -> dict:
        """JSON-safe dictionary of the report."""
        return _json_safe({
            "strategy": self.strategy,
            "oos_sharpe": self.oos_sharpe,
            "psr": self.psr,
            "dsr": self.dsr,
            "pbo": self.pbo,
            "n_trials": self.n_trials,
            "passed": self.passed,
            "reasons": self.reasons,
            "gate": self.gate.__dict__,
            "oos_metrics": self.oos_metrics,
            "assumptions": self.oos.assumptions,
            "settings": self.settings,
            "folds": self.folds,
        })

    def to_json(self, path: str | None = None) -> str:
        """The report as JSON (written to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path:
            with open(path, "w") as fh:
                fh.write(text + "\n")
        return text

    def plot(self, path: str | None = None):
        """OOS equity, drawdown and positions with the test windows shaded."""
        from coinswarm.backtest.plots import plot_walk_forward

        return plot_walk_forward(self, path)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED: " + "; ".join(self.reasons)
        return (f"walk-forward {self.strategy}: {len(self.folds)} folds, {self.n_trials} trials, "
                f"OOS Sharpe {self.oos_sharpe:.2f}, PSR {self.psr:.3f}, DSR {self.dsr:.3f}, "
                f"PBO {self.pbo:.3f} — {verdict}\n{self.oos}")


def _fold_windows(index, train, test, purge, embargo, anchored) -> list[tuple]:
    t0, t_end = index[0], index[-1]
    bar = bar_length(index)
    windows = []
    start = t0 + train + embargo
    while start + bar <= t_end:
        stop = min(start + test, t_end + bar)
        train_start = t0 if anchored else start - embargo - train
        windows.append((train_start, start - embargo - purge, start, stop))
        start = start + test
    return windows


def _slice(prices, lo, hi):
    """Bars with lo ≤ time < hi."""
    if isinstance(prices, dict):
        return {s: _slice(df, lo, hi) for s, df in prices.items()}
    out = prices.loc[(prices.index >= lo) & (prices.index < hi)]
    out.attrs = dict(prices.attrs)
    return out


def _choose(table: pd.DataFrame, objective: str, fields: tuple) -> tuple[dict, dict]:
    if objective not in table.columns:
        raise ConfigError(f"objective '{objective}' is not a metric; use one of {list(table.columns)}")
    scores = table[objective].to_numpy(dtype=np.float64)
    row = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
    params = {f: table[f].iloc[row] for f in fields}
    params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
    keep = ("sharpe", "total_return", "max_drawdown", "n_trades")
    return params, {k: float(table[k].iloc[row]) for k in keep}


def walk_forward(
    strategy: str | Strategy,
    prices: pd.DataFrame | dict[str, pd.DataFrame],
    grid: dict | None = None,
    *,
    train: str = "365D",
    test: str = "90D",
    anchored: bool = False,
    purge: str | None = None,
    embargo: str | None = None,
    objective: str = "sharpe",
    gate: Gate | None = None,
    costs: Costs | None = None,
    init_cash: float = 10_000.0,
    execution: str = "next_open",
    client: Any = None,
    progress: bool = False,
    pbo_splits: int = 16,
    memory: Any = None,
) -> WalkForwardReport:
    """Rolling (or anchored) walk-forward with the out-of-sample gate.

    Parameters
    ----------
    strategy, prices, grid
        As in :func:`coinswarm.sweep`.
    train, test : str
        Window lengths (pandas offsets such as ``"365D"``, ``"90D"``).
    anchored : bool
        Train windows all start at the first bar (expanding) instead of rolling.
    purge : str, optional
        Time cut from the end of each train window; defaults to the largest warm-up
        of the grid (so train-window indicators never overlap the test window).
    embargo : str, optional
        Time skipped between the train window's end and the test window's start.
    objective : str
        Metric maximised on each train window (any sweep column; default Sharpe).
    gate : Gate
        Acceptance criteria (default: OOS Sharpe ≥ 1.5 and DSR ≥ 0.95).
    costs, init_cash, execution, client, progress
        As in :func:`coinswarm.sweep`.
    pbo_splits : int
        Row blocks for PBO's CSCV.
    memory : MemoryBook or Store, optional
        Quorum-governed memory for strategies with ``targets_with_memory``. Each fold (its
        train sweep and its test targets) sees ``memory.view(as_of=test start)`` — only what
        was learned from data before its test window; PBO uses the first fold's view.

    Returns
    -------
    WalkForwardReport
    """
    strategy = get_strategy(strategy)
    costs, gate = costs or Costs(), gate or Gate()
    frames = as_price_dict(prices)
    single = next(iter(frames.values())) if len(frames) == 1 else frames
    index = next(iter(frames.values())).index
    combos = expand_grid(strategy, grid or {})
    bar = bar_length(index)
    purge_td = pd.Timedelta(purge) if purge else bar * max(strategy.warmup(p) for p in combos)
    embargo_td = pd.Timedelta(embargo) if embargo else pd.Timedelta(0)
    windows = _fold_windows(index, pd.Timedelta(train), pd.Timedelta(test), purge_td, embargo_td, anchored)
    if not windows:
        raise ConfigError(f"data {index[0]} → {index[-1]} is too short for train {train} + test {test}")
    run = _FoldRunner(strategy, single, grid, objective, memory, bar,
                      dict(costs=costs, init_cash=init_cash, execution=execution, client=client))
    folds, pieces = zip(*(run.fold(*window) for window in _with_progress(windows, strategy, progress)), strict=True)
    folds, n_trials, trial_sharpes = list(folds), run.n_trials, run.trial_sharpes
    strategy = _with_memory(strategy, memory, windows[0][2])
    max_leverage, allow_short = engine_limits(strategy)
    oos = simulate(_slice(single, windows[0][2], windows[-1][3]), pd.concat(pieces), costs=costs,
                   init_cash=init_cash, execution=execution, max_leverage=max_leverage, allow_short=allow_short)
    for fold in folds:
        fold["oos"] = window_metrics(oos, fold["test_start"], fold["test_end"])
    return _finish(strategy, folds, oos, n_trials, trial_sharpes, gate, single, combos, costs,
                   init_cash, execution, pbo_splits,
                   dict(train=train, test=test, anchored=anchored, purge=str(purge_td),
                        embargo=str(embargo_td), objective=objective, grid=_grid_repr(grid)))


def _with_progress(windows: list, strategy: Strategy, progress: bool):
    """``windows``, behind a tqdm progress bar when asked."""
    if not progress:
        return windows
    from tqdm.auto import tqdm

    return tqdm(windows, desc=f"walk-forward {strategy.name}", unit="fold")


class _FoldRunner:
    """Optimise on one train window, build the test window's targets from past data only."""

    def __init__(self, strategy, prices, grid, objective, memory, bar, sweep_kwargs) -> None:
        self.strategy, self.prices, self.grid, self.objective = strategy, prices, grid, objective
        self.memory, self.bar, self.sweep_kwargs = memory, bar, sweep_kwargs
        self.n_trials, self.trial_sharpes = 0, []

    def fold(self, train_lo, train_hi, test_lo, test_hi) -> tuple[dict, pd.Series | pd.DataFrame]:
        strategy = _with_memory(self.strategy, self.memory, test_lo)
        table = sweep(strategy, _slice(self.prices, train_lo, train_hi), self.grid, **self.sweep_kwargs)
        self.n_trials += len(table)
        self.trial_sharpes.append(table["sharpe"].to_numpy(dtype=np.float64))
        params, in_sample = _choose(table, self.objective, strategy.Params._fields)
        chosen = strategy.Params(**params)
        history_lo = test_lo - self.bar * (strategy.warmup(chosen) + 1)
        targets = strategy.targets(_slice(self.prices, history_lo, test_hi), chosen)
        piece = targets.loc[(targets.index >= test_lo) & (targets.index < test_hi)]
        return {"train_start": train_lo, "train_end": train_hi, "test_start": test_lo, "test_end": test_hi,
                "params": params, "in_sample": in_sample}, piece


class _MemoryBound:
    """A memory-aware strategy frozen to one memory view (what one fold may know)."""

    def __init__(self, strategy: Strategy, view) -> None:
        self.strategy, self.view = strategy, view
        self.name, self.Params = strategy.name, strategy.Params
        self.allow_short = getattr(strategy, "allow_short", False)
        self.max_leverage = getattr(strategy, "max_leverage", 1.0)

    def targets(self, prices, params):
        return self.strategy.targets_with_memory(prices, params, self.view)

    def warmup(self, params):
        return self.strategy.warmup(params)

    def is_valid(self, params):
        return self.strategy.is_valid(params)


def _with_memory(strategy: Strategy, memory, as_of: pd.Timestamp) -> Strategy:
    if memory is None:
        return strategy
    if not hasattr(strategy, "targets_with_memory"):
        raise ConfigError(f"{strategy.name} does not use memory (it has no targets_with_memory)")
    as_of_ms = int(pd.Timestamp(as_of).value // 1_000_000)  # .value is ns whatever the unit
    return _MemoryBound(strategy, memory.view(as_of=as_of_ms))


def _grid_repr(grid):
    return {k: [v.item() if hasattr(v, "item") else v for v in vals] for k, vals in
            (grid or {}).items()}


def selection_variance(fold_sharpes: list[np.ndarray]) -> float:
    """Variance of the trials' daily Sharpe ratios *within* folds, pooled over folds.

    This is the spread the selection step exploits. Differences between folds (one year
    simply being better than another for every combination) are not selection noise and
    would over-deflate; with a single fold it is the plain trial variance.
    """
    squares, dof = 0.0, 0
    for sharpes in fold_sharpes:
        per_day = sharpes[np.isfinite(sharpes)] / math.sqrt(365.0)
        if len(per_day) > 1:
            squares += float(((per_day - per_day.mean()) ** 2).sum())
            dof += len(per_day) - 1
    return squares / dof if dof else 0.0


def _finish(strategy, folds, oos, n_trials, trial_sharpes, gate, prices, combos, costs,
            init_cash, execution, pbo_splits, settings) -> WalkForwardReport:
    daily = oos.equity[day_end_mask(oos.equity.index)]
    returns = np.diff(np.concatenate([[oos.assumptions["init_cash"]], daily.to_numpy()]))
    returns = returns / np.concatenate([[oos.assumptions["init_cash"]], daily.to_numpy()[:-1]])
    sharpe_d, skew, kurt, n = sample_moments(returns)
    variance = selection_variance(trial_sharpes)
    psr = probabilistic_sharpe_ratio(sharpe_d, n, skew, kurt)
    dsr = deflated_sharpe_ratio(sharpe_d, n, max(n_trials, 1), variance, skew, kurt)
    matrix = daily_returns_matrix(strategy, prices, combos, costs=costs, init_cash=init_cash,
                                  execution=execution)
    pbo = probability_of_backtest_overfitting(matrix, n_splits=pbo_splits)
    reasons = gate.evaluate(oos.metrics["sharpe"], dsr, pbo, oos.metrics["n_trades"])
    return WalkForwardReport(
        strategy=strategy.name, folds=folds, oos=oos, n_trials=n_trials, psr=psr, dsr=dsr,
        pbo=pbo, passed=not reasons, reasons=reasons, gate=gate, settings=settings,
    )
