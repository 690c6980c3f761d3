"""Causal regime labels, one bar at a time, with hysteresis.

Four labels per bar, each decided from bars ≤ t only:

* **volatility** — ``low / normal / high``: the per-bar standard deviation of log returns
  over ``vol_window`` bars against *expanding-window* quantiles (P² estimators at
  ``low_quantile`` and ``high_quantile``) of its own history.
* **trend** — ``down / range / up``: the t-statistic of the mean log return over
  ``trend_window`` bars against ``±trend_t``.
* **liquidity** — ``liquid / normal / illiquid``: an EWMA of the Corwin–Schultz (2012)
  high–low spread estimate against expanding quantiles of its history.
* **session** — ``asia / europe / us`` by the bar's UTC open hour: Asia 22:00–07:00,
  Europe 07:00–13:00, US 13:00–22:00 (no hysteresis: the clock decides).

A new volatility, trend or liquidity label is adopted only after it has been proposed
``confirm`` bars in a row, so labels do not flicker. Before ``min_obs`` observations the
quantile-based labels stay ``normal``. The quantile estimators learn from every
``quantile_every``-th bar: by default once per ``vol_window`` (24 bars), so the expanding
sample holds one realized volatility per non-overlapping window (daily on 1h bars) instead of
24 overlapping, nearly identical copies of it, and the detector pays for one P² update a day.
``min_obs`` counts those samples (30: the labels start after about a month of 1h bars).
``version`` identifies the detector and its parameters; stored labels carry it so they can
be recomputed or compared.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from coinswarm._jit import jit
from coinswarm._lazy import lazy_module
from coinswarm.agents.base import Bar, check_bar, check_bar_time, check_prices, new_clock, ohlcv_arrays
from coinswarm.agents.state import State, check_layout, layout_id
from coinswarm.errors import ConfigError
from coinswarm.kernels.steps import halflife_alpha_py, roll_size
from coinswarm.regime.kernel import (
    ALPHA,
    CHUNK,
    HYST_LIQ,
    HYST_TREND,
    HYST_VOL,
    N_MOVES,
    N_RF,
    RF_LIQ,
    RF_RV,
    RF_SPREAD,
    RF_TREND,
    RF_TSTAT,
    RF_VOL,
    bar_moves_nb,
    regime_chunk_nb,
    trend_offset_py,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

DETECTOR_VERSION = 1
VOLATILITY_LABELS = ("low", "normal", "high")
TREND_LABELS = ("down", "range", "up")
LIQUIDITY_LABELS = ("liquid", "normal", "illiquid")
SESSION_LABELS = ("asia", "europe", "us")
N_REGIMES = 9  # volatility × trend: the committee learns one weight vector per cell
# the cells' names, in regime-index order (volatility major): "low-vol/down" … "high-vol/up"
CELL_NAMES = [f"{v}-vol/{t}" for v in VOLATILITY_LABELS for t in TREND_LABELS]


class RegimeParams(NamedTuple):
    """Windows in bars; quantiles in (0, 1); ``confirm`` bars of hysteresis."""

    vol_window: int = 24
    trend_window: int = 168
    trend_t: float = 1.0
    spread_halflife: float = 24.0
    low_quantile: float = 0.33
    high_quantile: float = 0.67
    min_obs: int = 30
    confirm: int = 6
    quantile_every: int = 24


class RegimeLabels(NamedTuple):
    """One bar's labels (codes index the ``*_LABELS`` tuples) and the measurements."""

    volatility: int
    trend: int
    liquidity: int
    session: int
    realized_vol: float
    trend_t: float
    spread: float

    @property
    def regime(self) -> int:
        """Volatility × trend cell in ``0..8`` (what the committee keys weights on)."""
        return regime_index(self.volatility, self.trend)


def regime_index(volatility: int, trend: int) -> int:
    """Cell ``volatility * 3 + trend`` for codes volatility 0..2 and trend 0..2."""
    return int(volatility) * 3 + int(trend)


def state_size(p: RegimeParams) -> int:
    """Floats of detector state for ``p``."""
    return trend_offset_py(p) + roll_size(p.trend_window)


def init_state(values: np.ndarray, p: RegimeParams) -> None:
    """Labels start at normal / range / normal; the spread EWMA factor is precomputed."""
    values[:] = 0.0
    values[ALPHA] = halflife_alpha_py(p.spread_halflife)
    for off, label in ((HYST_VOL, 1.0), (HYST_TREND, 1.0), (HYST_LIQ, 1.0)):
        values[off] = label
        values[off + 1] = label


