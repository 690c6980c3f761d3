"""Committed memory and the in-process quorum used inside backtests.

:class:`MemoryBook` applies committed proposals idempotently (applying a commit twice has
one effect) and answers *as of a data time*: ``view(as_of)`` sees only commits learned
from data strictly before ``as_of``, so a walk-forward fold cannot use memory distilled
from its own test window or later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from coinswarm.errors import ConfigError, ConflictError, MessageError
from coinswarm.quorum.coordinator import Coordinator, check_quorum
from coinswarm.quorum.limits import as_time
from coinswarm.quorum.manager import READS_MEMORY, Context, Manager, Policy, verdict_entries
from coinswarm.quorum.proposals import Proposal
from coinswarm.quorum.tally import COMMITTED, Decision, QuorumConfig
from coinswarm.quorum.votes import Entry, ManagerVote


@dataclass
class MemoryView:
    """Memory as seen at one data time."""

    patterns: dict = field(default_factory=dict)
    episodes: list = field(default_factory=list)
    planner_weights: dict | None = None

    def enabled(self, key: str) -> bool:
        """Whether pattern ``key`` is enabled in this view."""
        return bool(self.patterns.get(key, {}).get("enabled"))


class MemoryBook:
    """Every committed proposal in commit order; views replay them up to a data time."""

    def __init__(self) -> None:
        self.commits: list[Proposal] = []
        self.digests: dict[str, str] = {}  # committed id -> digest
        self._current = MemoryView()

    def apply(self, proposal: Proposal, decision: Decision) -> bool:
        """Record a committed proposal; returns False if it was already applied (or not committed)."""
        if decision.status != COMMITTED or decision.digest != proposal.digest or proposal.id in self.digests:
            return False
        self.digests[proposal.id] = proposal.digest
        self.commits.append(proposal)
        apply_to_view(self._current, proposal)
        return True

    def view(self, as_of: int | None = None) -> MemoryView:
        """Memory built from commits whose ``data_time < as_of`` (everything when ``None``)."""
        if as_of is None:
            return self._current
        as_of = as_time(as_of, "as_of")
        out = MemoryView()
        for p in self.commits:
            if p.data_time < as_of:
                apply_to_view(out, p)
        return out

    def context(self, now: int, as_of: int | None = None) -> Context:
        """The managers' context: the caller's time and the patterns in the view."""
        return Context(now=now, patterns=self.view(as_of).patterns)


def apply_to_view(view: MemoryView, p: Proposal) -> None:
    """Apply one committed proposal's effect to ``view`` (in place)."""
    _EFFECTS[p.kind](view, p)


def _update_pattern(view: MemoryView, p: Proposal) -> None:
    view.patterns.setdefault(p.data.get("key"), {"enabled": False}).update(p.data["stats"])


def _promote_pattern(view: MemoryView, p: Proposal) -> None:
    view.patterns.setdefault(p.data.get("key"), {})["enabled"] = True


def _deprecate_pattern(view: MemoryView, p: Proposal) -> None:
    view.patterns.setdefault(p.data.get("key"), {})["enabled"] = False


def _add_episode(view: MemoryView, p: Proposal) -> None:
    view.episodes.append(p.data)


def _planner_weights(view: MemoryView, p: Proposal) -> None:
    view.planner_weights = dict(p.data["weights"])


_EFFECTS = {"update_pattern": _update_pattern, "promote_pattern": _promote_pattern,
            "deprecate_pattern": _deprecate_pattern, "add_episode": _add_episode,
            "planner_weights": _planner_weights}


Behaviour = Callable[[Manager, Proposal, Context], list[ManagerVote]]


def honest(manager: Manager, proposal: Proposal, context: Context) -> list[ManagerVote]:
    """Evaluate and sign, once."""
    return [manager.evaluate(proposal, context)]


