"""Managers' votes, authenticated with HMAC-SHA256 under per-manager keys.

:class:`ManagerVote` is one manager's signed verdict on one proposal (it was called
``Vote``, a name the agents' ``coinswarm.agents.Vote`` also has; ``Vote`` still imports,
with a :class:`DeprecationWarning`). :func:`vote_problem` and :func:`batch_problem` tell
whether an object reaching a coordinator is a well-formed vote at all.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import orjson

from coinswarm.errors import ConfigError, MessageError
from coinswarm.quorum.limits import MAX_INT, brief, name_problem


class _Signed:
    """What :class:`ManagerVote` and :class:`VoteBatch` share: an HMAC over their ``body()``."""

    def signed(self, key: bytes):
        """A copy carrying ``HMAC-SHA256(key, body)``."""
        body = self.body()
        signed = replace(self, signature=hmac.digest(key, body, "sha256").hex())
        signed.__dict__["_body"] = body  # the signature is not part of the body: keep the cached bytes
        return signed


@dataclass(frozen=True)
class ManagerVote(_Signed):
    """One manager's verdict on one proposal (identified by id *and* digest)."""

    proposal_id: str
    digest: str
    manager: str
    approve: bool
    reasons: tuple[str, ...]
    timestamp: int
    signature: str = ""

    def body(self) -> bytes:
        """The signed bytes: every field except the signature."""
        return self._body

    @cached_property
    def _body(self) -> bytes:
        # every field in order, strings length-prefixed (so no two votes share a body); a
        # fraction of the cost of JSON, and signing and verifying hash these bytes only
        text = _field(self.proposal_id) + _field(self.digest) + _field(self.manager)
        reasons = "".join(_field(r) for r in self.reasons)
        return f"vote/1|{text}{int(self.approve)}|{self.timestamp}|{len(self.reasons)}|{reasons}".encode()


    def verify(self, key: bytes) -> bool:
        """Constant-time check of the signature."""
        return hmac.compare_digest(hmac.digest(key, self.body(), "sha256").hex(), self.signature)

    def encode(self) -> bytes:
        """Wire bytes (cached)."""
        return self._wire

    @cached_property
    def _wire(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return {"proposal_id": self.proposal_id, "digest": self.digest, "manager": self.manager,
                "approve": self.approve, "reasons": list(self.reasons), "timestamp": self.timestamp,
                "signature": self.signature}

    @classmethod
    def decode(cls, payload: bytes) -> ManagerVote:
        """Parse wire bytes; raises :class:`MessageError` naming the bad field."""
        return cls.from_dict(_json_object(payload, "vote"))

    @classmethod
    def from_dict(cls, raw: dict) -> ManagerVote:
        """Build from a decoded JSON object, checking every field's type (:class:`MessageError`)."""
        if not isinstance(raw, dict):
            raise MessageError("a vote must be an object")
        _check_fields(raw, _VOTE_FIELDS, str(raw.get("proposal_id")))
        return cls(raw["proposal_id"], raw["digest"], raw["manager"], raw["approve"],
                   tuple(str(r) for r in raw["reasons"]), raw["timestamp"], raw["signature"])


_VOTE_FIELDS = {"proposal_id": str, "digest": str, "manager": str, "approve": bool, "reasons": list,
                "timestamp": int, "signature": str}
_BATCH_FIELDS = {"manager": str, "timestamp": int, "entries": list, "signature": str}


def _json_object(payload: bytes, what: str) -> dict:
    try:
        raw = orjson.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise MessageError(f"a {what} must be an object")
    return raw


def _check_fields(raw: dict, expected: dict[str, type], message_id: str) -> None:
    for name, kind in expected.items():
        if not isinstance(raw.get(name), kind) or (kind is int and isinstance(raw.get(name), bool)):
            raise MessageError(f"expected {kind.__name__}, got {brief(raw.get(name))}", field=name,
                               message_id=message_id)
    extra = sorted(set(raw) - set(expected))
    if extra:
        raise MessageError(f"unknown fields {extra}", field=extra[0], message_id=message_id)


_OK_FIELDS = "1|2:ok|"
Entry = tuple[str, str, bool, tuple[str, ...]]  # (proposal id, digest, approve, reasons)


@dataclass(frozen=True)
class VoteBatch(_Signed):
    """One manager's verdicts on many proposals, signed once (batching as in PBFT).

    Each entry is ``(proposal_id, digest, approve, reasons)``; the signature covers the
    manager, the timestamp and every entry in order, so no entry can be added, dropped or
    altered. Tallying a batch checks one HMAC where per-proposal votes would check one each.
    """

    manager: str
    timestamp: int
    entries: tuple[Entry, ...]
    signature: str = ""

    def body(self) -> bytes:
        """The signed bytes: every field except the signature (length-prefixed, like :class:`ManagerVote`)."""
        return self._body

    @cached_property
    def _body(self) -> bytes:
        header = f"votes/1|{_field(self.manager)}{self.timestamp}|{len(self.entries)}|"
        return (header + _entries_text(self.entries)).encode()

    def verify(self, key: bytes) -> bool:
        """Constant-time check of the signature (remembered per key: a batch covering many
        proposals is checked once, however many of them are tallied)."""
        checked = self.__dict__.setdefault("_checked", {})
        if key not in checked:
            checked[key] = hmac.compare_digest(hmac.digest(key, self.body(), "sha256").hex(), self.signature)
        return checked[key]

    def encode(self) -> bytes:
        """Wire bytes (JSON)."""
        return orjson.dumps(self.to_dict())

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return {"manager": self.manager, "timestamp": self.timestamp, "signature": self.signature,
                "entries": [[pid, digest, approve, list(reasons)] for pid, digest, approve, reasons in self.entries]}

    @classmethod
    def decode(cls, payload: bytes) -> VoteBatch:
        """Parse wire bytes; raises :class:`MessageError` naming the bad field."""
        return cls.from_dict(_json_object(payload, "vote batch"))

    @classmethod
    def from_dict(cls, raw: dict) -> VoteBatch:
        """Build from a decoded JSON object, checking every field and entry (:class:`MessageError`)."""
        if not isinstance(raw, dict):
            raise MessageError("a vote batch must be an object")
        _check_fields(raw, _BATCH_FIELDS, f"batch of {brief(raw.get('manager'))}")
        entries = []
        for k, entry in enumerate(raw["entries"]):
            if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
                    and isinstance(entry[1], str) and isinstance(entry[2], bool) and isinstance(entry[3], list)):
                raise MessageError(f"entry {k} must be [proposal_id, digest, approve, reasons], got {brief(entry)}",
                                   field="entries", message_id=f"batch of {brief(raw['manager'])}")
            entries.append((entry[0], entry[1], entry[2], tuple(str(r) for r in entry[3])))
        return cls(raw["manager"], raw["timestamp"], tuple(entries), raw["signature"])


