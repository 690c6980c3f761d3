"""``coinswarm quorum node|applier|submit|decisions``: the quorum memory from the shell.

``node`` and ``applier`` run one quorum member until SIGINT/SIGTERM; ``submit`` appends
proposals read from JSON to ``mem.propose``; ``decisions`` prints the decisions on the commit
stream as they come (one line each, or JSON lines), so the README's "quorum as processes" demo
is complete without writing Python. Every "ready" and decision line is flushed at once, so a
reader of redirected output (a file, a pipe, a test) sees it when it happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from coinswarm.cli import checks
from coinswarm.errors import ConfigError

APPLIER_NICE = 10  # the applier is a projection of the commit stream: decisions get the CPU first
SECRET_ENV = "COINSWARM_QUORUM_SECRET"
EPILOG = """examples:
  eval "$(coinswarm stack up)"; export COINSWARM_QUORUM_SECRET=change-me
  for m in m1 m2 m3 m4; do coinswarm quorum node --name $m & done; coinswarm quorum applier &
  coinswarm quorum decisions &                       # one line per decision as it is made
  coinswarm quorum submit runners/proposal.example.json   # or - for stdin; "timestamp" defaults to now

A proposal is a JSON object with id (optional), kind, submitter, data_time (epoch ms of the
data it was learned from), data and justification; a file may hold one, a list, or JSON lines."""


def add_commands(sub) -> None:
    """Register ``quorum`` and its four sub-commands on the top-level sub-parsers ``sub``."""
    p = sub.add_parser("quorum", help="the quorum memory: run a member, submit proposals, follow decisions",
                       epilog=EPILOG)
    qsub = p.add_subparsers(dest="role", required=True)
    member = _member_options()
    for role, text in (("node", "run one manager node until SIGINT/SIGTERM"),
                       ("applier", "apply commits to the store until SIGINT/SIGTERM")):
        q = qsub.add_parser(role, help=text, parents=[member])
        if role == "node":
            q.add_argument("--name", default=None, help="the manager this node runs (one of --managers)")
        q.set_defaults(func=cmd_member)
    q = qsub.add_parser("submit", help="append proposals from JSON to mem.propose", parents=[_nats_option()])
    q.add_argument("path", metavar="FILE", help="a JSON object, a list of them, or JSON lines; - reads stdin")
    q.set_defaults(func=cmd_submit)
    q = qsub.add_parser("decisions", help="print the decisions on the commit stream as they come (their signatures "
                        f"re-checked when {SECRET_ENV} is set)", parents=[_quorum_options()])
    q.add_argument("--all", action="store_true", help="start at the first decision in the stream, not the next")
    q.add_argument("--count", type=checks.whole(1, 10**9), default=None, help="stop after this many decisions")
    q.add_argument("--idle", type=checks.positive, default=None, metavar="SECONDS",
                   help="stop after this long without a decision (default: follow until Ctrl-C)")
    q.add_argument("--json", action="store_true", help="one JSON object per decision (JSON lines)")
    q.set_defaults(func=cmd_decisions)


def _nats_option() -> argparse.ArgumentParser:
    parent = checks.Parser(add_help=False)
    parent.add_argument("--nats", default=None, help="NATS URL (default $COINSWARM_NATS_URL)")
    return parent


def _quorum_options() -> argparse.ArgumentParser:
    parent = checks.Parser(add_help=False, parents=[_nats_option()])
    parent.add_argument("--managers", default="m1,m2,m3,m4",
                        help="every manager, comma-separated, same order everywhere")
    parent.add_argument("--f", type=checks.whole(0, 1_000), default=1, help="Byzantine managers tolerated (n ≥ 3f + 1)")
    return parent


def _member_options() -> argparse.ArgumentParser:
    parent = checks.Parser(add_help=False, parents=[_quorum_options()])
    parent.add_argument("--store", default=None, help="store URL (default $COINSWARM_POSTGRES_URL)")
    parent.add_argument("--timeout-ms", type=checks.whole(1, 3_600_000), default=5_000,
                        help="a proposal's vote window: it opens when f + 1 managers have voted; "
                             "without a quorum by its end the proposal times out")
    parent.add_argument("--failover-ms", type=checks.whole(1, 3_600_000), default=500,
                        help="a silent coordinator is taken over after this long")
    parent.add_argument("--poll-ms", type=checks.finite, default=20.0,
                        help="applier: read the commit stream in bursts, sleeping this long when it is drained "
                             "(0: have each commit pushed as it comes)")
    parent.add_argument("--nice", type=checks.whole(0, 19), default=None,
                        help="lower this process's CPU priority by this much (default: 10 for the applier, 0 for "
                             "a node: on a shared machine the decisions go first, the store catches up in bigger "
                             "batches)")
    return parent


def _nats_url(args) -> str:
    url = args.nats or os.environ.get("COINSWARM_NATS_URL")
    if not url:
        raise ConfigError(f"quorum {args.role} needs --nats (or COINSWARM_NATS_URL)")
    return url


def managers(args) -> tuple[str, ...]:
    """``--managers`` as a tuple of names."""
    return tuple(m.strip() for m in args.managers.split(",") if m.strip())


def _say(text: str) -> None:
    print(text, flush=True)


def cmd_member(args) -> int:
    """``quorum node`` / ``quorum applier``."""
    from coinswarm.memory.service import QuorumSettings, run_until_signalled, serve_applier, serve_node

    nats, store = args.nats or os.environ.get("COINSWARM_NATS_URL"), args.store or os.environ.get(
        "COINSWARM_POSTGRES_URL")
    if not nats or not store:
        raise ConfigError("quorum needs --nats and --store (or COINSWARM_NATS_URL and COINSWARM_POSTGRES_URL)")
    settings = QuorumSettings(nats, store, managers(args), f=args.f, timeout_ms=args.timeout_ms,
                              failover_ms=args.failover_ms, poll_ms=args.poll_ms or None)
    nice = args.nice if args.nice is not None else APPLIER_NICE if args.role == "applier" else 0
    try:
        os.nice(nice)
    except OSError as exc:
        raise ConfigError(f"--nice {nice}: cannot change this process's CPU priority ({exc})") from exc
    if args.role == "node":
        if not args.name:
            raise ConfigError("quorum node needs --name (one of --managers)")
        node = run_until_signalled(serve_node, settings, args.name, lambda: _say(f"{args.name}: ready on {nats}"))
        _say(f"{args.name}: stopped after {node.published} commits published, {node.taken_over} taken over "
             f"from a silent coordinator, {node.resent} vote messages re-sent, {node.bad_messages} bad messages"
             + _read_errors(node))
    else:
        applier = run_until_signalled(serve_applier, settings, lambda: _say(f"applier: ready on {nats}"))
        _say(f"applier: stopped after {applier.applied} applied, {applier.duplicates} duplicates, "
             f"{applier.refused} refused, {len(applier.failed)} failed" + _read_errors(applier))
    return 0


def _read_errors(member) -> str:
    """``, N failed stream reads (last: …)`` when a quorum member's polls of the commit stream raised."""
    if not member.failed_reads:
        return ""
    return f", {member.failed_reads} failed stream reads (last: {member.last_read_error})"


