"""The store: PostgreSQL (or embedded SQLite) as memory's source of truth.

``Store(url).migrate()`` brings the schema to the newest Alembic revision.
``apply_commit(proposal, decision)`` writes the decision and its effect in one
transaction (``apply_commits`` a whole batch of them); the decision's primary key makes
a second application a no-op, so a redelivered commit has exactly one effect. Any
failure rolls the whole transaction back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from coinswarm.adapters.sql import open_database
from coinswarm.errors import ConfigError
from coinswarm.memory.models import (
    AuditRow,
    DecisionRow,
    Episode,
    Pattern,
    PlannerWeights,
    ProposalRow,
    QuorumVote,
)
from coinswarm.quorum.coordinator import AuditEvent
from coinswarm.quorum.limits import as_time
from coinswarm.quorum.memory import MemoryView, apply_to_view
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.tally import COMMITTED, Decision
from coinswarm.quorum.votes import ManagerVote

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_URL = "sqlite:///coinswarm.db"
_STAT_FIELDS = ("n", "mean", "std", "win_rate", "p05", "p95", "mean_slippage_bps")


SQLITE_PRAGMAS = ("foreign_keys=ON", "journal_mode=WAL")


class Store:
    """SQLAlchemy access to memory; one instance per process (it owns a connection pool)."""

    def __init__(self, url: str = DEFAULT_URL, **engine_kwargs) -> None:
        self.engine, self.sessions = open_database(url, "store", SQLITE_PRAGMAS, **engine_kwargs)
        self.url = url

    def migrate(self, revision: str = "head") -> None:
        """Run Alembic migrations up to ``revision`` (on PostgreSQL under an advisory lock, so
        several processes may call it at start-up)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":  # processes starting together migrate one at a time
                connection.execute(text("SELECT pg_advisory_xact_lock(7202611)"))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def close(self) -> None:
        """Dispose of the pool."""
        self.engine.dispose()

    # -- writes ----------------------------------------------------------------------
    def record_proposal(self, proposal: Proposal) -> bool:
        """Store a proposal once; False when its id is already known."""
        try:
            with self.sessions.begin() as s:
                s.add(_proposal_row(proposal))
            return True
        except IntegrityError:
            return False

    def record_votes(self, votes: list[ManagerVote]) -> None:
        """Append votes (valid or not) to the vote log."""
        if not votes:
            return
        with self.sessions.begin() as s:
            s.execute(insert(QuorumVote), [{"proposal_id": v.proposal_id, "manager": v.manager, "approve": v.approve,
                                            "reasons": list(v.reasons), "timestamp": v.timestamp,
                                            "signature": v.signature} for v in votes])

    def audit(self, events: list[AuditEvent]) -> None:
        """Append audit events: PostgreSQL takes them by ``COPY`` (rows written by the driver,
        no SQL built per row); other databases by one Core multi-row insert."""
        if not events:
            return
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(_AUDIT_COPY) as copy:
                    for e in events:
                        copy.write_row((e.time, e.kind, e.proposal_id, e.actor, orjson.dumps(e.detail).decode()))
                return
            conn.execute(insert(AuditRow), [{"time": e.time, "kind": e.kind, "proposal_id": e.proposal_id,
                                               "actor": e.actor, "detail": e.detail} for e in events])

    def apply_commit(self, proposal: Proposal, decision: Decision, *, seq: int | None = None,
                     fail_after_decision: bool = False) -> bool:
        """Write the proposal, the decision and, if committed, its effect — in one transaction, at most once.

        ``seq`` orders commits for replay (the commit stream's sequence number; by default
        one more than the largest so far). Returns False when this proposal was already
        decided (the call changes nothing). ``fail_after_decision`` raises half-way (tests
        prove the rollback leaves nothing).
        """
        return self.apply_commits([(proposal, decision, seq)], fail_after_decision=fail_after_decision)[0]

    def apply_commits(self, commits: list[tuple[Proposal, Decision, int | None]], *,
                      fail_after_decision: bool = False) -> list[bool]:
        """Apply many commits in **one** transaction (group commit): each at most once, all or none.

        ``commits`` holds ``(proposal, decision, seq)`` triples in stream order; a ``None``
        seq means "after the largest so far". Returns, per commit, whether it was new.
        Proposals and decisions go in as two multi-row statements, so a batch costs a few
        round trips however long it is; the effects of new committed proposals follow in order.
        """
        for proposal, decision, _ in commits:
            if decision.proposal_id != proposal.id or decision.digest != proposal.digest:
                raise ConfigError(f"decision {decision.proposal_id}/{decision.digest[:8]} is not for proposal "
                                  f"{proposal.id}/{proposal.digest[:8]}")
        if not commits:
            return []
        upsert = _insert_for(self.engine.dialect.name)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                fresh = _pg_insert_decisions(conn, commits, _decision_rows(conn, commits))
            else:
                conn.execute(upsert(ProposalRow).on_conflict_do_nothing(), [_proposal_fields(p) for p, _, _ in commits])
                inserted = conn.execute(upsert(DecisionRow).on_conflict_do_nothing()
                                        .returning(DecisionRow.proposal_id), _decision_rows(conn, commits))
                fresh = set(inserted.scalars())
            if fail_after_decision:
                raise RuntimeError("injected failure after the decision row")
            new, effects = [], []
            for proposal, decision, _ in commits:  # a redelivery inside the batch is not new either
                new.append(proposal.id in fresh)
                fresh.discard(proposal.id)
                if new[-1] and decision.status == COMMITTED:
                    effects.append(proposal)
            _write_effects(conn, upsert, effects)
        return new

    # -- reads -----------------------------------------------------------------------
    def decision(self, proposal_id: str) -> DecisionRow | None:
        """The stored decision of a proposal, if any."""
        with self.sessions() as s:
            return s.get(DecisionRow, proposal_id)

    def count(self, model) -> int:
        """Rows in a table (by model class)."""
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(model)))

    def patterns(self) -> dict[str, dict]:
        """Every pattern as committed now: ``key -> {"enabled", "last_update", statistics…}``.

        One read of the patterns table — what the managers judge against — where
        :meth:`memory` replays every committed proposal."""
        with self.sessions() as s:
            return {row.key: {"enabled": bool(row.enabled), "last_update": row.last_update,
                              **{f: getattr(row, f) for f in _STAT_FIELDS}} for row in s.scalars(select(Pattern))}

    def view(self, as_of: int | None = None) -> MemoryView:
        """Same as :meth:`memory` (the interface walk-forward shares with ``MemoryBook``)."""
        return self.memory(as_of)

    def memory(self, as_of: int | None = None) -> MemoryView:
        """Memory replayed from committed proposals with ``data_time < as_of`` (all when None)."""
        query = (select(ProposalRow.body).join(DecisionRow, DecisionRow.proposal_id == ProposalRow.id)
                 .where(DecisionRow.status == COMMITTED).order_by(DecisionRow.seq))
        if as_of is not None:
            query = query.where(ProposalRow.data_time < as_time(as_of, "as_of"))
        view = MemoryView()
        with self.sessions() as s:
            for body in s.scalars(query):
                apply_to_view(view, Proposal.from_dict(json.loads(body)))
        return view


