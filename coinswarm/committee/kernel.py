"""The committee's compiled loop: regimes → votes → weighted aggregate → risk → execution.

:func:`committee_bars_py` advances every member over ``n`` bars of ``m`` symbols. The same
function runs over history (:func:`committee_run`) and, with one row per call, from the live
runner (:meth:`coinswarm.committee.Committee.update`), so both paths are bit-identical.

State (the committee's ``State.values``): regime, trend and mean-reversion states per symbol,
weights ``(m, N_REGIMES, A)``, last votes ``(m, 3)``, per-symbol scalars, the pair trade's,
the risk agent's and the execution agent's states. Trend, risk and the weights' gains all
measure volatility with the same EWMA variance of log returns (:func:`ewma_py`), and execution
smooths the same spread as the regime detector; when their half-lives and states agree (the
default) each chain runs once and the others read it (:func:`shared_chains_py`).

Weights are learned online with exponentiated gradient (Hedge): after bar t closes,
each agent's previous signed, confidence-weighted vote ``vc_a`` earned
``g_a = clip(vc_a · r_t / σ, ±GAIN_CLIP)`` (r: log return, σ: EWMA vol), and the weights of
the regime cell the vote was cast in become ``w_a ∝ w_a · exp(η g_a)``; weights that fall
below ``floor`` are raised to it and the rest shrunk in proportion, so each stays ≥ ``floor``
and they sum to 1 (a silenced agent can always come back). Weights are kept per symbol and per
volatility × trend cell; the loop holds the current cell's (at most three: trend, mean
reversion, the pair trade) in registers.

The loop runs in passes over ``CHUNK`` bars at a time, each pass one member or one step over
the whole chunk: a bar-to-bar chain kept in registers, or arithmetic with no chain at all,
which compiles to vector code. Every value is computed with the arithmetic of one bar at a
time, in the same order, so results are bit-identical however a history is split.
"""

from __future__ import annotations

import math

import numpy as np

from coinswarm._jit import jit
from coinswarm.agents.arbitrage import pairs_core_nb
from coinswarm.agents.execution import EXEC_SIZE, execution_bars_nb, execution_spread_state_nb
from coinswarm.agents.mean_reversion import mean_reversion_bars_nb, mean_reversion_core_nb
from coinswarm.agents.risk import N_RISK_MOVES, risk_run_inline_nb, risk_variance_state_nb
from coinswarm.agents.trend import (
    trend_load_nb,
    trend_next_nb,
    trend_push_nb,
    trend_store_nb,
    trend_variance_state_nb,
    trend_vote_nb,
)
from coinswarm.kernels.steps import EXP_FAST_LIMIT, ewma_nb, exp_core_nb, exp_nb
from coinswarm.regime.detector import N_REGIMES
from coinswarm.regime.kernel import (
    CHUNK,
    MOVE_LC,
    MOVE_SPREAD,
    N_MOVES,
    N_RF,
    RF_HAS_SPREAD,
    RF_SPREAD,
    RF_TREND,
    RF_TREND_N,
    RF_TSTAT,
    RF_VOL,
    bar_moves_nb,
    regime_chunk_nb,
    spread_state_nb,
)

TREND, MEAN_REVERSION, ARBITRAGE = 0, 1, 2
AGENT_NAMES = ("trend", "mean_reversion", "arbitrage")
GAIN_CLIP = 5.0
# per-symbol committee scalars: previous log close, EWMA variance, regime of the last vote, bars seen
_PREV_LC, _VAR, _REGIME, _SEEN = 0, 1, 2, 3
SCALARS = 4
# columns of the per-bar scratch ``facts`` (m, N_FACTS, CHUNK) after the regime detector's own
# (``RF_*``, see :mod:`coinswarm.regime.kernel`): learn the weights this bar, the return in
# volatility units, trend's three z, mean reversion's scratch, then the EWMA variance after the bar
F_LEARN, F_SCALE, F_Z, F_MR = N_RF, N_RF + 1, N_RF + 2, N_RF + 5
F_VAR = F_MR + 3
N_FACTS = F_VAR + 1


