"""Walk-forward optimisation with an honest out-of-sample gate.

Each fold chooses parameters on its train window by ``objective`` and trades
them on the following test window. The out-of-sample (OOS) target series is the
concatenation of every fold's targets (each computed with enough past data for
its warm-up, never with future data) and is simulated once, so positions carry
across fold boundaries and every fee is paid. The gate then judges the OOS
Sharpe (daily, √365), the Deflated Sharpe Ratio over *all* trials of all folds,
and optionally PBO.

The OOS targets come from one continuous run per stretch of folds that chose the same
parameters (from the first bar of the data for strategies with ``continuous = True``, such as
the portfolio committee), so state carries across folds as in the live runner. With a quorum
``memory`` each fold (its train sweep and its test targets) sees only
``memory.view(as_of=test start)``, what was learned before its test window; PBO uses the first
fold's view. With a trial ``ledger`` the run is appended to it and the DSR deflates by the
ledger's effective number of trials (clusters of correlated trials) instead of this run's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coinswarm.backtest.defaults import GATE_DEFAULTS, describe_gate
from coinswarm.backtest.engine import (
    Result,
    _json_safe,
    as_price_dict,
    bar_length,
    day_end_mask,
    simulate,
)
from coinswarm.backtest.honest import (
    _apply_statistics,
    baseline_statistics,
    baselines_line,
    honest_statistics,
    ledger_and_sleeves_line,
    selection_variance,
    sleeve_statistics,
)
from coinswarm.backtest.ledger import default_ledger
from coinswarm.backtest.provenance import search_behind
from coinswarm.backtest.sweep import check_inputs, check_prices, check_warmup, sweep
from coinswarm.backtest.trials import daily_returns_matrix, window_metrics
from coinswarm.costs import Costs
from coinswarm.errors import ConfigError
from coinswarm.kernels.metrics import METRIC_NAMES
from coinswarm.params import as_duration
from coinswarm.stats import (
    deflated_sharpe_ratio,
    excess_returns,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_moments,
)
from coinswarm.strategies.base import Strategy, engine_limits, expand_grid, get_strategy, warmup_bars


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
        Probability of backtest overfitting (CSCV); not checked when None (or 1).
    min_trades : int
        Minimum OOS round trips (a gate on 2 trades says nothing).

    The defaults (:data:`coinswarm.backtest.defaults.GATE_DEFAULTS`: Sharpe ≥ 1.5, DSR ≥ 0.95,
    PBO ≤ 0.5, 10 trades) are those of ``coinswarm walkforward`` and ``coinswarm evidence``.
    """

    min_sharpe: float = GATE_DEFAULTS["min_sharpe"]
    min_dsr: float = GATE_DEFAULTS["min_dsr"]
    max_pbo: float | None = GATE_DEFAULTS["max_pbo"]
    min_trades: int = GATE_DEFAULTS["min_trades"]

    def __post_init__(self) -> None:
        def real(value) -> bool:
            return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating) \
                and math.isfinite(value)

        if not real(self.min_sharpe):
            raise ConfigError(f"Gate.min_sharpe must be a finite number, not {self.min_sharpe!r}")
        if not real(self.min_dsr) or not 0.0 <= self.min_dsr <= 1.0:
            raise ConfigError(f"Gate.min_dsr must be a probability in [0, 1], not {self.min_dsr!r}")
        if self.max_pbo is not None and (not real(self.max_pbo) or not 0.0 <= self.max_pbo <= 1.0):
            raise ConfigError(f"Gate.max_pbo must be None or a probability in [0, 1], not {self.max_pbo!r}")
        if not real(self.min_trades) or self.min_trades < 0 or float(self.min_trades) != int(self.min_trades):
            raise ConfigError(f"Gate.min_trades must be a whole number ≥ 0, not {self.min_trades!r}")

    def evaluate(self, sharpe: float, dsr: float, pbo: float, n_trades: float) -> list[str]:
        """Reasons the gate fails (empty list: passed)."""
        reasons = []
        if not (sharpe >= self.min_sharpe):
            reasons.append(f"OOS Sharpe {sharpe:.3f} < {self.min_sharpe}")
        if not (dsr >= self.min_dsr):
            reasons.append(f"DSR {dsr:.3f} < {self.min_dsr}")
        if self.max_pbo is not None and not math.isfinite(pbo):
            reasons.append("PBO undefined: one configuration and no trial ledger covering these days, so the "
                           "search behind it is unknown — pass ledger= (or $COINSWARM_TRIAL_LEDGER) to count it, "
                           "or Gate(max_pbo=None) to waive the check")
        elif self.max_pbo is not None and not (pbo <= self.max_pbo):
            reasons.append(f"PBO {pbo:.3f} > {self.max_pbo}")
        if not (n_trades >= self.min_trades):
            reasons.append(f"{int(n_trades)} OOS trades < {self.min_trades}")
        return reasons

    def __str__(self) -> str:
        return describe_gate(self.min_sharpe, self.min_dsr, self.max_pbo, self.min_trades)


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
    stats: dict = field(default_factory=dict)

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
            "stats": self.stats,
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

    def report(self, path: str | None = None, *, title: str | None = None) -> str:
        """The tearsheet of the out-of-sample run with the gate (PSR, DSR, PBO, trials) and the
        folds: one self-contained HTML page, written to ``path`` when given."""
        from coinswarm.backtest.tearsheet import tearsheet

        return tearsheet(self, path, title=title)

    def __repr__(self) -> str:
        return (f"<WalkForwardReport {self.strategy}: {len(self.folds)} folds, {self.n_trials} trials, "
                f"OOS Sharpe {self.oos_sharpe:.2f}, DSR {self.dsr:.3f}, PBO {self.pbo:.3f}, "
                f"{'passed' if self.passed else 'failed'}>")

    def _repr_html_(self) -> str:
        """A notebook's view: the gate and the folds (the full page: :meth:`report`)."""
        from coinswarm.backtest.tearsheet import folds_html, gate_html

        return gate_html(self) + folds_html(self)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED: " + "; ".join(self.reasons)
        return (f"walk-forward {self.strategy}: {len(self.folds)} folds, {self.n_trials} trials, "
                f"OOS Sharpe {self.oos_sharpe:.2f}, PSR {self.psr:.3f}, DSR {self.dsr:.3f}, "
                f"PBO {self.pbo:.3f} — {verdict}\n{self.oos}" + _stats_line(self.stats))


