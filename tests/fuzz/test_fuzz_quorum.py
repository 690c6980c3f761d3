"""Fuzzing the quorum's public API with malformed proposals, votes, configs and times.

Each generated case asserts: a valid result, or a ``CoinswarmError`` subclass — never
another exception, never a hang (``DEADLINE_MS`` per case), never a state change after an
error; and a proposal that constructs decodes from its own wire bytes to an equal proposal
that gets the same decision (in process and "over the wire" agree).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.errors import CoinswarmError
from coinswarm.quorum import (
    KINDS,
    MAX_DEPTH,
    Context,
    Coordinator,
    Decision,
    LocalQuorum,
    Manager,
    ManagerVote,
    Policy,
    Proposal,
    QuorumConfig,
    VoteBatch,
    derive_keys,
)
from coinswarm.quorum.votes import decode_votes
from tests.fuzz.budget import DEADLINE_MS, SCALE, examples, seen

NOW = 1_735_689_600_000
MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"fuzz", MANAGERS)
CONFIG = QuorumConfig(MANAGERS)
SETTINGS = {"deadline": DEADLINE_MS, "derandomize": True, "database": None,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]}


def _nested(depth: int) -> dict:
    out: dict = {}
    for _ in range(depth):
        out = {"a": out}
    return out


# inputs no sane caller sends, built once: a 10 MB string, 100,000 keys, deep nesting (deeper
# still in tests/unit/quorum/test_boundary.py: here Hypothesis must be able to print a failing case)
MONSTERS = ["x" * 10_000_000, {f"k{i}": 0.0 for i in range(100_000)}, [0.0] * 100_000, _nested(MAX_DEPTH + 1),
            _nested(200), "\ud800", "a\udfffb", 2**64, 2**63, -(2**63) - 1, 10**300]


def _monster(i: int):
    return MONSTERS[i]


JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.binary(max_size=4),
    st.tuples(st.integers(0, 3)), st.integers(0, len(MONSTERS) - 1).map(_monster),
    st.just(np.float32(1.0)), st.just(np.int64(3)),
    st.just(object()), st.just({1: 2}), st.just(float("nan")), st.complex_numbers(max_magnitude=2),
)
EXTREME = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e200, -1e300, 5e-324, 0.0]),
                    st.integers(min_value=-(2**63), max_value=2**63 - 1))
JSONISH = st.recursive(JUNK, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.one_of(st.text(max_size=6), st.integers(0, 3), st.just("\ud800")), c, max_size=4), max_leaves=12)
TIMES = st.one_of(st.integers(min_value=-5, max_value=2**64), st.just(NOW), st.just(NOW - 10),
                  st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=5),
                  st.just(str(NOW)), st.booleans(), st.just(np.int64(NOW)), st.just(float(NOW)))
NAMES = st.one_of(st.text(max_size=10), st.just("agent"), st.just("\ud800"), st.just(""), st.just("x" * 200),
                  st.integers(), st.none(), st.just("a\x00b"))


def _good(kind: str) -> tuple[dict, dict]:
    """A valid-looking payload of ``kind`` (the managers may still reject it)."""
    stats = {"n": 150, "mean": 0.002, "std": 0.01, "win_rate": 0.56, "p05": -0.01, "p95": 0.02,
             "mean_slippage_bps": 3.0}
    promotion = {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0, "kurtosis": 3.0,
                 "periods_per_year": 365.0, "fold_sharpes": [1.1, 2.0, 0.7, 1.4]}
    return {
        "add_episode": ({"embedding": [0.01] * 384, "action": "buy", "outcome": 0.01}, {}),
        "update_pattern": ({"key": "normal-vol/up|trend", "stats": stats}, {}),
        "promote_pattern": ({"key": "normal-vol/up|trend"}, promotion),
        "deprecate_pattern": ({"key": "normal-vol/up|trend"}, {"recent_sharpe": -0.5}),
        "planner_weights": ({"weights": {"trend": 0.5, "mean_reversion": 0.5},
                             "limits": {"max_position": 1.0, "max_daily_loss": 0.05}}, {}),
    }[kind]


@st.composite
def shaped(draw, kind: str) -> tuple[dict, dict]:
    """A kind's valid payload with zero to three fields (top level or one level down)
    replaced by junk or by extreme finite numbers, and sometimes an extra key."""
    data, justification = (dict(x) for x in _good(kind))
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from([t for t in (data, justification) if t] or [data]))
        key = draw(st.sampled_from(list(target) or ["x"]))
        value = target.get(key)
        if isinstance(value, dict) and value and draw(st.booleans()):
            inner = dict(value)
            inner[draw(st.sampled_from(list(inner)))] = draw(st.one_of(EXTREME, JUNK))
            target[key] = inner
        elif isinstance(value, float | int) and draw(st.booleans()):
            target[key] = draw(EXTREME)
        else:
            target[key] = draw(JSONISH)
    if draw(st.integers(0, 6)) == 0:
        data[draw(st.text(max_size=4))] = draw(JSONISH)
    return data, justification


BROKEN = {"id": NAMES, "kind": st.one_of(st.text(max_size=8), JUNK), "submitter": NAMES, "timestamp": TIMES,
          "data_time": TIMES, "data": JSONISH, "justification": JSONISH}


@st.composite
def proposal_fields(draw) -> dict:
    """Proposal fields with at most one field broken (so most cases reach the managers'
    checks) and the kind's payload often mangled (see :func:`shaped`)."""
    kind = draw(st.sampled_from(KINDS))
    data, justification = draw(shaped(kind))
    timestamp = draw(st.integers(NOW - 4_000_000, NOW + 10_000))
    fields = {"id": draw(st.from_regex(r"p[0-9]{1,3}", fullmatch=True)), "kind": kind, "submitter": "agent",
              "timestamp": timestamp, "data_time": max(0, timestamp - draw(st.integers(0, 4_000_000))),
              "data": data, "justification": justification}
    broken = draw(st.sampled_from([None, None, None, *BROKEN]))
    if broken is not None:
        fields[broken] = draw(BROKEN[broken])
    return fields