class LocalQuorum:
    """Managers, coordinator and memory in one process, deterministic (for backtests and tests).

    ``behaviours`` replaces a manager's conduct (crashed: return ``[]``; Byzantine: any
    votes at all), so fault scenarios run through the very same tally as honest ones.
    """

    def __init__(self, config: QuorumConfig, keys: dict[str, bytes], policy: Policy | None = None,
                 behaviours: dict[str, Behaviour] | None = None) -> None:
        check_quorum(config, keys)
        missing = [m for m in config.managers if m not in keys]
        if missing:
            raise ConfigError(f"keys lack the managers {missing}: give every manager of the config a key")
        if not (policy is None or isinstance(policy, Policy)):
            raise ConfigError(f"policy must be a Policy or None, got {type(policy).__name__}")
        if not (behaviours is None or isinstance(behaviours, dict) and all(callable(b) for b in behaviours.values())):
            raise ConfigError("behaviours must be a dict of manager name → callable(manager, proposal, context)")
        self.config = config
        self.managers = {m: Manager(m, keys[m], policy or Policy()) for m in config.managers}
        self.behaviours = behaviours or {}
        self.coordinator = Coordinator(config, keys)
        self.memory = MemoryBook()

    def admit(self, proposals: list[Proposal], now: int) -> int:
        """Check a submission before anything changes: ``now`` is a time (:func:`as_time`),
        each item a :class:`Proposal`, and no id already decided (or earlier in the list)
        comes back with different content (:class:`ConflictError`). Returns ``now`` as an int."""
        now = as_time(now)
        decided, committed = self.coordinator.decided, self.memory.digests
        earlier: dict[str, str] = {}
        for k, proposal in enumerate(proposals):
            if not isinstance(proposal, Proposal):
                raise MessageError(f"item {k} is a {type(proposal).__name__}, not a Proposal: build one with "
                                   f"Proposal(...) or Proposal.from_dict(...)", field="proposal")
            pid = proposal.id
            old = decided.get(pid)
            digest = old.digest if old is not None else committed.get(pid) or earlier.setdefault(pid, proposal.digest)
            if digest != proposal.digest:
                raise ConflictError(f"id already decided with digest {digest[:12]}…; this proposal's content "
                                    f"differs (digest {proposal.digest[:12]}…): use a new id for new content",
                                    field="id", message_id=pid)
        return now

    def submit_many(self, proposals: list[Proposal], now: int) -> list[Decision]:
        """Decide many proposals, exactly as ``[submit(p, now) for p in proposals]`` would,
        with each honest manager signing one :class:`~coinswarm.quorum.votes.VoteBatch` per run instead of one vote
        per proposal.

        A run ends before a proposal whose checks read memory (it must see the commits of
        every proposal before it) and before a repeated id, so each proposal is judged
        against the same memory as in :meth:`submit`. Managers with a custom behaviour vote
        one vote at a time, through the same coordinator.

        Everything is checked first (see :meth:`admit`): on an error nothing is decided.
        """
        if not isinstance(proposals, list | tuple):
            raise MessageError(f"submit_many takes a list of proposals, got {type(proposals).__name__}")
        now = self.admit(proposals, now)
        decisions: list[Decision] = []
        for run in _runs(proposals):
            decisions += self._decide_run(run, now)
        return decisions

    def _decide_run(self, run: list[Proposal], now: int) -> list[Decision]:
        context = self.memory.context(now)
        for proposal in run:
            self.coordinator.propose(proposal, now)  # a repeat is audited; its old decision stands
        decided, every = self.coordinator.decided, run
        run = [p for p in run if p.id not in decided]
        if not run:
            return [decided[p.id] for p in every]
        verdicts: dict[Policy, tuple[Entry, ...]] = {}  # Manager.reasons is pure: judged once per policy
        for name, manager in self.managers.items():
            behaviour = self.behaviours.get(name)
            if behaviour is None:
                if manager.policy not in verdicts:
                    verdicts[manager.policy] = verdict_entries(run, [manager.reasons(p, context) for p in run])
                self.coordinator.vote_batch(manager.sign_entries(verdicts[manager.policy], now), now)
                continue
            for proposal in run:
                for vote in behaviour(manager, proposal, context):
                    self.coordinator.vote(vote, now)
        stragglers = [p for p in run if p.id in self.coordinator.open]
        for proposal in sorted(stragglers, key=self._closing_time):  # no quorum: each times out at its deadline
            self.coordinator.expire(proposal.id, self._closing_time(proposal))
        for proposal in run:
            self.memory.apply(proposal, decided[proposal.id])
        return [decided[p.id] for p in every]

    def submit(self, proposal: Proposal, now: int) -> Decision:
        """Run one proposal to a decision (or timeout) and apply it if committed.

        A proposal already decided comes back with its old decision (idempotent); the same
        id with different content raises :class:`~coinswarm.errors.ConflictError`, a bad
        ``now`` :class:`~coinswarm.errors.ConfigError` and a non-proposal
        :class:`~coinswarm.errors.MessageError` — all before anything changes.
        """
        now = self.admit([proposal], now)
        context = self.memory.context(now)
        self.coordinator.propose(proposal, now)
        if proposal.id in self.coordinator.decided:  # a repeat (audited by propose)
            return self.coordinator.decided[proposal.id]
        decision = None
        for name, manager in self.managers.items():
            for vote in self.behaviours.get(name, honest)(manager, proposal, context):
                decision = self.coordinator.vote(vote, now) or decision
        if decision is None:
            decision = self.coordinator.expire(proposal.id, self._closing_time(proposal))
        if decision is None:
            decision = self.coordinator.decided[proposal.id]
        self.memory.apply(proposal, decision)
        return decision

    def _closing_time(self, proposal: Proposal) -> int:
        """When an open ``proposal`` times out here, every manager having had its turn: just
        after its ballot's deadline, or — when fewer than ``f + 1`` managers voted, so its
        window never opened — just after the deadline its timestamp alone would give."""
        ballot = self.coordinator.open.get(proposal.id)
        deadline = ballot.deadline if ballot is not None else None
        return (deadline if deadline is not None else proposal.timestamp + self.config.timeout_ms) + 1


def _runs(proposals: list[Proposal]) -> list[list[Proposal]]:
    """Split into runs one context can judge: a new run starts at a proposal that reads
    memory and at an id the run already holds."""
    runs: list[list[Proposal]] = []
    ids: set[str] = set()
    for proposal in proposals:
        if not runs or proposal.kind in READS_MEMORY or proposal.id in ids:
            runs.append([])
            ids = set()
        runs[-1].append(proposal)
        ids.add(proposal.id)
    return runs
