"""Quorum memory for MCP: read committed patterns and episodes from the store, and build
proposals — which go to the quorum's ``mem.propose`` stream, never straight to the store."""

from __future__ import annotations

import hashlib

from coinswarm.errors import ConfigError
from coinswarm.quorum.proposals import Proposal, canonical

SUBMITTER = "mcp"


def query(store, kind: str, key_prefix: str | None, as_of_ms: int | None, limit: int) -> tuple[int, list[dict]]:
    """``(matching count, the first `limit` items)``: patterns sorted by key (those whose key
    starts with ``key_prefix``), or episodes newest first with the embedding replaced by its
    length. ``as_of_ms``: memory as committed from data before that time."""
    if kind == "patterns":
        patterns = store.patterns() if as_of_ms is None else store.memory(as_of_ms).patterns
        items = [{"key": k, **v} for k, v in sorted(patterns.items()) if key_prefix is None or k.startswith(key_prefix)]
    else:
        episodes = store.memory(as_of_ms).episodes
        items = [_episode(e) for e in reversed(episodes)]
    return len(items), items[:limit]


def _episode(episode: dict) -> dict:
    out = {k: v for k, v in episode.items() if k != "embedding"}
    embedding = episode.get("embedding")
    if isinstance(embedding, list):
        out["embedding_dim"] = len(embedding)
    return out


def proposal_from(kind: str, data: dict, justification: dict, data_time_ms: int, now_ms: int) -> Proposal:
    """A proposal from MCP; its id is a digest of its content, so asking twice is one proposal.

    Raises
    ------
    ConfigError, MessageError
        Data that is not plain JSON; a structurally invalid proposal (the quorum's own
        checks; the managers judge the rest).
    """
    try:
        content = canonical({"kind": kind, "data": data, "justification": justification, "data_time": data_time_ms})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"proposal data must be plain JSON without NaN or infinity ({exc})") from None
    proposal_id = "mcp-" + hashlib.blake2b(content, digest_size=16).hexdigest()
    return Proposal(id=proposal_id, kind=kind, submitter=SUBMITTER, timestamp=int(now_ms), data_time=int(data_time_ms),
                    data=data, justification=justification)