def clipped_gain_py(vc, gain_scale):
    """A vote's gain ``clip(vc · gain_scale, ±GAIN_CLIP)``."""
    g = vc * gain_scale
    return GAIN_CLIP if g > GAIN_CLIP else -GAIN_CLIP if g < -GAIN_CLIP else g


clipped_gain_nb = jit(clipped_gain_py, inline=True)


def hedge_factors_py(vc, gain_scale, eta, n_agents, out):
    """Each agent's Hedge factor ``exp(η · clip(vc_a · gain_scale, ±GAIN_CLIP))`` into ``out``
    (1 for a silent member: its weight only moves through the normalisation)."""
    for a in range(n_agents):
        out[a] = exp_nb(eta * clipped_gain_nb(vc[a], gain_scale)) if vc[a] != 0.0 else 1.0


hedge_factors_nb = jit(hedge_factors_py, inline=True)


def hedge_factor_py(vc, gain_scale, eta):
    """:func:`hedge_factors_py` for one vote, without a branch, for ``η · GAIN_CLIP ≤ 44``."""
    return exp_core_nb(eta * clipped_gain_nb(vc, gain_scale))


hedge_factor_nb = jit(hedge_factor_py, inline=True)


def factors_times_py(w0, w1, w2, f0, f1, f2, n_agents):
    """``w_a ∝ w_a · f_a`` normalised to sum 1, for the first ``n_agents`` (≤ 3) of three
    weights held in registers (a weight past ``n_agents`` is returned unchanged)."""
    total = 0.0
    w0 *= f0
    total += w0
    if n_agents > 1:
        w1 *= f1
        total += w1
    if n_agents > 2:
        w2 *= f2
        total += w2
    return w0 / total, w1 / total if n_agents > 1 else w1, w2 / total if n_agents > 2 else w2


factors_times_nb = jit(factors_times_py, inline=True)


def _tally_py(w, floor, pinned, free):
    """Add weight ``w`` to the pinned (at the floor) or the free mass."""
    return (pinned + floor, free) if w <= floor else (pinned, free + w)


_tally_nb = jit(_tally_py, inline=True)


def _pin_py(w, floor, scale, clean):
    """Weight ``w`` raised to the floor or shrunk by ``scale``; whether all are clear of it."""
    if w <= floor:
        return floor, clean
    w *= scale
    return w, clean and w > floor


_pin_nb = jit(_pin_py, inline=True)


def floor_weights_py(w0, w1, w2, floor, n_agents):
    """Raise weights below ``floor`` to it and shrink the others proportionally (the sum stays
    1), for the first ``n_agents`` (≤ 3) of three weights held in registers."""
    for _ in range(n_agents):
        pinned, free = _tally_nb(w0, floor, 0.0, 0.0)
        if n_agents > 1:
            pinned, free = _tally_nb(w1, floor, pinned, free)
        if n_agents > 2:
            pinned, free = _tally_nb(w2, floor, pinned, free)
        if pinned == 0.0:
            break
        scale = (1.0 - pinned) / free
        w0, clean = _pin_nb(w0, floor, scale, True)
        if n_agents > 1:
            w1, clean = _pin_nb(w1, floor, scale, clean)
        if n_agents > 2:
            w2, clean = _pin_nb(w2, floor, scale, clean)
        if clean:
            break
    return w0, w1, w2


floor_weights_nb = jit(floor_weights_py, inline=True)


def hedge_update_py(w0, w1, w2, f0, f1, f2, floor, n_agents):
    """One Hedge update in registers: :func:`factors_times_py`, then :func:`floor_weights_py`."""
    w0, w1, w2 = factors_times_nb(w0, w1, w2, f0, f1, f2, n_agents)
    return floor_weights_nb(w0, w1, w2, floor, n_agents)


hedge_update_nb = jit(hedge_update_py, inline=True)


def load_weights_py(w, n_agents):
    """The first ``n_agents`` (≤ 3) weights of ``w`` as three registers (0 past the end)."""
    return w[0], w[1] if n_agents > 1 else 0.0, w[2] if n_agents > 2 else 0.0


load_weights_nb = jit(load_weights_py, inline=True)


def store_weights_py(w, n_agents, w0, w1, w2):
    """Write three registers back to the first ``n_agents`` weights of ``w``."""
    w[0] = w0
    if n_agents > 1:
        w[1] = w1
    if n_agents > 2:
        w[2] = w2


