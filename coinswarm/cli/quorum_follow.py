"""Following ``mem.commit`` for ``coinswarm quorum decisions`` (an ephemeral, ordered reader:
nothing is left on the server when it stops)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable

from coinswarm.errors import MessageError


def quiet_client_log(args) -> None:
    """Without ``--debug``, the NATS client logs no tracebacks of its connection attempts: a
    server that cannot be reached ends in our one line (exit 2), not in pages of retries."""
    import logging

    if not getattr(args, "debug", False):
        logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)


def decision_line(proposal, decision, as_json: bool) -> str:
    """One decision as text (``<id> committed kind=… approvals=m1,m2,m3``) or a JSON object."""
    if as_json:
        return json.dumps({"proposal_id": decision.proposal_id, "status": decision.status, "kind": proposal.kind,
                           "submitter": proposal.submitter, "decided_at": decision.decided_at,
                           "approvals": list(decision.approvals), "rejections": list(decision.rejections),
                           "coordinator": decision.coordinator, "data": proposal.data})
    return (f"{decision.proposal_id} {decision.status} kind={proposal.kind} submitter={proposal.submitter} "
            f"approvals={','.join(decision.approvals) or '-'} rejections={','.join(decision.rejections) or '-'}"
            f" decided_at={decision.decided_at}")


def _decoder(managers: tuple[str, ...], f: int) -> Callable[[bytes], list]:
    """Verified decoding with the keys from ``COINSWARM_QUORUM_SECRET``, else plain decoding."""
    from coinswarm.memory.commits import decode_commits, verified_commits

    if not os.environ.get("COINSWARM_QUORUM_SECRET"):
        return decode_commits
    from coinswarm.memory.service import QuorumSettings

    settings = QuorumSettings("unused", "unused", managers, f=f)
    config, keys = settings.config, settings.keys()
    return lambda payload: verified_commits(payload, config, keys)


async def follow(url: str, args, say: Callable[[str], None]) -> int:
    """Print each decision on the commit stream until ``args.count`` are shown, ``args.idle``
    seconds pass without one, or the task is cancelled; returns how many were shown."""
    from nats.js.api import DeliverPolicy

    from coinswarm.adapters.bus import STREAM_NAME, NatsBus
    from coinswarm.cli.quorum import managers

    decode, shown, queue = _decoder(managers(args), args.f), 0, asyncio.Queue()
    quiet_client_log(args)
    bus = await NatsBus.connect(url, name="coinswarm-decisions", max_reconnect_attempts=5, connect_timeout=5.0)
    try:
        async def put(msg) -> None:
            queue.put_nowait(bytes(msg.data))

        sub = await bus.js.subscribe("mem.commit", cb=put, ordered_consumer=True,
                                     stream=STREAM_NAME,
                                     deliver_policy=DeliverPolicy.ALL if args.all else DeliverPolicy.NEW)
        unchecked = "" if os.environ.get("COINSWARM_QUORUM_SECRET") else (
            "; COINSWARM_QUORUM_SECRET is not set: shown as published, signatures unchecked")
        print(f"coinswarm: following the decisions on {url} (Ctrl-C stops){unchecked}", file=sys.stderr, flush=True)
        while args.count is None or shown < args.count:
            try:
                payload = await asyncio.wait_for(queue.get(), args.idle)
            except TimeoutError:
                break
            try:
                commits = decode(payload)
            except MessageError as exc:
                say(f"(a commit message that does not check out: {exc})")
                continue
            for proposal, decision, _proof in commits:
                say(decision_line(proposal, decision, args.json))
                shown += 1
        await sub.unsubscribe()
    finally:
        await bus.close()
    return shown
