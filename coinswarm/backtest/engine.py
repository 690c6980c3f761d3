"""The pandas face of the simulation kernel: :func:`simulate` and :class:`Result`."""

from __future__ import annotations

import functools
import json
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coinswarm.costs import Costs
from coinswarm.data.load import load_funding
from coinswarm.data.resample import align
from coinswarm.data.validate import OHLCV_COLUMNS, check_values, timeframe_ms, timeframe_of_ms, validate_ohlcv
from coinswarm.errors import ConfigError, DataError, DuplicateTimestampError, SchemaError
from coinswarm.kernels.metrics import METRIC_NAMES, finalize_nb
from coinswarm.kernels.portfolio import P_BANKRUPT, P_BORROW, P_INTEREST, finance_days, screen_bars_nb, simulate_nb
from coinswarm.stats import daily_rate

EXECUTIONS = ("next_open", "close")
DAY = pd.Timedelta(days=1)
MAX_LEVERAGE = 100.0


def as_price_dict(prices: pd.DataFrame | dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """One frame → ``{symbol: frame}``; several frames are aligned on one grid."""
    if isinstance(prices, pd.DataFrame):
        symbol = prices.attrs.get("symbol") or _symbol_from_source(prices.attrs.get("source"))
        return {symbol: prices}
    if isinstance(prices, dict) and prices:
        for symbol, frame in prices.items():
            if not isinstance(symbol, str) or not isinstance(frame, pd.DataFrame):
                raise ConfigError(f"prices must map symbol names (str) to OHLCV DataFrames; "
                                  f"got {type(symbol).__name__} → {type(frame).__name__}")
            check_index(frame, symbol)
            if not frame.index.is_unique:
                row = int(np.flatnonzero(frame.index.duplicated())[0])
                raise DuplicateTimestampError(f"timestamp {frame.index[row]} repeats an earlier row",
                                              source=symbol, row=row, timestamp=frame.index[row].isoformat())
        if len(prices) == 1:
            return dict(prices)
        check_one_timeframe(prices)
        return align(prices)
    raise ConfigError("prices must be an OHLCV DataFrame or a non-empty dict of them, "
                      f"got {type(prices).__name__}")


def check_one_timeframe(frames: dict[str, pd.DataFrame]) -> None:
    """Several assets must share one bar length (their most common step, read from the data —
    a ``timeframe`` attribute survives ``df.resample``, so it is used only for a single bar): a 1h
    and a 4h frame aligned on one grid would leave three of every four rows of the 4h asset empty
    and trade it as if it had gaps."""
    steps = {symbol: _mode(np.diff(_stamps_ms(frame.index))) if len(frame) > 1
             else _grid_step_ms(frame, _stamps_ms(frame.index)) for symbol, frame in frames.items()}
    distinct = sorted({step for step in steps.values() if step})
    if len(distinct) > 1:
        shown = ", ".join(f"{symbol} {timeframe_of_ms(step)}" for symbol, step in steps.items() if step)
        raise ConfigError(f"the assets' bars differ in length ({shown}); put them on one timeframe first, "
                          f"e.g. cs.resample_ohlcv(frame, {timeframe_of_ms(distinct[-1])!r}) for each")


def check_index(frame: pd.DataFrame, where: str) -> None:
    """A frame's index must be a UTC ``DatetimeIndex`` (bar open times)."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise SchemaError(f"the index must be a UTC DatetimeIndex of bar open times, got {type(index).__name__}",
                          source=where)
    if index.tz is None or str(index.tz) != "UTC":
        raise SchemaError(f"the index must be in UTC, got tz={index.tz} "
                          "(use frame.tz_localize('UTC') or frame.tz_convert('UTC'))", source=where)


def check_prices(frames: dict[str, pd.DataFrame], several: bool) -> None:
    """Validate candles at the engine's edge: the typed errors of :func:`coinswarm.data.validate_ohlcv`.

    One compiled pass screens every rule (:func:`coinswarm.kernels.portfolio.screen_bars_py`);
    only a frame it flags goes through ``validate_ohlcv`` for the exact diagnosis. With
    ``several`` (a dict of frames, aligned on one grid) a row missing in every column is a bar
    the asset does not have and is skipped; any other NaN, ±inf, price ≤ 0, high < low,
    open/close outside [low, high], negative volume, duplicate or unsorted timestamp raises the
    :class:`~coinswarm.errors.DataError` subclass naming symbol, row, column and value.
    """
    for symbol, frame in frames.items():
        source = frame.attrs.get("source") or symbol
        columns = frame_columns(frame, source)
        ts = _stamps_ms(frame.index)
        if screen_bars_nb(ts, *(columns[c] for c in OHLCV_COLUMNS), _grid_step_ms(frame, ts)) >= 0:
            _diagnose(frame, several, source)


def frame_columns(frame: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Checked OHLCV columns of a frame as contiguous float64 arrays (views when the frame is
    one float64 block, as :func:`coinswarm.load_ohlcv` builds it)."""
    check_index(frame, source)
    if len(frame) == 0:
        raise DataError("prices are empty (no bars to backtest)", source=source)
    names = list(frame.columns)
    missing = [c for c in OHLCV_COLUMNS if c not in names]
    if missing:
        raise SchemaError(f"missing column(s) {missing}; an OHLCV frame needs {list(OHLCV_COLUMNS)}",
                          source=source, column=missing[0])
    if not frame.columns.is_unique:
        raise SchemaError(f"duplicate column names {names}", source=source)
    dtypes = frame.dtypes
    wrong = [c for c in OHLCV_COLUMNS if dtypes[c].kind not in "fiu"]
    if wrong:
        raise SchemaError(f"column {wrong[0]!r} has dtype {dtypes[wrong[0]]}; prices must be numbers",
                          source=source, column=wrong[0])
    if all(dt == np.float64 for dt in dtypes):
        values = frame.to_numpy()
        return {c: np.ascontiguousarray(values[:, names.index(c)]) for c in OHLCV_COLUMNS}
    return {c: np.ascontiguousarray(frame[c].to_numpy(np.float64)) for c in OHLCV_COLUMNS}


def _stamps_ms(index: pd.DatetimeIndex) -> np.ndarray:
    factor = {"s": -1000, "ms": 1, "us": 1_000, "ns": 1_000_000}[index.unit]
    stamps = index.asi8
    return stamps * 1000 if factor < 0 else stamps if factor == 1 else stamps // factor


def _grid_step_ms(frame: pd.DataFrame, ts: np.ndarray) -> int:
    """The bar grid in ms the screen checks (0: none, e.g. calendar months or a single bar)."""
    timeframe = frame.attrs.get("timeframe")
    if timeframe:
        return timeframe_ms(timeframe) or 0
    if len(ts) < 2:
        return 0
    steps = np.diff(ts)
    return int(_mode(steps)) if len(steps) else 0


def _diagnose(frame: pd.DataFrame, several: bool, source: str) -> None:
    """The exact typed error for a frame the screen flagged (``validate_ohlcv``'s diagnosis)."""
    if several:
        absent = frame[list(OHLCV_COLUMNS)].isna().all(axis=1).to_numpy()
        frame = frame[~absent] if absent.any() else frame
    timeframe = frame.attrs.get("timeframe")
    if len(frame) < 2 and not timeframe:  # one bar: no step to check the timestamps against
        ts = _stamps_ms(frame.index)
        check_values({c: frame[c].to_numpy(np.float64) for c in OHLCV_COLUMNS}, ts, source)
    else:
        validate_ohlcv(frame, timeframe=timeframe, source=source)


def _symbol_from_source(source: str | None) -> str:
    """The symbol of a catalog name (``binance:BTC/USDT:1h`` → ``BTC/USDT``), else ``asset``."""
    from coinswarm.data.catalog import parse_catalog_name

    name = parse_catalog_name(source, strict=False) if source else None
    return name.symbol if name is not None else "asset"


def bar_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Bar length: the most common step between timestamps."""
    if len(index) < 2:
        return pd.Timedelta(hours=1)
    return pd.Timedelta(int(_mode(np.diff(index.as_unit("ns").asi8))), unit="ns")


def _mode(steps: np.ndarray) -> int:
    """Most common value (the smallest on a tie), in O(n) when one value holds most entries."""
    for guess in (steps[0], steps[len(steps) // 2]):
        if 2 * np.count_nonzero(steps == guess) > len(steps):
            return int(guess)
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])


def day_end_mask(index: pd.DatetimeIndex) -> np.ndarray:
    """True on the last bar of each UTC day (and on the final bar)."""
    days = index.as_unit("ns").asi8 // DAY.value
    out = np.empty(len(days), dtype=np.bool_)
    if len(days):
        out[:-1] = days[1:] != days[:-1]
        out[-1] = True
    return out


def financing_days(index: pd.DatetimeIndex) -> np.ndarray:
    """The UTC days the kernel finances at each bar: :func:`~coinswarm.kernels.portfolio.finance_days`
    of the bars' open times, each :func:`bar_length` long (the live daemon's rule: a day is financed
    at the first close at or after its end)."""
    return finance_days(index.as_unit("ns").asi8 // 1_000_000, bar_length(index).value // 1_000_000)


def span_days(index: pd.DatetimeIndex) -> tuple[float, float]:
    """(calendar span including the last bar, bar length) in days."""
    if len(index) == 0:
        return 0.0, 0.0
    bar = bar_length(index)
    return (index[-1] - index[0] + bar) / DAY, bar / DAY


def target_matrix(target, index: pd.DatetimeIndex, symbols: list[str]) -> np.ndarray:
    """Targets as an ``(n, m)`` float array aligned with the prices.

    Raises :class:`ConfigError` on a wrong type, dtype (bool, object, complex, …), shape,
    columns or index, and on ±inf (NaN is valid: no order).
    """
    if isinstance(target, pd.Series):
        if len(symbols) != 1:
            raise ConfigError("a Series target needs a single asset; pass a DataFrame per symbol")
        _check_target_index(target.index, index)
        arr = _target_values(target.to_numpy(), "target Series").reshape(-1, 1)
    elif isinstance(target, pd.DataFrame):
        missing = [s for s in symbols if s not in target.columns]
        if missing:
            raise ConfigError(f"target has no column for {missing}; columns are {list(target.columns)}")
        _check_target_index(target.index, index)
        frame = target if list(target.columns) == symbols else target[symbols]
        if not all(kind in "fiu" for kind in (dt.kind for dt in frame.dtypes)):
            raise ConfigError(f"target columns must be numbers (weights), got dtypes {list(frame.dtypes)}")
        arr = _target_values(frame.to_numpy(np.float64), "target DataFrame")
    elif isinstance(target, np.ndarray):
        arr = _target_values(target, "target array")
        if arr.ndim == 1 and len(symbols) == 1:
            arr = arr.reshape(-1, 1)
        if arr.shape != (len(index), len(symbols)):
            raise ConfigError(f"target shape {target.shape} != prices {(len(index), len(symbols))} "
                              "(one row per bar, one column per symbol)")
    else:
        raise ConfigError(f"target must be a Series, DataFrame or array, got {type(target).__name__}")
    if np.isinf(arr).any():
        row = int(np.flatnonzero(np.isinf(arr).any(axis=1))[0])
        raise ConfigError(f"target is ±inf at row {row} ({index[row]}); weights must be finite (NaN: no order)")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _target_values(values: np.ndarray, what: str) -> np.ndarray:
    if values.dtype.kind not in "fiu":
        raise ConfigError(f"{what} has dtype {values.dtype}; target weights must be real numbers "
                          "(float or int, NaN for no order)")
    if values.ndim not in (1, 2):
        raise ConfigError(f"{what} must be 1-D or 2-D, got {values.ndim} dimensions")
    return values


def _check_target_index(target_index: pd.Index, index: pd.DatetimeIndex) -> None:
    if not target_index.equals(index):
        raise ConfigError(
            "target index differs from the prices' index "
            f"({len(target_index)} vs {len(index)} rows); build targets from the same prices"
        )


def financing(costs: Costs, symbols: list[str]) -> tuple[float, np.ndarray]:
    """The kernel's daily financing rates: ``(credit, borrow)`` — interest on idle cash, and per
    symbol the borrow fee of a short (0 for a symbol with funding: a perpetual pays funding)."""
    borrow = np.zeros(len(symbols))
    if costs.borrow_rate:
        funding = costs.funding
        funded = set(funding) if isinstance(funding, dict) else set(symbols) if funding is not None else set()
        borrow[[j for j, s in enumerate(symbols) if s not in funded]] = daily_rate(costs.borrow_rate)
    return (daily_rate(costs.cash_rate) if costs.cash_rate else 0.0), borrow


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


class Deferred:
    """A :class:`Result` field's value computed on its first read: ``compute()`` runs once and
    its value replaces it (so a backtest does not pay for a summary nobody reads)."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], Any]) -> None:
        self.compute = compute