def _stats_line(stats: dict) -> str:
    if not stats:
        return ""
    return (f"\nexcess of {stats['cash_rate']:.1%} cash: Sharpe {stats['sharpe_excess']:.2f} "
            f"(Lo-adjusted {stats['sharpe_lo']:.2f}), PSR {stats['psr_excess']:.3f}, DSR {stats['dsr_excess']:.3f} "
            f"over {stats['n_trials']} trials ({stats['n_trials_effective']} effective, {stats['trials_source']}); "
            f"daily win rate {stats['daily_win_rate']:.0%}, turnover {stats['turnover']:.1f}×/yr, "
            + _cost_text(stats) + ledger_and_sleeves_line(stats) + baselines_line(stats))


def _cost_text(stats: dict) -> str:
    """Fees as a share of the gross PnL, or — when the gross is not a gain — what they were."""
    share = stats.get("cost_share", math.nan)
    if isinstance(share, float) and math.isfinite(share):
        return f"costs {share:.0%} of gross"
    fees, gross = stats.get("fees_paid", 0.0), stats.get("gross_pnl", math.nan)
    return f"fees {fees:,.2f} on a gross PnL of {gross:,.2f} (no gain)"


#: Most folds one walk-forward may have (a test window of one bar over years is refused).
MAX_FOLDS = 1_000