store_weights_nb = jit(store_weights_py, inline=True)


def learn_weights_py(w, vc, gain_scale, eta, floor, n_agents):
    """Hedge update of one weight vector ``w`` (``n_agents ≤ 3``) in place from last votes
    ``vc``, then the floor (:func:`hedge_factors_py` then :func:`hedge_update_py`, as the
    committee's loop does)."""
    f = np.ones(3)
    hedge_factors_nb(vc, gain_scale, eta, n_agents, f)
    w0, w1, w2 = load_weights_nb(w, n_agents)
    store_weights_nb(w, n_agents, *hedge_update_nb(w0, w1, w2, f[0], f[1], f[2], floor, n_agents))


def trend_chunk_py(s, tp, lcj, fj, shared_var, votes):
    """Trend over the log closes ``lcj`` of one symbol: its state's serial part in registers
    (the horizons' ``z`` into ``fj[F_Z:]``), then its votes ``vote · confidence`` (branch-free,
    vector code). With ``shared_var`` the EWMA variance after each bar is read from
    ``fj[F_VAR]`` (the committee's own chain, from the same state) instead of being computed."""
    count, var, head = trend_load_nb(s)
    if shared_var:
        for k in range(lcj.shape[0]):
            var = fj[F_VAR, k]
            count, head, fj[F_Z, k], fj[F_Z + 1, k], fj[F_Z + 2, k] = trend_push_nb(s, tp, count, var, head, lcj[k])
    else:
        for k in range(lcj.shape[0]):
            count, var, head, fj[F_Z, k], fj[F_Z + 1, k], fj[F_Z + 2, k] = trend_next_nb(s, tp, count, var, head,
                                                                                        lcj[k])
    trend_store_nb(s, tp, count, var, head)
    for k in range(lcj.shape[0]):
        v, c = trend_vote_nb(fj[F_Z, k], fj[F_Z + 1, k], fj[F_Z + 2, k])
        votes[k] = v * c


trend_chunk_nb = jit(trend_chunk_py, inline=True)


def member_chunk_py(st, prm, ap, pair, t0, t1, lc, moves, regime, votes, facts, shared_var):
    """Bars ``t0 .. t1-1`` of every member that reads only prices: per symbol, the regime
    detector (its passes fill ``facts[j]``'s ``RF_*`` rows; the volatility × trend cell into
    ``regime[t]``), trend (its three ``z`` into ``facts[j, F_Z:]``) and mean reversion
    (``vote · confidence`` into ``votes[t - t0]``), then the pair trade.

    One member at a time over a short run of bars keeps each loop small enough for the CPU to
    overlap consecutive bars; every member's arithmetic is the same as bar by bar, so the
    results are bit-identical. Mean reversion reads the detector's trend t-statistic when both
    use the same ``trend_window`` (the same returns, the same sums: the same number)."""
    reg_s, trend_s, mr_s = st[0], st[1], st[2]
    shared_trend = prm[2].trend_window == prm[0].trend_window
    n = t1 - t0
    for j in range(lc.shape[1]):
        trend_j, mr_j, fj = trend_s[j], mr_s[j], facts[j]
        regime_chunk_nb(reg_s[j], prm[0], j, t0, n, moves, facts)
        for k in range(n):
            regime[t0 + k, j] = int(fj[RF_VOL, k]) * 3 + int(fj[RF_TREND, k])
        trend_chunk_nb(trend_j, prm[1], moves[j, MOVE_LC, t0:t1], fj, shared_var, votes[j, TREND])
        if shared_trend:
            mean_reversion_bars_nb(mr_j, prm[2], moves[j, MOVE_LC], t0, n, fj[RF_TSTAT], fj[RF_TREND_N],
                                   prm[0].trend_window,
                                   fj[F_MR:F_MR + 3], votes[j, MEAN_REVERSION])
        else:
            for k in range(n):
                v, c = mean_reversion_core_nb(mr_j, prm[2], lc[t0 + k, j])
                votes[j, MEAN_REVERSION, k] = v * c
        for k in range(n):
            votes[j, ARBITRAGE, k] = 0.0
    if pair[0] >= 0:
        for t in range(t0, t1):
            vy, vx, k = pairs_core_nb(st[6], ap, lc[t, pair[0]], lc[t, pair[1]])
            votes[pair[0], ARBITRAGE, t - t0] = vy * k
            votes[pair[1], ARBITRAGE, t - t0] = vx * k


