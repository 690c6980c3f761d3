"""Parameter sweeps: every combination of a grid, metrics per row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from coinswarm.backtest.engine import (
    _assumptions,
    as_price_dict,
    bar_length,
    day_end_mask,
    financing,
    financing_days,
    funding_matrix,
    span_days,
    target_matrix,
)
from coinswarm.costs import Costs
from coinswarm.data.validate import timeframe_of_ms, validate_ohlcv
from coinswarm.errors import ConfigError
from coinswarm.kernels.metrics import METRIC_NAMES, finalize_nb
from coinswarm.kernels.portfolio import simulate_nb
from coinswarm.strategies.base import Strategy, engine_limits, expand_grid, get_strategy, warmup_bars


def check_inputs(costs: Any, init_cash: Any, execution: Any) -> Costs:
    """Check the run settings shared by ``sweep`` and ``walk_forward``; return the costs.

    Raises
    ------
    ConfigError
        ``costs`` not a :class:`~coinswarm.costs.Costs`, ``init_cash`` not a finite number
        > 0, or ``execution`` not ``"next_open"``/``"close"``.
    """
    costs = Costs() if costs is None else costs
    if not isinstance(costs, Costs):
        raise ConfigError(f"costs must be a coinswarm.Costs (e.g. Costs(fee_bps=10)), not {costs!r:.60}")
    if isinstance(init_cash, bool) or not isinstance(init_cash, int | float | np.integer | np.floating) \
            or not np.isfinite(init_cash) or init_cash <= 0:
        raise ConfigError(f"init_cash must be a finite number > 0, not {init_cash!r:.60}")
    if not isinstance(execution, str) or execution not in ("next_open", "close"):
        raise ConfigError(f"execution must be 'next_open' or 'close', not {execution!r:.60}")
    return costs


def check_prices(prices: Any) -> None:
    """Validate every candle frame of ``prices`` (see :func:`coinswarm.validate_ohlcv`).

    Raises
    ------
    ConfigError
        Neither a DataFrame nor a non-empty dict of them.
    DataError
        A frame :func:`~coinswarm.validate_ohlcv` refuses (named by its symbol).
    """
    if isinstance(prices, pd.DataFrame):
        validate_ohlcv(prices, source=prices.attrs.get("source"), timeframe=_timeframe(prices))
        return
    if not isinstance(prices, dict) or not prices:
        raise ConfigError(f"prices must be an OHLCV DataFrame or a non-empty dict of them, not "
                          f"{type(prices).__name__}")
    for symbol, frame in prices.items():
        if not isinstance(symbol, str) or not isinstance(frame, pd.DataFrame):
            raise ConfigError(f"prices must map symbol names to DataFrames; got {symbol!r:.40} → "
                              f"{type(frame).__name__}")
        validate_ohlcv(frame, source=str(symbol), timeframe=_timeframe(frame))


def _timeframe(frame: pd.DataFrame) -> str | None:
    tf = frame.attrs.get("timeframe")
    return tf if isinstance(tf, str) else None


def check_warmup(strategy: Strategy, combos: list, index: pd.DatetimeIndex) -> None:
    """Refuse combinations whose warm-up (:func:`~coinswarm.strategies.base.warmup_bars` at the
    data's bar length) needs as many bars as ``index`` holds (or more)."""
    bar_ms = int(bar_length(index) / pd.Timedelta(milliseconds=1))
    need = {i: warmup_bars(strategy, p, bar_ms) for i, p in enumerate(combos)}
    too_long = [i for i in need if need[i] >= len(index)]
    if too_long:
        worst = max(too_long, key=need.get)
        params = combos[worst]
        label = "its default parameters" if len(combos) == 1 else dict(params._asdict())
        days = getattr(strategy, "warmup_days", None)
        unit = f" ({days} days of {timeframe_of_ms(bar_ms)} bars)" if days else ""
        raise ConfigError(
            f"{strategy.name} with {label} needs a warm-up of {need[worst]:,} bars{unit} but the data "
            f"({index[0]} → {index[-1]}) has {len(index):,} bars ({len(too_long)} of {len(combos)} "
            "combinations too long); give more history or shorter windows"
        )


def _single_or_dict(frames: dict[str, pd.DataFrame]) -> pd.DataFrame | dict[str, pd.DataFrame]:
    return next(iter(frames.values())) if len(frames) == 1 else frames


def sweep_combos(
    strategy: Strategy,
    prices: pd.DataFrame | dict[str, pd.DataFrame],
    combos: list,
    *,
    costs: Costs,
    init_cash: float,
    execution: str,
    fused: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Metric matrix ``(len(combos), N_METRICS)`` on this process."""
    frames = as_price_dict(prices)
    index = next(iter(frames.values())).index
    span, bar = span_days(index)
    day_end = day_end_mask(index)
    days = financing_days(index)
    next_open = execution == "next_open"
    kernel = getattr(strategy, "sweep_metrics", None)
    if fused and kernel is not None and costs.funding is None and not costs.financed:
        out = kernel(_single_or_dict(frames), combos, fee=costs.fee, slip=costs.slippage,
                     init_cash=float(init_cash), next_open=next_open, span=span, bar=bar,
                     day_end=day_end)
        if out is not None:
            return out
    symbols = list(frames)
    open_ = np.column_stack([frames[s]["open"].to_numpy(np.float64) for s in symbols])
    close = np.column_stack([frames[s]["close"].to_numpy(np.float64) for s in symbols])
    funding = funding_matrix(costs, index, symbols)
    rates = financing(costs, symbols)
    max_leverage, allow_short = engine_limits(strategy)
    out = np.empty((len(combos), len(METRIC_NAMES)))
    iterator: Iterable = enumerate(combos)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(combos), desc=f"sweep {strategy.name}", unit="combo")
    for k, params in iterator:
        tgt = target_matrix(strategy.targets(_single_or_dict(frames), params), index, symbols)
        *_, acc = simulate_nb(open_, close, tgt, funding, day_end, days, costs.fee, costs.slippage,
                              float(init_cash), next_open, max_leverage, allow_short, False, *rates)
        out[k] = finalize_nb(acc, span, bar)
    return out


def _remote_chunk(strategy, prices, combos, costs, init_cash, execution, fused):
    return sweep_combos(get_strategy(strategy), prices, combos, costs=costs, init_cash=init_cash,
                        execution=execution, fused=fused)


def _distributed(client, strategy, prices, combos, costs, init_cash, execution, fused):
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    chunks = [c for c in np.array_split(np.arange(len(combos)), n_workers * 2) if len(c)]
    remote_prices = client.scatter(prices, broadcast=True)
    futures = [
        client.submit(_remote_chunk, strategy, remote_prices, [combos[i] for i in chunk], costs,
                      init_cash, execution, fused, pure=False)
        for chunk in chunks
    ]
    return np.vstack(client.gather(futures))


def sweep(strategy: str | Strategy, prices: pd.DataFrame | dict[str, pd.DataFrame],
          grid: Mapping[str, Iterable[Any]] | None = None, *, costs: Costs | None = None, init_cash: float = 10_000.0,
          execution: str = "next_open", client: Any = None, fused: bool = True, progress: bool = False,
          validate: bool = True) -> pd.DataFrame:
    """Backtest every valid combination of ``grid``.

    Parameters
    ----------
    strategy : str or Strategy
        ``"sma_cross"`` or any registered strategy.
    prices : DataFrame or dict of DataFrame
        Candles (one asset or several sharing cash).
    grid : dict of str to iterable, optional
        Parameter name → values; invalid combinations (e.g. fast ≥ slow) are skipped.
        ``None``: the strategy's ``default_grid``. An empty grid is an error.
    costs, init_cash, execution
        As in :func:`coinswarm.simulate`.
    client : dask.distributed.Client, optional
        Split the combinations across the cluster's workers; results are identical.
    fused : bool, default True
        Use the strategy's fused kernel when it has one.
    progress : bool
        Show a progress bar (generic path).
    validate : bool, default True
        Validate the candles first; ``False`` only for inner loops that already did.

    Returns
    -------
    DataFrame
        One row per combination: parameter columns, then every metric.
        ``attrs["assumptions"]`` states fees, slippage, execution and data range.

    Raises
    ------
    ConfigError
        Unknown strategy, a bad grid (see :func:`coinswarm.params.expand_grid`), bad costs,
        ``init_cash`` or ``execution``, or a warm-up as long as the data.
    DataError
        Candles :func:`coinswarm.validate_ohlcv` refuses.
    """
    strategy = get_strategy(strategy)
    costs = check_inputs(costs, init_cash, execution)
    combos = expand_grid(strategy, grid)
    if validate:
        check_prices(prices)
    index = next(iter(as_price_dict(prices).values())).index
    check_warmup(strategy, combos, index)
    if client is not None:
        values = _distributed(client, strategy, prices, combos, costs, init_cash, execution, fused)
    else:
        values = sweep_combos(strategy, prices, combos, costs=costs, init_cash=init_cash,
                              execution=execution, fused=fused, progress=progress)
    return _table(strategy, prices, combos, values, costs, execution, init_cash)


def _table(strategy: Strategy, prices, combos: list, values: np.ndarray, costs: Costs, execution: str,
           init_cash: float) -> pd.DataFrame:
    """One row per combination: its parameters, then its metrics; the assumptions in ``attrs``."""
    table = pd.DataFrame([p._asdict() for p in combos])
    table = pd.concat([table, pd.DataFrame(values, columns=list(METRIC_NAMES))], axis=1)
    frames = as_price_dict(prices)
    index = next(iter(frames.values())).index
    table.attrs["assumptions"] = _assumptions(costs, execution, index, list(frames), init_cash, 1.0)
    table.attrs["strategy"] = strategy.name
    return table
