"""Proposals to change memory, with canonical encoding and validation.

A proposal names what should change (``kind`` and ``data``), who asks (``submitter``),
when (``timestamp``, from the caller's clock, epoch ms), the time of the market data it
was learned from (``data_time``: in a backtest, memory committed from data after a fold's
test start is invisible to that fold) and the evidence (``justification``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from coinswarm.errors import MessageError
from coinswarm.quorum.limits import LIMITS, MAX_ID_CHARS, MAX_TIME, MAX_WIRE_BYTES, brief, check_tree, name_problem

KINDS = ("add_episode", "update_pattern", "promote_pattern", "deprecate_pattern", "planner_weights")


def canonical(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, NaN rejected)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class Proposal:
    """A requested change to memory (immutable; ``digest`` covers every field)."""

    id: str
    kind: str
    submitter: str
    timestamp: int
    data_time: int
    data: dict = field(default_factory=dict)
    justification: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_proposal(self)

    def to_dict(self) -> dict:
        """Plain dict (JSON-safe; ``data`` and ``justification`` are shared, not copied)."""
        return {"id": self.id, "kind": self.kind, "submitter": self.submitter, "timestamp": self.timestamp,
                "data_time": self.data_time, "data": self.data, "justification": self.justification}

    def encode(self) -> bytes:
        """Canonical bytes for the wire (computed once: the proposal is immutable)."""
        return self._wire

    @cached_property
    def _wire(self) -> bytes:
        return canonical(self.to_dict())

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical encoding: votes name it, so a changed proposal is a new one."""
        return hashlib.sha256(self.encode()).hexdigest()

    @classmethod
    def from_dict(cls, raw: dict) -> Proposal:
        """Build and validate from a decoded message; raises :class:`MessageError`."""
        if not isinstance(raw, dict):
            raise MessageError(f"a proposal must be an object, got {type(raw).__name__}")
        missing = [k for k in ("id", "kind", "submitter", "timestamp", "data_time") if k not in raw]
        if missing:
            raise MessageError(f"missing {missing}", field=missing[0], message_id=repr(raw.get("id"))[:80])
        extra = sorted(str(k) for k in set(raw) - {"id", "kind", "submitter", "timestamp", "data_time", "data",
                                                   "justification"})
        if extra:
            raise MessageError(f"unknown fields {extra}", field=extra[0], message_id=repr(raw.get("id"))[:80])
        return cls(**raw)

    @classmethod
    def decode(cls, payload: bytes) -> Proposal:
        """Parse wire bytes; malformed JSON or fields raise :class:`MessageError`."""
        if not isinstance(payload, bytes | bytearray | memoryview | str):
            raise MessageError(f"a proposal message must be bytes, got {type(payload).__name__}")
        if len(payload) > MAX_WIRE_BYTES:
            raise MessageError(f"the message has {len(payload):,} bytes; proposals take at most {MAX_WIRE_BYTES:,}")
        try:
            raw = orjson.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"not valid JSON ({exc})") from None
        return cls.from_dict(raw)


def _fail(problem: str, name: str, proposal_id: str) -> None:
    raise MessageError(problem, field=name, message_id=proposal_id)


def validate_proposal(p: Proposal) -> None:
    """Structural checks at construction (types, sizes, finite numbers, known kind, the
    rules of :mod:`coinswarm.quorum.limits`); the managers judge the content."""
    problem = name_problem(p.id, MAX_ID_CHARS)
    pid = p.id if problem is None else repr(p.id)[:80]
    if problem:
        _fail(f"id {problem}", "id", pid)
    if not (isinstance(p.kind, str) and p.kind in KINDS):
        _fail(f"kind must be one of {KINDS}, not {p.kind!r}", "kind", pid)
    problem = name_problem(p.submitter)
    if problem:
        _fail(f"submitter {problem}", "submitter", pid)
    for name in ("timestamp", "data_time"):
        value = getattr(p, name)
        if not (type(value) is int and 0 <= value <= MAX_TIME):  # bools are not timestamps
            _fail(f"{name} must be an integer in [0, 2**53 - 1] (epoch ms), got {brief(value)}", name, pid)
    if p.data_time > p.timestamp:
        _fail("data_time is after the proposal's timestamp", "data_time", pid)
    limits = LIMITS[p.kind]
    for name in ("data", "justification"):
        check_tree(getattr(p, name), name, limits, pid)
    size = len(p.encode())  # cached: the digest and the wire reuse it
    if size > limits.max_bytes:
        _fail(f"encodes to {size:,} bytes; a {p.kind} proposal may take at most {limits.max_bytes:,}",
              "data", pid)


def finite(value: Any) -> bool:
    """A real, finite number (bools excluded)."""
    if type(value) is float:  # the usual case, decided without the isinstance checks
        return math.isfinite(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
