"""Arbitrage between two legs: a statistical pair trade and a spot–perpetual carry.

**Pairs** (:class:`PairsArbitrage`, ``"arbitrage"``): a rolling OLS of ``log y`` on ``log x``
over ``window`` bars gives a hedge ratio β and residual σ; the spread's z-score
``(log y − α − β log x) / σ`` opens a position beyond ``±entry`` (long the spread when
it is cheap: long y, short β·x) and closes it inside ``±exit``. Leg weights are
``±gross / (1 + |β|)`` and ``∓gross · β / (1 + |β|)`` with β frozen at entry, so a
position's weights stay fixed until it is closed. It needs shorting (margin or perps):
its ``allow_short`` is True.

**Carry** (:class:`FundingCarry`, ``"carry"``): long spot and short the perpetual in equal
size while the EWMA of the last *settled* funding rate (known at the bar's open) is above
``enter``; flat again when it drops below ``exit``. The short perp receives funding when the
rate is positive — pass ``Costs(funding={perp_symbol: rates})`` so the engine pays it.

Both take ``{symbol: frame}`` with two entries (y or spot first). Bars where a leg is
missing get NaN targets (no order) and do not advance the state.

Live, both follow the step protocol of :mod:`coinswarm.agents.state`: ``step(state, bars)``
takes the two legs' closed bars at the same time, ``(y Bar, x Bar)`` for the pair trade and
``(spot Bar, perpetual FundingBar)`` for the carry trade (the funding rate known at the
bar's open is a field of the perpetual's bar), and returns ``(state, LegVotes)``.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from coinswarm._jit import jit
from coinswarm._lazy import lazy_module
from coinswarm.agents.base import Bar, FundingBar, check_bar, check_bar_time, check_prices, iter_bars, new_clock
from coinswarm.agents.mean_reversion import next_position_nb
from coinswarm.agents.state import State, check_layout, layout_id
from coinswarm.data.resample import align
from coinswarm.errors import ConfigError, MissingValueError, NonPositivePriceError
from coinswarm.kernels.steps import ewma_nb, halflife_alpha_py, pair_push_nb, pair_regression_nb, pair_size

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

_COUNT, _POS, _BETA, _PAIR = 0, 1, 2, 3
_EWMA, _CARRY_ALPHA = 2, 3


class ArbitrageParams(NamedTuple):
    """Regression window in bars; bands in residual standard deviations; gross exposure."""

    window: int = 720
    entry: float = 2.0
    exit: float = 0.5
    gross: float = 1.0


class CarryParams(NamedTuple):
    """Funding thresholds per funding interval (0.0001 = 1 bp per 8 h ≈ 11 %/yr)."""

    halflife: float = 72.0
    enter: float = 0.0001
    exit: float = 0.00003
    gross: float = 1.0


class LegVotes(NamedTuple):
    """A two-leg agent's opinion after a bar: each leg's vote (a weight in [-1, 1]; y or spot
    first) and the confidence in [0, 1]."""

    first: float
    second: float
    confidence: float


def pairs_step_py(s, p, cy, cx):
    """One bar of the pair trade: ``(vote_y, vote_x, confidence)``."""
    return pairs_core_nb(s, p, math.log(cy), math.log(cx))


def pairs_core_py(s, p, ly, lx):
    """:func:`pairs_step_py` given the two log closes (the committee computes them once)."""
    pair_push_nb(s, _PAIR, p.window, lx, ly)
    s[_COUNT] += 1.0
    if s[_COUNT] < p.window:
        return 0.0, 0.0, 0.0
    alpha, beta, sd = pair_regression_nb(s, _PAIR)
    if sd <= 0.0:
        return 0.0, 0.0, 0.0
    z = (ly - alpha - beta * lx) / sd
    pos = next_position_nb(s[_POS], z, p.entry, p.exit)
    if pos != 0.0 and s[_POS] == 0.0:
        s[_BETA] = beta
    s[_POS] = pos
    if pos == 0.0:
        return 0.0, 0.0, 0.0
    hedge = s[_BETA]
    scale = p.gross / (1.0 + abs(hedge))
    return pos * scale, -pos * hedge * scale, min(1.0, abs(z) / (2.0 * p.entry))


pairs_core_nb = jit(pairs_core_py, inline=True)  # also inlined into the committee's loop
pairs_step_nb = jit(pairs_step_py, refcount=False)


def carry_step_py(s, p, funding_rate):
    """One bar of the carry trade: ``(vote_spot, vote_perp, confidence)``."""
    s[_EWMA] = ewma_nb(s[_EWMA], funding_rate, s[_CARRY_ALPHA], s[_COUNT] > 0.0)
    s[_COUNT] += 1.0
    level = s[_EWMA]
    if s[_POS] == 0.0 and level > p.enter:
        s[_POS] = 1.0
    elif s[_POS] != 0.0 and level < p.exit:
        s[_POS] = 0.0
    if s[_POS] == 0.0:
        return 0.0, 0.0, 0.0
    half = p.gross / 2.0
    return half, -half, min(1.0, max(level, 0.0) / (2.0 * p.enter))


carry_step_nb = jit(carry_step_py, refcount=False)


def pairs_run_py(s, p, cy, cx):
    """Pair trade over history; rows with a missing leg are NaN and skipped."""
    n = cy.shape[0]
    out = np.full((n, 3), np.nan)
    for t in range(n):
        if cy[t] == cy[t] and cx[t] == cx[t]:
            out[t, 0], out[t, 1], out[t, 2] = pairs_step_nb(s, p, cy[t], cx[t])
    return out


pairs_run_nb = jit(pairs_run_py)


def carry_run_py(s, p, funding, spot_close, perp_close):
    """Carry trade over history; rows with a missing leg are NaN and skipped."""
    n = funding.shape[0]
    out = np.full((n, 3), np.nan)
    for t in range(n):
        if spot_close[t] == spot_close[t] and perp_close[t] == perp_close[t]:
            out[t, 0], out[t, 1], out[t, 2] = carry_step_nb(s, p, funding[t])
    return out


carry_run_nb = jit(carry_run_py)


def known_funding(index: pd.DatetimeIndex, rates: pd.Series) -> np.ndarray:
    """The last funding rate settled at or before each bar's open (0 before the first)."""
    stamps = rates.index.as_unit("ns").asi8
    rows = np.searchsorted(stamps, index.as_unit("ns").asi8, side="right") - 1
    values = rates.to_numpy(np.float64)
    return np.where(rows >= 0, values[np.clip(rows, 0, None)], 0.0)


