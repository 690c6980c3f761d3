"""Honest statistics of a walk-forward: excess-of-cash Sharpe, Lo's correction, PSR and DSR over the
trial ledger, PBO over the ledger's trials, win rate, turnover, cost share and sleeve correlation.

:func:`coinswarm.walk_forward` adds these to its report (``report.stats``); they are computed on
the out-of-sample **daily** returns (equity at each UTC day's last bar) of the one continuous
out-of-sample run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from coinswarm.backtest.engine import day_end_mask, simulate
from coinswarm.backtest.ledger import TrialLedger
from coinswarm.backtest.provenance import DEFAULT_SEARCH, Search
from coinswarm.stats import (
    annualized_sharpe,
    autocorrelations,
    deflated_sharpe_ratio,
    excess_returns,
    lo_adjusted_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_moments,
)
from coinswarm.strategies.base import engine_limits


def daily_equity_returns(equity: pd.Series, init_cash: float) -> pd.Series:
    """Daily simple returns from the equity at each UTC day's last bar (first day vs ``init_cash``)."""
    daily = equity[day_end_mask(equity.index)]
    values = daily.to_numpy(dtype=np.float64)
    before = np.concatenate([[init_cash], values[:-1]])
    out = pd.Series(values / before - 1.0, index=daily.index.normalize())
    return out


def ledger_config(report) -> dict:
    """What identifies a walk-forward as a trial: strategy, parameters, universe, window, costs."""
    a = report.oos.assumptions
    params = []
    for fold in report.folds:
        if fold["params"] not in params:
            params.append(fold["params"])
    return {"strategy": report.strategy, "params": params,
            "universe": list(a.get("symbols", [])), "oos_start": str(a.get("start")), "oos_end": str(a.get("end")),
            "fee_bps": a.get("fee_bps"), "slippage_bps": a.get("slippage_bps"), "execution": a.get("execution"),
            "settings": report.settings, **financing_config(a)}


def financing_config(assumptions: dict) -> dict:
    """The financing rates of a run's costs, when set (a run without them keeps its old trial id)."""
    if "cash_rate" not in assumptions:
        return {}
    return {"financing": {"cash_rate": assumptions["cash_rate"], "borrow_rate": assumptions["borrow_rate"]}}


def honest_statistics(report, cash_rate: float, book: TrialLedger | None, trial_sharpes: list,
                      n_fold_trials: int, n_configs: int, search: Search | None = None) -> dict:
    """Every figure of the honest gate report (see the module docstring).

    Without a ledger the trial count is the recorded ``search`` behind a frozen default
    (:mod:`coinswarm.backtest.provenance`), else this run's fold evaluations with its distinct
    configurations as the effective count (folds re-evaluate the same grid: they are not new trials)."""
    daily = daily_equity_returns(report.oos.equity, report.oos.assumptions["init_cash"])
    out = returns_statistics(daily, cash_rate)
    n_trials, n_eff, variance, source, pbo = n_fold_trials, n_configs, selection_variance(trial_sharpes), \
        "this walk-forward's grid", math.nan
    if book is None and search is not None:
        n_trials, n_eff, source, pbo = search.n_trials, search.n_effective, search.describe(), search.pbo
        variance = max(variance, search.sharpe_variance)
        out["in_sample_for_search"] = bool(len(daily)) and search.overlaps(daily.index[0])
    if book is not None:
        book.record(ledger_config(report), daily, source="walk_forward")
        summary = book.summary()
        n_trials, n_eff, source = summary["n_trials"], max(summary["n_effective"], 1), str(book.path)
        # V[SR]: the grid's within-fold spread (the selection this run made, whose grid points are not
        # ledger trials) or the ledger's V[SR] (TrialLedger.summary), whichever deflates more
        variance = max(variance, summary["sharpe_variance"])
        pbo = ledger_pbo(book, daily.index)
    out.update({"n_trials": int(n_trials), "trials_source": source, "pbo_ledger": pbo})
    out.update(deflate(daily, cash_rate, n_eff, variance))
    out.update(_trading_costs(report.oos))
    return out


def returns_statistics(daily: pd.Series, cash_rate: float) -> dict:
    """Excess-of-cash Sharpe, Lo-adjusted Sharpe, lag-1 autocorrelation, PSR and daily win rate."""
    excess = excess_returns(daily.to_numpy(), cash_rate)
    sharpe_d, skew, kurt, n = sample_moments(excess)
    return {"cash_rate": cash_rate, "days": int(n), "sharpe_excess": annualized_sharpe(excess),
            "sharpe_lo": lo_adjusted_sharpe(excess), "autocorrelation_1": float(autocorrelations(excess, 1)[0]),
            "psr_excess": probabilistic_sharpe_ratio(sharpe_d, n, skew, kurt),
            "daily_win_rate": float(np.mean(daily.to_numpy() > 0)) if len(daily) else math.nan}