def _fold_windows(index, train, test, purge, embargo, anchored) -> list[tuple]:
    """(train start, train end, test start, test end) of every fold; each advances by ``test``."""
    t0, t_end = index[0], index[-1]
    bar = bar_length(index)
    windows = []
    start = t0 + train + embargo
    while start + bar <= t_end:
        stop = min(start + test, t_end + bar)
        train_start = t0 if anchored else start - embargo - train
        windows.append((train_start, start - embargo - purge, start, stop))
        if not start + test > start or len(windows) > MAX_FOLDS:  # never loop in place, never run away
            raise ConfigError(f"test={test} gives more than {MAX_FOLDS} folds on {len(index):,} bars; "
                              "use a longer test window")
        start = start + test
    return windows


def _windows(strategy, index, combos, train, test, purge, embargo, anchored) -> tuple[list, pd.Timedelta]:
    """Checked fold windows: positive lengths, no overlap of train and test, a full first fold."""
    bar = bar_length(index)
    train_td, test_td = as_duration(train, "train"), as_duration(test, "test")
    warmup = max(warmup_bars(strategy, p, int(bar / pd.Timedelta(milliseconds=1))) for p in combos)
    # a continuous strategy with one combination selects nothing on its train windows and runs its
    # OOS from the first bar: nothing can leak, so no purge
    selects = len(combos) > 1 or not getattr(strategy, "continuous", False)
    default_purge = bar * warmup if selects else pd.Timedelta(0)
    purge_td = default_purge if purge is None else as_duration(purge, "purge", allow_zero=True)
    embargo_td = pd.Timedelta(0) if embargo is None else as_duration(embargo, "embargo", allow_zero=True)
    if test_td < bar:
        raise ConfigError(f"test={test!r} is shorter than one bar ({bar})")
    if not isinstance(anchored, bool):
        raise ConfigError(f"anchored must be True or False, not {anchored!r}")
    train_bars = int((train_td - purge_td) / bar)
    if train_bars <= warmup:
        raise ConfigError(
            f"train={train!r} less purge {purge_td} leaves {max(train_bars, 0):,} bars, not more than the "
            f"warm-up of {warmup:,} bars ({strategy.name}); use a longer train window or a shorter grid"
        )
    span = index[-1] - index[0] + bar
    if train_td + embargo_td + test_td > span:
        raise ConfigError(
            f"the data has {len(index):,} bars ({index[0]} → {index[-1]}, {span}); one fold needs train "
            f"{train_td} + embargo {embargo_td} + test {test_td}"
        )
    windows = _fold_windows(index, train_td, test_td, purge_td, embargo_td, anchored)
    if not windows:
        raise ConfigError(f"data {index[0]} → {index[-1]} is too short for train {train} + test {test}")
    return windows, purge_td, embargo_td


def _slice(prices, lo, hi):
    """Bars with lo ≤ time < hi."""
    if isinstance(prices, dict):
        return {s: _slice(df, lo, hi) for s, df in prices.items()}
    out = prices.loc[(prices.index >= lo) & (prices.index < hi)]
    out.attrs = dict(prices.attrs)
    return out


def _choose(table: pd.DataFrame, objective: str, fields: tuple) -> tuple[dict, dict]:
    """The best row of a training sweep by ``objective`` (the smallest for a metric where
    smaller is better, such as ``max_drawdown``; see :data:`~coinswarm.backtest.units.LOWER_IS_BETTER`)."""
    from coinswarm.backtest.units import LOWER_IS_BETTER

    if objective not in METRIC_NAMES:
        raise ConfigError(f"objective '{objective}' is not a metric; use one of {', '.join(METRIC_NAMES)}")
    scores = table[objective].to_numpy(dtype=np.float64)
    best = np.nanargmin if objective in LOWER_IS_BETTER else np.nanargmax
    row = int(best(scores)) if np.isfinite(scores).any() else 0
    params = {f: table[f].iloc[row] for f in fields}
    params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
    keep = ("sharpe", "total_return", "max_drawdown", "n_trades")
    return params, {k: float(table[k].iloc[row]) for k in keep}