class _TwoLegAgent:
    """Shared pandas face of the two-leg agents."""

    name = "two_leg"
    Params: type = NamedTuple
    allow_short = True
    default_grid: dict[str, list] = {}

    def _legs(self, prices) -> tuple[list[str], dict[str, pd.DataFrame]]:
        if not isinstance(prices, dict) or len(prices) != 2:
            raise ConfigError(f"{self.name} trades two legs; pass {{symbol: frame}} with two entries")
        frames = align(prices)
        for frame in frames.values():
            check_prices(frame.dropna(how="all"), "ignore")
        return list(frames), frames

    state_version = 1  # bumped when the meaning of the state array changes
    leg_types: tuple[type, type] = (Bar, Bar)  # what ``step`` takes for each leg

    @cached_property
    def layout(self) -> str:
        """The layout of this agent's states (:func:`~coinswarm.agents.state.layout_id`)."""
        return layout_id(self.name, self.state_version)

    def init(self, params=None) -> State:
        """A fresh :class:`~coinswarm.agents.state.State` for ``params`` (defaults when ``None``)."""
        from coinswarm.params import resolve_params

        params = resolve_params(self, params)
        values = np.zeros(self.state_size(params))
        self._init_state(values, params)
        return State(params, values, new_clock(), (), self.layout)

    def _init_state(self, values: np.ndarray, params) -> None:
        """Fill a zeroed state array for ``params``."""

    def step(self, state: State, bars: tuple) -> tuple[State, LegVotes]:
        """Advance ``state`` in place by one closed bar of each leg: ``(state, LegVotes)``.

        ``bars`` is ``(first leg's bar, second leg's bar)`` at the same open time (see the module
        docstring for each agent's). A malformed bar or a bar not newer than the last one raises
        a typed :class:`~coinswarm.errors.DataError`, legs at different times a
        :class:`~coinswarm.errors.ConfigError`; either changes nothing."""
        check_layout(state, self.layout, self.name, lambda: self.init(state.params))
        if not isinstance(bars, tuple | list) or len(bars) != 2:
            raise ConfigError(f"{self.name}.step takes a pair of bars (first leg, second leg), not {bars!r}")
        first, second = bars
        for leg, bar, kind in (("leg 1", first, self.leg_types[0]), ("leg 2", second, self.leg_types[1])):
            if not isinstance(bar, kind):
                raise ConfigError(f"{self.name}.step takes ({self.leg_types[0].__name__}, "
                                  f"{self.leg_types[1].__name__}); {leg} is a {type(bar).__name__}")
            bar = check_bar(bar, leg)
            first, second = (bar, second) if leg == "leg 1" else (first, bar)
        if first.time != second.time:
            raise ConfigError(f"{self.name}.step: the legs' bars must share an open time, got {first.time} "
                              f"and {second.time}")
        rate = self._check_leg_data(second)
        check_bar_time(state.clock, first.time, self.name)
        out = self._kernel_step(state, first, second, rate)
        state.clock[0] = first.time
        return state, LegVotes(float(out[0]), float(out[1]), float(out[2]))

    def _check_leg_data(self, second) -> float:
        """What the step needs beyond the two bars (the carry trade's funding rate)."""
        return 0.0

    def _kernel_step(self, state: State, first: Bar, second: Bar, rate: float) -> tuple:
        """The subclass's compiled step on checked bars: ``(vote_1, vote_2, confidence)``."""
        raise NotImplementedError(f"{type(self).__name__} defines no compiled step")

    def _frame(self, out: np.ndarray, symbols: list[str], index) -> pd.DataFrame:
        columns = pd.MultiIndex.from_tuples(
            [(symbols[0], "vote"), (symbols[1], "vote"), (symbols[0], "confidence"), (symbols[1], "confidence")]
        )
        data = np.column_stack([out[:, 0], out[:, 1], out[:, 2], out[:, 2]])
        return pd.DataFrame(data, index=index, columns=columns)

    def targets(self, prices, params=None) -> pd.DataFrame:
        """Leg weights when they change, NaN otherwise ("no order", so the engine does not
        rebalance drifting weights) and where a leg has no bar."""
        from coinswarm.agents.execution import orders_only

        votes = self.run(prices, params).xs("vote", axis=1, level=1)
        return pd.DataFrame(orders_only(votes.to_numpy()), index=votes.index, columns=votes.columns)

    def is_valid(self, p) -> bool:
        """Sensible bands and a positive gross."""
        return 0 < p.gross <= 1 and 0 <= p.exit < getattr(p, "entry", getattr(p, "enter", 0))


