"""Liquidation audit of the carry sleeve's short perpetuals, and the borrow need of short spot legs.

The portfolio committee decides once a day; between decisions a short perpetual can be
liquidated intraday by a spike its daily closes never show. This audit replays a finished
backtest (:class:`coinswarm.backtest.engine.Result`) against the perpetual's hourly **highs**:

* a short leg's margin is *set* at every fill that leaves it short (entry or rebalance, at that
  bar's open: the engine fills at the next bar's open), as ``margin`` × the leg's notional then
  (the committee's capital model: spot leg + ``margin`` per unit of perp notional);
* from that bar until the next fill, the worst adverse excursion is ``max(high) / set price − 1``;
* the isolated short is liquidated when its margin balance falls to the maintenance margin of
  its current notional: ``margin − x ≤ maintenance × (1 + x)``, i.e. at an excursion
  ``x* = (margin − maintenance) / (1 + maintenance)``; **headroom** is ``x* − worst excursion``.

Assumption: maintenance margin 0.5 % of notional (Binance USDT-M BTCUSDT is 0.4 % and
ETHUSDT 0.5 % in the first notional tier, which covers these sizes; the larger is taken for
both). A breach costs the leg's whole margin (``margin`` × notional at the set) and closes it; the
spot leg is kept (unhedged) until the leg's next fill, where the backtest re-sets it. Against the
backtest, which kept the short, the liquidated book is short by ``lost margin − the short's own
loss since the set`` (closes), from the breach to the next fill, frozen after it; the audit
subtracts that from equity for ``sharpe_after_liquidation`` (funding the lost leg would have
earned in between is ignored).

Short **spot** legs (the long/short trend variants) need a margin loan the engine does not
charge: :func:`borrow_need` reports it as notional-days and the cost it would add at a rate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from coinswarm.backtest.honest import daily_equity_returns, returns_statistics
from coinswarm.committee.portfolio import MAINTENANCE  # Binance USDT-M tier 1 (BTC 0.4 %, ETH 0.5 %): the larger
from coinswarm.errors import ConfigError, DataError

BORROW_RATES = (0.05, 0.10)  # a year, the range of a margin loan of BTC/ETH/alts on Binance


class LiquidationInputError(DataError):
    """The audit's inputs do not fit together (misaligned index, no ``high``/``open`` column)."""


class MarginError(ConfigError):
    """A margin or maintenance rate that leaves no liquidation buffer."""


def liquidation_threshold(margin: float, maintenance: float = MAINTENANCE) -> float:
    """The adverse excursion at which an isolated short with ``margin`` is liquidated.

    Raises
    ------
    MarginError
        ``maintenance`` not in [0, 0.5) or ``margin`` not a finite number above it.
    """
    if not (isinstance(maintenance, int | float) and 0 <= maintenance < 0.5):
        raise MarginError(f"maintenance margin {maintenance!r} must be a number in [0, 0.5) "
                          f"(Binance tier 1 is 0.004–0.005)")
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > maintenance):
        raise MarginError(f"margin {margin!r} leaves no buffer: it must be a finite number above the "
                          f"maintenance margin {maintenance} (the committee's default is 0.5)")
    return (margin - maintenance) / (1.0 + maintenance)


def _check_leg(bars: pd.DataFrame, position: pd.Series, symbol: str) -> None:
    if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
        raise LiquidationInputError(f"{symbol}: bars must be an OHLCV DataFrame on a DatetimeIndex")
    missing = [c for c in ("open", "high") if c not in bars.columns]
    if missing:
        raise LiquidationInputError(f"{symbol}: bars have no {missing} column(s); the audit needs the perpetual's "
                                    f"hourly open and high (columns given: {list(bars.columns)})")
    if not isinstance(position, pd.Series) or not position.index.equals(bars.index):
        raise LiquidationInputError(f"{symbol}: the position series must be on exactly the bars' index "
                                    f"({len(bars)} bars {bars.index[:1].tolist()} …); reindex one to the other")
    held = position.to_numpy(np.float64) < 0
    if held.any() and not np.isfinite(bars["high"].to_numpy(np.float64)[held]).any():
        raise LiquidationInputError(f"{symbol}: no finite high on any of the {int(held.sum())} bars the short is "
                                    "open; give the perpetual's bars (NaN only on exchange gaps)")


def _margin_sets(index: pd.DatetimeIndex, q: np.ndarray, daily_topup: bool) -> np.ndarray:
    """Bars where a short's margin is set: each fill leaving it short (and each UTC day with a top-up)."""
    new_set = q != np.concatenate([[0.0], q[:-1]])
    if daily_topup:
        days = index.normalize().asi8
        new_set |= np.concatenate([[True], days[1:] != days[:-1]])
    return np.flatnonzero((q < 0) & new_set)


