"""The pandas face of the simulation kernel: :func:`simulate` and :class:`Result`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coinswarm.costs import Costs
from coinswarm.data.load import load_funding
from coinswarm.data.resample import align
from coinswarm.errors import ConfigError
from coinswarm.kernels.metrics import METRIC_NAMES, finalize_nb
from coinswarm.kernels.portfolio import simulate_nb

EXECUTIONS = ("next_open", "close")
DAY = pd.Timedelta(days=1)


def as_price_dict(prices: pd.DataFrame | dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """One frame → ``{symbol: frame}``; several frames are aligned on one grid."""
    if isinstance(prices, pd.DataFrame):
        symbol = prices.attrs.get("symbol") or _symbol_from_source(prices.attrs.get("source"))
        return {symbol: prices}
    if isinstance(prices, dict) and prices:
        return align(prices) if len(prices) > 1 else dict(prices)
    raise ConfigError("prices must be an OHLCV DataFrame or a non-empty dict of them")


def _symbol_from_source(source: str | None) -> str:
    if source and source.count(":") >= 2:
        return source.split(":")[1]
    return "asset"


def bar_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Bar length: the most common step between timestamps."""
    if len(index) < 2:
        return pd.Timedelta(hours=1)
    steps = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(steps, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def day_end_mask(index: pd.DatetimeIndex) -> np.ndarray:
    """True on the last bar of each UTC day (and on the final bar)."""
    days = index.as_unit("ns").asi8 // DAY.value
    out = np.empty(len(days), dtype=np.bool_)
    if len(days):
        out[:-1] = days[1:] != days[:-1]
        out[-1] = True
    return out


def span_days(index: pd.DatetimeIndex) -> tuple[float, float]:
    """(calendar span including the last bar, bar length) in days."""
    if len(index) == 0:
        return 0.0, 0.0
    bar = bar_length(index)
    return (index[-1] - index[0] + bar) / DAY, bar / DAY


def target_matrix(target, index: pd.DatetimeIndex, symbols: list[str]) -> np.ndarray:
    """Targets as an ``(n, m)`` float array aligned with the prices."""
    if isinstance(target, pd.Series):
        if len(symbols) != 1:
            raise ConfigError("a Series target needs a single asset; pass a DataFrame per symbol")
        target = target.to_frame(symbols[0])
    if isinstance(target, np.ndarray):
        arr = target.reshape(len(index), -1) if target.ndim == 1 else target
        if arr.shape != (len(index), len(symbols)):
            raise ConfigError(f"target shape {arr.shape} != prices {(len(index), len(symbols))}")
        return np.ascontiguousarray(arr, dtype=np.float64)
    if not isinstance(target, pd.DataFrame):
        raise ConfigError("target must be a Series, DataFrame or array")
    missing = [s for s in symbols if s not in target.columns]
    if missing:
        raise ConfigError(f"target has no column for {missing}; columns are {list(target.columns)}")
    if not target.index.equals(index):
        raise ConfigError(
            "target index differs from the prices' index "
            f"({len(target)} vs {len(index)} rows); build targets from the same prices"
        )
    return np.ascontiguousarray(target[symbols].to_numpy(dtype=np.float64))


def funding_matrix(costs: Costs, index: pd.DatetimeIndex, symbols: list[str]) -> np.ndarray:
    """Funding rates placed on the first bar at or after each funding time."""
    out = np.zeros((len(index), len(symbols)))
    funding = costs.funding
    if funding is None:
        return out
    if isinstance(funding, str):
        funding = load_funding(funding)
    if isinstance(funding, pd.Series):
        if len(symbols) != 1:
            raise ConfigError("one funding Series given for several assets; pass {symbol: Series}")
        funding = {symbols[0]: funding}
    stamps = index.as_unit("ns").asi8
    for j, symbol in enumerate(symbols):
        series = funding.get(symbol)
        if series is None:
            continue
        series = load_funding(series) if isinstance(series, str) else series
        rows = np.searchsorted(stamps, series.index.as_unit("ns").asi8, side="left")
        ok = rows < len(stamps)
        np.add.at(out[:, j], rows[ok], series.to_numpy(dtype=np.float64)[ok])
        before = series.index < index[0]
        out[0, j] -= series.to_numpy()[ok & np.asarray(before)].sum()
    return out


@dataclass
class Result:
    """A finished backtest.

    Attributes
    ----------
    equity : Series
        Equity at each bar's close.
    cash : Series
        Cash at each bar's close.
    positions : DataFrame
        Units held per symbol after each bar.
    fills : DataFrame
        One row per fill: ``time, symbol, side, qty, price, fee`` (qty > 0, price includes
        slippage).
    metrics : dict
        See :data:`coinswarm.kernels.metrics.METRIC_NAMES`.
    assumptions : dict
        Fees, slippage, execution, data range and initial cash the numbers rest on.
    attribution : DataFrame or None
        PnL by agent (rows) and regime (columns) when a committee produced the targets
        (see :meth:`coinswarm.Committee.backtest`).
    """

    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict
    assumptions: dict
    prices: dict = field(repr=False, default_factory=dict)
    attribution: pd.DataFrame | None = field(repr=False, default=None)
    committee: pd.DataFrame | None = field(repr=False, default=None)

    def to_dict(self) -> dict:
        """Metrics and assumptions as JSON-safe values."""
        return {"metrics": _json_safe(self.metrics), "assumptions": _json_safe(self.assumptions)}

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=2)

    def plot(self, path: str | None = None):
        """Equity, drawdown and positions (saved to ``path`` when given)."""
        from coinswarm.backtest.plots import plot_result

        return plot_result(self, path)

    def __str__(self) -> str:
        a, m = self.assumptions, self.metrics
        return (
            f"Result {a['start']} → {a['end']} ({a['n_bars']} bars, {', '.join(a['symbols'])}), "
            f"fees {a['fee_bps']} bps, slippage {a['slippage_bps']} bps, fills at {a['execution']}: "
            f"total return {m['total_return']:.2%}, Sharpe {m['sharpe']:.2f}, "
            f"max drawdown {m['max_drawdown']:.2%}, {int(m['n_trades'])} trades"
        )


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def metrics_dict(acc: np.ndarray, index: pd.DatetimeIndex) -> dict:
    """Metric names → values from a kernel accumulator."""
    span, bar = span_days(index)
    values = finalize_nb(acc, span, bar)
    return {name: float(v) for name, v in zip(METRIC_NAMES, values, strict=True)}


