"""The kill switch: max drawdown, daily loss (UTC day) and a manual halt, persisted in the ledger.

While halted, only cancels (which are not intents: :meth:`Broker.cancel` is always allowed)
and position reductions pass (:func:`filter_intents`). Why it trips and what lifts it:

* ``manual`` — ``coinswarm live halt``; lifted by ``resume``.
* ``drawdown`` — equity ≤ (1 − ``max_drawdown``) × peak equity; lifted by ``resume`` (which
  restarts the peak at the current equity, so it does not trip again at once).
* ``daily_loss`` — equity ≤ (1 − ``daily_loss``) × equity at the start of the UTC day; lifted
  at the next UTC day, or by ``resume``.
* ``reconcile`` — start-up found a difference it cannot explain (see
  :func:`coinswarm.live.orders.reconcile`); lifted by ``resume`` after a human looked.
* ``bankrupt`` — the paper account's equity fell to 0 or below at a close: the kernel closed
  every position there and wrote the deficit off (cash 0). Final: it replaces any other halt,
  and the paper daemon sets it again at the next bar and at every start after a ``resume``
  (the account never trades again; start a new run on another ``--db``).

:func:`update` is pure (state in, state out); :class:`KillSwitch` persists through the ledger.
:func:`limit_intents` applies the sizing limits (``max_order_notional``, ``max_position``),
which never block a reduction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from coinswarm.errors import ConfigError
from coinswarm.live.protocols import OrderIntent, Side

if TYPE_CHECKING:
    from coinswarm.live.config import RiskLimits
    from coinswarm.live.ledger import Ledger

DAY_MS = 86_400_000
REASONS = ("manual", "drawdown", "daily_loss", "reconcile", "bankrupt")


@dataclass(frozen=True, slots=True)
class KillState:
    """The persisted kill-switch state (one row of the ledger)."""

    halted: bool = False
    reason: str = ""
    detail: str = ""
    since_ms: int | None = None
    peak_equity: float | None = None
    day: int | None = None  # UTC day number (epoch ms // DAY_MS) of ``day_start_equity``
    day_start_equity: float | None = None


def halt(state: KillState, reason: str, detail: str, now_ms: int) -> KillState:
    """``state`` halted for ``reason`` (one of :data:`REASONS`); an existing halt keeps its reason."""
    if reason not in REASONS:
        raise ConfigError(f"kill switch: reason {reason!r} is not one of {', '.join(REASONS)}")
    if state.halted:
        return state
    return replace(state, halted=True, reason=reason, detail=detail, since_ms=int(now_ms))


def bankrupt(state: KillState, detail: str, now_ms: int) -> KillState:
    """``state`` halted for good: reason ``bankrupt`` replaces any other halt (unchanged if it
    is halted for that reason already)."""
    if state.halted and state.reason == "bankrupt":
        return state
    return replace(state, halted=True, reason="bankrupt", detail=detail, since_ms=int(now_ms))


def resume(state: KillState, equity: float | None = None) -> KillState:
    """Lift any halt; the drawdown peak and the day's start restart at ``equity`` if given."""
    out = replace(state, halted=False, reason="", detail="", since_ms=None)
    if equity is not None:
        out = replace(out, peak_equity=float(equity), day_start_equity=float(equity))
    return out


def update(state: KillState, equity: float, now_ms: int, limits: RiskLimits) -> KillState:
    """The state after observing ``equity`` at ``now_ms``: new peak, new UTC day (which lifts a
    ``daily_loss`` halt), and a trip on drawdown or daily loss. Pure."""
    if not math.isfinite(equity):
        raise ConfigError(f"kill switch: equity must be a finite number, got {equity!r}")
    day = int(now_ms) // DAY_MS
    if state.day != day:
        state = replace(state, day=day, day_start_equity=float(equity))
        if state.halted and state.reason == "daily_loss":
            state = resume(state)
    peak = equity if state.peak_equity is None else max(state.peak_equity, equity)
    state = replace(state, peak_equity=float(peak))
    if peak > 0 and equity <= (1.0 - limits.max_drawdown) * peak:
        return halt(state, "drawdown", f"equity {equity:.8g} is {1 - equity / peak:.2%} below its peak "
                    f"{peak:.8g} (limit {limits.max_drawdown:.2%})", now_ms)
    start = state.day_start_equity
    if start is not None and start > 0 and equity <= (1.0 - limits.daily_loss) * start:
        return halt(state, "daily_loss", f"equity {equity:.8g} is {1 - equity / start:.2%} below the UTC day's "
                    f"start {start:.8g} (limit {limits.daily_loss:.2%})", now_ms)
    return state


