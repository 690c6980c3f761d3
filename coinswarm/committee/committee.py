"""The committee: a strategy made of the agents, with learned per-regime weights.

Per bar and symbol: the regime detector labels the bar; trend and mean reversion (and the
pair trade, when a pair is configured) vote; votes × confidence are averaged with the
weights of the current volatility × trend cell (learned online, see
:mod:`coinswarm.committee.kernel`); the risk agent limits the aggregate (applied last to
the decision) and the execution agent turns it into fewer, smaller trades.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from coinswarm._lazy import lazy_module
from coinswarm.agents.arbitrage import ArbitrageParams, PairsArbitrage
from coinswarm.agents.base import (
    GAP_POLICIES,
    Bar,
    check_bar,
    check_bar_time,
    check_prices,
    new_clock,
    ohlcv_matrices,
)
from coinswarm.agents.execution import EXEC_SIZE, Execution, ExecutionParams, execution_init, orders_only
from coinswarm.agents.mean_reversion import MeanReversion, MeanReversionParams
from coinswarm.agents.risk import RiskParams, risk_init, risk_state_size
from coinswarm.agents.state import State, check_layout, layout_id
from coinswarm.agents.trend import Trend, TrendParams, trend_init
from coinswarm.committee.kernel import (
    AGENT_NAMES,
    SCALARS,
    committee_bars_nb,
    committee_outputs,
    committee_run,
    initial_weights,
)
from coinswarm.data.resample import align
from coinswarm.data.validate import OHLCV_COLUMNS, timeframe_ms
from coinswarm.errors import ConfigError, DataError, DuplicateTimestampError, SchemaError
from coinswarm.kernels.indicators import log_prices
from coinswarm.kernels.portfolio import screen_bars_nb
from coinswarm.kernels.steps import halflife_alpha_py
from coinswarm.regime.detector import (
    RegimeParams,
    init_state,
    state_size,
    validate_params,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")


class CommitteeParams(NamedTuple):
    """The committee's own knobs (the sweep/walk-forward grid).

    ``learning_rate`` and ``weight_floor`` drive the Hedge weights; ``target_vol`` and
    ``band`` are forwarded to the risk and execution members.
    """

    learning_rate: float = 0.1
    weight_floor: float = 0.05
    target_vol: float = 0.5
    band: float = 0.1


class CommitteeConfig(NamedTuple):
    """Members' parameters (defaults suit 1h bars)."""

    regime: RegimeParams = RegimeParams()
    trend: TrendParams = TrendParams()
    mean_reversion: MeanReversionParams = MeanReversionParams()
    arbitrage: ArbitrageParams = ArbitrageParams()
    risk: RiskParams = RiskParams()
    execution: ExecutionParams = ExecutionParams()
    vol_halflife: float = 168.0


class CommitteeOutput(NamedTuple):
    """One bar's decision: executed targets per symbol and what led to them."""

    target: np.ndarray
    risked: np.ndarray
    raw: np.ndarray
    weights: np.ndarray
    contributions: np.ndarray
    brake: float


STATE_VERSION = 1  # bumped when the committee's state arrays change meaning