def _build(fields: dict) -> Proposal | None:
    """Construct, or None on a typed error (any other exception fails the test)."""
    try:
        return Proposal(**fields)
    except CoinswarmError:
        return None


@pytest.mark.timeout(120 * SCALE)
@settings(max_examples=examples(1_000), **SETTINGS)
@given(proposal_fields())
def test_fuzz_proposal_construction_and_the_wire_agree(fields):
    seen("quorum")
    p = _build(fields)
    if p is None:
        return
    back = Proposal.decode(p.encode())
    assert back == p and back.digest == p.digest
    assert Proposal.from_dict(p.to_dict()) == p


@pytest.mark.timeout(120 * SCALE)
@settings(max_examples=examples(500), **SETTINGS)
@given(st.one_of(st.binary(max_size=64), JSONISH.map(lambda x: repr(x).encode()),
                 proposal_fields().map(lambda f: repr(f).replace("'", '"').encode()),
                 st.sampled_from([b"[" * 3000, b'{"id": "\\ud800"}', b"\xff\xfe", b"", b"null", b"1e999"])))
def test_fuzz_decode_of_arbitrary_bytes(payload):
    seen("quorum")
    for decode in (Proposal.decode, ManagerVote.decode, VoteBatch.decode, decode_votes):
        try:
            out = decode(payload)
        except CoinswarmError:
            continue
        assert out is not None


def _state(q: LocalQuorum) -> tuple:
    return (len(q.coordinator.audit), dict(q.coordinator.decided), tuple(q.memory.commits),
            dict(q.coordinator.open), repr(q.memory.view()))


def _seeded() -> LocalQuorum:
    q = LocalQuorum(CONFIG, KEYS)
    data, _ = _good("update_pattern")
    seed = Proposal("seed", "update_pattern", "agent", NOW - 10, NOW - 100, data)
    assert q.submit(seed, NOW).status == "committed"
    return q


def _submit(q: LocalQuorum, call, args) -> object:
    before = _state(q)
    try:
        return call(*args)
    except CoinswarmError:
        assert _state(q) == before, "state changed after an error"
        return "error"


@pytest.mark.timeout(120 * SCALE)
@settings(max_examples=examples(600), **SETTINGS)
@given(st.lists(st.tuples(proposal_fields(), st.one_of(st.just(NOW), TIMES), st.booleans()), min_size=1,
                max_size=4),
       st.one_of(st.none(), st.dictionaries(st.text(max_size=3), JUNK, max_size=2), st.just([1]), st.just("p")))
def test_fuzz_submit_in_process_equals_submit_over_the_wire(steps, junk):
    seen("quorum")
    local, wire = _seeded(), _seeded()
    for fields, now, many in steps:
        p = _build(fields)
        call_local, call_wire = (local.submit_many, wire.submit_many) if many else (local.submit, wire.submit)
        if p is None:  # junk instead of a proposal still reaches the API
            out = _submit(local, call_local, ([junk] if many else junk, now))
            assert out == "error"
            continue
        q = Proposal.decode(p.encode())
        a = _submit(local, call_local, ([p] if many else p, now))
        b = _submit(wire, call_wire, ([q] if many else q, now))
        assert a == b, "the same proposal must get the same verdict in process and over the wire"
        if a != "error":
            for decision in a if many else [a]:
                assert isinstance(decision, Decision) and decision.proposal_id == p.id


def _vote_field(draw, good):
    return good if draw(st.integers(0, 3)) else draw(JSONISH)