class PairsArbitrage(_TwoLegAgent):
    """Statistical arbitrage on the spread of two co-moving assets."""

    name = "arbitrage"
    Params = ArbitrageParams
    default_grid = {"window": [336, 720], "entry": [1.5, 2.0, 2.5]}

    def state_size(self, p: ArbitrageParams) -> int:
        """Floats of state."""
        return _PAIR + pair_size(p.window)

    def _kernel_step(self, state: State, first: Bar, second: Bar, rate: float) -> tuple:
        return pairs_step_nb(state.values, state.params, first.close, second.close)

    def update(self, state: State, closes: tuple[float, float]) -> tuple[float, float, float]:
        """One bar from bare closes ``(y, x)`` → ``(vote_y, vote_x, confidence)`` (the older
        entry point: no bar clock; :meth:`step` takes bars); a close that is not a positive,
        finite number raises a typed :class:`~coinswarm.errors.DataError` and changes nothing."""
        y, x = (_number(close) for close in closes)
        for leg, close, value in (("y", closes[0], y), ("x", closes[1], x)):
            if not 0.0 < value < math.inf:
                raise NonPositivePriceError(f"close of leg {leg} is {close!r} (not a positive, finite number)",
                                            column="close", value=close)
        check_layout(state, self.layout, self.name, lambda: self.init(state.params))
        return pairs_step_nb(state.values, state.params, y, x)

    def run(self, prices: dict, params: ArbitrageParams | None = None) -> pd.DataFrame:
        """Votes and confidence per leg, columns ``(symbol, "vote" | "confidence")``."""
        symbols, frames = self._legs(prices)
        params, values = (state := self.init(params)).params, state.values
        cy = frames[symbols[0]]["close"].to_numpy(np.float64)
        cx = frames[symbols[1]]["close"].to_numpy(np.float64)
        return self._frame(pairs_run_nb(values, params, cy, cx), symbols, frames[symbols[0]].index)

    def warmup(self, params: ArbitrageParams | None = None) -> int:
        """The regression window."""
        return int((params or ArbitrageParams()).window)

    def is_valid(self, p: ArbitrageParams) -> bool:
        """Window ≥ 3, ``0 ≤ exit < entry``, ``0 < gross ≤ 1``."""
        return p.window >= 3 and super().is_valid(p)


