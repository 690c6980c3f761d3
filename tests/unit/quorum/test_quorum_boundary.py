"""The quorum's input boundary: the cases of issue 17, each a named regression.

Every malformed input raises a typed ``CoinswarmError`` naming what is wrong (or, for
votes reaching a coordinator and junk proposal content, is discarded/rejected with a
reason), and nothing changes after an error.
"""

import math
import warnings

import numpy as np
import pytest
from proposals_factory import NOW, make_proposal, seeded_patterns

from coinswarm.errors import CoinswarmError, ConfigError, ConflictError, MessageError
from coinswarm.quorum import (
    COMMITTED,
    LIMITS,
    MAX_DEPTH,
    REJECTED,
    Context,
    Coordinator,
    LocalQuorum,
    Manager,
    ManagerVote,
    Proposal,
    QuorumConfig,
    VoteBatch,
    derive_keys,
)

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"boundary", MANAGERS)
CONFIG = QuorumConfig(MANAGERS)
WEIGHTS = {"weights": {"trend": 0.5, "mean_reversion": 0.5}}


def weights(pid="w", data=None, submitter="agent", **kw) -> Proposal:
    return Proposal(pid, "planner_weights", submitter, NOW - 10, NOW - 100, WEIGHTS if data is None else data, **kw)


def snapshot(q: LocalQuorum) -> tuple:
    return (len(q.coordinator.audit), dict(q.coordinator.decided), list(q.memory.commits), dict(q.coordinator.open))


@pytest.mark.parametrize("where", ["data", "id", "submitter", "key"])
def test_a_lone_surrogate_is_refused_at_construction_so_local_and_wire_agree(where):
    bad = "x\ud800y"
    kwargs = {"data": {"weights": {"trend": 1.0}, "note": bad}} if where == "data" else {}
    if where == "key":
        kwargs = {"data": {"weights": {bad: 1.0}}}
    with pytest.raises(MessageError, match="surrogate") as info:
        weights(pid=bad if where == "id" else "w", submitter=bad if where == "submitter" else "agent", **kwargs)
    assert info.value.field == ("data" if where in ("data", "key") else where)


@pytest.mark.parametrize("value", [2**63, 2**64, 2**64 + 1, -(2**63) - 1, 10**400, 10**5000],
                         ids=["2**63", "2**64", "2**64+1", "-2**63-1", "1e400", "1e5000"])
def test_integers_the_wire_cannot_carry_exactly_are_refused(value):
    with pytest.raises(MessageError, match="64-bit") as info:
        weights(data={"weights": {"trend": 1.0}, "n": value})
    assert info.value.field == "data"


def test_the_largest_int64_is_accepted_and_round_trips_exactly():
    for value in (2**63 - 1, -(2**63)):
        p = weights(data={"weights": {"trend": 1.0}, "n": value})
        back = Proposal.decode(p.encode())
        assert back == p and back.digest == p.digest and type(back.data["n"]) is int


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_deep_nesting_is_refused_without_recursion_error(depth):
    nested: dict = {}
    for _ in range(depth):
        nested = {"a": nested}
    with pytest.raises(MessageError, match=f"deeper than {MAX_DEPTH}"):
        weights(data={"weights": {"trend": 1.0}, "x": nested})
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(MessageError, match="deeper"):
        weights(data={"weights": {"trend": 1.0}, "x": cyclic})


def test_a_10_mb_string_and_a_100000_key_payload_are_refused():
    with pytest.raises(MessageError, match="characters"):
        weights(data={"weights": {"trend": 1.0}, "blob": "x" * 10_000_000})
    with pytest.raises(MessageError, match="keys and list elements"):
        weights(data={"weights": {f"w{i}": 1e-5 for i in range(100_000)}})
    many = LIMITS["add_episode"].max_items + 1
    with pytest.raises(MessageError, match=f"{LIMITS['add_episode'].max_items:,}"):
        Proposal("e", "add_episode", "a", NOW, NOW, {"embedding": [0.0] * many, "action": "buy", "outcome": 0.0})


