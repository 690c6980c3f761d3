"""Memory managers: deterministic judges of proposals.

``Manager.evaluate(proposal, context)`` depends only on its arguments and the manager's
policy — no clock, no randomness — so every honest manager reaches the same verdict with
the same reasons, and a replay reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coinswarm.errors import ConfigError, MessageError
from coinswarm.quorum.limits import MAX_PATTERN_KEY_CHARS, as_time, brief, name_problem
from coinswarm.quorum.proposals import Proposal, finite
from coinswarm.quorum.votes import Entry, ManagerVote, VoteBatch
from coinswarm.stats import probabilistic_sharpe_ratio


@dataclass(frozen=True)
class Policy:
    """Thresholds the managers enforce (the seed's promotion rule plus safety limits)."""

    min_samples: int = 100
    min_sharpe: float = 1.5
    max_drawdown: float = 0.10
    min_psr: float = 0.95
    min_positive_folds: float = 0.75
    max_slippage_bps: float = 20.0
    deprecate_below_sharpe: float = 0.0
    weight_tolerance: float = 1e-9
    min_weight: float = 0.0
    max_weight: float = 1.0
    max_position: float = 1.0
    max_daily_loss: float = 0.05
    embedding_dim: int = 384
    max_age_ms: int = 3_600_000
    actions: tuple[str, ...] = ("buy", "sell", "hold")

    def __post_init__(self) -> None:
        for name in ("min_sharpe", "max_drawdown", "min_psr", "min_positive_folds", "max_slippage_bps",
                     "deprecate_below_sharpe", "weight_tolerance", "min_weight", "max_weight", "max_position",
                     "max_daily_loss"):
            if not finite(getattr(self, name)):
                raise ConfigError(f"Policy.{name} must be a finite number, got {brief(getattr(self, name))}")
        for name in ("min_samples", "embedding_dim", "max_age_ms"):
            value = getattr(self, name)
            if not (type(value) is int and 0 <= value <= 2**62):
                raise ConfigError(f"Policy.{name} must be a non-negative integer, got {brief(value)}")
        if self.min_weight > self.max_weight or self.weight_tolerance < 0:
            raise ConfigError(f"Policy needs min_weight ≤ max_weight and weight_tolerance ≥ 0, got "
                              f"{self.min_weight}, {self.max_weight}, {self.weight_tolerance}")
        if not (isinstance(self.actions, tuple) and self.actions
                and all(name_problem(a, 16) is None for a in self.actions)):
            raise ConfigError(f"Policy.actions must be a non-empty tuple of printable strings of ≤ 16 characters "
                              f"(the episodes' action column), got {brief(self.actions)}")


@dataclass(frozen=True)
class Context:
    """What a manager may look at besides the proposal: the caller's time, memory's state and,
    for a proposal read from a durable stream, when the stream received it.

    ``patterns`` maps a pattern key to ``{"enabled": bool, ...}``. ``received`` (epoch ms,
    or None) is the time the bus stored the proposal — JetStream's metadata timestamp, set by
    the server: the proposer cannot forge it, and every manager reading the same message sees
    the same value. With it, a proposal's age is judged when it reached the bus, not when a
    manager got round to it (see :func:`_stale`); None (core NATS, the in-process bus,
    a backtest) keeps judging it against ``now``.
    """

    now: int
    patterns: dict = field(default_factory=dict)
    received: int | None = None

    def __post_init__(self) -> None:
        now = as_time(self.now, "Context.now")  # numpy integers and integral floats become int
        if now is not self.now:
            object.__setattr__(self, "now", now)
        if self.received is not None:
            received = as_time(self.received, "Context.received")
            if received is not self.received:
                object.__setattr__(self, "received", received)
        if not isinstance(self.patterns, dict):
            raise ConfigError(f"Context.patterns must be a dict of pattern key → state, got "
                              f"{type(self.patterns).__name__}")


Check = Callable[[Proposal, Context, Policy], Sequence[str]]


def _stale(p: Proposal, ctx: Context, policy: Policy) -> Sequence[str]:
    """Freshness (anti-replay): refuse a proposal from the future or too old.

    A proposal stamped after ``ctx.now`` comes from the future of its judge. Its age is
    ``received − timestamp`` when the stream's receive time is known — how old it already was
    when it reached the bus — and ``now − timestamp`` otherwise; above ``policy.max_age_ms``
    it is refused as stale.

    Why the receive time: a proposal is published fresh (the live outbox stamps it at the
    publish), stored by the stream, and judged when the managers read it. If the managers were
    down for longer than ``max_age_ms`` while the bus was up, the wall clock at judging time
    would call a legitimately delivered proposal stale and it would be lost; the receive time
    proves it was fresh when it arrived. It also keeps the verdict deterministic: it comes from
    the message, identical for every manager and every redelivery, where each manager's clock
    at processing time differs (near the limit, one could approve and another refuse). A
    replay — an old proposal published again — gets a new receive time, so it is still stale.

    There is deliberately no bound on ``now − received`` (how long the proposal waited in the
    stream): it would bring the wall clock, and with it diverging verdicts, back; how long a
    proposal may wait is the stream's retention, an operator's setting. (The vote deadline does
    not undo this: a ballot's window opens when ``f + 1`` managers have voted, so votes cast
    when the managers return are in time — see :class:`~coinswarm.quorum.tally.Ballot`.) The
    future check still reads ``now``: a judge cannot vouch for a time it has not reached.
    """
    if p.timestamp > ctx.now:
        return [f"timestamp {p.timestamp} is in the future of {ctx.now}"]
    if ctx.received is not None:
        age, when = ctx.received - p.timestamp, "when the stream received it"
    else:
        age, when = ctx.now - p.timestamp, "now"
    if age > policy.max_age_ms:
        return [f"stale: {age} ms old {when} > {policy.max_age_ms}"]
    return ()


def _numbers(mapping: dict, names: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}.{n} must be a finite number, got {brief(mapping.get(n))}"
            for n in names if not finite(mapping.get(n))]


