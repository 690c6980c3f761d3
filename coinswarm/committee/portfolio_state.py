"""The portfolio committee's state as bytes (what the live daemon checkpoints), and the funding
rates the live runner tells it one settlement at a time.

The bytes are the generic :class:`~coinswarm.agents.state.State` blob (versioned header, raw
little-endian arrays, CRC-32) of layout ``portfolio-v1``: the committee's arrays in a fixed
order, its scalars (day, days finalized, returns seen, last decision) as one int64 array, and
per carry pair the funding settlements it has been told (stamps, rates). A blob of another
layout is refused with :class:`~coinswarm.errors.StaleStateError`; one whose arrays do not fit
its symbols with :class:`~coinswarm.errors.StateError`.
"""

from __future__ import annotations

import math

import numpy as np

from coinswarm.agents.state import State, layout_id
from coinswarm.committee.portfolio import (
    DAY_MS,
    HORIZONS,
    PortfolioParams,
    PortfolioState,
    carry_pairs,
)
from coinswarm.committee.sleeves import SLEEVES
from coinswarm.errors import ConfigError, DataError, StaleStateError, StateError

LAYOUT = layout_id("portfolio", 1)
#: The state's arrays in blob order (``carry_on`` stored as 0/1, ``scored`` as int64).
ARRAYS = ("history", "signal", "cov", "var", "held", "carry_on", "pending", "shadow", "comp", "score",
          "scored", "gate", "pending_cost", "margin_set")
#: Funding settlements kept beyond the carry sleeve's window (days): the shadow books' scoring
#: reads the rates since the previous decision, so a gap of up to this long loses nothing.
FUNDING_SLACK_DAYS = 30


def _shapes(m: int, pairs: int) -> dict[str, tuple[int, ...]]:
    n = len(SLEEVES)
    return {"history": (m, max(HORIZONS) + 1), "signal": (m, len(HORIZONS)), "cov": (m, m), "var": (m,),
            "held": (m,), "carry_on": (pairs,), "pending": (m,), "shadow": (n, m), "comp": (n, m), "score": (n,),
            "scored": (n,), "gate": (n,), "pending_cost": (n,), "margin_set": (2, pairs)}


def state_to_bytes(state: PortfolioState) -> bytes:
    """``state`` as a ``portfolio-v1`` blob (see the module docstring)."""
    arrays = [np.asarray(getattr(state, name), dtype=np.int64 if name == "scored" else np.float64)
              for name in ARRAYS]
    scalars = np.array([state.day, state.days, state.extra.get("n_returns", 0),
                        state.extra.get("last_decision_ms", -1)], dtype=np.int64)
    funding = []
    for stamps, rates in state.extra["funding"]:
        funding += [np.asarray(stamps, dtype=np.int64), np.asarray(rates, dtype=np.float64)]
    blob = State(state.params, (*arrays, scalars, *funding), np.array([state.clock], dtype=np.int64),
                 tuple(state.symbols), LAYOUT)
    return blob.to_bytes()