def test_the_encoded_size_limit_is_per_kind():
    limit = LIMITS["update_pattern"]
    strings = {f"s{i}": "y" * limit.max_string for i in range(limit.max_bytes // limit.max_string + 1)}
    with pytest.raises(MessageError, match="encodes to .* update_pattern proposal may take at most"):
        Proposal("u", "update_pattern", "a", NOW, NOW, {"key": "k", "stats": {}, **strings})


def test_an_oversize_message_is_refused_before_parsing():
    with pytest.raises(MessageError, match="bytes"):
        Proposal.decode(b'{"id": "' + b"x" * 2_000_000 + b'"}')
    with pytest.raises(MessageError, match="bytes"):
        Proposal.decode({"id": "x"})


def test_tuples_and_non_string_keys_are_refused_as_they_would_change_on_the_wire():
    with pytest.raises(MessageError, match="tuple"):
        Proposal("e", "add_episode", "a", NOW, NOW, {"embedding": (0.0,) * 384, "action": "buy", "outcome": 0.0})
    with pytest.raises(MessageError, match="keys must be strings"):
        weights(data={"weights": {1: 1.0}})
    with pytest.raises(MessageError, match="JSON value"):
        weights(data={"weights": {"trend": np.float32(1.0)}})


def test_resubmitting_a_committed_id_with_different_data_is_a_typed_conflict():
    q = LocalQuorum(CONFIG, KEYS)
    first = q.submit(weights(), NOW)
    assert first.status == COMMITTED
    before = snapshot(q)
    changed = weights(data={"weights": {"trend": 1.0}})
    with pytest.raises(ConflictError, match="differs") as info:
        q.submit(changed, NOW)
    assert info.value.field == "id" and info.value.message_id == "w"
    with pytest.raises(ConflictError):
        q.submit_many([weights("fresh"), changed], NOW)
    assert snapshot(q) == before, "nothing changes after a conflict (not even the fresh proposal before it)"
    assert q.memory.view().planner_weights == WEIGHTS["weights"]
    assert q.submit(weights(), NOW) == first, "the same data again: the old decision"
    assert q.submit_many([weights(), weights()], NOW) == [first, first]
    assert len(q.memory.commits) == 1
    with pytest.raises(ConflictError):
        q.submit_many([weights("twin"), weights("twin", data={"weights": {"x": 1.0}})], NOW)


@pytest.mark.parametrize("now", [math.nan, math.inf, None, "1735689600000", 1.5, -1, True, 2**80, [NOW], 10**5000],
                         ids=["nan", "inf", "None", "str", "1.5", "-1", "True", "2**80", "list", "1e5000"])
def test_now_must_be_a_finite_integer_ms_time(now):
    q = LocalQuorum(CONFIG, KEYS)
    p = weights()
    for call in (lambda: q.submit(p, now), lambda: q.submit_many([p], now), lambda: Context(now=now),
                 lambda: q.coordinator.tick(now), lambda: q.coordinator.propose(p, now)):
        with pytest.raises(ConfigError, match="now"):
            call()
    assert snapshot(q) == (0, {}, [], {})


def test_integral_floats_and_numpy_integers_are_times():
    assert Context(now=np.int64(NOW)).now == NOW and type(Context(now=float(NOW)).now) is int
    assert LocalQuorum(CONFIG, KEYS).submit(weights(), np.int64(NOW)).status == COMMITTED


@pytest.mark.parametrize("args, match", [
    ((MANAGERS, "1"), "f must be an integer"),
    ((MANAGERS, 1.0), "f must be an integer"),
    ((MANAGERS, 1, "5000"), "timeout_ms"),
    ((MANAGERS, 1, 5000, "3"), "threshold"),
    (("m1m2m3m4",), "tuple of manager names"),
    ((("m1", "m2", "m3", None),), "must be a string"),
    ((("m1", "m2", "m3", "\ud800"),), "surrogate"),
    ((("m1", "m2", "m3", ""),), "non-empty"),
    ((MANAGERS, 1, 10**15), "timeout_ms"),
    ((("m1",), 10**5000), "cannot tolerate"),
    ((MANAGERS, 1, 5000, 10**5000), "threshold"),
])
def test_quorum_config_refuses_junk_with_config_error(args, match):
    with pytest.raises(ConfigError, match=match):
        QuorumConfig(*args)


def test_quorum_config_takes_a_list_of_managers_as_a_tuple():
    assert QuorumConfig(list(MANAGERS)).managers == MANAGERS


@pytest.mark.parametrize("secret, managers", [("text", MANAGERS), (b"", MANAGERS), (b"s", "m1"), (b"s", [1]),
                                              (b"s", ["\udfff"]), (None, MANAGERS)])
def test_derive_keys_refuses_junk(secret, managers):
    with pytest.raises(ConfigError, match="derive_keys"):
        derive_keys(secret, managers)


@pytest.mark.parametrize("junk", [{"id": "x"}, "proposal", None, 42])
def test_submit_of_a_non_proposal_is_a_message_error(junk):
    q = LocalQuorum(CONFIG, KEYS)
    with pytest.raises(MessageError, match="not a Proposal"):
        q.submit(junk, NOW)
    with pytest.raises(MessageError):
        q.submit_many([weights(), junk], NOW)
    with pytest.raises(MessageError, match="list of proposals"):
        q.submit_many(weights(), NOW)
    with pytest.raises(MessageError, match="Proposal objects"):
        Manager("m1", KEYS["m1"]).evaluate(junk, Context(now=NOW))
    assert snapshot(q) == (0, {}, [], {})


def test_local_quorum_and_manager_refuse_bad_construction():
    with pytest.raises(ConfigError, match="lack the managers"):
        LocalQuorum(CONFIG, {"m1": KEYS["m1"]})
    with pytest.raises(ConfigError, match="QuorumConfig"):
        LocalQuorum(MANAGERS, KEYS)
    with pytest.raises(ConfigError, match="non-empty bytes"):
        LocalQuorum(CONFIG, {**KEYS, "m2": "secret"})
    with pytest.raises(ConfigError, match="key"):
        Manager("m1", "secret")
    with pytest.raises(ConfigError, match="Context"):
        Manager("m1", KEYS["m1"]).evaluate(weights(), {"now": NOW})


JUNK_VOTES = [None, "vote", {"proposal_id": "w"}, 3.5,
              ManagerVote(["w"], "d", "m1", True, ("ok",), NOW),
              ManagerVote("w", "d", {"m1"}, True, ("ok",), NOW),
              ManagerVote("w", "d", "m1", "yes", ("ok",), NOW),
              ManagerVote("w", "d", "m1", True, ("ok",), "now"),
              ManagerVote("w", "d", "m1", True, ("ok",), NOW, signature=b"\x00"),
              ManagerVote("w", "d", "m1", True, [1, 2], NOW),
              VoteBatch("m1", NOW, (("w", "d", True, ("ok",)),))]


@pytest.mark.parametrize("junk", JUNK_VOTES, ids=range(len(JUNK_VOTES)))
def test_junk_votes_are_discarded_and_audited_never_crash_the_coordinator(junk):
    coordinator = Coordinator(CONFIG, KEYS)
    p = weights()
    coordinator.propose(p, NOW)
    assert coordinator.vote(junk, NOW) is None
    assert coordinator.audit[-1].kind == "discard" and "malformed vote" in coordinator.audit[-1].detail["reason"]
    assert p.id in coordinator.open and not coordinator.decided


JUNK_BATCHES = [None, ManagerVote("w", "d", "m1", True, ("ok",), NOW), VoteBatch(7, NOW, ()),
                VoteBatch("m1", NOW, [("w", "d", True, ("ok",))]), VoteBatch("m1", NOW, (("w", "d", True),)),
                VoteBatch("m1", NOW, ((["w"], "d", True, ("ok",)),)), VoteBatch("m1", -5, ()),
                VoteBatch("m1", NOW, (("w", "d", 1, ("ok",)),)), VoteBatch("m1", NOW, (("w", "d", True, (3,)),))]


@pytest.mark.parametrize("junk", JUNK_BATCHES, ids=range(len(JUNK_BATCHES)))
def test_junk_batches_are_discarded_and_audited(junk):
    coordinator = Coordinator(CONFIG, KEYS)
    coordinator.propose(weights(), NOW)
    assert coordinator.vote_batch(junk, NOW) == []
    assert coordinator.vote_entry(junk, 0, NOW) is None
    coordinator.audit_batch(junk, NOW)
    assert [e.kind for e in coordinator.audit[1:]] == ["discard"] * 3
    assert not coordinator.decided


def test_a_good_batch_with_a_bad_index_is_discarded():
    coordinator = Coordinator(CONFIG, KEYS)
    p = weights()
    coordinator.propose(p, NOW)
    batch = Manager("m1", KEYS["m1"]).evaluate_many([p], Context(now=NOW))
    for index in (1, -1, "0", None):
        assert coordinator.vote_entry(batch, index, NOW) is None
    assert coordinator.vote_entry(batch, 0, NOW) is None and coordinator.open[p.id].valid == {"m1": True}


JUNK_CONTENT = [
    ("promote_pattern", {"key": ["not", "hashable"]}, {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0,
                                                       "kurtosis": 3.0, "periods_per_year": 365.0,
                                                       "fold_sharpes": [1.0, 2.0]}),
    ("promote_pattern", {"key": "normal-vol/up|trend"}, {"n": 400, "sharpe": 1e200, "max_drawdown": 0.06,
                                                         "skew": 1e200, "kurtosis": 1e300, "periods_per_year": 1.0,
                                                         "fold_sharpes": [1.0, 2.0]}),
    ("deprecate_pattern", {"key": {"a": 1}}, {"recent_sharpe": -1.0}),
    ("update_pattern", {"key": "k", "stats": [1, 2]}, {}),
    ("update_pattern", {"key": "k" * 210, "stats": {"n": 150, "mean": 0.0, "std": 0.0, "win_rate": 0.5,
                                                    "p05": 0.0, "p95": 0.0, "mean_slippage_bps": 0.0}}, {}),
    ("update_pattern", {"key": "k", "stats": {"n": 2**40, "mean": 0.0, "std": 0.0, "win_rate": 0.5, "p05": 0.0,
                                              "p95": 0.0, "mean_slippage_bps": 0.0}}, {}),
    ("add_episode", {"embedding": "x" * 384, "action": ["buy"], "outcome": None}, {}),
    ("planner_weights", {"weights": [0.5, 0.5]}, {}),
    ("planner_weights", {"weights": {"a": 1.0}, "limits": [1, 2]}, {}),
]


@pytest.mark.parametrize("kind, data, justification", JUNK_CONTENT, ids=range(len(JUNK_CONTENT)))
def test_junk_content_of_each_kind_is_rejected_with_a_reason_not_a_crash(kind, data, justification):
    p = Proposal("j", kind, "agent", NOW - 10, NOW - 100, data, justification)
    manager = Manager("m1", KEYS["m1"])
    vote = manager.evaluate(p, Context(now=NOW, patterns=seeded_patterns()))
    assert not vote.approve and vote.reasons and vote.reasons != ("ok",)
    q = LocalQuorum(CONFIG, KEYS)
    q.memory.apply(*_seed(q))
    assert q.submit(p, NOW).status == REJECTED


def _seed(q):
    stats = {"n": 150, "mean": 0.0, "std": 0.0, "win_rate": 0.5, "p05": 0.0, "p95": 0.0, "mean_slippage_bps": 0.0}
    seed = Proposal("seed", "update_pattern", "a", NOW - 10, NOW - 100, {"key": "normal-vol/up|trend", "stats": stats})
    return seed, q.submit(seed, NOW)


def test_the_same_proposal_gets_the_same_verdict_in_process_and_over_the_wire():
    rng = np.random.default_rng(17)
    proposals = [make_proposal(i, rng) for i in range(200)]
    wire = [Proposal.decode(p.encode()) for p in proposals]
    assert wire == proposals and [p.digest for p in wire] == [p.digest for p in proposals]
    local, remote = LocalQuorum(CONFIG, KEYS), LocalQuorum(CONFIG, KEYS)
    assert [local.submit(p, NOW) for p in proposals] == [remote.submit(p, NOW) for p in wire]
    assert {d.status for d in local.coordinator.decided.values()} >= {COMMITTED, REJECTED}


def test_policy_refuses_junk():
    from coinswarm.quorum import Policy

    for bad in ({"min_sharpe": math.nan}, {"min_samples": "100"}, {"actions": ("buy", "x" * 40)},
                {"min_weight": 2.0}, {"actions": "buy"}):
        with pytest.raises(ConfigError, match="Policy"):
            Policy(**bad)


def test_the_old_vote_name_still_imports_with_a_deprecation_warning():
    import coinswarm.quorum as quorum
    import coinswarm.quorum.votes as votes

    with pytest.warns(DeprecationWarning, match="ManagerVote"):
        assert quorum.Vote is ManagerVote
    with pytest.warns(DeprecationWarning, match="ManagerVote"):
        assert votes.Vote is ManagerVote
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from coinswarm.quorum import ManagerVote as fresh  # noqa: F401  the new name: no warning


def test_every_error_here_is_a_coinswarm_error():
    for cls in (ConfigError, MessageError, ConflictError):
        assert issubclass(cls, CoinswarmError)


def test_a_memory_view_as_of_nanoseconds_is_refused_not_silently_all_visible():
    """``Timestamp.value`` is ns: passed as ms it would make every commit visible (lookahead)."""
    q = LocalQuorum(CONFIG, KEYS)
    q.submit(weights(), NOW)
    with pytest.raises(ConfigError, match="as_of"):
        q.memory.view(as_of=NOW * 1_000_000)
    assert q.memory.view(as_of=NOW - 100).planner_weights is None
    assert q.memory.view(as_of=NOW - 99).planner_weights == WEIGHTS["weights"]
