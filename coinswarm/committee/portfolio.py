"""The portfolio committee: daily, volatility-targeted trend and a funding-carry sleeve over N assets.

One pure step (:meth:`PortfolioCommittee.step`) consumes one closed bar per symbol (1h bars
as the live runner sees them); bars are aggregated causally into UTC days, and at the close
of a day's last bar the committee decides new target weights (filled at the next bar's open
by the engine). :meth:`PortfolioCommittee.targets` drives the same step over history, so the
backtest and the live runner share every line of the decision.

Sleeves (all parameters fixed a priori, none tuned on this data):

* **trend** — for each spot asset, Donchian breakouts on daily closes at nine horizons
  (5, 10, 20, 30, 60, 90, 150, 250, 360 days, the ensemble of Zarattini, Pagani & Barbon 2025):
  a horizon goes long on a close above its previous ``L``-day high and exits below the
  channel's midpoint (long/short: the mirror image for shorts). The asset's signal is the
  mean over horizons, in [−1, 1]; inverse-volatility sizing gives every asset the same risk
  budget; the whole book is scaled so that at full conviction its volatility (EWMA
  covariance) equals ``target_vol``; gross ≤ ``gross_cap``.
* **carry** — for each perpetual with its spot in the universe: long spot, short perp when the
  trailing 7-day funding, annualized, beats the cash the position ties up
  (``cash_rate × (1 + margin)``) by ``carry_entry``; out when it no longer beats it. The
  position's capital is its spot leg plus ``margin`` per unit of perp notional (initial margin
  and liquidation buffer: an isolated short with margin ``m`` and maintenance rate ``mm`` is
  liquidated at a rise of ``x* = (m − mm) / (1 + mm)`` from the price its margin was *set* at,
  +49.3 % at 0.5 and 0.5 %); the sleeve gets the capital the trend book leaves (equal risk
  budgets, but carry's risk is bound by capital long before it reaches its budget).
* **margin guard** — the short's margin is only re-set when the pair trades, and the no-trade
  band alone can leave it for weeks while the price rises 50 %+ (the liquidation audit of
  :mod:`coinswarm.backtest.liquidation` found 6–8 liquidations on 2019–2023 without the guard).
  So at every daily decision a pair whose perp close is more than ``carry_guard`` × ``x*``
  (default one half: +24.7 %) above the price at its last trade is rebalanced to its target even
  inside the band (both legs: selling the spot gain funds the new margin). Half, a priori: the
  check sees daily closes and the fill comes a bar later, so the other half (a further +19.8 %
  from the close that triggered, ``(1 + x*) / (1 + x*/2) − 1``) is the buffer for the
  intraday move the daily decision cannot see.

Execution: a symbol trades only when its target moved by more than ``band`` × its position
(a no-trade band relative to the position, so it does not starve with many assets), both carry
legs trade together, and positions drift with prices between decisions.

Learned sleeve weights (``learn=True``, an option): each sleeve keeps a shadow book scored every
day net of its costs and funding; a sleeve whose trailing net return (EWMA, half-life
``learn_halflife`` days) is negative gets weight 0 (:mod:`coinswarm.committee.sleeves`). The
shadow books are kept with ``learn=False`` too: :meth:`PortfolioCommittee.sleeve_weights` reports
what each sleeve holds inside the book, for its net contribution.
"""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from coinswarm._lazy import lazy_module
from coinswarm.committee.sleeves import SLEEVES, rebalance_shadow, score_day, update_composition
from coinswarm.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

HORIZONS = (5, 10, 20, 30, 60, 90, 150, 250, 360)
DAY_MS = 86_400_000
FUNDING_PER_YEAR = 3 * 365  # Binance USDT-M: every 8 h
MIN_TRADE = 5e-4  # dust: changes under 5 bps of equity never trade
MAINTENANCE = 0.005  # maintenance margin of a short perp: Binance USDT-M tier 1 (BTC 0.4 %, ETH 0.5 %)
WARMUP_DAYS = 60


class MissingFundingError(ConfigError):
    """A perpetual is in the universe without the funding series its carry sleeve needs."""