@st.composite
def junk_votes(draw, proposal: Proposal):
    """Well-formed, forged, replayed or structurally broken votes and batches (and non-votes)."""
    manager = draw(st.sampled_from((*MANAGERS, "m9")))
    key = KEYS.get(manager, b"wrong")
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(JSONISH)
    if choice == 1:
        vote = ManagerVote(_vote_field(draw, proposal.id), _vote_field(draw, proposal.digest),
                           _vote_field(draw, manager), _vote_field(draw, draw(st.booleans())),
                           _vote_field(draw, ("ok",)), _vote_field(draw, NOW))
        if not (isinstance(vote.reasons, tuple) and len(vote.reasons) < 8 and draw(st.booleans())):
            return vote  # unsigned (signing a 10 MB "reasons" would only test the test)
        try:
            return vote.signed(key)
        except (TypeError, AttributeError, ValueError):
            return vote  # junk fields cannot even be signed; the coordinator must still cope
    entry = (_vote_field(draw, proposal.id), _vote_field(draw, proposal.digest),
             _vote_field(draw, draw(st.booleans())), _vote_field(draw, ("ok",)))
    entries = _vote_field(draw, (entry,) * draw(st.integers(0, 3)))
    batch = VoteBatch(_vote_field(draw, manager), _vote_field(draw, NOW), entries)
    if not (isinstance(entries, tuple) and all(isinstance(e, tuple) and len(e) == 4 and isinstance(e[3], tuple)
                                               and len(e[3]) < 8 for e in entries)
            and draw(st.booleans())):
        return batch
    try:
        return batch.signed(key)
    except (TypeError, AttributeError, ValueError):
        return batch


@pytest.mark.timeout(120 * SCALE)
@settings(max_examples=examples(600), **SETTINGS)
@given(st.data())
def test_fuzz_votes_reaching_the_coordinator_never_crash_it(data):
    seen("quorum")
    proposal = Proposal("p1", "planner_weights", "agent", NOW - 10, NOW - 100, _good("planner_weights")[0])
    coordinator = Coordinator(CONFIG, KEYS)
    coordinator.propose(proposal, NOW)
    for _ in range(data.draw(st.integers(1, 6))):
        item = data.draw(junk_votes(proposal))
        events = len(coordinator.audit)
        decision = coordinator.vote(item, NOW)
        decisions = coordinator.vote_batch(item, NOW)
        entry = coordinator.vote_entry(item, data.draw(st.one_of(st.integers(-1, 3), JUNK)), NOW)
        coordinator.audit_batch(item, NOW)
        assert len(coordinator.audit) > events, "every vote, good or junk, is audited"
        for d in (decision, entry, *decisions):
            assert d is None or (isinstance(d, Decision) and d.proposal_id == "p1")
    final = coordinator.decided.get("p1")
    if final is not None:  # only genuine, signed, member votes can decide
        assert set(final.approvals) | set(final.rejections) <= set(MANAGERS)


@pytest.mark.timeout(120 * SCALE)
@settings(max_examples=examples(600), **SETTINGS)
@given(st.one_of(st.lists(NAMES, max_size=5), st.tuples(NAMES, NAMES, NAMES, NAMES), NAMES, JSONISH,
                 st.just(MANAGERS)),
       st.one_of(st.integers(-2, 3), JUNK), st.one_of(st.integers(-5, 10**14), JUNK),
       st.one_of(st.none(), st.integers(-1, 6), JUNK), st.one_of(st.binary(max_size=8), JUNK), TIMES)
def test_fuzz_configs_keys_and_contexts(managers, f, timeout_ms, threshold, secret, now):
    seen("quorum")
    for build in (lambda: QuorumConfig(managers, f, timeout_ms, threshold), lambda: derive_keys(secret, managers),
                  lambda: Context(now=now), lambda: Policy(min_samples=f, max_age_ms=timeout_ms),
                  lambda: Manager(managers, secret)):
        try:
            out = build()
        except CoinswarmError:
            continue
        if isinstance(out, QuorumConfig):
            assert len(out.managers) >= 3 * out.f + 1 and out.timeout_ms > 0 and isinstance(out.managers, tuple)
            LocalQuorum(out, derive_keys(b"k", out.managers))
        elif isinstance(out, Context):
            assert type(out.now) is int and out.now >= 0 and math.isfinite(out.now)


def _extremes(draw, value):
    """``value`` with every number replaced by an extreme finite one (recursively)."""
    if isinstance(value, dict):
        return {k: _extremes(draw, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_extremes(draw, v) for v in value[:8]]
    if isinstance(value, float | int) and not isinstance(value, bool):
        return draw(st.one_of(st.just(value), EXTREME))
    return value


@pytest.mark.timeout(120 * SCALE)
@settings(max_examples=examples(500), **SETTINGS)
@given(st.sampled_from(KINDS), st.data())
def test_fuzz_managers_on_extreme_finite_numbers(kind, data):
    seen("quorum")
    payload, justification = (_extremes(data.draw, x) for x in _good(kind))
    try:
        p = Proposal("x", kind, "agent", NOW - 10, NOW - 100, payload, justification)
    except CoinswarmError:
        return
    patterns = {"normal-vol/up|trend": {"enabled": data.draw(st.booleans())}}
    vote = Manager("m1", KEYS["m1"]).evaluate(p, Context(now=NOW, patterns=patterns))
    assert isinstance(vote, ManagerVote) and vote.reasons and all(isinstance(r, str) for r in vote.reasons)