def _set_prices(bars: pd.DataFrame) -> np.ndarray:
    """The price a margin is set at on each bar: its open, or on a gap bar the last close before it."""
    opens = bars["open"].to_numpy(np.float64)
    before = bars["close"].ffill().shift(1).to_numpy(np.float64) if "close" in bars.columns else opens
    return np.where(np.isfinite(opens), opens, before)


def audit_short_leg(bars: pd.DataFrame, position: pd.Series, margin: float,
                    maintenance: float = MAINTENANCE, symbol: str = "perp", daily_topup: bool = False) -> dict:
    """Every margin set of one short leg, its worst excursion and whether it was liquidated.

    Parameters
    ----------
    bars : DataFrame
        The perpetual's bars (``open``, ``high``) on a DatetimeIndex.
    position : Series
        Units held after each bar (negative: short), on ``bars.index`` (the engine's
        ``Result.positions[symbol]``).
    margin, maintenance : float
        Margin per unit of notional posted at each set; maintenance margin rate.
    daily_topup : bool
        Also reset the margin at the first bar of every UTC day the short is held (an operator
        who moves the spot leg's gains to the futures wallet after each daily decision: a
        transfer the engine does not model). Default: reset only at fills.

    Returns
    -------
    dict
        ``sets`` (number of margin sets), ``breaches`` (list of dicts: ``time``, ``set_time``,
        ``set_price``, ``excursion``, ``loss``: the margin lost, in currency, ``units``: the short's
        size, ``until``: the leg's next fill or the end of the span), ``worst_excursion``,
        ``worst_time`` (bar of the worst high), ``min_headroom`` (``threshold`` − worst excursion),
        ``threshold``, ``short_bars`` and ``gap_bars`` (held bars without a high: exchange gaps,
        skipped; a margin set on a gap bar takes the last close before it).

    Raises
    ------
    LiquidationInputError, MarginError
        See :func:`liquidation_threshold` and the messages.
    """
    threshold = liquidation_threshold(margin, maintenance)
    _check_leg(bars, position, symbol)
    q = position.to_numpy(np.float64)
    opens, highs = _set_prices(bars), bars["high"].to_numpy(np.float64)
    short = q < 0
    sets = _margin_sets(bars.index, q, daily_topup)
    out = {"symbol": symbol, "sets": int(len(sets)), "short_bars": int(short.sum()), "breaches": [],
           "gap_bars": int((short & ~np.isfinite(highs)).sum()),
           "worst_excursion": 0.0, "worst_time": None, "min_headroom": threshold, "threshold": threshold}
    for k, s in enumerate(sets):
        end = sets[k + 1] if k + 1 < len(sets) else len(q)
        stop = s + int(np.argmin(short[s:end])) if not short[s:end].all() else end
        excursion = np.nan_to_num(highs[s:stop] / opens[s] - 1.0, nan=-1.0)  # gap bars (NaN): no price, no risk
        worst = int(np.argmax(excursion))
        if excursion[worst] > out["worst_excursion"] or out["worst_time"] is None:
            out["worst_excursion"], out["worst_time"] = float(excursion[worst]), bars.index[s + worst]
        hit = np.flatnonzero(excursion >= threshold)
        if hit.size:
            out["breaches"].append({"time": bars.index[s + hit[0]], "set_time": bars.index[s],
                                    "set_price": float(opens[s]), "excursion": float(excursion[hit[0]]),
                                    "loss": float(margin * -q[s] * opens[s]), "units": float(-q[s]),
                                    "until": bars.index[stop] if stop < len(q) else None})
    out["min_headroom"] = threshold - out["worst_excursion"]
    return out