def check_episode(p: Proposal, ctx: Context, policy: Policy) -> list[str]:
    """An episode: an embedding of the right size, a known action, a finite outcome."""
    d = p.data
    problems = _numbers(d, ("outcome",), "data")
    embedding = d.get("embedding")
    if not isinstance(embedding, list) or len(embedding) != policy.embedding_dim:
        problems.append(f"data.embedding must be a list of {policy.embedding_dim} numbers")
    elif not all(finite(x) for x in embedding):
        problems.append("data.embedding holds a non-finite value")
    if d.get("action") not in policy.actions:
        problems.append(f"data.action must be one of {policy.actions}, got {brief(d.get('action'))}")
    return problems


def check_pattern_stats(p: Proposal, ctx: Context, policy: Policy) -> list[str]:
    """Pattern statistics must be internally consistent."""
    s = p.data.get("stats", {})
    if not isinstance(s, dict):
        return ["data.stats must be an object"]
    problems = _numbers(s, ("n", "mean", "std", "win_rate", "p05", "p95", "mean_slippage_bps"), "data.stats")
    if problems:
        return problems
    if s["n"] < 1 or s["std"] < 0 or not 0 <= s["win_rate"] <= 1:
        problems.append("data.stats: need n ≥ 1, std ≥ 0 and 0 ≤ win_rate ≤ 1")
    if not s["p05"] <= s["p95"]:
        problems.append(f"data.stats: p05 {s['p05']} > p95 {s['p95']}")
    if s["mean_slippage_bps"] > policy.max_slippage_bps:
        problems.append(f"mean slippage {s['mean_slippage_bps']} bps > {policy.max_slippage_bps}")
    problems += _key_problems(p.data.get("key"))
    if not (float(s["n"]).is_integer() and s["n"] <= 2**31 - 1):
        problems.append(f"data.stats.n must be a whole number ≤ 2**31 - 1, got {brief(s['n'])}")
    return problems


def _key_problems(key: object) -> list[str]:
    """A pattern key: a printable string of 1..MAX_PATTERN_KEY_CHARS characters."""
    problem = name_problem(key, MAX_PATTERN_KEY_CHARS)
    return [f"data.key (regime/signal bucket) {problem}"] if problem else []


def _pattern(ctx: Context, key: object) -> dict | None:
    """The state of pattern ``key`` in memory (None when unknown or not a valid key)."""
    state = ctx.patterns.get(key) if isinstance(key, str) else None
    return state if isinstance(state, dict) else None


