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
            raise MessageError(f"missing {missing}", field=missing[0], message_id=str(raw.get("id")))
        extra = sorted(set(raw) - {"id", "kind", "submitter", "timestamp", "data_time", "data", "justification"})
        if extra:
            raise MessageError(f"unknown fields {extra}", field=extra[0], message_id=str(raw.get("id")))
        return cls(**raw)

    @classmethod
    def decode(cls, payload: bytes) -> Proposal:
        """Parse wire bytes; malformed JSON or fields raise :class:`MessageError`."""
        try:
            raw = orjson.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"not valid JSON ({exc})") from None
        return cls.from_dict(raw)


def _fail(problem: str, name: str, proposal_id: str) -> None:
    raise MessageError(problem, field=name, message_id=proposal_id)


def validate_proposal(p: Proposal) -> None:
    """Structural checks (types, finite numbers, known kind); the managers judge the content."""
    pid = str(p.id)
    if not (isinstance(p.id, str) and 0 < len(p.id) <= 128):
        _fail("id must be a non-empty string ≤ 128 chars", "id", pid)
    if p.kind not in KINDS:
        _fail(f"kind must be one of {KINDS}, not {p.kind!r}", "kind", pid)
    if not (isinstance(p.submitter, str) and p.submitter):
        _fail("submitter must be a non-empty string", "submitter", pid)
    for name in ("timestamp", "data_time"):
        value = getattr(p, name)
        if not (type(value) is int and value >= 0):  # bools are not timestamps
            _fail(f"{name} must be a non-negative integer (epoch ms), got {value!r}", name, pid)
    if p.data_time > p.timestamp:
        _fail("data_time is after the proposal's timestamp", "data_time", pid)
    for name in ("data", "justification"):
        if not isinstance(getattr(p, name), dict):
            _fail(f"{name} must be an object", name, pid)
    try:
        p.encode()  # cached: the digest and the wire reuse it
    except (TypeError, ValueError):
        for name in ("data", "justification"):
            try:
                canonical(getattr(p, name))
            except (TypeError, ValueError) as exc:
                raise MessageError(f"{name} is not JSON-encodable with finite numbers ({exc})", field=name,
                                   message_id=pid) from None
        raise


def finite(value: Any) -> bool:
    """A real, finite number (bools excluded)."""
    if type(value) is float:  # the usual case, decided without the isinstance checks
        return math.isfinite(value)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