_AUDIT_COPY = "COPY audit_events (time, kind, proposal_id, actor, detail) FROM STDIN"


def _insert_for(dialect: str):
    """The dialect's INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        raise ConfigError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    return dialect_insert


def _proposal_fields(p: Proposal) -> dict:
    return {"id": p.id, "kind": p.kind, "submitter": p.submitter, "timestamp": p.timestamp,
            "data_time": p.data_time, "digest": p.digest, "body": p.encode().decode()}


# the columns in _proposal_fields order (rows are its values)
_PG_PROPOSALS = ('INSERT INTO proposals (id, kind, submitter, "timestamp", data_time, digest, body) '
                 "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")
_PG_DECISIONS = ("INSERT INTO decisions (proposal_id, seq, digest, status, approvals, rejections, decided_at, "
                 "coordinator) VALUES (%s, %s, %s, %s, %s::json, %s::json, %s, %s) "
                 "ON CONFLICT DO NOTHING RETURNING proposal_id")


def _pg_insert_decisions(conn, commits, rows: list[dict]) -> set[str]:
    """Proposals and decisions through the driver's pipelined ``executemany`` (PostgreSQL):
    the same statements as the Core path without building SQL per row. Returns the ids of
    the decisions that were new."""
    with conn.connection.dbapi_connection.cursor() as cursor:
        cursor.executemany(_PG_PROPOSALS, [tuple(_proposal_fields(p).values()) for p, _, _ in commits])
        cursor.executemany(_PG_DECISIONS, [(r["proposal_id"], r["seq"], r["digest"], r["status"],
                                            orjson.dumps(r["approvals"]).decode(),
                                            orjson.dumps(r["rejections"]).decode(), r["decided_at"],
                                            r["coordinator"]) for r in rows], returning=True)
        fresh = set()
        while True:
            fresh.update(row[0] for row in cursor.fetchall())
            if not cursor.nextset():
                return fresh


def _decision_rows(conn, commits) -> list[dict]:
    """Decision rows of a batch; a missing seq continues after the largest stored one."""
    next_seq = None
    rows = []
    for proposal, decision, seq in commits:
        if seq is None:
            if next_seq is None:
                next_seq = (conn.scalar(select(func.max(DecisionRow.seq))) or 0) + 1
            seq, next_seq = next_seq, next_seq + 1
        rows.append({"proposal_id": proposal.id, "seq": seq, "digest": decision.digest, "status": decision.status,
                     "approvals": list(decision.approvals), "rejections": list(decision.rejections),
                     "decided_at": decision.decided_at or 0, "coordinator": decision.coordinator})
    return rows


def _proposal_row(p: Proposal) -> ProposalRow:
    return ProposalRow(**_proposal_fields(p))


def _write_effects(conn, upsert, proposals: list[Proposal]) -> None:
    """The effects of a batch's committed proposals with one multi-row statement per kind.

    The end state equals applying them one by one in order: a key's last pattern update
    carries all its statistics; promotions and deprecations run in order after the updates,
    unless one precedes an update of its key in the batch (then everything runs in order).
    """
    toggles = [(i, p) for i, p in enumerate(proposals) if p.kind in ("promote_pattern", "deprecate_pattern")]
    updates = {p.data["key"]: (i, p) for i, p in enumerate(proposals) if p.kind == "update_pattern"}
    first_update = {}
    for i, p in enumerate(proposals):
        if p.kind == "update_pattern":
            first_update.setdefault(p.data["key"], i)
    if any(first_update.get(p.data["key"], -1) > i for i, p in toggles):
        for p in proposals:
            _write_effect(conn, upsert, p)
        return
    if updates:
        statement = upsert(Pattern)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["key"], set_={f: statement.excluded[f] for f in (*_STAT_FIELDS, "last_update")}),
            [{"key": key, "enabled": False, "last_update": p.data_time, **{f: p.data["stats"][f] for f in _STAT_FIELDS}}
             for key, (_, p) in updates.items()])
    for _, p in toggles:
        _write_effect(conn, upsert, p)
    episodes = [_episode_row(p) for p in proposals if p.kind == "add_episode"]
    if episodes:
        conn.execute(insert(Episode), episodes)
    weights = [{"proposal_id": p.id, "data_time": p.data_time, "weights": p.data["weights"]}
               for p in proposals if p.kind == "planner_weights"]
    if weights:
        conn.execute(insert(PlannerWeights), weights)


def _episode_row(p: Proposal) -> dict:
    vector = np.asarray(p.data["embedding"], dtype=np.float32)
    return {"id": p.id, "data_time": p.data_time, "action": p.data["action"], "outcome": float(p.data["outcome"]),
            "dim": len(vector), "embedding": vector.tobytes()}


def _write_effect(conn, upsert, p: Proposal) -> None:
    """The committed proposal's effect, as Core statements on ``conn`` (inside the commit's transaction)."""
    key = p.data.get("key")
    if p.kind == "update_pattern":
        stats = {k: p.data["stats"][k] for k in _STAT_FIELDS}
        statement = upsert(Pattern).values(key=key, enabled=False, last_update=p.data_time, **stats)
        conn.execute(statement.on_conflict_do_update(index_elements=["key"],
                                                     set_={**stats, "last_update": p.data_time}))
    elif p.kind in ("promote_pattern", "deprecate_pattern"):
        done = conn.execute(update(Pattern).where(Pattern.key == key).values(enabled=p.kind == "promote_pattern")
                            .returning(Pattern.key))
        if done.first() is None:
            raise ConfigError(f"{p.kind} for unknown pattern {key!r}")
    elif p.kind == "add_episode":
        conn.execute(insert(Episode).values(**_episode_row(p)))
    elif p.kind == "planner_weights":
        conn.execute(insert(PlannerWeights).values(proposal_id=p.id, data_time=p.data_time,
                                                   weights=p.data["weights"]))