def simulate(
    prices: pd.DataFrame | dict[str, pd.DataFrame],
    target: pd.Series | pd.DataFrame | np.ndarray,
    *,
    costs: Costs | None = None,
    init_cash: float = 10_000.0,
    execution: str = "next_open",
    max_leverage: float = 1.0,
    allow_short: bool = False,
) -> Result:
    """Backtest target weights.

    Parameters
    ----------
    prices : DataFrame or dict of DataFrame
        OHLCV candles (see :func:`coinswarm.load_ohlcv`); a dict shares one cash account.
    target : Series, DataFrame or ndarray
        Fraction of equity to hold per asset after each bar, decided at the bar's close
        (NaN: no order). One column per symbol for several assets.
    costs : Costs, default ``Costs(fee_bps=10)``
        Fees, slippage and funding.
    init_cash : float
        Starting cash.
    execution : {"next_open", "close"}
        ``"next_open"`` fills bar t's decision at bar t+1's open (no lookahead).
        ``"close"`` fills at bar t's close — optimistic, for cross-checks only.
    max_leverage : float
        Gross exposure cap as a multiple of equity.
    allow_short : bool
        Allow negative targets (otherwise they are clipped to 0).

    Returns
    -------
    Result
    """
    costs = costs or Costs()
    _check_settings(execution, init_cash, max_leverage)
    frames = as_price_dict(prices)
    symbols = list(frames)
    index = next(iter(frames.values())).index
    if len(index) == 0:
        raise ConfigError("prices are empty")
    open_ = np.column_stack([frames[s]["open"].to_numpy(np.float64) for s in symbols])
    close = np.column_stack([frames[s]["close"].to_numpy(np.float64) for s in symbols])
    tgt = target_matrix(target, index, symbols)
    funding = funding_matrix(costs, index, symbols)
    equity, cash, pos, fills_i, fills_f, nf, acc = simulate_nb(
        open_, close, tgt, funding, day_end_mask(index), costs.fee, costs.slippage,
        float(init_cash), execution == "next_open", float(max_leverage), bool(allow_short), True,
    )
    return Result(
        equity=pd.Series(equity, index=index, name="equity"),
        cash=pd.Series(cash, index=index, name="cash"),
        positions=pd.DataFrame(pos, index=index, columns=symbols),
        fills=_fills_frame(fills_i[:nf], fills_f[:nf], index, symbols),
        metrics=metrics_dict(acc, index),
        assumptions=_assumptions(costs, execution, index, symbols, init_cash, max_leverage),
        prices=frames,
    )


def _check_settings(execution: str, init_cash: float, max_leverage: float) -> None:
    """Raise :class:`ConfigError` on an unknown fill rule or a non-positive cash or leverage."""
    if execution not in EXECUTIONS:
        raise ConfigError(f"execution must be one of {EXECUTIONS}, not {execution!r}")
    if not (np.isfinite(init_cash) and init_cash > 0):
        raise ConfigError(f"init_cash must be a positive number, got {init_cash!r}")
    if not (np.isfinite(max_leverage) and max_leverage > 0):
        raise ConfigError(f"max_leverage must be a positive number, got {max_leverage!r}")


def _fills_frame(fi: np.ndarray, ff: np.ndarray, index, symbols) -> pd.DataFrame:
    return pd.DataFrame({
        "time": index[fi[:, 0]] if len(fi) else pd.DatetimeIndex([], tz="UTC"),
        "symbol": np.asarray(symbols, dtype=object)[fi[:, 1]] if len(fi) else [],
        "side": np.where(ff[:, 0] > 0, "buy", "sell") if len(ff) else [],
        "qty": np.abs(ff[:, 0]),
        "price": ff[:, 1],
        "fee": ff[:, 2],
    })


def _assumptions(costs, execution, index, symbols, init_cash, max_leverage) -> dict:
    return {
        **costs.describe(),
        "execution": execution,
        "start": index[0].isoformat(),
        "end": index[-1].isoformat(),
        "n_bars": len(index),
        "symbols": symbols,
        "init_cash": float(init_cash),
        "max_leverage": float(max_leverage),
        "annualization": "daily returns, sqrt(365)",
    }