def walk_forward(strategy: str | Strategy, prices: pd.DataFrame | dict[str, pd.DataFrame], grid: dict | None = None,
                 *, train: str = "365D", test: str = "90D", anchored: bool = False, purge: str | None = None,
                 embargo: str | None = None, objective: str = "sharpe", gate: Gate | None = None,
                 costs: Costs | None = None, init_cash: float = 10_000.0, execution: str = "next_open",
                 client: Any = None, progress: bool = False, pbo_splits: int = 16, memory: Any = None,
                 cash_rate: float | None = None, ledger: Any = None) -> WalkForwardReport:
    """Rolling (or anchored) walk-forward with the out-of-sample gate.

    Parameters
    ----------
    strategy, prices, grid, costs, init_cash, execution, client, progress
        As in :func:`coinswarm.sweep` (``grid=None``: the default grid; ``for_universe`` applied).
    train, test : str or Timedelta
        Window lengths (``"365D"``; no bare numbers), > 0; the data must hold train + embargo + test.
    anchored : bool
        Train windows all start at the first bar (expanding), not rolling.
    purge : str, optional
        Time cut from each train window's end (≥ 0); default: the grid's largest warm-up (0 for one
        combination of a ``continuous`` strategy: nothing is selected).
    embargo : str, optional
        Time skipped between a train window's end and its test window's start (≥ 0).
    objective : str
        The metric (:data:`~coinswarm.kernels.metrics.METRIC_NAMES`) each train window maximises
        (minimises where smaller is better: ``max_drawdown``, ``ann_volatility``, …).
    gate : Gate
        Acceptance criteria (default ``Gate()``: OOS Sharpe ≥ 1.5, DSR ≥ 0.95, PBO ≤ 0.5, 10 trades).
    pbo_splits : int
        Row blocks for PBO's CSCV.
    memory : MemoryBook or Store, optional
        For strategies with ``targets_with_memory``: a fold sees ``memory.view(as_of=test start)``.
    cash_rate : float, optional
        Annual rate Sharpe, PSR and DSR measure daily excess returns over; default and minimum:
        ``costs.cash_rate``, the rate idle cash earns (interest is not an excess return).
    ledger : str, Path or TrialLedger, optional
        Trial ledger (default ``$COINSWARM_TRIAL_LEDGER``): the run is appended, the DSR deflates by it.

    Returns
    -------
    WalkForwardReport

    Raises
    ------
    ConfigError
        What :func:`coinswarm.sweep` refuses; a bad window, purge, embargo, objective, gate or cash
        rate; data too short. (:class:`DataError`: candles :func:`coinswarm.validate_ohlcv` refuses.)
    """
    strategy, costs, gate, book, combos, cash_rate = _prepare(strategy, prices, grid, costs, init_cash, execution,
                                                              gate, objective, pbo_splits, memory, cash_rate, ledger)
    single, index = _checked_prices(strategy, prices, combos)
    windows, purge_td, embargo_td = _windows(strategy, index, combos, train, test, purge, embargo, anchored)
    run = _FoldRunner(strategy, single, grid, objective, memory, bar_length(index),
                      dict(costs=costs, init_cash=init_cash, execution=execution, client=client, validate=False))
    folds, strategy, oos = _run_folds(run, windows, progress, index[0])
    settings = dict(train=train, test=test, anchored=anchored, purge=str(purge_td), embargo=str(embargo_td),
                    objective=objective, grid=_grid_repr(grid, strategy), cash_rate=cash_rate)
    report = _finish(strategy, folds, oos, run.n_trials, run.trial_sharpes, gate, single, combos, costs,
                     init_cash, execution, pbo_splits, settings)
    return _judged(report, run, strategy, single, combos, index[0], (costs, init_cash, execution), book, gate,
                   cash_rate)