def is_reduction(intent: OrderIntent, position: float) -> bool:
    """Whether ``intent`` only reduces ``position`` (never flips or grows it)."""
    if intent.qty <= 0:
        return False
    if intent.side is Side.SELL:
        return position > 0 and intent.qty <= position + 1e-12
    return position < 0 and intent.qty <= -position + 1e-12


def filter_intents(intents: Iterable[OrderIntent], positions: Mapping[str, float],
                   state: KillState) -> tuple[list[OrderIntent], list[OrderIntent]]:
    """``(passed, blocked)``: everything passes while running; while halted only reductions,
    each judged against the position left by the reductions passed before it (so two sells
    cannot together flip a long). ``reduce_only`` alone does not pass an intent that would grow."""
    intents = list(intents)
    if not state.halted:
        return intents, []
    left = {s: float(q) for s, q in positions.items()}
    passed, blocked = [], []
    for intent in intents:
        position = left.get(intent.symbol, 0.0)
        if is_reduction(intent, position):
            left[intent.symbol] = position - intent.qty if intent.side is Side.SELL else position + intent.qty
            passed.append(intent)
        else:
            blocked.append(intent)
    return passed, blocked


def limit_intents(intents: Iterable[OrderIntent], positions: Mapping[str, float], prices: Mapping[str, float],
                  limits: RiskLimits) -> tuple[list[OrderIntent], list[tuple[OrderIntent, str]]]:
    """``(passed, blocked with the reason)`` under the sizing limits: an order's notional
    (``qty × price``, the intent's limit price or else ``prices[symbol]``) at most
    ``max_order_notional``, and the position after it (and the intents passed before it) at
    most ``max_position`` in absolute size — unless it is a reduction, which always passes.
    An intent without a price to judge it by is blocked."""
    left = {s: float(q) for s, q in positions.items()}
    passed: list[OrderIntent] = []
    blocked: list[tuple[OrderIntent, str]] = []
    for intent in intents:
        position = left.get(intent.symbol, 0.0)
        after = position + (intent.qty if intent.side is Side.BUY else -intent.qty)
        price = intent.price if intent.price is not None else prices.get(intent.symbol)
        if is_reduction(intent, position):
            why = ""
        elif price is None or not math.isfinite(price) or price <= 0:
            why = f"no price to size {intent.symbol} by"
        elif intent.qty * price > limits.max_order_notional:
            why = f"notional {intent.qty * price:.8g} > max_order_notional {limits.max_order_notional:.8g}"
        elif abs(after) > limits.max_position + 1e-12:
            why = f"position would be {after:.8g} {intent.symbol}, beyond max_position {limits.max_position:.8g}"
        else:
            why = ""
        if why:
            blocked.append((intent, why))
        else:
            left[intent.symbol] = after
            passed.append(intent)
    return passed, blocked


class KillSwitch:
    """The kill switch persisted in a :class:`~coinswarm.live.ledger.Ledger` (every change is one
    transaction; a restart reads it back)."""

    def __init__(self, ledger: Ledger, limits: RiskLimits) -> None:
        self.ledger, self.limits = ledger, limits

    @property
    def state(self) -> KillState:
        """The stored state."""
        return self.ledger.kill_state()

    @property
    def halted(self) -> bool:
        """Whether trading is halted."""
        return self.state.halted

    def observe(self, equity: float, now_ms: int) -> KillState:
        """Record ``equity`` (mark-to-market) and trip if a limit is crossed; stored only on change."""
        before = self.state
        after = update(before, equity, now_ms, self.limits)
        if after != before:
            self.ledger.save_kill_state(after, now_ms)
        return after

    def halt(self, now_ms: int, detail: str = "manual halt", reason: str = "manual") -> KillState:
        """Halt trading (persisted)."""
        state = halt(self.state, reason, detail, now_ms)
        self.ledger.save_kill_state(state, now_ms)
        return state

    def resume(self, now_ms: int, equity: float | None = None) -> KillState:
        """Lift the halt (persisted); see :func:`resume`."""
        state = resume(self.state, equity)
        self.ledger.save_kill_state(state, now_ms)
        return state

    def filter(self, intents: Iterable[OrderIntent]) -> tuple[list[OrderIntent], list[OrderIntent]]:
        """:func:`filter_intents` against the ledger's positions and the stored state."""
        positions = {s: p.qty for s, p in self.ledger.positions().items()}
        return filter_intents(intents, positions, self.state)