def decode_votes(payload: bytes) -> ManagerVote | VoteBatch:
    """A ``mem.vote`` message: one :class:`ManagerVote` or a :class:`VoteBatch` (it has ``entries``)."""
    raw = _json_object(payload, "vote")
    return VoteBatch.from_dict(raw) if "entries" in raw else ManagerVote.from_dict(raw)


class _ForLastObject:
    """``function(x)``, remembered for the last ``x`` *object* (by identity: managers that
    reach the same verdicts share one entries object, so what is derived from it is built
    once). The memo holds ``x``, so its identity cannot be reused by another object."""

    def __init__(self, function) -> None:
        self.function = function
        self.last: tuple = (None, None)

    def __call__(self, x):
        last, value = self.last
        if last is x:
            return value
        value = self.function(x)
        self.last = (x, value)
        return value

    def forget(self) -> None:
        """Drop the remembered object (tests: build from scratch)."""
        self.last = (None, None)


def _split(entries: tuple[Entry, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple([pid for pid, _, approve, _ in entries if approve]),
            tuple([pid for pid, _, approve, _ in entries if not approve]))


def _text(entries: tuple[Entry, ...]) -> str:
    parts = []
    for pid, digest, approve, reasons in entries:
        fields = _OK_FIELDS if reasons == ("ok",) else f"{len(reasons)}|" + "".join(map(_field, reasons))
        parts.append(f"{len(pid)}:{pid}|{len(digest)}:{digest}|{approve:d}|{fields}")
    return "".join(parts)


# ``(approved ids, rejected ids)`` of a batch's entries, in order (for the audit trail)
split_verdicts = _ForLastObject(_split)
# the signed text of a batch's entries, every string length-prefixed so that no two
# different batches share a body
_entries_text = _ForLastObject(_text)


def _field(text: str) -> str:
    return f"{len(text)}:{text}|"


def derive_keys(secret: bytes, managers: list[str] | tuple[str, ...]) -> dict[str, bytes]:
    """Per-manager keys ``HMAC(secret, name)`` — one shared secret, distinct keys (for demos and tests).

    Raises :class:`~coinswarm.errors.ConfigError` unless ``secret`` is non-empty bytes and
    ``managers`` a list or tuple of valid manager names (printable, 1..64 characters).
    """
    if not (isinstance(secret, bytes | bytearray) and secret):
        raise ConfigError(f"derive_keys: secret must be non-empty bytes, got {type(secret).__name__}")
    if not isinstance(managers, list | tuple):
        raise ConfigError(f"derive_keys: managers must be a list or tuple of names, got {type(managers).__name__}")
    for m in managers:
        problem = name_problem(m)
        if problem:
            raise ConfigError(f"derive_keys: manager name {m!r} {problem}")
    return {m: hmac.new(bytes(secret), m.encode(), hashlib.sha256).digest() for m in managers}


def vote_problem(vote: Any) -> str | None:
    """Why ``vote`` is not a well-formed :class:`ManagerVote` (None if it is): the
    coordinator discards such junk, and audits it, before reading any field."""
    if not isinstance(vote, ManagerVote):
        return f"not a vote: got {type(vote).__name__}"
    for name in ("proposal_id", "digest", "manager", "signature"):
        if type(getattr(vote, name)) is not str:
            return f"field {name!r} must be a string, got {type(getattr(vote, name)).__name__}"
    if type(vote.approve) is not bool:
        return f"field 'approve' must be a bool, got {type(vote.approve).__name__}"
    if not (type(vote.timestamp) is int and 0 <= vote.timestamp <= MAX_INT):
        return f"field 'timestamp' must be an integer in [0, 2**63 - 1], got {brief(vote.timestamp)}"
    if not (isinstance(vote.reasons, tuple) and all(type(r) is str for r in vote.reasons)):
        return "field 'reasons' must be a tuple of strings"
    return None


def batch_problem(batch: Any) -> str | None:
    """Why ``batch`` is not a well-formed :class:`VoteBatch` (None if it is; remembered on
    the batch, which is immutable, so a batch many coordinators see is checked once)."""
    if not isinstance(batch, VoteBatch):
        return f"not a vote batch: got {type(batch).__name__}"
    known = batch.__dict__.get("_problem", False)
    if known is not False:
        return known
    problem = _batch_problem(batch)
    batch.__dict__["_problem"] = problem
    return problem


def _batch_problem(batch: VoteBatch) -> str | None:
    if type(batch.manager) is not str or type(batch.signature) is not str:
        return "fields 'manager' and 'signature' must be strings"
    if not (type(batch.timestamp) is int and 0 <= batch.timestamp <= MAX_INT):
        return f"field 'timestamp' must be an integer in [0, 2**63 - 1], got {brief(batch.timestamp)}"
    if not isinstance(batch.entries, tuple):
        return f"field 'entries' must be a tuple, got {type(batch.entries).__name__}"
    for k, entry in enumerate(batch.entries):
        if not (type(entry) is tuple and len(entry) == 4 and type(entry[0]) is str and type(entry[1]) is str
                and type(entry[2]) is bool and type(entry[3]) is tuple and all(type(r) is str for r in entry[3])):
            return f"entry {k} must be (proposal_id: str, digest: str, approve: bool, reasons: tuple of str)"
    return None


def __getattr__(name: str) -> Any:
    if name == "Vote":
        warnings.warn("coinswarm.quorum.votes.Vote is deprecated: use ManagerVote (coinswarm.agents.Vote is the "
                      "agents' vote)", DeprecationWarning, stacklevel=2)
        return ManagerVote
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