def _judged(report, run, strategy, prices, combos, first_bar, engine: tuple, book, gate, cash_rate):
    """The report with its honest statistics (the trial count, the sleeves, the baselines) and the
    gate's verdict on them."""
    extra = honest_statistics(report, cash_rate, book, run.trial_sharpes, run.n_trials, len(combos),
                              search_behind(strategy, combos))
    extra["sleeves"] = sleeve_statistics(strategy, prices, report.folds, first_bar, report.oos, *engine)
    extra["baselines"] = baseline_statistics(strategy, prices, report.folds, first_bar, *engine, cash_rate)
    return _apply_statistics(report, extra, gate, cash_rate)


def _prepare(strategy, prices, grid, costs, init_cash, execution, gate, objective, pbo_splits, memory, cash_rate,
             ledger) -> tuple[Strategy, Costs, Gate, Any, list, float]:
    """The strategy (resolved for the universe), costs, gate, trial ledger, grid combinations and
    cash rate; every setting is checked here, in this order, before any work."""
    strategy = get_strategy(strategy)
    resolve = getattr(strategy, "for_universe", None)
    if callable(resolve):
        strategy = resolve(prices, costs)
    costs, gate = check_inputs(costs, init_cash, execution), Gate() if gate is None else gate
    cash_rate = costs.cash_rate if cash_rate is None else cash_rate
    excess_returns(np.zeros(1), cash_rate)  # refuses a bad cash rate before any work
    if cash_rate < costs.cash_rate:
        raise ConfigError(f"cash_rate {cash_rate!r} is below the {costs.cash_rate!r} idle cash earns "
                          "(Costs.cash_rate): interest would count as excess return; use a cash_rate ≥ it")
    book = default_ledger(ledger)
    _check_settings(strategy, gate, objective, pbo_splits, memory)
    return strategy, costs, gate, book, expand_grid(strategy, grid), cash_rate


def _checked_prices(strategy: Strategy, prices, combos: list) -> tuple[Any, pd.DatetimeIndex]:
    """Validated prices (one frame, or the aligned dict) and their index, long enough for every warm-up."""
    check_prices(prices)
    frames = as_price_dict(prices)
    single = next(iter(frames.values())) if len(frames) == 1 else frames
    index = next(iter(frames.values())).index
    check_warmup(strategy, combos, index)
    return single, index


def _run_folds(run: _FoldRunner, windows: list, progress: bool,
              first_bar: pd.Timestamp) -> tuple[list[dict], Strategy, Result]:
    """Every fold chosen on its train window, then the test-window targets simulated once (positions
    carry across folds), each fold with its ``oos`` metrics. Returns the folds, the strategy as the
    first test window sees it, and the out-of-sample result."""
    folds = [run.fold(*window) for window in _with_progress(windows, run.strategy, progress)]
    pieces = run.oos_pieces(folds, first_bar)
    strategy = _with_memory(run.strategy, run.memory, windows[0][2])
    max_leverage, allow_short = engine_limits(strategy)
    engine = {k: run.sweep_kwargs[k] for k in ("costs", "init_cash", "execution")}
    oos = simulate(_slice(run.prices, windows[0][2], windows[-1][3]), pd.concat(pieces), **engine,
                   max_leverage=max_leverage, allow_short=allow_short)
    for fold in folds:
        fold["oos"] = window_metrics(oos, fold["test_start"], fold["test_end"])
    return folds, strategy, oos