def check_promotion(p: Proposal, ctx: Context, policy: Policy) -> list[str]:
    """The seed's rule: n ≥ 100, Sharpe ≥ 1.5, max drawdown ≤ 10 %, plus PSR and fold stability."""
    j = p.justification
    problems = _numbers(j, ("n", "sharpe", "max_drawdown", "skew", "kurtosis", "periods_per_year"), "justification")
    if problems:
        return problems
    if j["n"] < policy.min_samples:
        problems.append(f"sample {j['n']} < {policy.min_samples}")
    if j["sharpe"] < policy.min_sharpe:
        problems.append(f"Sharpe {j['sharpe']:.3f} < {policy.min_sharpe}")
    if j["max_drawdown"] > policy.max_drawdown:
        problems.append(f"max drawdown {j['max_drawdown']:.3f} > {policy.max_drawdown}")
    per_period = j["sharpe"] / math.sqrt(j["periods_per_year"]) if j["periods_per_year"] > 0 else float("nan")
    psr = probabilistic_sharpe_ratio(per_period, int(j["n"]), j["skew"], j["kurtosis"])
    if not psr >= policy.min_psr:
        problems.append(f"PSR {psr:.3f} < {policy.min_psr}")
    folds = j.get("fold_sharpes")
    if not isinstance(folds, list) or len(folds) < 2 or not all(finite(x) for x in folds):
        problems.append("justification.fold_sharpes must list ≥ 2 finite numbers")
    elif sum(x > 0 for x in folds) / len(folds) < policy.min_positive_folds:
        problems.append(f"unstable: {sum(x > 0 for x in folds)} of {len(folds)} folds positive")
    key = p.data.get("key")
    state = _pattern(ctx, key)
    if state is None:
        problems.append(f"unknown pattern {_short(key)}")
    elif state.get("enabled"):
        problems.append(f"pattern {key!r} is already enabled")
    return problems


def _short(value: object) -> str:
    return brief(value, 80)


def check_deprecation(p: Proposal, ctx: Context, policy: Policy) -> list[str]:
    """Deprecate only an enabled pattern whose recent evidence fell below the bar."""
    j, key = p.justification, p.data.get("key")
    problems = _numbers(j, ("recent_sharpe",), "justification")
    state = _pattern(ctx, key)
    if state is None or not state.get("enabled"):
        problems.append(f"pattern {_short(key)} is not enabled")
    if not problems and j["recent_sharpe"] >= policy.deprecate_below_sharpe:
        problems.append(f"recent Sharpe {j['recent_sharpe']:.3f} is not below {policy.deprecate_below_sharpe}")
    return problems


def check_planner_weights(p: Proposal, ctx: Context, policy: Policy) -> list[str]:
    """Weights: finite, within bounds, summing to 1 within tolerance; limits within policy."""
    weights = p.data.get("weights")
    if not isinstance(weights, dict) or not weights:
        return ["data.weights must be a non-empty object of name → weight"]
    values = weights.values()
    low, high, in_bounds = policy.min_weight, policy.max_weight, True
    for w in values:  # one pass: finite and within bounds
        if not finite(w):
            return ["data.weights holds a non-finite value"]
        in_bounds = in_bounds and low <= w <= high
    problems = []
    total = math.fsum(values)
    if abs(total - 1.0) > policy.weight_tolerance:
        problems.append(f"weights sum to {total:.12f}, not 1 ± {policy.weight_tolerance}")
    if not in_bounds:
        outside = sorted(k for k, w in weights.items() if not low <= w <= high)
        problems.append(f"weights outside [{low}, {high}]: {outside}")
    limits = p.data.get("limits")
    if limits:
        problems += _limits(limits, policy)
    return problems


def _limits(limits: dict, policy: Policy) -> list[str]:
    if not isinstance(limits, dict):
        return ["data.limits must be an object"]
    problems = []
    for name, bound in (("max_position", policy.max_position), ("max_daily_loss", policy.max_daily_loss)):
        value = limits.get(name, 0.0)
        if not finite(value):
            problems.append(f"data.limits.{name} must be a finite number, got {brief(value)}")
        elif value > bound:
            problems.append(f"{name} {value} > {bound}")
    return problems


