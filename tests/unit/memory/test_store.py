"""The SQL store on embedded SQLite and on a real PostgreSQL server: migrations,
idempotent commits, rollback, and memory replay equal to the pure memory book."""

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from coinswarm.errors import ConfigError
from coinswarm.memory import Store
from coinswarm.memory.models import (
    AuditRow,
    Base,
    DecisionRow,
    Episode,
    Pattern,
    PlannerWeights,
    ProposalRow,
    QuorumVote,
)
from coinswarm.quorum import (
    COMMITTED,
    AuditEvent,
    LocalQuorum,
    Proposal,
    QuorumConfig,
    derive_keys,
)

MANAGERS = ("m1", "m2", "m3", "m4")
KEYS = derive_keys(b"store", MANAGERS)
NOW = 1_735_689_600_000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def backend(request):
    return request.param


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'memory.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    s.migrate()
    yield s
    s.close()


def stats(n=150):
    return {"n": n, "mean": 0.002, "std": 0.01, "win_rate": 0.56, "p05": -0.01, "p95": 0.02, "mean_slippage_bps": 3.0}


def committed(quorum, proposal):
    decision = quorum.submit(proposal, NOW)
    assert decision.status == COMMITTED, decision
    return decision


def test_migrated_schema_equals_the_models(store):
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_migration_0002_drops_the_unused_tables_and_keeps_the_rest(request, tmp_path, backend):
    """0001 → 0002 drops ``agent_states`` and ``regimes`` (never written) and keeps every
    other table and its rows (``trades`` stays for the live runner); the downgrade restores
    both tables empty. On SQLite and on the real PostgreSQL server."""
    url = f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store(url)
    try:
        s.migrate("0001")
        with s.engine.begin() as c:
            c.execute(text("INSERT INTO trades (time, symbol, side, qty, price, fee, strategy, data_time) "
                           "VALUES (1, 'BTC/USDT', 'buy', 0.5, 100.0, 0.05, 'trend', 0)"))
            c.execute(text("INSERT INTO regimes VALUES ('BTC/USDT', 1, 'v1', 'low', 'up', 'deep', 'asia')"))
        s.migrate("0002")
        tables = set(inspect(s.engine).get_table_names())
        assert {"agent_states", "regimes"}.isdisjoint(tables)
        assert {"trades", "patterns", "episodes", "proposals", "decisions", "audit_events", "quorum_votes",
                "planner_weights"} <= tables
        with s.engine.connect() as c:
            assert c.execute(text("SELECT symbol, qty FROM trades")).all() == [("BTC/USDT", 0.5)]
            diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
        assert diff == [], "after 0002 the schema is exactly the models"
        _alembic_downgrade(s, "0001")
        assert {"agent_states", "regimes"} <= set(inspect(s.engine).get_table_names())
        s.migrate()
        assert "regimes" not in set(inspect(s.engine).get_table_names())
    finally:
        s.close()


def _alembic_downgrade(store, revision):
    from alembic import command
    from alembic.config import Config

    from coinswarm.memory.store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_the_old_orm_audit_name_still_imports_with_a_warning():
    import coinswarm.memory.models as models

    with pytest.warns(DeprecationWarning, match="AuditRow"):
        assert models.AuditEvent is AuditRow
    assert not hasattr(models, "AgentState") and not hasattr(models, "Regime")


def test_commits_apply_once_and_replay_like_the_memory_book(store):
    quorum = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    proposals = [
        Proposal("u1", "update_pattern", "a", NOW - 9, NOW - 100, {"key": "k", "stats": stats()}),
        Proposal("w1", "planner_weights", "a", NOW - 8, NOW - 90, {"weights": {"trend": 0.7, "mean_reversion": 0.3}}),
        Proposal("e1", "add_episode", "a", NOW - 7, NOW - 80,
                 {"embedding": [float(x) for x in np.linspace(-1, 1, 384)], "action": "buy", "outcome": 0.02}),
        Proposal("u2", "update_pattern", "a", NOW - 6, NOW - 70, {"key": "k", "stats": stats(200)}),
    ]
    for p in proposals:
        decision = committed(quorum, p)
        assert store.apply_commit(p, decision)
        assert not store.apply_commit(p, decision), "a redelivered commit must change nothing"
    assert store.count(DecisionRow) == 4 and store.count(Episode) == 1 and store.count(Pattern) == 1
    replayed, book = store.memory(), quorum.memory.view()
    assert replayed.patterns == book.patterns and replayed.planner_weights == book.planner_weights
    assert store.memory(as_of=NOW - 80).planner_weights == {"trend": 0.7, "mean_reversion": 0.3}
    assert store.memory(as_of=NOW - 90).planner_weights is None
    assert store.memory(as_of=NOW - 75).patterns["k"]["n"] == 150