def audit_result(result, margin: float = 0.5, maintenance: float = MAINTENANCE, cash_rate: float = 0.04,
                 *, mark: str = "perp", daily_topup: bool = False) -> dict:
    """The liquidation audit of every perpetual (a symbol with ``:``) of a finished backtest.

    ``result`` is an engine :class:`~coinswarm.backtest.engine.Result` (its ``prices`` carry the
    hourly highs). ``mark="perp"`` measures the perpetual's own (last-price) highs;
    ``mark="spot"`` the spot's, a proxy of Binance's mark price (a spot index plus a basis:
    liquidation is on the mark, so last-price wicks on the perp alone do not liquidate).
    Returns the per-leg audits, the totals (``breaches``, ``worst_excursion`` and its time, the
    ``min_headroom``, the margin ``loss`` in currency) and the excess Sharpe before and after the
    losses (``sharpe_excess``, ``sharpe_after_liquidation``), and the total return before and after.
    """
    if mark not in ("perp", "spot"):
        raise ConfigError(f"mark must be 'perp' (the perpetual's highs) or 'spot' (a mark-price proxy), not {mark!r}")
    perps = [s for s in result.positions.columns if ":" in str(s)]
    legs, lost = [], pd.Series(0.0, index=result.equity.index)
    for symbol in perps:
        source = symbol if mark == "perp" else symbol.split(":")[0]
        if source not in (result.prices or {}):
            raise LiquidationInputError(f"{symbol}: the result carries no prices of {source}; audit a Result of "
                                        "simulate() over the perpetual and its spot")
        bars = result.prices[source].reindex(result.positions.index)
        leg = audit_short_leg(bars, result.positions[symbol], margin, maintenance, symbol, daily_topup)
        for b in leg["breaches"]:
            lost += shortfall(bars["close"] if "close" in bars.columns else bars["open"], b)
        legs.append(leg)
    return {"legs": legs, "margin": margin, "maintenance": maintenance, **_totals(legs, result, lost, cash_rate)}


def shortfall(close: pd.Series, breach: dict) -> pd.Series:
    """What a liquidated leg costs against the backtest that kept it, on ``close.index``: the lost
    margin minus the short's own loss since its set, from the breach to its next fill, frozen after."""
    kept = breach["units"] * (close.ffill().to_numpy(np.float64) - breach["set_price"])
    gap = np.where(np.isfinite(kept), breach["loss"] - kept, 0.0)
    index = close.index
    out = np.zeros(len(index))
    inside = (index >= breach["time"]) & ((index < breach["until"]) if breach["until"] is not None else True)
    out[inside] = gap[inside]
    if breach["until"] is not None and inside.any():
        out[index >= breach["until"]] = gap[inside][-1]
    return pd.Series(out, index=index)


def _totals(legs: list[dict], result, lost: pd.Series, cash_rate: float) -> dict:
    """The audit's headline figures over every leg, and the Sharpe of the liquidated book."""
    base = float(result.assumptions.get("init_cash", 10_000.0))
    before = returns_statistics(daily_equity_returns(result.equity, base), cash_rate)["sharpe_excess"]
    after_eq = (result.equity - lost).clip(lower=0.0)
    after = returns_statistics(daily_equity_returns(after_eq, base), cash_rate)["sharpe_excess"]
    worst = max(legs, key=lambda leg: leg["worst_excursion"]) if legs else None
    breaches = [b | {"symbol": leg["symbol"]} for leg in legs for b in leg["breaches"]]
    return {"breaches": len(breaches), "breach_list": breaches, "sets": sum(leg["sets"] for leg in legs),
            "worst_excursion": worst["worst_excursion"] if worst else math.nan,
            "worst_time": str(worst["worst_time"]) if worst and worst["worst_time"] is not None else None,
            "worst_symbol": worst["symbol"] if worst else None,
            "min_headroom": min((leg["min_headroom"] for leg in legs), default=math.nan),
            "threshold": legs[0]["threshold"] if legs else math.nan,
            "loss": float(sum(b["loss"] for b in breaches)),
            "sharpe_excess": before, "sharpe_after_liquidation": after,
            "total_return": float(result.equity.iloc[-1] / base - 1.0),
            "total_return_after_liquidation": float(after_eq.iloc[-1] / base - 1.0)}


def borrow_need(result, rates: tuple[float, ...] = BORROW_RATES) -> dict:
    """Short spot legs (symbols without ``:``) of a backtest: the margin loan they need.

    Returns ``notional_days`` (Σ over UTC days of the short spot notional at the day's close, in
    units of the equity then: 1.0 = one day of a loan the size of the book), ``mean_short``
    (its daily average, a fraction of equity), ``days`` and ``cost_per_year`` (``rate`` →
    the fraction of equity a year the loan would cost at that rate: ``mean_short × rate``).
    """
    spots = [s for s in result.positions.columns if ":" not in str(s)]
    if not spots:
        return {"notional_days": 0.0, "mean_short": 0.0, "days": 0, "cost_per_year": {f"{r:g}": 0.0 for r in rates}}
    closes = pd.DataFrame({s: result.prices[s]["close"].reindex(result.positions.index) for s in spots})
    short = (-result.positions[spots]).clip(lower=0.0) * closes.ffill()
    frac = short.sum(axis=1) / result.equity.where(result.equity > 0)
    daily = frac.groupby(frac.index.normalize()).last().fillna(0.0)
    mean = float(daily.mean()) if len(daily) else 0.0
    return {"notional_days": float(daily.sum()), "mean_short": mean, "days": int(len(daily)),
            "cost_per_year": {f"{r:g}": mean * r for r in rates}}