def read_proposals(path: str, now_ms: int) -> list:
    """Proposals from a JSON file (``-``: stdin): one object, a list of objects, or JSON lines.

    ``timestamp`` may be left out (then ``now_ms``), and ``id`` too (then ``cli-<random>``).

    Raises
    ------
    ConfigError
        No such file, not JSON, or no proposal in it.
    MessageError
        A proposal that is malformed (names the field).
    """
    import uuid

    from coinswarm.quorum import Proposal

    if path == "-":
        text = sys.stdin.read()
    else:
        if not os.path.isfile(path):
            raise ConfigError(f"quorum submit {path!r}: no such file")
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    try:
        raw = json.loads(text)
        items = raw if isinstance(raw, list) else [raw]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"quorum submit {path!r} is neither JSON nor JSON lines: {exc}") from None
    if not items:
        raise ConfigError(f"quorum submit {path!r} holds no proposal")
    out = []
    for item in items:
        if isinstance(item, dict):
            item = {"id": f"cli-{uuid.uuid4().hex[:16]}", "timestamp": now_ms, **item}
        out.append(Proposal.from_dict(item))
    return out


def cmd_submit(args) -> int:
    """``quorum submit FILE``: one line per proposal (submitted, or already in the stream)."""
    from coinswarm.memory.nodes import wall_clock_ms

    proposals = read_proposals(args.path, wall_clock_ms())
    url = _nats_url(args)
    from coinswarm.adapters.batching import run_with_deadline
    from coinswarm.cli.quorum_follow import quiet_client_log

    quiet_client_log(args)
    fresh = run_with_deadline(_submit(url, proposals), 60 + len(proposals))
    for proposal, new in zip(proposals, fresh, strict=True):
        _say(f"{proposal.id}: {'submitted' if new else 'already in the stream (same id): not submitted again'}")
    return 0


async def _submit(url: str, proposals: list) -> list[bool]:
    from coinswarm.adapters.bus import NatsBus
    from coinswarm.memory.nodes import submit

    bus = await NatsBus.connect(url, name="coinswarm-submit", max_reconnect_attempts=5, connect_timeout=5.0)
    try:
        return [await submit(bus, p) for p in proposals]
    finally:
        await bus.close()


def cmd_decisions(args) -> int:
    """``quorum decisions``: follow the commit stream (signatures re-checked when the secret is set)."""
    import asyncio

    from coinswarm.cli.quorum_follow import follow

    url = _nats_url(args)
    try:
        asyncio.run(follow(url, args, _say))
    except KeyboardInterrupt:
        pass
    return 0