class AlignmentError(DataError):
    """Assets that cannot share one time grid (different bar lengths, no common bars)."""


class InsufficientHistoryError(DataError):
    """Too few bars for the committee's warm-up."""


class PortfolioParams(NamedTuple):
    """The portfolio committee's knobs (fixed a priori; see the module docstring)."""

    target_vol: float = 0.20
    gross_cap: float = 1.0
    band: float = 0.25
    long_short: bool = False
    trend: bool = True
    carry: bool = True
    cash_rate: float = 0.04
    margin: float = 0.5
    carry_entry: float = 0.05
    vol_halflife: float = 30.0
    cov_halflife: float = 90.0
    funding_days: float = 7.0
    learn: bool = False
    learn_halflife: float = 180.0
    cost_bps: float = 10.0
    carry_guard: float = 0.5


def guard_threshold(p: PortfolioParams) -> float:
    """The perp rise since its margin was set that forces a carry pair to rebalance: ``carry_guard``
    × the liquidation distance ``(margin − MAINTENANCE) / (1 + MAINTENANCE)`` (inf: guard off)."""
    if p.carry_guard <= 0:
        return math.inf
    return p.carry_guard * (p.margin - MAINTENANCE) / (1.0 + MAINTENANCE)


@dataclass
class PortfolioState:
    """Everything the step carries from one bar to the next (numpy arrays, no I/O)."""

    params: PortfolioParams
    symbols: tuple[str, ...]
    history: np.ndarray  # (m, max horizon + 1) daily closes, newest last, NaN before listing
    signal: np.ndarray  # (m, len(HORIZONS)) Donchian states −1/0/1
    cov: np.ndarray  # (m, m) EWMA covariance of daily returns
    var: np.ndarray  # (m,) EWMA variance of daily returns (vol_halflife)
    held: np.ndarray  # (m,) weights held (drifted with prices)
    carry_on: np.ndarray  # (pairs,) carry position open
    pending: np.ndarray  # (m,) last hourly close of the day being built
    day: int = -1  # UTC day number of ``pending`` (−1: none)
    days: int = 0  # days finalized
    clock: int = -1  # last bar time (ms)
    extra: dict = field(default_factory=dict)
    shadow: np.ndarray = field(default_factory=lambda: np.zeros((len(SLEEVES), 0)))  # each sleeve's own book
    comp: np.ndarray = field(default_factory=lambda: np.zeros((len(SLEEVES), 0)))  # each sleeve's part of held
    score: np.ndarray = field(default_factory=lambda: np.zeros(len(SLEEVES)))  # EWMA net daily return
    scored: np.ndarray = field(default_factory=lambda: np.zeros(len(SLEEVES), dtype=np.int64))  # days scored
    gate: np.ndarray = field(default_factory=lambda: np.ones(len(SLEEVES)))  # sleeve weights (0 or 1)
    pending_cost: np.ndarray = field(default_factory=lambda: np.zeros(len(SLEEVES)))  # cost owed by the books
    margin_set: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))  # perp close at the last trade of
    # each pair (row 0: the book, row 1: the carry shadow book; NaN: no short)

    def to_bytes(self) -> bytes:
        """The state as a versioned, CRC-checked blob (:mod:`coinswarm.committee.portfolio_state`)."""
        from coinswarm.committee.portfolio_state import state_to_bytes

        return state_to_bytes(self)

    @classmethod
    def from_bytes(cls, blob: bytes) -> PortfolioState:
        """The state :meth:`to_bytes` wrote (``StaleStateError``/``StateError`` on a foreign or damaged blob)."""
        from coinswarm.committee.portfolio_state import state_from_bytes

        return state_from_bytes(blob)