member_chunk_nb = jit(member_chunk_py, inline=True)


def gain_scales_py(sc, j, alpha, t0, t1, lc, facts):
    """Bars ``t0 .. t1-1`` of symbol ``j``: this bar's return and EWMA variance (into
    ``facts[j, F_VAR]``); whether the weights learn this bar (``facts[j, F_LEARN]``) and the
    return in volatility units (``facts[j, F_SCALE]``) that the votes' gains are measured in.
    The bar-to-bar chain of the variance (smoothing ``alpha``), apart from the factors'
    arithmetic; trend and risk read the variance from here when their chains would be the same
    (:func:`shared_chains_py`)."""
    var, prev, seen = sc[j, _VAR], sc[j, _PREV_LC], sc[j, _SEEN]
    for t in range(t0, t1):
        k = t - t0
        learn, scale = 0.0, 0.0
        if seen > 0.0:
            r = lc[t, j] - prev
            var = ewma_nb(var, r * r, alpha, seen > 1.0)
            if var > 0.0:
                learn, scale = 1.0, r / math.sqrt(var)
        prev = lc[t, j]
        seen += 1.0
        facts[j, F_LEARN, k], facts[j, F_SCALE, k], facts[j, F_VAR, k] = learn, scale, var
    sc[j, _VAR], sc[j, _PREV_LC], sc[j, _SEEN] = var, prev, seen


gain_scales_nb = jit(gain_scales_py, inline=True)


def _same_chain_py(a, b):
    """Whether two variance chains' carried values ``(smoothing, bars seen, variance, previous
    log close)`` are equal (the previous close matters only once a bar has been seen)."""
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and (a[1] == 0.0 or a[3] == b[3])


_same_chain_nb = jit(_same_chain_py, inline=True)


def shared_chains_py(st, prm, cp, m):
    """Whether, for every symbol, trend's and risk's EWMA variance chains are the committee's
    own, and the execution agent's spread EWMA the regime detector's (same smoothing, same
    carried state): then they read the chain's values (``facts[j, F_VAR]``, the detector's
    ``facts[j, RF_SPREAD]``) instead of running the same arithmetic again. Checked before each
    chunk; with the default half-lives it is always true."""
    sc, trend_s, risk_s, exec_s = st[5], st[1], st[7], st[8]
    trend_same, risk_same, exec_same = True, True, True
    for j in range(m):
        own = (cp[2], sc[j, _SEEN], sc[j, _VAR], sc[j, _PREV_LC])
        trend_same = trend_same and _same_chain_nb(own, trend_variance_state_nb(trend_s[j], prm[1]))
        risk_same = risk_same and _same_chain_nb(own, risk_variance_state_nb(risk_s, j))
        exec_same = exec_same and spread_state_nb(st[0][j]) == execution_spread_state_nb(exec_s, EXEC_SIZE * j)
    return trend_same, risk_same, exec_same


shared_chains_nb = jit(shared_chains_py, inline=True)


def gains_chunk_py(st, cp, n_agents, t0, t1, lc, votes, facts, factors):
    """Bars ``t0 .. t1-1``, per symbol: the Hedge factors (:func:`hedge_factors_py`) that last
    bar's votes earned, into ``factors[t - t0]`` (``facts[j, F_LEARN, t - t0]`` says whether to
    learn, ``facts[j, F_SCALE]`` is the return in volatility units: :func:`gain_scales_py`).
    They depend on prices and votes only, so they are computed here, off the bar-to-bar chain
    of weights, risk and execution. While ``η · GAIN_CLIP`` is within the inline
    exponential's range the factors are computed without a branch (a silent member's
    ``exp(0)`` is exactly 1), so the loop over bars is vector code."""
    last, eta = st[4], cp[0]
    for j in range(lc.shape[1]):
        fj = facts[j]
        if eta * GAIN_CLIP <= EXP_FAST_LIMIT:
            for a in range(n_agents):
                factors[j, a, 0] = hedge_factor_nb(last[j, a], fj[F_SCALE, 0], eta)
                for k in range(1, t1 - t0):
                    factors[j, a, k] = hedge_factor_nb(votes[j, a, k - 1], fj[F_SCALE, k], eta)
        else:
            for k in range(t1 - t0):
                previous = last[j] if k == 0 else votes[j, :, k - 1]
                hedge_factors_nb(previous, fj[F_SCALE, k], eta, n_agents, factors[j, :, k])


