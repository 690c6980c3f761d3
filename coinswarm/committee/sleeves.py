"""Causal sleeve weighting for the portfolio committee: sleeves that do not pay their costs get no weight.

Each sleeve (trend, carry) keeps a *shadow book*: the weights it would hold alone, at full
strength, rebalanced at every daily decision under the committee's no-trade band. Every day the
shadow book is scored on that day's return, net of what it cost: price moves on the weights it
held into the day, funding received or paid on its perpetual legs (rates settled strictly before
the day's close), and ``cost_bps`` on every unit of weight it traded the day before. The score is
an exponentially weighted mean of those net daily returns (half-life ``learn_halflife`` days).
Once a sleeve has been scored for ``learn_halflife`` days, it gets weight 0 while its score is
negative and weight 1 otherwise; before that it keeps weight 1 (the a-priori design).

All of it is pure numpy on the committee's state, updated inside the same step the live runner
calls, from data up to the decision only; the shadow books keep scoring while a sleeve is off,
so a sleeve that pays again comes back.
"""

from __future__ import annotations

import numpy as np

#: The sleeves scored (rows of the state's ``shadow``/``comp`` arrays, entries of ``score``/``gate``).
SLEEVES = ("trend", "carry")


def alpha(halflife: float) -> float:
    """EWMA weight of a new observation for ``halflife`` observations."""
    return 1.0 - 0.5 ** (1.0 / halflife)


def funding_income(state, shadow: np.ndarray, prev_ms: int, close_ms: int) -> float:
    """Funding a book with weights ``shadow`` received from the rates settled in [``prev_ms``, ``close_ms``)
    (a short perp earns positive rates; a rate settled exactly at a decision counts the next day, as in
    the carry sleeve's own trailing window, which only sees rates settled strictly before the close)."""
    income = 0.0
    for k, (stamps, rates) in enumerate(state.extra["funding"]):
        perp = state.extra["pairs"][k][1]
        if shadow[perp] == 0.0 or prev_ms < 0:
            continue
        lo = int(np.searchsorted(stamps, prev_ms, side="left"))
        hi = int(np.searchsorted(stamps, close_ms, side="left"))
        income -= shadow[perp] * float(rates[lo:hi].sum())
    return income


def score_day(state, ret: np.ndarray, close_ms: int, p) -> None:
    """Score every shadow book on the day that just closed and drift it with prices; update the gates."""
    prev_ms = state.extra.get("last_decision_ms", -1)
    a = alpha(p.learn_halflife)
    for s in range(len(SLEEVES)):
        book = state.shadow[s]
        gross = float(book @ ret)
        net = gross + funding_income(state, book, prev_ms, close_ms) - state.pending_cost[s]
        state.pending_cost[s] = 0.0
        state.score[s] = net if state.scored[s] == 0 else (1.0 - a) * state.score[s] + a * net
        state.scored[s] += 1
        state.shadow[s] = book * (1.0 + ret) / (1.0 + gross) if 1.0 + gross > 0 else book * 0.0
        if p.learn and state.scored[s] >= p.learn_halflife:
            state.gate[s] = 0.0 if state.score[s] < 0 else 1.0
    state.extra["last_decision_ms"] = close_ms


def rebalance_shadow(state, s: int, target: np.ndarray, mask: np.ndarray, p) -> None:
    """Sleeve ``s``'s shadow book trades to ``target`` where ``mask``; the cost is charged on the next day."""
    book = state.shadow[s]
    state.pending_cost[s] += p.cost_bps * 1e-4 * float(np.abs(np.where(mask, target - book, 0.0)).sum())
    state.shadow[s] = np.where(mask, target, book)


def update_composition(state, parts: list[np.ndarray], traded: np.ndarray, ret: np.ndarray) -> None:
    """The weights each sleeve holds inside the real book: set where the book traded, drifted elsewhere."""
    gross = float(state.comp.sum(axis=0) @ ret)
    drift = state.comp * (1.0 + ret) / (1.0 + gross) if 1.0 + gross > 0 else state.comp * 0.0
    for s, part in enumerate(parts):
        state.comp[s] = np.where(traded, part, drift[s])
