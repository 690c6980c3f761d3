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
from typing import NamedTuple

import numpy as np
import pandas as pd

from coinswarm._jit import jit
from coinswarm.agents._kernels import (
    HYST_SIZE,
    P2_SIZE,
    corwin_schultz_log_nb,
    ewma_nb,
    halflife_alpha_py,
    hyst_update_nb,
    p2_push_nb,
    p2_value_nb,
    roll_mean_std_nb,
    roll_push_nb,
    roll_size,
    roll_tstat_nb,
)
from coinswarm.agents.base import Bar, check_bar, check_prices, ohlcv_arrays
from coinswarm.errors import ConfigError

DETECTOR_VERSION = 1
VOLATILITY_LABELS = ("low", "normal", "high")
TREND_LABELS = ("down", "range", "up")
LIQUIDITY_LABELS = ("liquid", "normal", "illiquid")
SESSION_LABELS = ("asia", "europe", "us")
N_REGIMES = 9  # volatility × trend: the committee learns one weight vector per cell

# state layout: scalars, three hysteresis triples, four P² estimators, two rolling windows
_COUNT, _PREV_H, _PREV_L, _PREV_C, _SPREAD, _ALPHA, RAW_SPREAD = 0, 1, 2, 3, 4, 5, 6
_HYST_VOL, _HYST_TREND, _HYST_LIQ = 7, 7 + HYST_SIZE, 7 + 2 * HYST_SIZE
_P2_VOL_LO = 7 + 3 * HYST_SIZE
_P2_VOL_HI = _P2_VOL_LO + P2_SIZE
_P2_SPR_LO = _P2_VOL_HI + P2_SIZE
_P2_SPR_HI = _P2_SPR_LO + P2_SIZE
_ROLL_VOL = _P2_SPR_HI + P2_SIZE


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
    values[_ALPHA] = halflife_alpha_py(p.spread_halflife)
    for off, label in ((_HYST_VOL, 1.0), (_HYST_TREND, 1.0), (_HYST_LIQ, 1.0)):
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


def quantile_label_py(s, o_lo, o_hi, x, p, ready, learn):
    """0 below the low quantile, 2 above the high one, else 1; then learn ``x`` if ``learn``."""
    label = 1
    if ready:
        if x < p2_value_nb(s, o_lo):
            label = 0
        elif x > p2_value_nb(s, o_hi):
            label = 2
    if learn:
        p2_push_nb(s, o_lo, p.low_quantile, x)
        p2_push_nb(s, o_hi, p.high_quantile, x)
    return label


quantile_label_nb = jit(quantile_label_py, inline=True)


def regime_step_py(s, p, t_ms, o, h, low, c):
    """Advance the detector by one bar; returns the 7 fields of :class:`RegimeLabels`."""
    return regime_core_nb(s, p, t_ms, math.log(h), math.log(low), math.log(c))


def trend_offset_py(p):
    """Where the ``trend_window`` of log returns starts in the detector's state."""
    return _ROLL_VOL + roll_size(p.vol_window)


trend_offset_nb = jit(trend_offset_py, inline=True)


def regime_core_py(s, p, t_ms, lh, ll, lc):
    """:func:`regime_step_py` given the bar's log high, low and close."""
    o_trend = trend_offset_nb(p)
    count = s[_COUNT]
    raw_vol, raw_trend, raw_liq = 1, 1, 1
    rv, tstat = 0.0, 0.0
    if count > 0.0:
        r = lc - s[_PREV_C]
        roll_push_nb(s, _ROLL_VOL, p.vol_window, r)
        roll_push_nb(s, o_trend, p.trend_window, r)
        spread = corwin_schultz_log_nb(s[_PREV_H], s[_PREV_L], lh, ll)
        s[RAW_SPREAD] = spread
        s[_SPREAD] = ewma_nb(s[_SPREAD], spread, s[_ALPHA], count > 1.0)
        learn = int(count) % p.quantile_every == 0
        ready = s[_P2_SPR_LO + 15] >= p.min_obs
        raw_liq = quantile_label_nb(s, _P2_SPR_LO, _P2_SPR_HI, s[_SPREAD], p, ready, learn)
        if s[_ROLL_VOL] >= p.vol_window:
            rv = roll_mean_std_nb(s, _ROLL_VOL)[1]
            ready = s[_P2_VOL_LO + 15] >= p.min_obs
            raw_vol = quantile_label_nb(s, _P2_VOL_LO, _P2_VOL_HI, rv, p, ready, learn)
        if s[o_trend] >= p.trend_window:
            tstat = roll_tstat_nb(s, o_trend)
            raw_trend = 2 if tstat > p.trend_t else 0 if tstat < -p.trend_t else 1
    s[_PREV_H], s[_PREV_L], s[_PREV_C] = lh, ll, lc
    s[_COUNT] = count + 1.0
    vol = hyst_update_nb(s, _HYST_VOL, float(raw_vol), p.confirm)
    trend = hyst_update_nb(s, _HYST_TREND, float(raw_trend), p.confirm)
    liq = hyst_update_nb(s, _HYST_LIQ, float(raw_liq), p.confirm)
    return int(vol), int(trend), int(liq), session_of_nb(t_ms), rv, tstat, s[_SPREAD]