def session_of_py(t_ms):
    """Session code of a UTC open time in ms: 0 Asia, 1 Europe, 2 US."""
    hour = (t_ms // 3_600_000) % 24
    if 7 <= hour < 13:
        return 1
    if 13 <= hour < 22:
        return 2
    return 0


session_of_nb = jit(session_of_py, inline=True)


def regime_bars_py(s, p, time_ms, h, low, c, logs, moves, rf, codes, measures):
    """The detector over bars into caller-owned arrays: ``codes (n, 4)`` int64 (volatility,
    trend, liquidity, session) and ``measures (n, 3)`` (realized vol, trend t, spread EWMA);
    ``logs (3, n)``, ``moves (1, N_MOVES, n)`` and ``rf (1, N_RF, CHUNK)`` are scratch.
    Allocates nothing, so it compiles without reference counting."""
    n = c.shape[0]
    for t in range(n):
        logs[0, t], logs[1, t], logs[2, t] = math.log(h[t]), math.log(low[t]), math.log(c[t])
    lh, ll, lc = logs[0].reshape(n, 1), logs[1].reshape(n, 1), logs[2].reshape(n, 1)
    out = rf[0]
    bar_moves_nb(s, 0, lh, ll, lc, moves)
    for t0 in range(0, n, CHUNK):
        bars = min(CHUNK, n - t0)
        regime_chunk_nb(s, p, 0, t0, bars, moves, rf)
        for k in range(bars):
            t = t0 + k
            codes[t, 0], codes[t, 1], codes[t, 2] = int(out[RF_VOL, k]), int(out[RF_TREND, k]), int(out[RF_LIQ, k])
            codes[t, 3] = session_of_nb(time_ms[t])
            measures[t, 0], measures[t, 1], measures[t, 2] = out[RF_RV, k], out[RF_TSTAT, k], out[RF_SPREAD, k]


regime_bars_nb = jit(regime_bars_py, refcount=False)


def regime_history(s, p, time_ms, h, low, c) -> tuple[np.ndarray, np.ndarray]:
    """The detector over history: ``(codes (n, 4) int64, measures (n, 3) float64)``.

    Outputs and scratch are views of one block: past 4 MiB numpy asks the kernel for huge
    pages, so a long history costs a few page faults instead of one per 4 KiB (measured: about
    1,500 per 64k bars, which doubled the time per bar)."""
    n = c.shape[0]
    sizes = (4 * n, 3 * n, 3 * n, N_MOVES * n, N_RF * CHUNK)
    block = np.empty(sum(sizes))
    codes, measures, logs, moves, rf = (block[a - size:a] for size, a in zip(sizes, np.cumsum(sizes), strict=True))
    codes = codes.view(np.int64).reshape(n, 4)
    measures, logs = measures.reshape(n, 3), logs.reshape(3, n)
    regime_bars_nb(s, p, time_ms, h, low, c, logs, moves.reshape(1, N_MOVES, n), rf.reshape(1, N_RF, CHUNK), codes,
                   measures)
    return codes, measures


def regime_step_py(s, p, t_ms, o, h, low, c):
    """Advance the detector by one bar; returns the 7 fields of :class:`RegimeLabels`."""
    codes, measures = np.empty((1, 4), dtype=np.int64), np.empty((1, 3))
    regime_bars_nb(s, p, np.array([t_ms]), np.array([h]), np.array([low]), np.array([c]), np.empty((3, 1)),
                   np.empty((1, N_MOVES, 1)), np.empty((1, N_RF, CHUNK)), codes, measures)
    return (int(codes[0, 0]), int(codes[0, 1]), int(codes[0, 2]), int(codes[0, 3]),
            measures[0, 0], measures[0, 1], measures[0, 2])


regime_step_nb = jit(regime_step_py)


def version_id(params: RegimeParams) -> str:
    """``"regime-v<N>-<hash of params>"``: identifies labels reproducibly."""
    digest = hashlib.sha1(repr(tuple(params)).encode()).hexdigest()[:8]
    return f"regime-v{DETECTOR_VERSION}-{digest}"


class RegimeDetector:
    """The pure detector, on the step protocol of :mod:`coinswarm.agents.state`:
    ``init(params) -> State``, ``step(state, bar) -> (state, RegimeLabels)``."""

    name = "regime"
    Params = RegimeParams
    layout = layout_id(name, DETECTOR_VERSION)

    def init(self, params: RegimeParams | None = None) -> State:
        """A fresh detector state for ``params`` (defaults when ``None``)."""
        from coinswarm.params import resolve_params

        params = resolve_params(self, params)
        values = np.zeros(state_size(params))
        init_state(values, params)
        return State(params, values, new_clock(), (), self.layout)

    def step(self, state: State, bar: Bar) -> tuple[State, RegimeLabels]:
        """Advance ``state`` in place by one closed bar (O(1)): ``(state, labels)``. A malformed
        bar, or a bar not newer than the last one, raises a typed
        :class:`~coinswarm.errors.DataError` and changes nothing."""
        check_layout(state, self.layout, self.name, lambda: self.init(state.params))
        bar = check_bar(bar)
        check_bar_time(state.clock, bar.time)
        out = regime_step_nb(state.values, state.params, bar.time, bar.open, bar.high, bar.low, bar.close)
        state.clock[0] = bar.time
        return state, RegimeLabels(*out)

    def is_valid(self, params: RegimeParams) -> bool:
        """Whether ``params`` make sense (:func:`validate_params` says why not)."""
        return self.invalid_reason(params) is None

    def invalid_reason(self, params: RegimeParams) -> str | None:
        """Why ``params`` are refused, naming the valid ranges (``None`` when valid)."""
        try:
            validate_params(params)
        except ConfigError as exc:
            return str(exc)
        return None

    def update(self, state: State, bar: Bar) -> RegimeLabels:
        """``step(state, bar)[1]``: the labels only (the older name, kept for compatibility)."""
        return self.step(state, bar)[1]


def validate_params(p: RegimeParams) -> RegimeParams:
    """Raise :class:`ConfigError` on nonsensical detector settings."""
    if p.vol_window < 2 or p.trend_window < 2:
        raise ConfigError(f"regime windows must be ≥ 2 bars, got {p.vol_window}, {p.trend_window}")
    if not 0.0 < p.low_quantile < p.high_quantile < 1.0:
        raise ConfigError(f"need 0 < low_quantile < high_quantile < 1, got {p.low_quantile}, {p.high_quantile}")
    rules = (("confirm", p.confirm >= 1, "≥ 1 bar"), ("min_obs", p.min_obs >= 5, "≥ 5 bars"),
             ("spread_halflife", p.spread_halflife > 0, "> 0 bars"), ("trend_t", p.trend_t > 0, "> 0"),
             ("quantile_every", p.quantile_every >= 1, "≥ 1 bar"))
    bad = [f"{name}={getattr(p, name)!r} (valid: {valid})" for name, ok, valid in rules if not ok]
    if bad:
        raise ConfigError(f"invalid regime parameters: {', '.join(bad)}")
    return p


def regimes(prices: pd.DataFrame, params: RegimeParams | None = None, *, gaps: str = "warn") -> pd.DataFrame:
    """Causal regime labels for every bar of ``prices``.

    Parameters
    ----------
    prices : DataFrame
        One asset's OHLCV candles.
    params : RegimeParams, optional
        Detector settings (defaults suit 1h bars).
    gaps : {"warn", "raise", "ignore"}
        What to do about missing bars (each gap counts as one step).

    Returns
    -------
    DataFrame
        ``volatility``, ``trend``, ``liquidity``, ``session`` (categorical labels),
        ``regime`` (volatility × trend cell 0..8), ``realized_vol`` (per-bar std of log
        returns), ``trend_t``, ``spread`` (Corwin–Schultz EWMA) and ``version``.
    """
    state = RegimeDetector().init(params)
    check_prices(prices, gaps)
    time_ms, _, h, low, c, _ = ohlcv_arrays(prices)
    codes, measures = regime_history(state.values, state.params, time_ms, h, low, c)
    return labels_frame(codes, measures, prices.index, version_id(state.params))


def labels_frame(codes: np.ndarray, measures: np.ndarray, index: pd.Index, version: str) -> pd.DataFrame:
    """Kernel output → the labelled frame of :func:`regimes`."""
    def cat(col, labels):
        return pd.Categorical.from_codes(codes[:, col], categories=list(labels))

    return pd.DataFrame({
        "volatility": cat(0, VOLATILITY_LABELS),
        "trend": cat(1, TREND_LABELS),
        "liquidity": cat(2, LIQUIDITY_LABELS),
        "session": cat(3, SESSION_LABELS),
        "regime": codes[:, 0] * 3 + codes[:, 1],
        "realized_vol": measures[:, 0],
        "trend_t": measures[:, 1],
        "spread": measures[:, 2],
        "version": version,
    }, index=index)