def test_a_failed_commit_rolls_back_completely(store):
    quorum = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    p = Proposal("u9", "update_pattern", "a", NOW - 9, NOW - 100, {"key": "k", "stats": stats()})
    decision = committed(quorum, p)
    with pytest.raises(RuntimeError, match="injected"):
        store.apply_commit(p, decision, fail_after_decision=True)
    assert store.count(DecisionRow) == 0 and store.count(Pattern) == 0
    assert store.apply_commit(p, decision), "after the rollback the commit applies normally"
    assert store.count(Pattern) == 1


def test_a_batch_of_commits_is_one_transaction_with_each_applied_once(store):
    quorum = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    proposals = [Proposal(f"b{i}", "update_pattern", "a", NOW - 9, NOW - 100 + i, {"key": f"k{i}", "stats": stats()})
                 for i in range(4)]
    decided = [(p, committed(quorum, p), 10 + i) for i, p in enumerate(proposals)]
    assert store.apply_commit(*decided[0][:2], seq=10)
    with pytest.raises(RuntimeError, match="injected"):
        store.apply_commits(decided[1:], fail_after_decision=True)
    assert store.count(DecisionRow) == 1 and store.count(Pattern) == 1, "a failed batch leaves nothing behind"
    batch = [decided[0], decided[1], decided[2], decided[1], decided[3]]  # one old, one redelivered inside
    assert store.apply_commits(batch) == [False, True, True, False, True]
    assert store.count(DecisionRow) == 4 and store.count(Pattern) == 4
    assert store.memory().patterns.keys() == {"k0", "k1", "k2", "k3"}
    with store.sessions() as s:
        assert [row.seq for row in s.query(DecisionRow).order_by(DecisionRow.seq)] == [10, 11, 12, 13]


def test_votes_audit_and_mismatched_decisions(store):
    quorum = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    p = Proposal("w2", "planner_weights", "a", NOW - 9, NOW - 10, {"weights": {"a": 1.0}})
    decision = committed(quorum, p)
    store.record_proposal(p)
    store.record_votes([quorum.managers[m].evaluate(p, quorum.memory.context(NOW)) for m in MANAGERS])
    store.audit([AuditEvent(NOW, "decision", p.id, "m1", {"status": decision.status})])
    assert store.count(QuorumVote) == 4 and store.count(AuditRow) == 1 and store.count(ProposalRow) == 1
    other = Proposal("w3", "planner_weights", "a", NOW - 9, NOW - 10, {"weights": {"a": 1.0}})
    with pytest.raises(ConfigError, match="not for proposal"):
        store.apply_commit(other, decision)


def test_bad_store_url_is_a_config_error():
    with pytest.raises(ConfigError, match="store URL"):
        Store("coinswarm.db")