class FundingCarry(_TwoLegAgent):
    """Long spot / short perpetual while funding pays the short."""

    name = "carry"
    Params = CarryParams
    leg_types = (Bar, FundingBar)  # spot, then the perpetual with the funding rate known at its open
    default_grid = {"enter": [0.00005, 0.0001, 0.0002]}

    def __init__(self, funding: pd.Series | None = None) -> None:
        if funding is not None and not isinstance(funding, pd.Series):
            raise ConfigError(f"FundingCarry(funding=...) takes a Series of funding rates, not "
                              f"{type(funding).__name__}; load one with cs.load_funding(name)")
        self.funding = funding

    def state_size(self, p: CarryParams) -> int:
        """Floats of state."""
        return 4

    def _init_state(self, values: np.ndarray, params: CarryParams) -> None:
        """The EWMA factor precomputed."""
        values[_CARRY_ALPHA] = halflife_alpha_py(params.halflife)

    def _check_leg_data(self, second: FundingBar) -> float:
        """The funding rate of the perpetual's :class:`~coinswarm.agents.base.FundingBar`."""
        return _funding_rate(second.funding_rate, second.time)

    def _kernel_step(self, state: State, first: Bar, second: Bar, rate: float) -> tuple:
        return carry_step_nb(state.values, state.params, rate)

    def update(self, state: State, funding_rate: float) -> tuple[float, float, float]:
        """One bar from the bare funding rate → ``(vote_spot, vote_perp, confidence)`` (the older
        entry point: no bars, no bar clock; :meth:`step` takes the legs' bars); a rate that is
        not a finite number raises a typed :class:`~coinswarm.errors.DataError` and changes nothing."""
        rate = _funding_rate(funding_rate)
        check_layout(state, self.layout, self.name, lambda: self.init(state.params))
        return carry_step_nb(state.values, state.params, rate)

    def rates(self, perp: pd.DataFrame) -> pd.Series:
        """Funding rates: the constructor's, else those :func:`~coinswarm.data.load.load_ohlcv`
        attached to the perpetual's candles (``attrs["funding"]``). The agent reads no files."""
        funding = self.funding if self.funding is not None else perp.attrs.get("funding")
        if not isinstance(funding, pd.Series):
            raise ConfigError("carry needs funding rates: FundingCarry(funding=cs.load_funding(name)), or the "
                              "perpetual's candles from cs.load_ohlcv('binance-perp:SYMBOL:1h')")
        return funding

    def run(self, prices: dict, params: CarryParams | None = None) -> pd.DataFrame:
        """Votes per leg (spot first, perpetual second)."""
        symbols, frames = self._legs(prices)
        params, values = (state := self.init(params)).params, state.values
        spot, perp = frames[symbols[0]], frames[symbols[1]]
        funding = known_funding(spot.index, self.rates(prices[symbols[1]]))
        out = carry_run_nb(values, params, funding, spot["close"].to_numpy(np.float64),
                           perp["close"].to_numpy(np.float64))
        return self._frame(out, symbols, spot.index)

    def warmup(self, params: CarryParams | None = None) -> int:
        """About two funding intervals of 1h bars."""
        return 16

    def is_valid(self, p: CarryParams) -> bool:
        """Positive half-life, ``0 ≤ exit < enter``, ``0 < gross ≤ 1``."""
        return p.halflife > 0 and super().is_valid(p)


def _funding_rate(value, time_ms: int | None = None) -> float:
    """``value`` as a finite float, else a :class:`~coinswarm.errors.MissingValueError`."""
    rate = _number(value)
    if not math.isfinite(rate):
        raise MissingValueError(f"funding rate is {value!r} (not a finite number)", column="funding_rate",
                                value=value, timestamp=time_ms)
    return rate


def funding_bars(perp: pd.DataFrame, rates: pd.Series):
    """Yield the perpetual's :class:`~coinswarm.agents.base.FundingBar` records, each with the
    funding rate known at its open (:func:`known_funding`), oldest first (a replay feed)."""
    for bar, rate in zip(iter_bars(perp), known_funding(perp.index, rates), strict=True):
        yield FundingBar(*bar, float(rate))


def _number(value) -> float:
    """``float(value)``, or NaN for what is not a number (the caller says what was wrong)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
