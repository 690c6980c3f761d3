"""The committee's compiled step: regimes → votes → weighted aggregate → risk → execution.

One call advances every member by one bar for ``m`` symbols. The same function runs
inside the history loop (:func:`committee_run_nb`) and, one bar at a time, from the live
runner (:meth:`coinswarm.committee.Committee.update`), so both paths are bit-identical.

Weights are learned online with exponentiated gradient (Hedge): after bar t closes,
each agent's previous signed, confidence-weighted vote ``vc_a`` earned
``g_a = clip(vc_a · r_t / σ, ±GAIN_CLIP)`` (r: log return, σ: EWMA vol), and the weights of
the regime cell the vote was cast in become ``w_a ∝ w_a · exp(η g_a)``; weights that fall
below ``floor`` are raised to it and the rest shrunk in proportion, so each stays ≥ ``floor``
and they sum to 1 (a silenced agent can always come back). Weights are kept per symbol and per volatility × trend cell.
"""

from __future__ import annotations

import math

import numpy as np

from coinswarm._jit import jit
from coinswarm.agents.arbitrage import pairs_step_nb
from coinswarm.agents.execution import EXEC_SIZE, execution_core_nb
from coinswarm.agents.mean_reversion import mean_reversion_core_nb
from coinswarm.agents.risk import risk_step_nb
from coinswarm.agents.trend import trend_core_nb
from coinswarm.regime.detector import N_REGIMES, RAW_SPREAD, regime_core_nb

TREND, MEAN_REVERSION, ARBITRAGE = 0, 1, 2
AGENT_NAMES = ("trend", "mean_reversion", "arbitrage")
GAIN_CLIP = 5.0
# per-symbol committee scalars: previous log close, EWMA variance, regime of the last vote, bars seen
_PREV_LC, _VAR, _REGIME, _SEEN = 0, 1, 2, 3
SCALARS = 4


def learn_weights_py(w, vc, gain_scale, eta, floor, n_agents):
    """Hedge update of one weight vector ``w`` in place from last votes ``vc``, then the floor."""
    total = 0.0
    for a in range(n_agents):
        if vc[a] != 0.0:  # a silent member's weight only moves through the normalisation
            g = vc[a] * gain_scale
            g = GAIN_CLIP if g > GAIN_CLIP else -GAIN_CLIP if g < -GAIN_CLIP else g
            w[a] *= math.exp(eta * g)
        total += w[a]
    for a in range(n_agents):
        w[a] /= total
    apply_floor_nb(w, floor, n_agents)


def apply_floor_py(w, floor, n_agents):
    """Raise weights below ``floor`` to it and shrink the others proportionally (sum stays 1)."""
    for _ in range(n_agents):
        pinned, free = 0.0, 0.0
        for a in range(n_agents):
            if w[a] <= floor:
                pinned += floor
            else:
                free += w[a]
        if pinned == 0.0:
            return
        scale = (1.0 - pinned) / free
        clean = True
        for a in range(n_agents):
            if w[a] <= floor:
                w[a] = floor
            else:
                w[a] *= scale
                clean = clean and w[a] > floor
        if clean:
            return


apply_floor_nb = jit(apply_floor_py, inline=True)


learn_weights_nb = jit(learn_weights_py, inline=True)


def member_votes_py(st, prm, j, t_ms, lh, ll, lc, vc):
    """Regime code and each member's ``vote · confidence`` for symbol ``j`` into ``vc[j]``
    (from the bar's logs, computed once for every member)."""
    reg_s, trend_s, mr_s = st[0], st[1], st[2]
    vol, trend, _, _, _, _, _ = regime_core_nb(reg_s[j], prm[0], t_ms, lh, ll, lc)
    v, k = trend_core_nb(trend_s[j], prm[1], lc)
    vc[j, TREND] = v * k
    v, k = mean_reversion_core_nb(mr_s[j], prm[2], lc)
    vc[j, MEAN_REVERSION] = v * k
    return vol * 3 + trend


member_votes_nb = jit(member_votes_py, inline=True)