def test_a_batch_ends_where_applying_its_commits_one_by_one_ends(store, tmp_path):
    quorum = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    good = stats(150) | {"mean": 0.004}
    promote_evidence = {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0, "kurtosis": 3.0,
                        "periods_per_year": 365.0, "fold_sharpes": [1.1, 2.0, 0.7, 1.4]}
    proposals = [
        Proposal("s1", "update_pattern", "a", NOW - 9, NOW - 100, {"key": "k1", "stats": stats(120)}),
        Proposal("s2", "update_pattern", "a", NOW - 9, NOW - 99, {"key": "k2", "stats": stats(130)}),
        Proposal("s3", "update_pattern", "a", NOW - 9, NOW - 98, {"key": "k1", "stats": good}),
        Proposal("s4", "planner_weights", "a", NOW - 9, NOW - 97, {"weights": {"trend": 1.0}}),
        Proposal("s5", "add_episode", "a", NOW - 9, NOW - 96,
                 {"embedding": [0.5] * 384, "action": "buy", "outcome": 0.01}),
        Proposal("s6", "planner_weights", "a", NOW - 9, NOW - 95, {"weights": {"trend": 0.5, "mean_reversion": 0.5}}),
    ]
    decided = [(p, committed(quorum, p), i + 1) for i, p in enumerate(proposals)]
    promote = Proposal("s7", "promote_pattern", "a", NOW - 9, NOW - 94, {"key": "k1"}, promote_evidence)
    decided.append((promote, committed(quorum, promote), 7))
    one_by_one = Store(f"sqlite:///{tmp_path / 'sequential.db'}")
    one_by_one.migrate()
    for p, d, seq in decided:
        one_by_one.apply_commit(p, d, seq=seq)
    assert all(store.apply_commits(decided))
    batch, sequential = store.memory(), one_by_one.memory()
    assert batch.patterns == sequential.patterns and batch.planner_weights == sequential.planner_weights
    with store.sessions() as a, one_by_one.sessions() as b:
        rows = [[(r.key, r.n, r.mean, r.enabled, r.last_update) for r in s.query(Pattern).order_by(Pattern.key)]
                for s in (a, b)]
    assert rows[0] == rows[1] and rows[0][0][1:3] == (150, 0.004)
    assert store.count(Episode) == 1 and store.count(PlannerWeights) == 2
    one_by_one.close()


def test_the_patterns_table_is_what_the_managers_see_after_replay(store):
    """``Store.patterns`` (one table read, used by live managers) agrees with a full replay."""
    quorum = LocalQuorum(QuorumConfig(MANAGERS), KEYS)
    promote = {"n": 400, "sharpe": 2.4, "max_drawdown": 0.06, "skew": 0.0, "kurtosis": 3.0, "periods_per_year": 365.0,
               "fold_sharpes": [1.0, 2.0, 1.5]}
    proposals = [Proposal("u1", "update_pattern", "a", NOW - 9, NOW - 100, {"key": "k", "stats": stats()}),
                 Proposal("u2", "update_pattern", "a", NOW - 8, NOW - 90, {"key": "j", "stats": stats(120)}),
                 Proposal("p1", "promote_pattern", "a", NOW - 7, NOW - 80, {"key": "k"}, promote),
                 Proposal("u3", "update_pattern", "a", NOW - 6, NOW - 70, {"key": "k", "stats": stats(300)})]
    for p in proposals:
        store.apply_commit(p, committed(quorum, p))
    table, replayed = store.patterns(), store.memory().patterns
    assert set(table) == set(replayed) == {"k", "j"}
    for key, entry in replayed.items():
        assert {f: table[key][f] for f in entry} == entry
    assert table["k"]["enabled"] and not table["j"]["enabled"] and table["k"]["n"] == 300


def test_audit_rows_read_back_as_written(store):
    """PostgreSQL takes audit rows by COPY, SQLite by INSERT: both store the same thing."""
    events = [AuditEvent(NOW, "vote_batch", "p1", "m2", {"approve": ("p1", "p2"), "reject": (), "signature": "ab"}),
              AuditEvent(NOW + 1, "discard", "p\t2", "m4", {"reason": "late: 5 > 4 \\ «quoted»\n"}),
              AuditEvent(NOW + 2, "decision", "p3", "m1", {"status": "committed", "approvals": ["m1", "m2", "m3"]})]
    store.audit(events)
    with store.sessions() as s:
        rows = s.query(AuditRow).order_by(AuditRow.time).all()
    assert [(r.time, r.kind, r.proposal_id, r.actor) for r in rows] == [(e.time, e.kind, e.proposal_id, e.actor)
                                                                         for e in events]
    assert [r.detail for r in rows] == [{"approve": ["p1", "p2"], "reject": [], "signature": "ab"},
                                        events[1].detail, events[2].detail]


def test_memory_as_of_must_be_an_epoch_ms_time(store):
    for bad in (float("nan"), "2021", -1, 1_630_454_400_000_000_000):  # the last: ns, not ms
        with pytest.raises(ConfigError, match="as_of"):
            store.memory(as_of=bad)
    assert store.memory(as_of=NOW).patterns == {}