regime_core_nb = jit(regime_core_py, refcount=False)


def trend_window_full_py(s, p):
    """Whether the detector's ``trend_window`` of log returns is full (its t-statistic defined)."""
    return s[trend_offset_nb(p)] >= p.trend_window


trend_window_full_nb = jit(trend_window_full_py, inline=True)
regime_step_nb = jit(regime_step_py, refcount=False)


def regime_run_py(s, p, time_ms, o, h, low, c):
    """The detector over history: ``(codes (n, 4) int64, measures (n, 3) float64)``."""
    n = c.shape[0]
    codes = np.empty((n, 4), dtype=np.int64)
    measures = np.empty((n, 3))
    for t in range(n):
        vol, trend, liq, session, rv, tstat, spread = regime_step_nb(s, p, time_ms[t], o[t], h[t], low[t], c[t])
        codes[t, 0], codes[t, 1], codes[t, 2], codes[t, 3] = vol, trend, liq, session
        measures[t, 0], measures[t, 1], measures[t, 2] = rv, tstat, spread
    return codes, measures


regime_run_nb = jit(regime_run_py)


def version_id(params: RegimeParams) -> str:
    """``"regime-v<N>-<hash of params>"``: identifies labels reproducibly."""
    digest = hashlib.sha1(repr(tuple(params)).encode()).hexdigest()[:8]
    return f"regime-v{DETECTOR_VERSION}-{digest}"


class RegimeDetector:
    """The pure detector: ``init`` → state, ``update(state, bar)`` → :class:`RegimeLabels`."""

    name = "regime"
    Params = RegimeParams

    def init(self, params: RegimeParams | None = None) -> tuple[RegimeParams, np.ndarray]:
        """``(params, state array)`` for a fresh detector."""
        params = validate_params(params or RegimeParams())
        values = np.zeros(state_size(params))
        init_state(values, params)
        return params, values

    def update(self, state: tuple[RegimeParams, np.ndarray], bar: Bar) -> RegimeLabels:
        """Advance by one closed bar (O(1)); a malformed bar raises a typed
        :class:`~coinswarm.errors.DataError` and changes nothing."""
        check_bar(bar)
        params, values = state
        out = regime_step_nb(values, params, bar.time, bar.open, bar.high, bar.low, bar.close)
        return RegimeLabels(*out)


def validate_params(p: RegimeParams) -> RegimeParams:
    """Raise :class:`ConfigError` on nonsensical detector settings."""
    if p.vol_window < 2 or p.trend_window < 2:
        raise ConfigError(f"regime windows must be ≥ 2 bars, got {p.vol_window}, {p.trend_window}")
    if not 0.0 < p.low_quantile < p.high_quantile < 1.0:
        raise ConfigError(f"need 0 < low_quantile < high_quantile < 1, got {p.low_quantile}, {p.high_quantile}")
    if p.confirm < 1 or p.min_obs < 5 or p.spread_halflife <= 0 or p.trend_t <= 0 or p.quantile_every < 1:
        raise ConfigError(f"invalid regime parameters {p._asdict()}")
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
    detector = RegimeDetector()
    params, values = detector.init(params)
    check_prices(prices, gaps)
    time_ms, o, h, low, c, _ = ohlcv_arrays(prices)
    codes, measures = regime_run_nb(values, params, time_ms, o, h, low, c)
    return labels_frame(codes, measures, prices.index, version_id(params))


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