class Committee:
    """Trend + mean reversion (+ pair arbitrage) → weighted vote → risk → execution."""

    name = "committee"
    Params = CommitteeParams
    default_grid = {"learning_rate": [0.03, 0.1, 0.3], "target_vol": [0.3, 0.5]}

    def __init__(self, config: CommitteeConfig | None = None, pair: tuple[str, str] | None = None) -> None:
        self.config = config or CommitteeConfig()
        self.pair = tuple(pair) if pair else None
        validate_params(self.config.regime)
        for agent, p in ((Trend(), self.config.trend), (MeanReversion(), self.config.mean_reversion),
                         (PairsArbitrage(), self.config.arbitrage), (Execution(), self.config.execution)):
            if not agent.is_valid(p):
                raise ConfigError(f"committee: invalid {agent.name} parameters {p._asdict()}")

    @classmethod
    def default(cls, pair: tuple[str, str] | None = None) -> Committee:
        """The committee with every member at its defaults."""
        return cls(pair=pair)

    def for_universe(self, prices, costs=None):
        """The strategy to run on ``prices``: this hourly committee, or — for the default
        committee given a dict of two or more assets — the daily portfolio committee
        (:class:`~coinswarm.committee.portfolio.PortfolioCommittee`, trend + carry, fed the
        funding series of ``costs``). :func:`coinswarm.walk_forward` asks this first; the hourly
        committee stays reachable as ``get_strategy("committee_hourly")`` or on one frame."""
        several = isinstance(prices, dict) and len(prices) >= 2
        if not several or self.pair is not None or self.config != CommitteeConfig():
            return self
        from coinswarm.committee.portfolio import PortfolioCommittee

        funding = getattr(costs, "funding", None)
        if funding is not None and not isinstance(funding, dict):
            raise ConfigError("the portfolio committee needs Costs(funding={perp symbol: Series}), "
                              f"not {type(funding).__name__}")
        return PortfolioCommittee.default(funding)

    @property
    def allow_short(self) -> bool:
        """Shorts are needed only for the pair trade's hedge leg."""
        return self.pair is not None

    @property
    def agent_names(self) -> tuple[str, ...]:
        """Voting members, in weight-column order."""
        return AGENT_NAMES if self.pair else AGENT_NAMES[:2]

    # -- the step protocol (coinswarm.agents.state) ---------------------------------------
    def init(self, symbols: tuple[str, ...] | list[str], params: CommitteeParams | None = None) -> State:
        """A fresh :class:`~coinswarm.agents.state.State` for ``symbols`` (their order is the
        order of bars given to :meth:`step`): its ``values`` are the kernel's arrays (see
        :mod:`coinswarm.committee.kernel`)."""
        params = self._params(params)
        symbols = tuple(symbols)
        m, n_agents, cfg = len(symbols), len(self.agent_names), self.config
        reg = np.zeros((m, state_size(cfg.regime)))
        for j in range(m):
            init_state(reg[j], cfg.regime)
        risk = np.zeros(risk_state_size(m))
        risk_init(risk, cfg.risk)
        trend = np.zeros((m, Trend().state_size(cfg.trend)))
        execution = np.zeros(EXEC_SIZE * m)
        for j in range(m):
            trend_init(trend[j], cfg.trend)
            execution_init(execution, EXEC_SIZE * j, cfg.execution)
        arb_size = PairsArbitrage().state_size(cfg.arbitrage) if self.pair else 1
        arrays = (
            reg,
            trend,
            np.zeros((m, MeanReversion().state_size(cfg.mean_reversion))),
            initial_weights(m, n_agents),
            np.zeros((m, 3)),
            np.zeros((m, SCALARS)),
            np.zeros(arb_size),
            risk,
            execution,
        )
        return State(params, arrays, new_clock(), symbols, self.layout)

    @cached_property
    def layout(self) -> str:
        """The layout of this committee's states: its version and a digest of the members'
        configuration and the pair (:func:`~coinswarm.agents.state.layout_id`)."""
        return layout_id(self.name, STATE_VERSION, self.config, self.pair)

    def step(self, state: State, bars: dict[str, Bar] | list[Bar] | tuple[Bar, ...]
             ) -> tuple[State, CommitteeOutput]:
        """Advance ``state`` in place by one closed bar per symbol (O(1) per symbol):
        ``(state, decision)``.

        ``bars`` holds one :class:`~coinswarm.agents.base.Bar` per symbol at the same open time,
        in ``state.symbols`` order, or ``{symbol: bar}``. A malformed bar, or bars not newer than
        the last ones, raise a typed :class:`~coinswarm.errors.DataError`; a missing symbol or
        bars at different times a :class:`~coinswarm.errors.ConfigError`; a state of another
        committee configuration a :class:`~coinswarm.errors.StaleStateError`. Each changes nothing."""
        check_layout(state, self.layout, self.name, lambda: self.init(state.symbols, state.params))
        if isinstance(bars, dict) and not set(state.symbols) <= set(bars):
            raise ConfigError(f"expected one bar per symbol {state.symbols}, got bars of {sorted(bars)}")
        rows = [bars[s] for s in state.symbols] if isinstance(bars, dict) else list(bars)
        if len(rows) != len(state.symbols):
            raise ConfigError(f"expected one bar per symbol {state.symbols}, got {len(rows)}")
        if len({b.time for b in rows}) != 1:
            raise ConfigError(f"bars of one step must share a timestamp, got {[b.time for b in rows]}")
        for symbol, bar in zip(state.symbols, rows, strict=True):
            check_bar(bar, symbol)  # before any state moves: a bad bar changes nothing
        check_bar_time(state.clock, rows[0].time, ",".join(state.symbols))
        h, low, c = (np.array([[getattr(b, f) for b in rows]], dtype=np.float64) for f in ("high", "low", "close"))
        n_agents = len(self.agent_names)
        out = committee_outputs(1, len(rows), n_agents)
        lh, ll, lc = log_prices(np.stack([h, low, c]))  # one call per step: this is the live hot path
        committee_bars_nb(state.arrays, *self._kernel_params(state.params, state.symbols), n_agents,
                          np.array([rows[0].time], dtype=np.int64), lh, ll, lc, c, *out)
        state.clock[0] = rows[0].time
        target, risked, raw, weights, contrib, _, brake = (x[0] for x in out[:7])
        return state, CommitteeOutput(target, risked, raw, weights, contrib, float(brake))

    def update(self, state: State, bars: dict[str, Bar] | list[Bar]) -> CommitteeOutput:
        """``step(state, bars)[1]``: the decision only (the older name, kept for compatibility)."""
        return self.step(state, bars)[1]

    # -- the pandas face --------------------------------------------------------------
    def run(self, prices: pd.DataFrame | dict[str, pd.DataFrame], params: CommitteeParams | None = None, *,
            gaps: str = "warn") -> pd.DataFrame:
        """The committee over history.

        Returns
        -------
        DataFrame
            Per symbol: ``target`` (executed), ``risked`` (after risk), ``raw`` (weighted
            vote), ``regime`` (volatility × trend cell), ``w_<agent>`` (weights in use) and
            ``c_<agent>`` (each agent's share of ``risked``); plus ``brake``. Columns are
            ``(symbol, field)`` for several symbols, flat for one DataFrame.
        """
        frames, single = self._frames(prices, gaps)
        out = self._history(frames, self._params(params))
        return self._frame(out, list(frames), next(iter(frames.values())).index, single)

    def _history(self, frames: dict[str, pd.DataFrame], params: CommitteeParams) -> tuple[np.ndarray, ...]:
        """The compiled run over validated frames: the outputs of :func:`committee_run`."""
        state = self.init(tuple(frames), params)
        time_ms, h, low, c = _hlc_matrices(frames)
        return committee_run(state.arrays, *self._kernel_params(params, state.symbols), len(self.agent_names),
                             time_ms, log_prices(h), log_prices(low), log_prices(c), c)

    def targets(self, prices, params: CommitteeParams | None = None) -> pd.Series | pd.DataFrame:
        """Executed targets with NaN on bars that need no order (a strategy for the engine)."""
        frames, single = self._frames(prices, "ignore")
        target = self._history(frames, self._params(params))[0]
        index = next(iter(frames.values())).index
        if single:
            return pd.Series(orders_only(target[:, 0]), index=index, name="target")
        shaped = pd.DataFrame(orders_only(target), index=index, columns=list(frames), copy=False)
        return shaped.reindex(next(iter(align(prices).values())).index)

    @staticmethod
    def _orders(prices, table: pd.DataFrame) -> pd.Series | pd.DataFrame:
        """The engine's targets from a :meth:`run` table (NaN: no order on that bar)."""
        if isinstance(prices, pd.DataFrame):
            return pd.Series(orders_only(table["target"].to_numpy()), index=table.index, name="target")
        target = table.xs("target", axis=1, level=1)
        shaped = pd.DataFrame(orders_only(target.to_numpy()), index=target.index, columns=target.columns)
        return shaped.reindex(next(iter(align(prices).values())).index)

    def warmup(self, params: CommitteeParams | None = None) -> int:
        """The slowest member's warm-up."""
        cfg = self.config
        return int(max(cfg.trend.slow + 1, cfg.mean_reversion.trend_window + 1, cfg.regime.trend_window + 1))

    def is_valid(self, p: CommitteeParams) -> bool:
        """``η > 0``, ``0 ≤ floor < 1/A``, positive vol target, non-negative band."""
        return (p.learning_rate > 0 and 0 <= p.weight_floor < 1.0 / len(self.agent_names)
                and p.target_vol > 0 and p.band >= 0)

    # -- helpers ------------------------------------------------------------------------
    def _params(self, params: Any) -> CommitteeParams:
        if params is None:
            return CommitteeParams()
        if isinstance(params, dict):
            from coinswarm.params import make_params

            return make_params(self, params)
        return params

    def _kernel_params(self, p: CommitteeParams, symbols: tuple[str, ...]) -> tuple:
        """The kernel's parameter arguments, built once per ``(params, symbols)`` (the live path
        asks for them every bar)."""
        cache = self.__dict__.setdefault("_kernel_params_cache", {})
        key = (p, symbols)
        if key not in cache:
            if len(cache) >= 64:
                cache.clear()
            cache[key] = self._build_kernel_params(p, symbols)
        return cache[key]

    def _build_kernel_params(self, p: CommitteeParams, symbols: tuple[str, ...]) -> tuple:
        cfg = self.config
        pair = np.array([-1, -1], dtype=np.int64)
        if self.pair:
            missing = [s for s in self.pair if s not in symbols]
            if missing:
                raise ConfigError(f"committee pair {self.pair}: no prices for {missing}")
            pair[:] = [symbols.index(self.pair[0]), symbols.index(self.pair[1])]
        members = (cfg.regime, cfg.trend, cfg.mean_reversion)
        risk = cfg.risk._replace(target_vol=float(p.target_vol))
        execution = cfg.execution._replace(band=float(p.band))
        committee = np.array([p.learning_rate, p.weight_floor, halflife_alpha_py(cfg.vol_halflife)], dtype=np.float64)
        return members, cfg.arbitrage, risk, execution, committee, pair

    def _frames(self, prices, gaps: str) -> tuple[dict[str, pd.DataFrame], bool]:
        if isinstance(prices, pd.DataFrame):
            symbol = prices.attrs.get("symbol") or "asset"
            _check_frame(prices, gaps)
            return {symbol: prices}, True
        if not isinstance(prices, dict) or not prices:
            raise ConfigError("prices must be an OHLCV DataFrame or a non-empty dict of them")
        for symbol, frame in prices.items():
            if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
                raise ConfigError(f"prices[{symbol!r}] must be an OHLCV DataFrame on a DatetimeIndex")
            if not frame.index.is_unique:
                row = int(np.flatnonzero(frame.index.duplicated())[0])
                raise DuplicateTimestampError(f"timestamp {frame.index[row]} repeats an earlier row",
                                              source=str(symbol), row=row, timestamp=frame.index[row].isoformat())
            _check_frame(frame, "ignore")  # duplicate or unsorted bars are refused before aligning
        frames = align(prices, how="inner")
        for frame in frames.values():
            _check_frame(frame, gaps)
        return frames, False

    def _frame(self, out, symbols: list[str], index, single: bool) -> pd.DataFrame:
        target, risked, raw, weights, contrib, regime, brake = out
        agents = self.agent_names
        names = ["target", "risked", "raw", *(f"w_{a}" for a in agents), *(f"c_{a}" for a in agents)]
        if single:  # one float block (columns contiguous) and the integer regime column: no copies by pandas
            block = np.empty((len(index), len(names) + 1), order="F")
            block[:, 0], block[:, 1], block[:, 2] = target[:, 0], risked[:, 0], raw[:, 0]
            block[:, 3:3 + len(agents)] = weights[:, 0, :]
            block[:, 3 + len(agents):-1] = contrib[:, 0, :]
            block[:, -1] = brake
            frame = pd.DataFrame(block, index=index, columns=[*names, "brake"], copy=False)
            frame.insert(3, "regime", regime[:, 0])
            return frame
        parts = {}
        for j, symbol in enumerate(symbols):
            cols = {"target": target[:, j], "risked": risked[:, j], "raw": raw[:, j], "regime": regime[:, j]}
            for a, agent in enumerate(agents):
                cols[f"w_{agent}"] = weights[:, j, a]
            for a, agent in enumerate(agents):
                cols[f"c_{agent}"] = contrib[:, j, a]
            parts[symbol] = pd.DataFrame(cols, index=index)
        frame = pd.concat(parts, axis=1)
        frame[("portfolio", "brake")] = brake
        return frame

    def __repr__(self) -> str:
        return f"<Committee agents={self.agent_names} pair={self.pair}>"