def _check_settings(strategy: Strategy, gate, objective, pbo_splits, memory) -> None:
    """Refuse a bad gate, objective, PBO split count or memory before any work."""
    if not isinstance(gate, Gate):
        raise ConfigError(f"gate must be a coinswarm.Gate, not {gate!r:.60}")
    if not isinstance(objective, str) or objective not in METRIC_NAMES:
        raise ConfigError(f"objective {objective!r:.60} is not a metric; use one of {list(METRIC_NAMES)}")
    if isinstance(pbo_splits, bool) or not isinstance(pbo_splits, int) or not 2 <= pbo_splits <= 64 \
            or pbo_splits % 2:
        raise ConfigError(f"pbo_splits must be an even whole number in [2, 64], not {pbo_splits!r}")
    if memory is not None and not hasattr(strategy, "targets_with_memory"):
        raise ConfigError(f"{strategy.name} does not use memory (it has no targets_with_memory)")
    if memory is not None and not callable(getattr(memory, "view", None)):
        raise ConfigError(f"memory must be a MemoryBook or Store (with .view(as_of=…)), not {memory!r:.60}")


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
        return {"train_start": train_lo, "train_end": train_hi, "test_start": test_lo, "test_end": test_hi,
                "params": params, "in_sample": in_sample}

    def oos_pieces(self, folds: list[dict], first_bar: pd.Timestamp) -> list:
        """Each fold's test-window targets, from one continuous run per stretch of folds with the
        same parameters (per fold with memory, whose view changes at every fold)."""
        pieces, i = [], 0
        while i < len(folds):
            j = i
            while self.memory is None and j + 1 < len(folds) and folds[j + 1]["params"] == folds[i]["params"]:
                j += 1
            strategy = _with_memory(self.strategy, self.memory, folds[i]["test_start"])
            chosen = strategy.Params(**folds[i]["params"])
            warmup = warmup_bars(strategy, chosen, self.bar // pd.Timedelta(milliseconds=1))
            lo = folds[i]["test_start"] - self.bar * (warmup + 1)
            if getattr(self.strategy, "continuous", False):
                lo = first_bar
            targets = strategy.targets(_slice(self.prices, lo, folds[j]["test_end"]), chosen)
            if getattr(self.strategy, "continuous", False):
                targets = carry_in(targets, folds[i]["test_start"])
            for fold in folds[i:j + 1]:
                inside = (targets.index >= fold["test_start"]) & (targets.index < fold["test_end"])
                pieces.append(targets.loc[inside])
            i = j + 1
        return pieces


def carry_in(targets, start: pd.Timestamp):
    """Orders of a continuous run with the weights it holds at ``start`` re-ordered there.

    A run that started before ``start`` already holds what it last ordered; the simulation of
    the window from ``start`` begins in cash, so the first bar at or after ``start`` gets, for
    every symbol without an order there, the last order before it (as the live runner would hold).
    """
    before = targets.loc[targets.index < start]
    inside = np.flatnonzero(targets.index >= start)
    if before.empty or not inside.size:
        return targets
    held = before.ffill().iloc[-1]
    out = targets.copy()
    row = out.iloc[inside[0]]
    out.iloc[inside[0]] = row.where(row.notna(), held) if isinstance(out, pd.DataFrame) else \
        (held if pd.isna(row) else row)
    return out


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

    @property
    def warmup_days(self):
        return getattr(self.strategy, "warmup_days", None)

    def is_valid(self, params):
        return self.strategy.is_valid(params)


def _with_memory(strategy: Strategy, memory, as_of: pd.Timestamp) -> Strategy:
    if memory is None:
        return strategy
    if not hasattr(strategy, "targets_with_memory"):
        raise ConfigError(f"{strategy.name} does not use memory (it has no targets_with_memory)")
    as_of_ms = int(pd.Timestamp(as_of).value // 1_000_000)  # .value is ns whatever the unit
    return _MemoryBound(strategy, memory.view(as_of=as_of_ms))


def _grid_repr(grid, strategy: Strategy):
    if grid is None:
        grid = getattr(strategy, "default_grid", None) or {}
    return {k: [v.item() if hasattr(v, "item") else v for v in
                (vals if isinstance(vals, Iterable) and not isinstance(vals, str) else [vals])]
            for k, vals in grid.items()}


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