gains_chunk_nb = jit(gains_chunk_py, inline=True)


def aggregate_py(w0, w1, w2, votes_j, k, m, n_agents, weights_out, contrib_out):
    """Bar ``k``'s weights into ``weights_out``, each agent's contribution ``w_a · vote_a / m``
    into ``contrib_out``; returns their sum."""
    total = 0.0
    contrib_out[0], weights_out[0] = w0 * votes_j[0, k] / m, w0
    total += contrib_out[0]
    if n_agents > 1:
        contrib_out[1], weights_out[1] = w1 * votes_j[1, k] / m, w1
        total += contrib_out[1]
    if n_agents > 2:
        contrib_out[2], weights_out[2] = w2 * votes_j[2, k] / m, w2
        total += contrib_out[2]
    return total


aggregate_nb = jit(aggregate_py, inline=True)


def weigh_chunk_py(st, cp, n_agents, t0, t1, regime, votes, facts, factors, raw, weights, contrib):
    """Bars ``t0 .. t1-1``, per symbol: the Hedge update of last bar's cell (when
    ``facts[j, F_LEARN]``), then this bar's weights, each agent's contribution
    ``w_a · vote_a / m`` and their sum, the aggregate ``raw``. The weights' bar-to-bar chain,
    apart from risk and execution, with the current cell's weights in registers (written back
    when the cell changes); the chunk's last cell and votes become the last ones."""
    w, last, sc = st[3], st[4], st[5]
    m = raw.shape[1]
    for j in range(m):
        cell = int(sc[j, _REGIME])
        w0, w1, w2 = load_weights_nb(w[j, cell], n_agents)
        for t in range(t0, t1):
            k = t - t0
            if facts[j, F_LEARN, k] != 0.0:
                w0, w1, w2 = hedge_update_nb(w0, w1, w2, factors[j, 0, k], factors[j, 1, k], factors[j, 2, k],
                                             cp[1], n_agents)
            if regime[t, j] != cell:
                store_weights_nb(w[j, cell], n_agents, w0, w1, w2)
                cell = regime[t, j]
                w0, w1, w2 = load_weights_nb(w[j, cell], n_agents)
            raw[t, j] = aggregate_nb(w0, w1, w2, votes[j], k, m, n_agents, weights[t, j], contrib[t, j])
        store_weights_nb(w[j, cell], n_agents, w0, w1, w2)
        sc[j, _REGIME] = cell
        for a in range(n_agents):
            last[j, a] = votes[j, a, t1 - t0 - 1]


weigh_chunk_nb = jit(weigh_chunk_py, inline=True)


def execute_chunk_py(st, ep, t0, t1, moves, facts, risked, raw, contrib, target, shared_spread):
    """Bars ``t0 .. t1-1``, per symbol: each agent's share of the risked target
    (``contrib · risked / raw``) and the execution agent's target (on the detector's spread
    EWMA when ``shared_spread``)."""
    exec_s = st[8]
    for j in range(raw.shape[1]):
        for t in range(t0, t1):
            ratio = risked[t, j] / raw[t, j] if raw[t, j] != 0.0 else 0.0
            for a in range(contrib.shape[2]):
                contrib[t, j, a] *= ratio
        execution_bars_nb(exec_s, EXEC_SIZE * j, ep, moves[j, MOVE_SPREAD, t0:t1], facts[j, RF_HAS_SPREAD],
                          risked[t0:t1, j], target[t0:t1, j], facts[j, RF_SPREAD], shared_spread)


execute_chunk_nb = jit(execute_chunk_py, inline=True)