def state_from_bytes(blob: bytes) -> PortfolioState:
    """The state :func:`state_to_bytes` wrote, in fresh arrays.

    Raises
    ------
    StaleStateError
        Another layout (component or version), or parameters of another version.
    StateError
        Not a state, damaged, or arrays that do not fit its symbols.
    """
    record = State.from_bytes(blob)
    if record.layout != LAYOUT:
        raise StaleStateError(f"portfolio committee: state of layout {record.layout!r}, expected {LAYOUT!r} "
                              "(another component or version); re-initialise it")
    if not isinstance(record.params, PortfolioParams) or not isinstance(record.values, tuple):
        raise StateError(f"portfolio committee: state params are {type(record.params).__name__}, not PortfolioParams")
    symbols = tuple(record.symbols)
    try:
        pairs = carry_pairs(symbols)
    except ConfigError as exc:
        raise StateError(f"portfolio committee: stored symbols {list(symbols)} are not a universe: {exc}") from None
    shapes = _shapes(len(symbols), len(pairs))
    values = record.values
    if len(values) != len(ARRAYS) + 1 + 2 * len(pairs):
        raise StateError(f"portfolio committee: state holds {len(values)} arrays, expected "
                         f"{len(ARRAYS) + 1 + 2 * len(pairs)} for {list(symbols)}")
    fields = dict(zip(ARRAYS, values[:len(ARRAYS)], strict=True))
    wrong = [f"{k} {v.shape} (expected {shapes[k]})" for k, v in fields.items() if v.shape != shapes[k]]
    scalars = values[len(ARRAYS)]
    if wrong or scalars.shape != (4,):
        raise StateError(f"portfolio committee: state arrays do not fit {list(symbols)}: "
                         f"{', '.join(wrong) or f'scalars {scalars.shape}'}")
    funding = [(values[len(ARRAYS) + 1 + 2 * k], values[len(ARRAYS) + 2 + 2 * k]) for k in range(len(pairs))]
    if any(s.shape != r.shape or s.ndim != 1 for s, r in funding):
        raise StateError("portfolio committee: stored funding stamps and rates differ in shape")
    fields["carry_on"] = fields["carry_on"] != 0.0
    day, days, n_returns, last_decision = (int(x) for x in scalars)
    extra = {"pairs": pairs, "funding": funding, "n_returns": n_returns, "last_decision_ms": last_decision}
    return PortfolioState(params=record.params, symbols=symbols, day=day, days=days, clock=int(record.clock[0]),
                          extra=extra, **fields)


def observe_funding(state: PortfolioState, symbol: str, time_ms: int, rate: float) -> None:
    """Append one settled funding rate of the perpetual ``symbol`` (in place).

    The backtest gives the committee each perpetual's whole series at ``init`` (it only reads
    rates settled strictly before a decision's close); the live runner tells it each settlement
    instead, before the step of the bar whose close follows it — both paths see the same rates.
    Settlements older than the carry window plus :data:`FUNDING_SLACK_DAYS` are dropped, so the
    state stays small. A settlement equal to the last one told (same time, same rate) is a
    repeated delivery and changes nothing.

    Raises
    ------
    ConfigError
        ``symbol`` is not a perpetual of this state's carry pairs.
    DataError
        ``time_ms`` not an integer ≥ 0, a rate that is not a finite fraction with ``|rate| < 1``,
        or a settlement not newer than the last one told (another rate at the same time, or an
        older time); the state is unchanged.
    """
    pairs = state.extra["pairs"]
    k = next((k for k, (_, perp) in enumerate(pairs) if state.symbols[perp] == symbol), None)
    if k is None:
        perps = [state.symbols[perp] for _, perp in pairs]
        raise ConfigError(f"funding for {symbol!r}: not a perpetual of this committee's carry pairs {perps}")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int | np.integer) or time_ms < 0:
        raise DataError(f"funding for {symbol}: time_ms must be epoch milliseconds (an int ≥ 0), got {time_ms!r}")
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.number) or not abs(float(rate)) < 1.0 \
            or not math.isfinite(float(rate)):
        raise DataError(f"funding for {symbol} at {time_ms}: rate {rate!r} is not a finite fraction with |rate| < 1 "
                        "(0.0001 = 0.01 % per interval)")
    stamps, rates = state.extra["funding"][k]
    if stamps.size and time_ms <= stamps[-1]:
        if time_ms == stamps[-1] and float(rate) == rates[-1]:
            return
        raise DataError(f"funding for {symbol} at {time_ms} ({float(rate)!r}) is not newer than the last one told "
                        f"({int(stamps[-1])}: {float(rates[-1])!r}); settlements arrive once, in time order")
    keep = stamps >= int(time_ms) - int((state.params.funding_days + FUNDING_SLACK_DAYS) * DAY_MS)
    state.extra["funding"][k] = (np.append(stamps[keep], np.int64(time_ms)), np.append(rates[keep], float(rate)))