def deflate(daily: pd.Series, cash_rate: float, n_effective: int, sharpe_variance: float) -> dict:
    """The DSR of ``daily``'s excess returns against ``n_effective`` trials with that Sharpe variance."""
    sharpe_d, skew, kurt, n = sample_moments(excess_returns(daily.to_numpy(), cash_rate))
    n_eff = max(int(n_effective), 1)
    return {"n_trials_effective": n_eff, "sharpe_variance": float(sharpe_variance),
            "dsr_excess": deflated_sharpe_ratio(sharpe_d, n, n_eff, sharpe_variance, skew, kurt)}
def ledger_pbo(book: TrialLedger, dates: pd.DatetimeIndex) -> float:
    """CSCV PBO over the ledger's trials that cover every day of this run (NaN with < 2 of them)."""
    matrix = book.returns_matrix()
    if matrix.empty:
        return math.nan
    common = matrix.reindex(dates.tz_localize(None).tz_localize("UTC") if dates.tz is None else dates)
    common = common.dropna(axis=1, how="any")
    if common.shape[1] < 2 or common.shape[0] < 64:
        return math.nan
    return probability_of_backtest_overfitting(common.to_numpy(), n_splits=16)


def _trading_costs(oos) -> dict:
    """Turnover (a year), fees, and the fees' share of the gross (pre-fee) PnL."""
    m, a = oos.metrics, oos.assumptions
    net = float(oos.equity.iloc[-1] - a["init_cash"])
    fees = float(m.get("fees_paid", 0.0))
    gross = net + fees
    return {"turnover": float(m.get("turnover", math.nan)), "fees_paid": fees,
            "funding_paid": float(m.get("funding_paid", 0.0)), "gross_pnl": gross,
            "cost_share": fees / gross if gross > 0 else math.nan, "win_rate": float(m.get("win_rate", math.nan))}


def _slice(prices, lo, hi):
    if isinstance(prices, dict):
        return {s: _slice(df, lo, hi) for s, df in prices.items()}
    out = prices.loc[(prices.index >= lo) & (prices.index < hi)]
    out.attrs = dict(prices.attrs)
    return out


def sleeve_statistics(strategy, prices, folds: list, first_bar, oos, costs, init_cash, execution) -> dict:
    """Each sleeve run alone over the same out-of-sample window (one continuous run): its Sharpe,
    return, fees, and the correlation matrix of the sleeves' daily returns; with
    ``sleeve_weights()``, also each sleeve's net contribution inside the committee's own
    out-of-sample run (``"contribution"``: PnL after its share of fees, slippage and funding).
    Empty when the strategy has no ``sleeves()``."""
    sleeves = getattr(strategy, "sleeves", None)
    members = sleeves() if callable(sleeves) else {}
    if not members:
        return {}
    lo, hi = folds[0]["test_start"], folds[-1]["test_end"]
    returns, out = {}, {}
    for name, sleeve in members.items():
        result = _continuous_oos(sleeve, prices, first_bar, lo, hi, dict(costs=costs, init_cash=init_cash,
                                                                         execution=execution))
        daily = daily_equity_returns(result.equity, init_cash)
        returns[name] = daily
        out[name] = {"sharpe": annualized_sharpe(daily.to_numpy()), "total_return": result.metrics["total_return"],
                     "fees_paid": result.metrics["fees_paid"], "n_trades": int(result.metrics["n_trades"])}
    frame = pd.DataFrame(returns)
    out["correlation"] = {str(k): v for k, v in frame.corr().round(3).to_dict().items()}
    weights = getattr(strategy, "sleeve_weights", None)
    if callable(weights):
        from coinswarm.backtest.contribution import sleeve_contributions

        out["contribution"] = sleeve_contributions(oos, weights(_slice(prices, first_bar, hi)), costs,
                                                   tuple(members))
    return out


def _continuous_oos(strategy, prices, first_bar, lo, hi, engine: dict):
    """``strategy`` run once from ``first_bar`` (as the committee's own out-of-sample run is),
    holding at ``lo`` what it held then, simulated over ``[lo, hi)``."""
    from coinswarm.backtest.walkforward import carry_in

    targets = carry_in(strategy.targets(_slice(prices, first_bar, hi)), lo)
    targets = targets.loc[(targets.index >= lo) & (targets.index < hi)]
    max_leverage, allow_short = engine_limits(strategy)
    return simulate(_slice(prices, lo, hi), targets, **engine, max_leverage=max_leverage, allow_short=allow_short,
                    validate=False)


