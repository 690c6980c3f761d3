"""The research behind the read-only tools: backtest, walk-forward, sweep and regimes on
catalog data, each returning a JSON-safe dict (the tool's typed result)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pandas as pd

from coinswarm.errors import ConfigError
from coinswarm.mcpserver.market import Market

#: Most parameter combinations one MCP sweep or walk-forward may try (the library allows 1,000,000;
#: a client's call is bounded so one request cannot hold the server's CPU for hours).
MAX_COMBINATIONS = 2_000


def _check_grid(strategy, grid: dict | None) -> None:
    from coinswarm.strategies.base import expand_grid

    n = len(expand_grid(strategy, grid))
    if n > MAX_COMBINATIONS:
        raise ConfigError(f"the grid has {n:,} valid combinations; an MCP call may try at most {MAX_COMBINATIONS:,} "
                          "(narrow the ranges, or run `coinswarm sweep` from the command line)")


class Reports:
    """The session's backtest and walk-forward reports (newest ``limit`` kept), by id."""

    def __init__(self, limit: int) -> None:
        self.limit, self.items, self.lock, self.count = limit, OrderedDict(), threading.Lock(), 0

    def add(self, prefix: str, report: dict) -> str:
        """Store ``report``; returns its id (``bt-1``, ``wf-2``, …)."""
        with self.lock:
            self.count += 1
            report_id = f"{prefix}-{self.count}"
            self.items[report_id] = report
            while len(self.items) > self.limit:
                self.items.popitem(last=False)
        return report_id

    def get(self, report_id: str) -> dict:
        """One report; ConfigError naming the known ids when absent."""
        with self.lock:
            if report_id not in self.items:
                known = ", ".join(self.items) or "none yet (run run_backtest, sweep or walk_forward)"
                raise ConfigError(f"no report {report_id!r:.40}; known: {known}")
            return self.items[report_id]

    def index(self) -> list[dict]:
        """``[{"report_id", "kind", "strategy", "data"}]`` oldest first."""
        with self.lock:
            return [{"report_id": k, "kind": v.get("kind"), "strategy": v.get("strategy"), "data": v.get("data")}
                    for k, v in self.items.items()]


def _costs(fee_bps: float, slippage_bps: float):
    from coinswarm.costs import Costs

    return Costs(fee_bps=fee_bps, slippage_bps=slippage_bps)


def _safe(obj: Any) -> Any:
    from coinswarm.backtest.engine import _json_safe

    return _json_safe(obj)


def run_backtest(market: Market, reports: Reports, data: str, strategy: str, params: dict | None,
                 start: str | None, end: str | None, fee_bps: float, slippage_bps: float, execution: str,
                 init_cash: float) -> dict:
    """One backtest (:func:`coinswarm.simulate` of the strategy's targets)."""
    import coinswarm as cs
    from coinswarm.strategies.base import engine_limits

    chosen = cs.get_strategy(strategy)
    made = cs.make_params(chosen, dict(params or {}))
    prices = market.window(data, start, end)
    max_leverage, allow_short = engine_limits(chosen)
    result = cs.simulate(prices, chosen.targets(prices, made), costs=_costs(fee_bps, slippage_bps),
                         init_cash=init_cash, execution=execution, max_leverage=max_leverage, allow_short=allow_short)
    out = {"data": data, "strategy": chosen.name, "params": _safe(made._asdict()), **result.to_dict()}
    report_id = reports.add("bt", {"kind": "backtest", **out})
    return {"report_id": report_id, **{k: out[k] for k in ("data", "strategy", "params", "metrics", "assumptions")}}


def walk_forward(market: Market, reports: Reports, data: str, strategy: str, grid: dict | None,
                 start: str | None, end: str | None, train: str, test: str, anchored: bool, objective: str,
                 gate: dict, fee_bps: float, slippage_bps: float) -> dict:
    """Walk-forward optimisation with the OOS gate (:func:`coinswarm.walk_forward`)."""
    import coinswarm as cs

    chosen = cs.get_strategy(strategy)
    _check_grid(chosen, grid)
    prices = market.window(data, start, end)
    report = cs.walk_forward(chosen, prices, grid, train=train, test=test, anchored=anchored, objective=objective,
                             gate=cs.Gate(**gate), costs=_costs(fee_bps, slippage_bps))
    full = report.to_dict()
    report_id = reports.add("wf", {"kind": "walk_forward", "data": data, **full})
    keys = ("strategy", "passed", "reasons", "oos_sharpe", "psr", "dsr", "pbo", "n_trials", "gate", "settings")
    return {"report_id": report_id, "data": data, "n_folds": len(full["folds"]), **{k: full[k] for k in keys}}


def sweep(market: Market, reports: Reports, data: str, strategy: str, grid: dict | None, start: str | None,
          end: str | None, sort: str, top: int, fee_bps: float, slippage_bps: float) -> dict:
    """Every combination of ``grid`` (:func:`coinswarm.sweep`), the best ``top`` by ``sort``."""
    import coinswarm as cs
    from coinswarm.kernels.metrics import METRIC_NAMES

    chosen = cs.get_strategy(strategy)
    columns = (*chosen.Params._fields, *METRIC_NAMES)
    if sort not in columns:
        raise ConfigError(f"sort {sort!r} is not a column; use a metric ({', '.join(METRIC_NAMES)}) "
                          f"or a parameter ({', '.join(chosen.Params._fields)})")
    _check_grid(chosen, grid)
    table = cs.sweep(chosen, market.window(data, start, end), grid, costs=_costs(fee_bps, slippage_bps))
    best = table.sort_values(sort, ascending=False, na_position="last").head(top)
    rows = _safe(best.to_dict(orient="records"))
    report_id = reports.add("sw", {"kind": "sweep", "data": data, "strategy": chosen.name,
                                   "assumptions": _safe(table.attrs.get("assumptions", {})),
                                   "rows": _safe(table.to_dict(orient="records"))})
    return {"report_id": report_id, "data": data, "strategy": chosen.name, "n_combinations": len(table),
            "sort": sort, "rows": rows}


def regime_at(market: Market, data: str, at: str | None) -> dict:
    """The regime labels of the last bar of ``data`` at or before ``at`` (the newest bar when None)."""
    from coinswarm.regime.detector import CELL_NAMES

    labels = market.regimes(data)
    if at is not None:
        from coinswarm.data.validate import as_time_bound

        bound = pd.Timestamp(as_time_bound(at, "at"))
        position = int(labels.index.searchsorted(bound, side="right")) - 1
        if position < 0:
            raise ConfigError(f"at {at!r} is before the first bar of {data} ({labels.index[0].isoformat()})")
    else:
        position = len(labels) - 1
    row = labels.iloc[position]
    regime = int(row["regime"])
    return {"data": data, "time": labels.index[position].isoformat(), "volatility": str(row["volatility"]),
            "trend": str(row["trend"]), "liquidity": str(row["liquidity"]), "session": str(row["session"]),
            "cell": CELL_NAMES[regime], "regime": regime, **_safe({k: float(row[k]) for k in
                                                                   ("realized_vol", "trend_t", "spread")}),
            "version": str(row["version"])}