class _DeferredField:
    """Dataclass field descriptor (default ``None``) that resolves a stored :class:`Deferred` on read."""

    def __init__(self, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return None  # the dataclass default
        value = obj.__dict__.get(self.slot)
        if isinstance(value, Deferred):
            value = obj.__dict__[self.slot] = value.compute()
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


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
        See :data:`coinswarm.kernels.metrics.METRIC_NAMES`; with financing costs
        (``Costs(cash_rate=…)`` or ``borrow_rate``) also ``interest_earned`` and ``borrow_paid``.
    assumptions : dict
        Fees, slippage, execution, data range and initial cash the numbers rest on.
    attribution : DataFrame or None
        PnL by agent (rows) and regime (columns) when a committee produced the targets
        (see :meth:`coinswarm.Committee.backtest`; computed on first read).
    committee : DataFrame or None
        The committee's :meth:`~coinswarm.Committee.run` table behind the targets (built on
        first read).
    bankrupt : Timestamp or None
        The bar at whose close equity reached 0 or below: every position was closed there,
        the deficit written off and trading stopped (equity is 0 from then on).
    """

    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict
    assumptions: dict
    prices: dict = field(repr=False, default_factory=dict)
    attribution: pd.DataFrame | None = _DeferredField("attribution")
    committee: pd.DataFrame | None = _DeferredField("committee")
    bankrupt: pd.Timestamp | None = None

    def __getstate__(self) -> dict:
        """Pickled with every :class:`Deferred` field computed (a closure does not pickle)."""
        for name in ("attribution", "committee"):
            getattr(self, name)
        return dict(self.__dict__)

    def to_dict(self) -> dict:
        """Metrics and assumptions as JSON-safe values (and the bankruptcy bar, if any)."""
        out = {"metrics": _json_safe(self.metrics), "assumptions": _json_safe(self.assumptions)}
        if self.bankrupt is not None:
            out["bankrupt"] = self.bankrupt.isoformat()
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=2)

    def plot(self, path: str | None = None, *, title: str | None = None):
        """Equity against buy-and-hold, drawdown (%) and positions (% of equity), titled with
        ``title`` and the headline metrics (saved to ``path`` when given)."""
        from coinswarm.backtest.plots import plot_result

        return plot_result(self, path, title=title)

    def report(self, path: str | None = None, *, title: str | None = None, trials: int | None = None) -> str:
        """The tearsheet: one self-contained HTML page (metrics beside buy-and-hold with the
        assumptions and ``trials``, equity, drawdown, monthly returns, rolling Sharpe, exposure,
        and for a committee PnL by agent and regime), written to ``path`` when given.
        See :func:`coinswarm.backtest.tearsheet.tearsheet`."""
        from coinswarm.backtest.tearsheet import tearsheet

        return tearsheet(self, path, title=title, trials=trials)

    def __repr__(self) -> str:
        m = self.metrics
        return (f"<Result {', '.join(self.assumptions['symbols'])} {self.assumptions['start'][:10]} → "
                f"{self.assumptions['end'][:10]}: total return {m['total_return']:.2%}, Sharpe {m['sharpe']:.2f}, "
                f"max drawdown {m['max_drawdown']:.2%}{', bankrupt' if self.bankrupt is not None else ''}>")

    def _repr_html_(self) -> str:
        """A notebook's view: the metrics beside the assumptions (the full page: :meth:`report`)."""
        from coinswarm.backtest.tearsheet import summary_html

        return summary_html(self)

    def __str__(self) -> str:
        from coinswarm.backtest.units import bps, days, percent

        a, m = self.assumptions, self.metrics
        return (
            f"Result {a['start']} → {a['end']} ({a['n_bars']} bars, {', '.join(a['symbols'])}), "
            f"fees {bps(a['fee_bps'])}, slippage {bps(a['slippage_bps'])}, fills at {a['execution']}: "
            f"total return {percent(m['total_return'])}, Sharpe {m['sharpe']:.2f}, "
            f"max drawdown {percent(m['max_drawdown'])} over {days(m['max_drawdown_days'])} days, "
            f"{int(m['n_trades'])} trades"
            + (f"; idle cash credited at {percent(a['cash_rate'])} a year ({m['interest_earned']:,.2f} earned), "
               f"short spot borrow {percent(a['borrow_rate'])} a year ({m['borrow_paid']:,.2f} paid)"
               if "cash_rate" in a else "")
            + (f"; BANKRUPT at {self.bankrupt.isoformat()}: closed out, trading stopped" if self.bankrupt else "")
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


def financing_metrics(state: np.ndarray) -> dict:
    """Interest credited on idle cash and borrow fees paid over a run (see :class:`Costs`)."""
    return {"interest_earned": float(state[P_INTEREST]), "borrow_paid": float(state[P_BORROW])}


def simulate(prices: pd.DataFrame | dict[str, pd.DataFrame], target: pd.Series | pd.DataFrame | np.ndarray, *,
             costs: Costs | None = None, init_cash: float = 10_000.0, execution: str = "next_open",
             max_leverage: float = 1.0, allow_short: bool = False, validate: bool = True) -> Result:
    """Backtest target weights.

    Parameters
    ----------
    prices : DataFrame or dict of DataFrame
        OHLCV candles (see :func:`coinswarm.load_ohlcv`) on a UTC ``DatetimeIndex``; a dict
        shares one cash account (frames are aligned on the union of their bars).
    target : Series, DataFrame or ndarray
        Fraction of equity to hold per asset after each bar, decided at the bar's close
        (NaN: no order). One column per symbol for several assets. Finite real numbers.
    costs : Costs, default ``Costs(fee_bps=10)``
        Fees, slippage and funding.
    init_cash : float
        Starting cash, finite and > 0.
    execution : {"next_open", "close"}
        ``"next_open"`` fills bar t's decision at bar t+1's open (no lookahead).
        ``"close"`` fills at bar t's close — optimistic, for cross-checks only.
    max_leverage : float
        Gross exposure cap as a multiple of equity, in (0, 100].
    allow_short : bool
        Allow negative targets (otherwise they are clipped to 0).
    validate : bool, default True
        Check the candles (once, vectorised) before simulating. ``False`` only for inner loops
        (sweeps, walk-forward folds) over prices that were validated already.

    Returns
    -------
    Result
        When equity falls to 0 or below at a close the account is closed out there, trading
        stops and ``Result.bankrupt`` holds that bar's time (equity is never negative).

    Raises
    ------
    DataError
        Malformed candles (a typed subclass naming symbol, row, column and value).
    ConfigError
        Malformed targets or settings.
    """
    costs = check_costs(costs)
    _check_settings(execution, init_cash, max_leverage, allow_short)
    frames = as_price_dict(prices)
    symbols = list(frames)
    if validate:
        check_prices(frames, several=not isinstance(prices, pd.DataFrame))
    index = next(iter(frames.values())).index
    if len(index) == 0:
        raise DataError("prices are empty (no bars to backtest)")
    open_, close = price_matrices(frames, symbols)
    tgt = target_matrix(target, index, symbols)
    funding = funding_matrix(costs, index, symbols)
    out = simulate_nb(open_, close, tgt, funding, day_end_mask(index), financing_days(index), costs.fee,
                      costs.slippage, float(init_cash), execution == "next_open", float(max_leverage),
                      bool(allow_short), True, *financing(costs, symbols))
    return _result(out, frames, costs, execution, init_cash, max_leverage)


def _result(out: tuple, frames: dict[str, pd.DataFrame], costs: Costs, execution: str, init_cash: float,
            max_leverage: float) -> Result:
    """The :class:`Result` of one :func:`~coinswarm.kernels.portfolio.simulate_nb` run over ``frames``."""
    equity, cash, pos, fills, nf, state, acc = out
    index, symbols = next(iter(frames.values())).index, list(frames)
    bankrupt = index[int(state[P_BANKRUPT])] if state[P_BANKRUPT] >= 0 else None
    return Result(  # the kernel's fresh arrays are not copied again (several positions are: pandas' layout)
        equity=pd.Series(equity, index=index, name="equity", copy=False),
        cash=pd.Series(cash, index=index, name="cash", copy=False),
        positions=pd.DataFrame(pos, index=index, columns=symbols, copy=len(symbols) > 1),
        fills=_fills_frame(fills[:nf], index, symbols),
        metrics={**metrics_dict(acc, index), **(financing_metrics(state) if costs.financed else {})},
        assumptions=_assumptions(costs, execution, index, symbols, init_cash, max_leverage),
        prices=frames,
        bankrupt=bankrupt,
    )


def price_matrices(frames: dict[str, pd.DataFrame], symbols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(open, close)`` as ``(n, m)`` float64 arrays (views of the frames' columns for one asset)."""
    if len(symbols) == 1:
        frame = frames[symbols[0]]
        if all(dt == np.float64 for dt in frame.dtypes) and frame.columns.is_unique:
            values, names = frame.to_numpy(), list(frame.columns)
            return tuple(np.ascontiguousarray(values[:, names.index(c)]).reshape(-1, 1) for c in ("open", "close"))
        return tuple(np.ascontiguousarray(frame[c].to_numpy(np.float64)).reshape(-1, 1)
                     for c in ("open", "close"))
    return tuple(np.column_stack([frames[s][c].to_numpy(np.float64) for s in symbols]) for c in ("open", "close"))


def check_costs(costs) -> Costs:
    """``None`` → the default :class:`Costs`; anything but a :class:`Costs` → :class:`ConfigError`."""
    if costs is None:
        return Costs()
    if not isinstance(costs, Costs):
        raise ConfigError(f"costs must be a coinswarm.Costs (e.g. Costs(fee_bps=10)), got {costs!r}")
    return costs


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_) and bool(np.isfinite(value))


def _check_settings(execution, init_cash, max_leverage, allow_short) -> None:
    """Raise :class:`ConfigError` on an unknown fill rule, a cash or leverage that is not a finite
    positive real number, or a non-boolean ``allow_short``."""
    if not isinstance(execution, str) or execution not in EXECUTIONS:
        raise ConfigError(f"execution must be one of {EXECUTIONS}, not {execution!r}")
    if not (_real(init_cash) and init_cash > 0):
        raise ConfigError(f"init_cash must be a finite positive number (e.g. 10000.0), got {init_cash!r}")
    if not (_real(max_leverage) and 0 < max_leverage <= MAX_LEVERAGE):
        raise ConfigError(f"max_leverage must be a number in (0, {MAX_LEVERAGE:g}], got {max_leverage!r}")
    if not isinstance(allow_short, bool | np.bool_):
        raise ConfigError(f"allow_short must be True or False, got {allow_short!r}")


def _fills_frame(fills: np.ndarray, index, symbols) -> pd.DataFrame:
    qty = fills["qty"]
    if len(fills):  # text columns as a take from their few labels (not one string object per fill)
        symbol, side = _labels(symbols, fills["asset"]), _labels(["buy", "sell"], qty <= 0)
    else:  # the dtypes an empty frame always had
        symbol, side = np.asarray(symbols, dtype=object)[fills["asset"]], np.where(qty > 0, "buy", "sell")
    return pd.DataFrame({
        "time": index[fills["bar"]],
        "symbol": symbol,
        "side": side,
        "qty": np.abs(qty),
        "price": fills["price"],
        "fee": fills["fee"],
    })


def _labels(labels: list[str], codes: np.ndarray):
    """``labels[codes]`` as pandas' text array (the dtype pandas infers for the strings themselves)."""
    return _label_array(tuple(labels)).take(codes.astype(np.intp))


@functools.lru_cache(maxsize=64)
def _label_array(labels: tuple[str, ...]):
    """The few labels as one (immutable) pandas text array, built once per set of labels."""
    return pd.Series(np.asarray(labels, dtype=object)).array


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