#: The baselines a portfolio committee's report is set beside (issue 19): equal-weight buy and
#: hold, and the volatility-targeted multi-horizon trend portfolio (long-only, as the default).
BASELINES = ("buy_and_hold", "trend_portfolio")


def baseline_statistics(strategy, prices, folds: list, first_bar, costs, init_cash, execution,
                        cash_rate: float) -> dict:
    """The :data:`BASELINES` over the committee's out-of-sample days, each one continuous run like
    the committee's, with the same costs: their Sharpe in excess of ``cash_rate``, return, drawdown
    and trades. Empty unless ``strategy`` is a committee of sleeves (``sleeves()`` not empty) on
    several assets."""
    from coinswarm.strategies.base import get_strategy

    sleeves = getattr(strategy, "sleeves", None)
    if not callable(sleeves) or not sleeves() or not isinstance(prices, dict):
        return {}
    lo, hi = folds[0]["test_start"], folds[-1]["test_end"]
    out = {}
    for name in BASELINES:
        result = _continuous_oos(get_strategy(name), prices, first_bar, lo, hi,
                                 dict(costs=costs, init_cash=init_cash, execution=execution))
        daily = daily_equity_returns(result.equity, init_cash)
        out[name] = {"sharpe_excess": returns_statistics(daily, cash_rate)["sharpe_excess"],
                     "total_return": result.metrics["total_return"], "max_drawdown": result.metrics["max_drawdown"],
                     "n_trades": int(result.metrics["n_trades"])}
    return out


def baselines_line(stats: dict) -> str:
    """The report's line setting the committee's excess Sharpe beside the baselines' (empty without them)."""
    rows = stats.get("baselines") or {}
    if not rows:
        return ""
    mine = stats["sharpe_excess"]
    parts = ", ".join(f"{name} {row['sharpe_excess']:.2f}" for name, row in rows.items())
    beaten = all(mine > row["sharpe_excess"] for row in rows.values())
    return (f"\nbaselines on the same days and costs (Sharpe in excess of {stats['cash_rate']:.1%} cash): {parts}; "
            f"this run {mine:.2f} — {'above both' if beaten else 'NOT above both'}")


def _apply_statistics(report, extra: dict, gate, cash_rate: float):
    """Attach ``extra`` to the report; the gate judges the excess Sharpe and the ledger's DSR, and — when the
    walk-forward had a single configuration (its own PBO is undefined) — the PBO over the trial ledger."""
    report.stats = extra
    extra["pbo_source"] = "this walk-forward's grid"
    if not math.isfinite(report.pbo) and math.isfinite(extra.get("pbo_ledger", math.nan)):
        report.pbo = extra["pbo_ledger"]  # one configuration selects nothing here: the ledger's search is the test
        extra["pbo_source"] = "trial ledger" if extra["trials_source"] != DEFAULT_SEARCH.describe() \
            else DEFAULT_SEARCH.describe()
    sharpe = extra["sharpe_excess"] if cash_rate else report.oos.metrics["sharpe"]
    dsr = extra["dsr_excess"] if extra["trials_source"] != "this walk-forward's grid" or cash_rate else report.dsr
    if extra["trials_source"] != "this walk-forward's grid" or cash_rate:
        report.dsr = dsr
    report.n_trials = extra["n_trials"]
    report.reasons = gate.evaluate(sharpe, dsr, report.pbo, report.oos.metrics["n_trades"])
    if extra.get("in_sample_for_search"):
        first, last = DEFAULT_SEARCH.pbo_span
        report.reasons.append(f"in-sample: this default was frozen on {first} → {last}, which these out-of-sample "
                              "days overlap; judge it on later days, or pass ledger= to count it as one more trial")
    report.passed = not report.reasons
    return report


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


def ledger_and_sleeves_line(stats: dict) -> str:
    """The gate report's PBO over the trial ledger and each sleeve's net contribution (empty without them)."""
    out = ""
    pbo = stats.get("pbo_ledger", math.nan)
    if isinstance(pbo, float) and math.isfinite(pbo):
        out += f"; PBO over the ledger's trials {pbo:.3f}" if stats.get("pbo_source") != DEFAULT_SEARCH.describe() \
            else f"; PBO of the search that froze this default {pbo:.3f} ({' → '.join(DEFAULT_SEARCH.pbo_span)})"
    contribution = (stats.get("sleeves") or {}).get("contribution") or {}
    parts = [f"{name} {row['net_return']:+.1%} (fees {row['fees'] / contribution['init_cash']:.1%}, "
             f"weighted {row['days_on']:.0%} of days)"
             for name, row in contribution.items() if isinstance(row, dict)]
    if parts:
        out += "\nnet contribution of each sleeve (after its share of fees and funding): " + ", ".join(parts)
    return out
