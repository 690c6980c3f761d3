"""Votes, authenticated with HMAC-SHA256 under per-manager keys."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from functools import cached_property

import orjson

from coinswarm.errors import MessageError


class _Signed:
    """What :class:`Vote` and :class:`VoteBatch` share: an HMAC over their ``body()``."""

    def signed(self, key: bytes):
        """A copy carrying ``HMAC-SHA256(key, body)``."""
        body = self.body()
        signed = replace(self, signature=hmac.digest(key, body, "sha256").hex())
        signed.__dict__["_body"] = body  # the signature is not part of the body: keep the cached bytes
        return signed


@dataclass(frozen=True)
class Vote(_Signed):
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
    def decode(cls, payload: bytes) -> Vote:
        """Parse wire bytes; raises :class:`MessageError` naming the bad field."""
        return cls.from_dict(_json_object(payload, "vote"))

    @classmethod
    def from_dict(cls, raw: dict) -> Vote:
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
            raise MessageError(f"expected {kind.__name__}, got {raw.get(name)!r}", field=name, message_id=message_id)
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
        """The signed bytes: every field except the signature (length-prefixed, like :class:`Vote`)."""
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
        _check_fields(raw, _BATCH_FIELDS, f"batch of {raw.get('manager')!r}")
        entries = []
        for k, entry in enumerate(raw["entries"]):
            if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
                    and isinstance(entry[1], str) and isinstance(entry[2], bool) and isinstance(entry[3], list)):
                raise MessageError(f"entry {k} must be [proposal_id, digest, approve, reasons], got {entry!r}",
                                   field="entries", message_id=f"batch of {raw['manager']!r}")
            entries.append((entry[0], entry[1], entry[2], tuple(str(r) for r in entry[3])))
        return cls(raw["manager"], raw["timestamp"], tuple(entries), raw["signature"])


def decode_votes(payload: bytes) -> Vote | VoteBatch:
    """A ``mem.vote`` message: one :class:`Vote` or a :class:`VoteBatch` (it has ``entries``)."""
    raw = _json_object(payload, "vote")
    return VoteBatch.from_dict(raw) if "entries" in raw else Vote.from_dict(raw)


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
    """Per-manager keys ``HMAC(secret, name)`` — one shared secret, distinct keys (for demos and tests)."""
    return {m: hmac.new(secret, m.encode(), hashlib.sha256).digest() for m in managers}