def pair_votes_py(arb_s, ap, pair, c, vc):
    """Arbitrage leg votes (``pair = (y, x)`` symbol indices, ``-1`` when absent)."""
    if pair[0] < 0:
        return
    vy, vx, k = pairs_step_nb(arb_s, ap, c[pair[0]], c[pair[1]])
    vc[pair[0], ARBITRAGE] = vy * k
    vc[pair[1], ARBITRAGE] = vx * k


pair_votes_nb = jit(pair_votes_py, inline=True)


def committee_step_py(st, prm, ap, rp, ep, cp, pair, n_agents, t_ms, o, h, low, c, raw, risked,
                      target, weights_out, contrib):
    """One bar for every symbol; fills ``raw``, ``risked``, ``target``, ``weights_out`` (m, A)
    and ``contrib`` (m, A: each agent's share of the risked target). Returns the risk brake."""
    w, vc, last, sc, arb_s, risk_s, exec_s = st[3], st[4], st[5], st[6], st[7], st[8], st[9]
    m = c.shape[0]
    alpha = cp[2]
    for j in range(m):
        lc = math.log(c[j])
        if sc[j, _SEEN] > 0.0:
            r = lc - sc[j, _PREV_LC]
            sc[j, _VAR] = r * r if sc[j, _SEEN] == 1.0 else sc[j, _VAR] + alpha * (r * r - sc[j, _VAR])
            if sc[j, _VAR] > 0.0:
                learn_weights_nb(w[j, int(sc[j, _REGIME])], last[j], r / math.sqrt(sc[j, _VAR]), cp[0], cp[1],
                                 n_agents)
        sc[j, _PREV_LC] = lc
        sc[j, _SEEN] += 1.0
        vc[j, ARBITRAGE] = 0.0
        sc[j, _REGIME] = member_votes_nb(st, prm, j, t_ms, math.log(h[j]), math.log(low[j]), lc, vc)
    pair_votes_nb(arb_s, ap, pair, c, vc)
    for j in range(m):
        cell = w[j, int(sc[j, _REGIME])]
        total = 0.0
        for a in range(n_agents):
            contrib[j, a] = cell[a] * vc[j, a] / m
            total += contrib[j, a]
            weights_out[j, a] = cell[a]
            last[j, a] = vc[j, a]
        raw[j] = total
    brake = risk_step_nb(risk_s, rp, t_ms, c, raw, risked)
    for j in range(m):
        ratio = risked[j] / raw[j] if raw[j] != 0.0 else 0.0
        for a in range(n_agents):
            contrib[j, a] *= ratio
        reg = st[0][j]
        target[j] = execution_core_nb(exec_s, EXEC_SIZE * j, ep, reg[RAW_SPREAD], reg[0] > 1.0, risked[j])
    return brake


committee_step_nb = jit(committee_step_py, inline=True)


def committee_bars_py(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms, o, h, low, c, target, risked, raw,
                      weights, contrib, regime, brake):
    """The bar loop of :func:`committee_run_py` into caller-owned outputs (allocates nothing,
    so it compiles without reference counting)."""
    n, m = c.shape
    for t in range(n):
        brake[t] = committee_step_nb(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms[t], o[t], h[t], low[t],
                                     c[t], raw[t], risked[t], target[t], weights[t], contrib[t])
        for j in range(m):
            regime[t, j] = int(st[6][j, _REGIME])


committee_bars_nb = jit(committee_bars_py, refcount=False)


def committee_run_py(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms, o, h, low, c):
    """The committee over history: targets, weights, contributions, regimes, brakes."""
    n, m = c.shape
    target = np.empty((n, m))
    risked = np.empty((n, m))
    raw = np.empty((n, m))
    weights = np.empty((n, m, n_agents))
    contrib = np.empty((n, m, n_agents))
    regime = np.empty((n, m), dtype=np.int64)
    brake = np.empty(n)
    committee_bars_nb(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms, o, h, low, c, target, risked, raw,
                      weights, contrib, regime, brake)
    return target, risked, raw, weights, contrib, regime, brake


committee_run_nb = jit(committee_run_py)


def initial_weights(n_symbols: int, n_agents: int) -> np.ndarray:
    """Uniform weights for every symbol and regime cell."""
    return np.full((n_symbols, N_REGIMES, n_agents), 1.0 / n_agents)