CHECKS: dict[str, tuple[Check, ...]] = {
    "add_episode": (_stale, check_episode),
    "update_pattern": (_stale, check_pattern_stats),
    "promote_pattern": (_stale, check_promotion),
    "deprecate_pattern": (_stale, check_deprecation),
    "planner_weights": (_stale, check_planner_weights),
}

# kinds whose checks read ``context.patterns`` (memory's state); the others see only the
# proposal and the context's times, so one context can judge a whole run of them
READS_MEMORY = frozenset({"promote_pattern", "deprecate_pattern"})


@dataclass(frozen=True)
class Manager:
    """An independent judge with its own signing key."""

    name: str
    key: bytes
    policy: Policy = Policy()

    def __post_init__(self) -> None:
        problem = name_problem(self.name)
        if problem:
            raise ConfigError(f"Manager name {problem}")
        if not (isinstance(self.key, bytes) and self.key):
            raise ConfigError(f"Manager {self.name!r}: key must be non-empty bytes, got {type(self.key).__name__}")
        if not isinstance(self.policy, Policy):
            raise ConfigError(f"Manager {self.name!r}: policy must be a Policy, got {type(self.policy).__name__}")

    def evaluate(self, proposal: Proposal, context: Context) -> ManagerVote:
        """Deterministic verdict: approve iff every check of the proposal's kind passes.

        Raises :class:`~coinswarm.errors.MessageError` when ``proposal`` is not a
        :class:`Proposal` and :class:`~coinswarm.errors.ConfigError` when ``context`` is not
        a :class:`Context`; malformed *content* is never an error, but a rejection with reasons.
        """
        reasons = self.reasons(proposal, context)
        vote = ManagerVote(proposal.id, proposal.digest, self.name, not reasons, reasons or OK, context.now)
        return vote.signed(self.key)

    def evaluate_many(self, proposals: list[Proposal], context: Context) -> VoteBatch:
        """The verdicts of :meth:`evaluate` on each proposal, in one batch signed once."""
        if not isinstance(proposals, list | tuple):
            raise MessageError(f"evaluate_many takes a list of proposals, got {type(proposals).__name__}")
        return self.sign_batch(proposals, [self.reasons(p, context) for p in proposals], context.now)

    def sign_batch(self, proposals: list[Proposal], reasons: list[tuple[str, ...]], now: int) -> VoteBatch:
        """Sign verdicts given as each proposal's :meth:`reasons` (empty: approve) as one batch."""
        return self.sign_entries(verdict_entries(proposals, reasons), now)

    def sign_entries(self, entries: tuple[Entry, ...], now: int) -> VoteBatch:
        """Sign prepared :func:`verdict_entries` as one batch (managers with the same verdicts
        can share one entries object; its signed text is then built once)."""
        return VoteBatch(self.name, now, entries).signed(self.key)

    def reasons(self, proposal: Proposal, context: Context) -> tuple[str, ...]:
        """Every problem the checks of the proposal's kind find (empty: approve).

        Content a check cannot even read (a value of the wrong type deep in ``data``, an
        overflow) is a reason to reject, never an exception."""
        if not isinstance(proposal, Proposal):
            raise MessageError(f"a manager judges Proposal objects, got {type(proposal).__name__}",
                               field="proposal")
        if not isinstance(context, Context):
            raise ConfigError(f"context must be a Context(now, patterns), got {type(context).__name__}")
        reasons: list[str] = []
        for check in CHECKS[proposal.kind]:
            try:
                reasons.extend(check(proposal, context, self.policy))
            except (ArithmeticError, TypeError, ValueError, KeyError, AttributeError) as exc:
                reasons.append(f"{check.__name__}: unreadable content ({type(exc).__name__}: {exc})")
        return tuple(reasons)


OK = ("ok",)


def verdict_entries(proposals: list[Proposal], reasons: list[tuple[str, ...]]) -> tuple[Entry, ...]:
    """Batch entries ``(id, digest, approve, reasons)`` from each proposal's :meth:`Manager.reasons`."""
    return tuple((p.id, p.digest, not r, r or OK) for p, r in zip(proposals, reasons, strict=True))