class PortfolioCommittee:
    """Trend + carry sleeves over N assets with shared cash (see the module docstring).

    Parameters
    ----------
    funding : dict of symbol → Series, optional
        Funding rates per 8 h interval of every perpetual in the universe (the same series the
        engine charges through ``Costs(funding=…)``). A perpetual is a symbol with ``:``
        (``"BTC/USDT:USDT"``); its spot is the part before the colon.
    name : str
        Registry name (``"portfolio"``; the baselines register variants).
    params : PortfolioParams, optional
        The defaults of this instance (what ``Params()`` gives when walk-forward has no grid).
    """

    Params = PortfolioParams
    default_grid: dict = {}
    continuous = True  # walk-forward runs it once from the first bar (as the live runner would)
    warmup_days = WARMUP_DAYS  # its warm-up is in days, on bars of any length (strategies.base.warmup_bars)
    max_leverage = 2.0  # the engine's gross cap; capital use is bounded by ``gross_cap`` itself

    def __init__(self, funding: dict | None = None, name: str = "portfolio",
                 params: PortfolioParams | None = None) -> None:
        self.funding = _check_funding(funding)
        self.name = name
        self.defaults = params or PortfolioParams()
        if not self.is_valid(self.defaults):
            raise ConfigError(f"{name}: invalid parameters {self.defaults._asdict()}: "
                              f"{self.invalid_reason(self.defaults)}")
        if params is not None:  # this instance's defaults are what ``Params()`` gives (walk-forward, sweep)
            self.Params = namedtuple("PortfolioParams", PortfolioParams._fields, defaults=tuple(params))

    @classmethod
    def default(cls, funding: dict | None = None) -> PortfolioCommittee:
        """Trend (long-only) + carry, every other parameter at its a-priori default.

        Long-only because the trend sleeve trades spot, where a short needs a margin loan whose
        cost is not modelled, and because on the development data (≤ 2023) the long/short trend
        portfolio trailed the long-only one on every universe (see ``research/reports``)."""
        return cls(funding)

    @property
    def allow_short(self) -> bool:
        """Shorts for the long/short trend and the carry's perp leg."""
        return bool(self.defaults.long_short or self.defaults.carry)

    def sleeves(self) -> dict[str, PortfolioCommittee]:
        """Each active sleeve as a committee of its own (for the report's per-sleeve statistics)."""
        p = self.defaults
        if not (p.trend and p.carry):
            return {}
        return {"trend": PortfolioCommittee(self.funding, f"{self.name}.trend", p._replace(carry=False)),
                "carry": PortfolioCommittee(self.funding, f"{self.name}.carry", p._replace(trend=False))}

    def warmup(self, params: PortfolioParams | None = None) -> int:
        """Hourly bars before the first decision: 60 days (the volatility estimate and the
        horizons up to 30 days are ready; longer horizons join as their history fills). On bars
        of another length it is 60 days of them (``warmup_days``)."""
        return WARMUP_DAYS * 24

    def is_valid(self, p: PortfolioParams) -> bool:
        """Positive vol target and gross cap, band in [0, 1), margin ≥ 0, sane cash rate; a learning
        half-life of 1 … 3650 days and a scoring cost of 0 … 1000 bps; ``carry_guard`` in [0, 1)
        (0: off), and above 0 only with a margin above the maintenance rate (a buffer to guard)."""
        return self.invalid_reason(p) is None

    def invalid_reason(self, p: PortfolioParams) -> str | None:
        """Why ``p`` is refused (None: valid)."""
        nums = (p.target_vol, p.gross_cap, p.band, p.cash_rate, p.margin, p.carry_entry, p.vol_halflife,
                p.cov_halflife, p.funding_days, p.learn_halflife, p.cost_bps, p.carry_guard)
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in nums):
            return "every numeric parameter must be a finite number"
        checks = ((p.target_vol > 0, "target_vol must be > 0"),
                  (0 < p.gross_cap <= 10, "gross_cap must be in (0, 10]"),
                  (0 <= p.band < 1, "band must be in [0, 1)"),
                  (-0.5 < p.cash_rate < 1, "cash_rate must be in (-0.5, 1)"),
                  (p.margin >= 0, "margin must be ≥ 0"),
                  (p.vol_halflife > 0 and p.cov_halflife > 0, "vol_halflife and cov_halflife must be > 0"),
                  (p.funding_days > 0, "funding_days must be > 0"),
                  (bool(p.trend or p.carry), "at least one of trend, carry must be on"),
                  (isinstance(p.learn, bool | np.bool_), "learn must be True or False"),
                  (1 <= p.learn_halflife <= 3650, "learn_halflife must be in [1, 3650] days"),
                  (0 <= p.cost_bps <= 1000, "cost_bps must be in [0, 1000]"),
                  (0 <= p.carry_guard < 1, "carry_guard must be in [0, 1) (a fraction of the liquidation distance; "
                                           "0: off)"),
                  (p.carry_guard == 0 or p.margin > MAINTENANCE,
                   f"carry_guard > 0 needs margin above the maintenance rate {MAINTENANCE} (else set carry_guard=0)"))
        return next((reason for ok, reason in checks if not ok), None)

    # -- the step protocol --------------------------------------------------------------
    def init(self, symbols, params: PortfolioParams | None = None) -> PortfolioState:
        """A fresh state for ``symbols`` (their order is the order of closes given to :meth:`step`)."""
        params = self._params(params)
        symbols = tuple(symbols)
        m = len(symbols)
        pairs = carry_pairs(symbols)
        if params.carry:
            missing = [symbols[p] for _, p in pairs if symbols[p] not in self.funding]
            if missing:
                raise MissingFundingError(
                    f"perpetual(s) {missing} have no funding series; pass Costs(funding={{symbol: Series}}) "
                    "(or build PortfolioCommittee(funding=…)), or set carry=False")
        return PortfolioState(
            params=params, symbols=symbols, history=np.full((m, max(HORIZONS) + 1), np.nan),
            signal=np.zeros((m, len(HORIZONS))), cov=np.zeros((m, m)), var=np.zeros(m), held=np.zeros(m),
            carry_on=np.zeros(len(pairs), dtype=bool), pending=np.full(m, np.nan),
            extra={"pairs": pairs, "funding": self._funding_arrays(symbols, pairs)},
            shadow=np.zeros((len(SLEEVES), m)), comp=np.zeros((len(SLEEVES), m)),
            margin_set=np.full((2, len(pairs)), np.nan),
        )

    def observe_funding(self, state: PortfolioState, symbol: str, time_ms: int, rate: float) -> None:
        """Tell the state one settled funding rate of perpetual ``symbol`` (the live path; see
        :func:`coinswarm.committee.portfolio_state.observe_funding`, which documents the errors)."""
        from coinswarm.committee.portfolio_state import observe_funding

        observe_funding(state, symbol, time_ms, rate)

    def step(self, state: PortfolioState, time_ms: int, closes: np.ndarray, bar_ms: int = 3_600_000,
             holdings: np.ndarray | None = None) -> tuple[PortfolioState, np.ndarray | None]:
        """Advance by one closed bar (one close per symbol, NaN: no bar for that symbol).

        Returns ``(state, orders)``: ``orders`` holds the target weight of every symbol that
        trades now (NaN: no order) on the bar that closes a UTC day, else None.

        ``holdings`` (optional) are the weights actually held — fractions of equity marked at
        this bar's close, one per symbol, NaN where unknown — as a venue reports them. A decision
        made in this step then compares its targets with them instead of with the weights it
        believes it holds (its last targets, drifted with prices), so an order the venue refused,
        cut or under-filled is traded again rather than left off target while the target stays
        inside the band of the belief. Without them (the backtest, the paper daemon, where the
        belief is what the engine holds) the step is unchanged. They are not kept beyond the
        decision they inform; a step that does not decide ignores them.

        Raises
        ------
        ConfigError
            ``closes`` or ``holdings`` not one value per symbol.
        DataError
            A bar not newer than the last one, a close that is ≤ 0 or ±inf, or holdings that
            are ±inf (state unchanged).
        """
        closes = np.asarray(closes, dtype=np.float64)
        if closes.shape != (len(state.symbols),):
            raise ConfigError(f"expected {len(state.symbols)} closes ({state.symbols}), got shape {closes.shape}")
        if time_ms <= state.clock:
            raise DataError(f"bar at {time_ms} ms is not newer than the last one ({state.clock} ms)")
        if np.any(np.isinf(closes)) or np.any(closes <= 0):
            raise DataError(f"closes must be positive and finite (NaN: no bar), got {closes.tolist()}")
        holdings = _check_holdings(holdings, state.symbols)
        orders = None
        day = time_ms // DAY_MS
        if state.day >= 0 and day != state.day:  # a gap swallowed the last bar of the previous day
            orders = self._decide(state, time_ms, holdings)
        have = np.isfinite(closes)
        state.pending[have] = closes[have]
        state.day, state.clock = day, time_ms
        if (time_ms + bar_ms) % DAY_MS == 0:
            orders = self._decide(state, time_ms + bar_ms, holdings)
        return state, orders

    def _decide(self, state: PortfolioState, close_ms: int, holdings: np.ndarray | None = None) -> np.ndarray:
        """Finalize the pending day and return the orders (NaN: no trade); ``holdings`` (NaN:
        unknown) replace the drifted belief of what is held before the band compares."""
        p = state.params
        closes = state.pending.copy()
        state.pending[:] = np.nan
        state.day = -1
        prev = state.history[:, -1]
        ret = np.where(np.isfinite(closes) & np.isfinite(prev), closes / prev - 1.0, 0.0)
        state.history = np.roll(state.history, -1, axis=1)
        state.history[:, -1] = np.where(np.isfinite(closes), closes, prev)
        state.days += 1
        _update_risk(state, ret, p)
        if state.days <= WARMUP_DAYS:
            _donchian(state, p.long_short)  # the breakout states follow the history from day one
            return np.full(len(state.symbols), np.nan)
        gross_r = float(state.held @ ret)
        state.held = state.held * (1.0 + ret) / (1.0 + gross_r) if 1.0 + gross_r > 0 else state.held * 0.0
        if holdings is not None:
            state.held = np.where(np.isnan(holdings), state.held, holdings)
        score_day(state, ret, close_ms, p)
        gate = state.gate if p.learn else np.ones(len(SLEEVES))
        trend = _trend_weights(state, p) if p.trend else np.zeros(len(state.symbols))
        carry = np.zeros(len(state.symbols))
        if p.carry and state.extra["pairs"]:
            carry = _carry_weights(state, p, float(np.abs(trend * gate[0]).sum()), close_ms)
        pairs, last = state.extra["pairs"], state.history[:, -1]
        for s, part in enumerate((trend, carry)):
            force = _margin_guard(state.margin_set[1], state.shadow[s], last, pairs, p) if s == 1 else None
            mask = _trade_mask(state.shadow[s], part, p, pairs, force)
            rebalance_shadow(state, s, part, mask, p)
            if s == 1:
                _reset_margin(state.margin_set[1], mask, part, last, pairs)
        parts = [trend * gate[0], carry * gate[1]]
        orders = _banded_orders(state, parts[0] + parts[1], p)
        update_composition(state, parts, np.isfinite(orders), ret)
        return orders

    # -- the pandas face -----------------------------------------------------------------
    def targets(self, prices, params: PortfolioParams | None = None) -> pd.DataFrame:
        """Orders over history (the step driven bar by bar): a DataFrame of target weights per
        symbol with NaN where no order is sent, on the prices' (outer-aligned) index."""
        return self._drive(prices, params)[0]

    def sleeve_weights(self, prices, params: PortfolioParams | None = None) -> pd.DataFrame:
        """What each sleeve holds inside the book after every daily decision (the same run as
        :meth:`targets`): columns ``(sleeve, symbol)`` for every sleeve of ``SLEEVES`` plus
        ``("gate", sleeve)`` (the learned weight, 1 without ``learn``) and ``("score", sleeve)``
        (the trailing net daily return of its shadow book); NaN on bars without a decision."""
        return self._drive(prices, params, record=True)[1]

    def _drive(self, prices, params, record: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Run the step over history; with ``record``, also each sleeve's part of the book per decision."""
        frames = self._frames(prices)
        index = next(iter(frames.values())).index
        closes = np.column_stack([f["close"].to_numpy(np.float64) for f in frames.values()])
        params = self._params(params)
        stamps = index.as_unit("ms").asi8
        bar_ms = int(np.median(np.diff(stamps))) if len(stamps) > 1 else 3_600_000
        need = WARMUP_DAYS * DAY_MS // bar_ms
        if len(index) <= need:
            raise InsufficientHistoryError(
                f"{len(index):,} bars ({index[0]} → {index[-1]}) are not more than the warm-up of "
                f"{need:,} bars ({WARMUP_DAYS} days of {bar_ms:,} ms bars); give more history")
        state = self.init(tuple(frames), params)
        out = np.full(closes.shape, np.nan)
        kept = np.full((len(stamps), len(SLEEVES) * (len(frames) + 2)), np.nan) if record else None
        for t in range(len(stamps)):
            _, orders = self.step(state, int(stamps[t]), closes[t], bar_ms)
            if orders is not None:
                out[t] = orders
                if record:
                    kept[t] = np.concatenate([state.comp.ravel(), state.gate if params.learn else
                                              np.ones(len(SLEEVES)), state.score])
        targets = pd.DataFrame(out, index=index, columns=list(frames))
        if not record:
            return targets, None
        columns = pd.MultiIndex.from_tuples([(s, sym) for s in SLEEVES for sym in frames]
                                            + [("gate", s) for s in SLEEVES] + [("score", s) for s in SLEEVES])
        return targets, pd.DataFrame(kept, index=index, columns=columns)

    def _frames(self, prices) -> dict[str, pd.DataFrame]:
        if isinstance(prices, pd.DataFrame):
            prices = {prices.attrs.get("symbol") or "asset": prices}
        if not isinstance(prices, dict) or not prices:
            raise ConfigError("prices must be an OHLCV DataFrame or a non-empty dict of them")
        steps = {}
        for symbol, frame in prices.items():
            if not isinstance(frame, pd.DataFrame) or "close" not in frame.columns \
                    or not isinstance(frame.index, pd.DatetimeIndex):
                raise ConfigError(f"prices[{symbol!r}] must be an OHLCV DataFrame on a DatetimeIndex")
            if len(frame) > 1:
                steps[symbol] = pd.Series(frame.index).diff().dropna().mode().iloc[0]
        if len(set(steps.values())) > 1:
            raise AlignmentError(f"assets have different bar lengths {dict((k, str(v)) for k, v in steps.items())}; "
                                 "resample them to one timeframe (cs.resample_ohlcv) first")
        if len(prices) > 1:
            common = None
            for frame in prices.values():
                common = frame.index if common is None else common.intersection(frame.index)
            if len(common) == 0:
                raise AlignmentError(f"assets {list(prices)} share no bar time; they cannot trade on one grid")
        index = None
        for frame in prices.values():
            index = frame.index if index is None else index.union(frame.index)
        return {s: f.reindex(index) for s, f in prices.items()}

    def _params(self, params) -> PortfolioParams:
        if params is None:
            return self.defaults
        if isinstance(params, dict):
            unknown = sorted(set(params) - set(PortfolioParams._fields))
            if unknown:
                raise ConfigError(f"{self.name} has no parameter(s) {unknown}; "
                                  f"it takes {list(PortfolioParams._fields)}")
            params = self.defaults._replace(**params)
        if not isinstance(params, tuple) or not hasattr(params, "target_vol") or not self.is_valid(params):
            reason = self.invalid_reason(params) if isinstance(params, tuple) and hasattr(params, "learn") else \
                "not a PortfolioParams"
            raise ConfigError(f"{self.name}: invalid parameters {params!r:.200}: {reason}")
        return PortfolioParams(*params)

    def _funding_arrays(self, symbols, pairs) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for _, perp in pairs:
            series = self.funding.get(symbols[perp])
            if series is None:
                out.append((np.zeros(0, dtype=np.int64), np.zeros(0)))
            else:
                out.append((series.index.as_unit("ms").asi8.astype(np.int64), series.to_numpy(np.float64)))
        return out

    def __repr__(self) -> str:
        return f"<PortfolioCommittee {self.name} {self.defaults}>"


def carry_pairs(symbols: tuple[str, ...]) -> list[tuple[int, int]]:
    """(spot index, perp index) of every perpetual whose spot is in ``symbols``.

    Raises
    ------
    ConfigError
        A perpetual whose spot is not in the universe (its hedge leg is missing).
    """
    out = []
    for j, symbol in enumerate(symbols):
        if ":" in symbol:
            spot = symbol.split(":")[0]
            if spot not in symbols:
                raise ConfigError(f"perpetual {symbol} needs its spot {spot} in the universe for the carry sleeve")
            out.append((symbols.index(spot), j))
    return out


def _check_funding(funding) -> dict:
    if funding is None:
        return {}
    if not isinstance(funding, dict):
        raise ConfigError(f"funding must be a dict of symbol → Series, not {type(funding).__name__}")
    out = {}
    for symbol, series in funding.items():
        if isinstance(series, str):
            raise ConfigError(f"funding[{symbol!r}] is the name {series!r}; the committee reads no files: pass "
                              f"cs.load_funding({series!r}) (a Series) instead")
        if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
            raise ConfigError(f"funding[{symbol!r}] must be a Series of rates on a DatetimeIndex")
        out[symbol] = series
    return out


def _check_holdings(holdings, symbols: tuple[str, ...]) -> np.ndarray | None:
    """``holdings`` as a fresh float array of one weight per symbol (NaN: unknown), or None.

    Raises
    ------
    ConfigError
        Not one value per symbol.
    DataError
        A weight that is ±inf (a venue's holdings are finite fractions of a positive equity).
    """
    if holdings is None:
        return None
    try:
        out = np.array(holdings, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"holdings must be one weight per symbol {symbols} (NaN: unknown), got "
                          f"{holdings!r:.200}") from None
    if out.shape != (len(symbols),):
        raise ConfigError(f"expected {len(symbols)} holdings ({symbols}; NaN: unknown), got shape {out.shape}")
    if np.any(np.isinf(out)):
        raise DataError(f"holdings must be finite fractions of equity (NaN: unknown), got {out.tolist()}")
    return out


def _alpha(halflife: float) -> float:
    return 1.0 - 0.5 ** (1.0 / halflife)


def _update_risk(state: PortfolioState, ret: np.ndarray, p: PortfolioParams) -> None:
    """EWMA variance (per asset) and covariance (all assets) of daily returns."""
    a, b = _alpha(p.vol_halflife), _alpha(p.cov_halflife)
    if state.days <= 1:
        return  # the first day has no return
    sq = ret * ret
    state.var = np.where(state.var > 0, (1 - a) * state.var + a * sq, sq)
    outer = np.outer(ret, ret)
    state.cov = np.where(state.cov != 0, (1 - b) * state.cov + b * outer, outer)
    state.extra["n_returns"] = state.extra.get("n_returns", 0) + 1


def _donchian(state: PortfolioState, long_short: bool) -> np.ndarray:
    """Update the breakout states of every horizon; the mean state per asset."""
    hist = state.history
    c = hist[:, -1]
    for h, length in enumerate(HORIZONS):
        window = hist[:, -length - 1:-1]
        ready = np.isfinite(window).all(axis=1) & np.isfinite(c)
        hi = np.where(ready, np.nanmax(np.where(ready[:, None], window, 0.0), axis=1), np.nan)
        lo = np.where(ready, np.nanmin(np.where(ready[:, None], window, np.inf), axis=1), np.nan)
        mid = (hi + lo) / 2.0
        s = state.signal[:, h]
        new = s.copy()
        new[(s == 0) & (c > hi)] = 1.0
        new[(s > 0) & (c < mid)] = 0.0
        new[(s < 0) & (c > mid)] = 0.0
        if long_short:
            new[(new <= 0) & (c < lo)] = -1.0
            new[(s < 0) & (c > hi)] = 1.0
        new[~ready] = 0.0
        state.signal[:, h] = new
    return state.signal.mean(axis=1)


def _trend_weights(state: PortfolioState, p: PortfolioParams) -> np.ndarray:
    """Inverse-volatility trend weights, book scaled to ``target_vol`` at full conviction."""
    spot = np.array([":" not in s for s in state.symbols])
    signal = _donchian(state, p.long_short) * spot
    ready = spot & (state.var > 0) & np.isfinite(state.history[:, -1]) & (state.extra.get("n_returns", 0) >= 20)
    weights = np.zeros(len(state.symbols))
    if not ready.any():
        return weights
    vol = np.sqrt(state.var[ready] * 365.0)
    unit = 1.0 / (ready.sum() * vol)
    cov = state.cov[np.ix_(ready, ready)] * 365.0
    book_vol = math.sqrt(max(float(unit @ cov @ unit), 1e-12))
    weights[ready] = signal[ready] * unit * (p.target_vol / book_vol)
    gross = float(np.abs(weights).sum())
    if gross > p.gross_cap:
        weights *= p.gross_cap / gross
    return weights


def _carry_weights(state: PortfolioState, p: PortfolioParams, trend_gross: float, close_ms: int) -> np.ndarray:
    """Long spot / short perp where trailing funding beats the cash the position ties up."""
    weights = np.zeros(len(state.symbols))
    pairs = state.extra["pairs"]
    hurdle = p.cash_rate * (1.0 + p.margin)
    for k, (stamps, rates) in enumerate(state.extra["funding"]):
        hi = int(np.searchsorted(stamps, close_ms, side="left"))  # settled strictly before the close
        lo = int(np.searchsorted(stamps, close_ms - int(p.funding_days * DAY_MS), side="left"))
        if hi - lo < 3:
            state.carry_on[k] = False
            continue
        annual = float(rates[lo:hi].mean()) * FUNDING_PER_YEAR
        if annual > hurdle + p.carry_entry:
            state.carry_on[k] = True
        elif annual < hurdle:
            state.carry_on[k] = False
    live = [pairs[k] for k in range(len(pairs)) if state.carry_on[k]
            and np.isfinite(state.history[pairs[k][0], -1]) and np.isfinite(state.history[pairs[k][1], -1])]
    capital = max(0.0, p.gross_cap - trend_gross)
    if not live or capital <= 0:
        return weights
    notional = capital / len(live) / (1.0 + p.margin)
    for spot, perp in live:
        weights[spot] += notional
        weights[perp] -= notional
    return weights


def _margin_guard(sets: np.ndarray, held: np.ndarray, last: np.ndarray, pairs, p: PortfolioParams) -> np.ndarray:
    """Symbols of carry pairs whose short perp closed more than :func:`guard_threshold` above the
    price its margin was set at (``sets``, one per pair): they rebalance even inside the band."""
    force = np.zeros(len(held), dtype=bool)
    limit = guard_threshold(p)
    for k, (spot, perp) in enumerate(pairs):
        if held[perp] < 0 and np.isfinite(sets[k]) and np.isfinite(last[perp]) and last[perp] / sets[k] - 1.0 > limit:
            force[spot] = force[perp] = True
    return force


def _reset_margin(sets: np.ndarray, traded: np.ndarray, target: np.ndarray, last: np.ndarray, pairs) -> None:
    """A pair whose perp traded sets its margin at the decision's close (NaN once it is no longer short)."""
    for k, (_, perp) in enumerate(pairs):
        if traded[perp]:
            sets[k] = last[perp] if target[perp] < 0 else np.nan


def _trade_mask(held: np.ndarray, target: np.ndarray, p: PortfolioParams, pairs,
                force: np.ndarray | None = None) -> np.ndarray:
    """Symbols whose target left the no-trade band around ``held`` (both carry legs together), or
    that ``force`` (the margin guard) sends back to their target."""
    change = np.abs(target - held)
    trade = (change > p.band * np.maximum(np.abs(target), np.abs(held))) & (change > MIN_TRADE)
    trade |= (target == 0) & (held != 0)
    if force is not None:
        trade |= force & (change > MIN_TRADE)
    for spot, perp in pairs:
        if trade[spot] or trade[perp]:
            trade[spot] = trade[perp] = True
    return trade


def _banded_orders(state: PortfolioState, target: np.ndarray, p: PortfolioParams) -> np.ndarray:
    """Orders for symbols whose target left the no-trade band around the held weight."""
    held, pairs, last = state.held, state.extra["pairs"], state.history[:, -1]
    trade = _trade_mask(held, target, p, pairs, _margin_guard(state.margin_set[0], held, last, pairs, p))
    orders = np.where(trade, target, np.nan)
    state.held = np.where(trade, target, held)
    _reset_margin(state.margin_set[0], trade, target, last, pairs)
    return orders