def _hlc_matrices(frames: dict[str, pd.DataFrame]) -> tuple[np.ndarray, ...]:
    """(time_ms, high, low, close), one column per symbol; views of one float64 block when possible."""
    if len(frames) > 1:
        time_ms, _, h, low, c, _ = ohlcv_matrices(frames)
        return time_ms, h, low, c
    frame = next(iter(frames.values()))
    time_ms = _time_ms(frame.index)
    if frame.columns.is_unique and all(dt == np.float64 for dt in frame.dtypes):
        values, names = frame.to_numpy(), list(frame.columns)
        return (time_ms, *(np.ascontiguousarray(values[:, names.index(k)]).reshape(-1, 1)
                           for k in ("high", "low", "close")))
    return (time_ms, *(np.ascontiguousarray(frame[k].to_numpy(np.float64)).reshape(-1, 1)
                       for k in ("high", "low", "close")))


def _time_ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Bar times in epoch ms as a fresh int64 array: ``index.as_unit("ms").asi8`` (which floors),
    by one integer division for µs/ns indexes (pandas' unit conversion is 4× slower on 64k bars)."""
    divisor = {"us": 1000, "ns": 1_000_000}.get(index.unit)
    if divisor is None:
        return index.as_unit("ms").asi8.astype(np.int64)
    return index.asi8 // divisor


def _check_frame(frame: pd.DataFrame, gaps: str) -> None:
    """:func:`check_prices` (typed errors, gap policy), behind a one-pass compiled screen: a clean
    UTC float64 frame without gaps costs one scan; anything else gets ``check_prices``' diagnosis."""
    if gaps in GAP_POLICIES and _clean(frame, gaps):
        return
    if isinstance(frame, pd.DataFrame):
        source = frame.attrs.get("source")
        missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
        if missing:
            raise SchemaError(f"missing column(s) {missing}; an OHLCV frame needs {list(OHLCV_COLUMNS)}",
                              source=source, column=missing[0])
        wrong = [c for c in OHLCV_COLUMNS if np.asarray(frame[c]).dtype.kind not in "fiu"]
        if wrong:
            raise SchemaError(f"column {wrong[0]!r} is not numeric; prices must be numbers", source=source,
                              column=wrong[0])
        if len(frame) == 0:
            raise DataError("prices are empty (no bars)", source=source)
    check_prices(frame, gaps)


def _clean(frame, gaps: str) -> bool:
    index = frame.index if isinstance(frame, pd.DataFrame) else None
    if not (isinstance(index, pd.DatetimeIndex) and str(index.tz) == "UTC" and len(index) >= 2
            and frame.columns.is_unique and all(c in frame.columns for c in OHLCV_COLUMNS)
            and all(dt == np.float64 for dt in frame.dtypes)):
        return False
    ts = _time_ms(index)
    timeframe = frame.attrs.get("timeframe")
    try:
        step = timeframe_ms(timeframe) if timeframe else None
    except ConfigError:
        return False
    if not step:
        return False
    values, names = frame.to_numpy(), list(frame.columns)
    cols = (np.ascontiguousarray(values[:, names.index(c)]) for c in OHLCV_COLUMNS)
    if screen_bars_nb(ts, *cols, step) >= 0:
        return False
    return gaps == "ignore" or (ts[-1] - ts[0]) // step + 1 == len(ts)