def committee_bars_py(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms, lh, ll, lc, c, target, risked, raw,
                      weights, contrib, regime, brake, votes, facts, factors, moves, risk_moves):
    """The committee over bars ``(n, m)`` (logs of high, low, close, and the close) into
    caller-owned outputs: every bar's return and spread, then ``CHUNK`` bars at a time the
    members, the Hedge factors, the weights and aggregate, risk (the one step that couples the
    symbols) and execution, each over the whole chunk. Every value is the arithmetic of one bar
    at a time in the same order, so the results do not depend on where a run is split.
    ``votes`` and ``factors`` ``(m, 3, CHUNK)``, ``facts`` ``(m, N_FACTS, CHUNK)``, ``moves``
    ``(m, N_MOVES, n)`` and ``risk_moves`` ``(m, N_RISK_MOVES, CHUNK)`` are scratch. Allocates
    nothing, so it compiles without reference counting. The live runner calls it with one row
    per bar: the same code as a backtest."""
    n = c.shape[0]
    for j in range(c.shape[1]):
        bar_moves_nb(st[0][j], j, lh, ll, lc, moves)
    for t0 in range(0, n, CHUNK):
        t1 = min(n, t0 + CHUNK)
        shared = shared_chains_nb(st, prm, cp, c.shape[1])
        for j in range(c.shape[1]):
            gain_scales_nb(st[5], j, cp[2], t0, t1, lc, facts)
        member_chunk_nb(st, prm, ap, pair, t0, t1, lc, moves, regime, votes, facts, shared[0])
        gains_chunk_nb(st, cp, n_agents, t0, t1, lc, votes, facts, factors)
        weigh_chunk_nb(st, cp, n_agents, t0, t1, regime, votes, facts, factors, raw, weights, contrib)
        risk_run_inline_nb(st[7], rp, time_ms[t0:t1], c[t0:t1], lc[t0:t1], raw[t0:t1], risked[t0:t1], brake[t0:t1],
                           risk_moves, facts[:, F_VAR], shared[1])
        execute_chunk_nb(st, ep, t0, t1, moves, facts, risked, raw, contrib, target, shared[2])


committee_bars_nb = jit(committee_bars_py, refcount=False)


def committee_outputs(n: int, m: int, n_agents: int) -> tuple[np.ndarray, ...]:
    """Empty outputs and scratch of :func:`committee_bars_py` for ``n`` bars of ``m`` symbols:
    target, risked, raw, weights, contributions, regime cells, brake, votes, facts, factors.

    The outputs are views of one block (the cells an ``int64`` view of its float slots): one
    allocation instead of seven, and past 4 MiB numpy asks the kernel for huge pages, so a
    long history costs a few page faults rather than one per 4 KiB."""
    shapes = ((n, m), (n, m), (n, m), (n, m, n_agents), (n, m, n_agents), (n, m), (n,))
    sizes = [math.prod(shape) for shape in shapes]
    if sum(sizes) < 1 << 16:  # a few bars (the live path): separate arrays cost less than slicing
        outputs = [np.empty(shape) for shape in shapes]
    else:
        block, outputs, start = np.empty(sum(sizes)), [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            outputs.append(block[start:start + size].reshape(shape))
            start += size
    outputs[5] = outputs[5].view(np.int64)
    rows = min(n, CHUNK)
    scratch = (np.zeros((m, 3, rows)), np.zeros((m, N_FACTS, rows)), np.ones((m, 3, rows)), np.empty((m, N_MOVES, n)),
               np.empty((m, N_RISK_MOVES, rows)))
    return (*outputs, *scratch)


def committee_run(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms, lh, ll, lc, c) -> tuple[np.ndarray, ...]:
    """The committee over history: target, risked, raw, weights, contributions, regime cells
    and brakes (see :func:`committee_bars_py`)."""
    out = committee_outputs(c.shape[0], c.shape[1], n_agents)
    committee_bars_nb(st, prm, ap, rp, ep, cp, pair, n_agents, time_ms, lh, ll, lc, c, *out)
    return out[:7]


def initial_weights(n_symbols: int, n_agents: int) -> np.ndarray:
    """Uniform weights for every symbol and regime cell."""
    return np.full((n_symbols, N_REGIMES, n_agents), 1.0 / n_agents)
