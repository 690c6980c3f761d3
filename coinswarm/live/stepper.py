"""The strategies the live runner can drive: those with the one step protocol
(``init``/``step`` of :mod:`coinswarm.agents.state`), wrapped so that the runner sees one face —
:class:`Stepper` — whatever the strategy: ``decide(bars) -> targets`` for one closed bar of
every symbol, and the state's bytes for the checkpoint.

Targets follow the engine's convention (:func:`coinswarm.simulate`): the fraction of equity to
hold per symbol after the bar, NaN for "no order". They equal, bar for bar, what the strategy's
``targets(prices)`` gives the backtester over the same history:

* ``committee`` (:class:`~coinswarm.committee.Committee`) and ``execution``: the executed
  target, NaN where it equals the previous bar's (``orders_only``); the committee steps only
  at times where every symbol has a bar (the backtest runs it on the common bars);
* ``trend``, ``mean_reversion``, ``risk``: the vote, one state per symbol, each stepped on its
  own symbol's bars;
* ``portfolio`` (:class:`~coinswarm.committee.portfolio.PortfolioCommittee`, what
  :func:`coinswarm.walk_forward` runs for ``Committee.default()`` on several pairs): the orders
  of the daily decision on the bar that closes a UTC day (NaN elsewhere and for symbols inside
  their no-trade band), stepped on every time any symbol has a bar (NaN close for the others);
  the funding of its perpetuals is told one settlement at a time (:meth:`Stepper.observe_funding`).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coinswarm.agents.base import Bar
from coinswarm.agents.state import State
from coinswarm.errors import ConfigError, StateError
from coinswarm.strategies.base import warmup_bars

STEP_STRATEGIES = ("committee", "portfolio", "trend", "mean_reversion", "risk", "execution")
DAILY = "portfolio"  # the one daily, multi-asset strategy (one state over every symbol, any bar)
_ORDERS_ONLY = ("committee", "execution")


def _strategy(name: str, symbols: Sequence[str]) -> Any:
    if name not in STEP_STRATEGIES:
        raise ConfigError(f"strategy {name!r} cannot run live (it has no init/step protocol here); valid "
                          f"strategies for the live runner: {', '.join(STEP_STRATEGIES)}")
    if name == "committee":
        from coinswarm.committee import Committee

        return Committee.default()
    if name == DAILY:
        import pandas as pd

        from coinswarm.committee.portfolio import PortfolioCommittee

        empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
        return PortfolioCommittee({s: empty for s in symbols if ":" in s})  # funding is told as it settles
    from coinswarm.strategies import get_strategy

    return get_strategy(name)


class Stepper:
    """One strategy over ``symbols``, one closed bar at a time.

    Parameters
    ----------
    name : str
        One of :data:`STEP_STRATEGIES` (anything else: :class:`ConfigError` listing them).
    symbols : sequence of str
        The symbols, in the order of every target row.
    params : mapping, optional
        The strategy's parameters (``[strategy.params]`` of the config).
    """

    def __init__(self, name: str, symbols: Sequence[str], params: Mapping[str, Any] | None = None) -> None:
        self.name, self.symbols = name, tuple(symbols)
        self.strategy = _strategy(name, self.symbols)
        self.params = self.strategy._params(dict(params) if params else None)
        self.m = len(self.symbols)
        self.daily = name == DAILY
        self.joint = name == "committee" or self.daily
        self.orders_only = name in _ORDERS_ONLY
        self.allow_short = bool(getattr(self.strategy, "allow_short", False))
        self.max_leverage = float(getattr(self.strategy, "max_leverage", 1.0))
        self.states: list[State] = self._fresh()
        self.last = np.full(self.m, np.nan)  # last executed target per symbol (orders_only)
        self._target = np.full(self.m, np.nan)
        self._weights: np.ndarray | None = None  # the committee's last weights (m, agents)

    def _fresh(self) -> list[State]:
        if self.joint:
            return [self.strategy.init(self.symbols, self.params)]
        return [self.strategy.init(self.params) for _ in self.symbols]

    def warmup(self, bar_ms: int | None = None) -> int:
        """Bars the strategy needs before its first meaningful decision. The daily strategy's
        warm-up is a number of days (its ``warmup()`` counts hourly bars): with ``bar_ms`` it is
        those days in bars of that length — more would let it decide (and believe it holds)
        during a warm-up that never trades, fewer would leave it idle once live."""
        return warmup_bars(self.strategy, self.params, bar_ms)

    def decide(self, bars: Sequence[Bar | None], bar_ms: int | None = None,
               holdings: np.ndarray | None = None) -> np.ndarray:
        """Step the strategy on one closed bar per symbol (None: the symbol has no bar at this
        time) and return the target row (a reused array: copy it to keep it). ``bar_ms`` is the
        bar length (the daily strategy finds the bar that closes a UTC day with it; default 1 h).
        ``holdings``: the weights a venue actually holds at these bars' close (fractions of
        equity, NaN: unknown); the daily committee's no-trade band compares its targets with them
        (:meth:`~coinswarm.committee.portfolio.PortfolioCommittee.step`), the other strategies
        ignore them. None (the backtest and the paper daemon): the strategy's own belief."""
        target = self._target
        target[:] = np.nan
        if self.daily:
            stamp = next((b.time for b in bars if b is not None), None)
            if stamp is not None:
                closes = np.array([np.nan if b is None else b.close for b in bars], dtype=np.float64)
                _, orders = self.strategy.step(self.states[0], int(stamp), closes, int(bar_ms or 3_600_000),
                                               holdings=holdings)
                if orders is not None:
                    target[:] = orders
            return target
        if self.joint:
            if any(b is None for b in bars):
                return target  # the committee decides on the symbols' common bars only
            _, out = self.strategy.step(self.states[0], bars)
            self._weights = out.weights
            self._executed(out.target, target)
            return target
        for j, bar in enumerate(bars):
            if bar is None:
                continue
            _, vote = self.strategy.step(self.states[j], bar)
            if self.orders_only:
                self._executed(np.array([vote.vote]), target, j)
            else:
                target[j] = vote.vote
        return target

    def observe_funding(self, symbol: str, time_ms: int, rate: float) -> None:
        """Tell the strategy one settled funding rate of perpetual ``symbol`` (only the daily
        portfolio committee reads funding; the others ignore it)."""
        if self.daily and self.params.carry:
            self.strategy.observe_funding(self.states[0], symbol, time_ms, rate)

    def _executed(self, executed: np.ndarray, target: np.ndarray, j0: int = 0) -> None:
        for k, x in enumerate(executed):
            j = j0 + k
            if not x == self.last[j]:
                target[j] = x
            self.last[j] = x

    def regimes(self) -> dict[str, str]:
        """The committee's regime per symbol (``volatility/trend``, e.g. ``high/up``) after the
        last step; empty for a strategy without regimes or before the first step."""
        if not self.joint or self._weights is None:
            return {}
        from coinswarm.committee.kernel import _REGIME
        from coinswarm.regime.detector import TREND_LABELS, VOLATILITY_LABELS

        cells = self.states[0].arrays[5][:, _REGIME]
        return {s: f"{VOLATILITY_LABELS[int(c) // 3]}/{TREND_LABELS[int(c) % 3]}"
                for s, c in zip(self.symbols, cells, strict=True) if 0 <= c < 9}

    def weights(self) -> dict[str, dict[str, float]]:
        """The committee's agent weights per symbol after the last step (empty otherwise)."""
        if self._weights is None:
            return {}
        agents = self.strategy.agent_names
        return {s: {a: float(w) for a, w in zip(agents, row, strict=False)}
                for s, row in zip(self.symbols, self._weights, strict=True)}

    # -- persistence --------------------------------------------------------------------
    def to_record(self) -> dict:
        """The strategy's whole state as a JSON-able record (states' bytes in base64)."""
        return {"name": self.name, "symbols": list(self.symbols),
                "states": [base64.b64encode(s.to_bytes()).decode() for s in self.states],
                "last": [None if math.isnan(x) else float(x) for x in self.last]}

    def load_record(self, record: Mapping[str, Any]) -> None:
        """Restore :meth:`to_record` (refuses a record of another strategy or symbols)."""
        if record.get("name") != self.name or tuple(record.get("symbols", ())) != self.symbols:
            raise StateError(f"stored strategy state is {record.get('name')!r} on {record.get('symbols')}; this "
                             f"run is {self.name!r} on {list(self.symbols)} (use another --db)")
        if self.daily:
            from coinswarm.committee.portfolio import PortfolioState

            states = [PortfolioState.from_bytes(base64.b64decode(blob)) for blob in record["states"]]
        else:
            states = [State.from_bytes(base64.b64decode(blob)) for blob in record["states"]]
        if len(states) != len(self.states):
            raise StateError(f"stored strategy state holds {len(states)} states, expected {len(self.states)}")
        self.states = states
        self.last = np.array([np.nan if x is None else float(x) for x in record["last"]], dtype=np.float64)

    def targets_for_backtest(self, frames: Mapping[str, Any], funding: Mapping[str, Any] | None = None) -> Any:
        """What the backtester simulates for this strategy on ``frames`` (parity's reference;
        ``funding``: the perpetuals' whole series, which the daily committee reads at init)."""
        import pandas as pd

        if self.daily:
            from coinswarm.committee.portfolio import PortfolioCommittee

            return PortfolioCommittee(dict(funding or {})).targets(dict(frames), self.params)
        if self.joint:
            return None
        parts = {s: self.strategy.targets(frames[s], self.params) for s in self.symbols}
        if self.m == 1:
            return parts[self.symbols[0]]
        return pd.DataFrame(parts)
