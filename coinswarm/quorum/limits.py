"""The quorum's input boundary: size limits and the checks every entry point shares.

A proposal must travel: what :class:`~coinswarm.quorum.proposals.Proposal` accepts in
process must come back unchanged from its wire bytes (``Proposal.decode(p.encode()) == p``)
and fit the store's columns, so the in-process quorum and the NATS nodes reach the same
verdict. Hence, for ``data`` and ``justification``:

* only JSON values: ``dict`` with ``str`` keys, ``list``, ``str``, ``int``, finite ``float``,
  ``bool`` and ``None`` (a tuple would come back as a list, an ``int`` key as a string);
* strings are valid Unicode (no lone surrogate such as ``"\\ud800"``, which UTF-8 cannot
  carry) of at most ``LIMITS[kind].max_string`` characters;
* integers within a signed 64-bit range (``MIN_INT``..``MAX_INT``: what the wire decoder
  and PostgreSQL ``BIGINT`` hold exactly);
* nesting at most ``MAX_DEPTH`` levels (no ``RecursionError``, whatever the input);
* per kind (``LIMITS``): at most ``max_items`` dict keys plus list elements in all and at most
  ``max_bytes`` bytes of canonical encoding.

Ids, submitters and manager names are short printable strings (``MAX_ID_CHARS``,
``MAX_NAME_CHARS``: the store's column widths). Times are epoch milliseconds: ``int``
(or an integral ``float``/numpy integer, converted) in ``0..MAX_TIME``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from coinswarm.errors import ConfigError, MessageError

MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_TIME = 2**53 - 1  # epoch ms (year ~287,000): exact as a float, and time + any deadline fits BIGINT
MAX_DEPTH = 16
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 64
MAX_PATTERN_KEY_CHARS = 200  # the patterns table's primary key width


@dataclass(frozen=True)
class KindLimits:
    """Size limits of one proposal kind's ``data`` and ``justification`` (each, separately
    for items and strings; together for the encoded bytes)."""

    max_bytes: int
    max_items: int
    max_string: int = 256


LIMITS: dict[str, KindLimits] = {
    "add_episode": KindLimits(max_bytes=256 * 1024, max_items=16_384, max_string=1_024),
    "update_pattern": KindLimits(max_bytes=16 * 1024, max_items=256),
    "promote_pattern": KindLimits(max_bytes=64 * 1024, max_items=4_096),
    "deprecate_pattern": KindLimits(max_bytes=16 * 1024, max_items=256),
    "planner_weights": KindLimits(max_bytes=64 * 1024, max_items=1_024),
}
# the largest proposal message the decoder parses (the envelope adds a little to any kind)
MAX_WIRE_BYTES = max(limit.max_bytes for limit in LIMITS.values()) + 4 * 1024


def text_problem(value: Any, max_chars: int, *, printable: bool = False) -> str | None:
    """Why ``value`` is not an acceptable string (None if it is)."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > max_chars:
        return f"has {len(value):,} characters; at most {max_chars:,} are allowed"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"holds a lone surrogate at character {exc.start} (not valid Unicode, cannot travel as UTF-8)"
    if printable and not value.isprintable():
        return "holds a control character; use printable characters only"
    return None


def name_problem(value: Any, max_chars: int = MAX_NAME_CHARS) -> str | None:
    """Why ``value`` is not an acceptable id or name: non-empty, printable, ≤ ``max_chars``."""
    if isinstance(value, str) and not value:
        return "must be a non-empty string"
    return text_problem(value, max_chars, printable=True)


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, without building the repr of a large
    container or string (messages about junk stay short whatever the junk)."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return repr(value[:limit]) + f"… ({len(value):,} long)"
    if isinstance(value, dict | list | tuple | set) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value):,} items"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "…"


def as_time(value: Any, name: str = "now") -> int:
    """``value`` as epoch milliseconds (an ``int`` in ``0..MAX_TIME``), or :class:`ConfigError`.

    Accepts ``int``, numpy integers and integral finite floats; refuses bools, NaN, inf,
    ``None``, strings and anything else, naming ``name``.
    """
    if type(value) is int and 0 <= value <= MAX_TIME:  # the usual case
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be an integer time in epoch milliseconds, got {brief(value)} "
                          f"({type(value).__name__})")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif math.isfinite(float(value)) and float(value).is_integer():
        number = int(float(value))
    else:
        raise ConfigError(f"{name} must be a finite whole number of epoch milliseconds, got {brief(value)}")
    if not 0 <= number <= MAX_TIME:
        raise ConfigError(f"{name} must lie in [0, 2**53 - 1] epoch milliseconds, got {brief(number)}")
    return number


def check_tree(value: Any, name: str, limits: KindLimits, message_id: str) -> None:
    """Check one of a proposal's objects (``data`` or ``justification``) against the
    module's rules; raises :class:`MessageError` naming the path of the first bad value."""
    if not isinstance(value, dict):
        raise MessageError(f"must be an object (dict), got {type(value).__name__}", field=name,
                           message_id=message_id)
    items = 0
    stack: list[tuple[Any, str, int]] = [(value, name, 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            _tree_fail(f"nests deeper than {MAX_DEPTH} levels", path, name, message_id)
        items += len(node)
        children = node.items() if isinstance(node, dict) else enumerate(node)
        if items > limits.max_items:
            _tree_fail(f"holds more than {limits.max_items:,} keys and list elements in all "
                       f"(the limit of this proposal kind)", name, name, message_id)
        if isinstance(node, list) and _finite_floats(node):
            continue  # an embedding or a series: checked at C speed
        for key, child in children:
            if isinstance(key, str):
                problem = text_problem(key, limits.max_string)
                if problem:
                    _tree_fail(f"key {key[:40]!r}… {problem}", path, name, message_id)
                where = f"{path}.{key}" if len(key) <= 40 else f"{path}.{key[:40]}…"
            elif isinstance(node, dict):
                _tree_fail(f"keys must be strings, got {type(key).__name__} {brief(key)}", path, name, message_id)
            else:
                where = f"{path}[{key}]"
            if isinstance(child, dict | list):
                stack.append((child, where, depth + 1))
            else:
                problem = scalar_problem(child, limits.max_string)
                if problem:
                    _tree_fail(problem, where, name, message_id)


def _finite_floats(values: list) -> bool:
    """True when every element is a finite float (False may also mean: look closer)."""
    return all(type(x) is float for x in values) and math.isfinite(sum(map(abs, values)))  # inf: look closer


def scalar_problem(value: Any, max_string: int) -> str | None:
    """Why ``value`` is not a JSON scalar the wire carries exactly (None if it is)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"must be a finite number, got {value!r}"
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return None
        return f"integer beyond the signed 64-bit range [-2**63, 2**63 - 1] (got {value.bit_length()} bits)"
    if isinstance(value, str):
        return text_problem(value, max_string)
    return (f"must be a JSON value (object, list, string, integer, finite float, bool or null), "
            f"got {type(value).__name__}")


def _tree_fail(problem: str, path: str, name: str, message_id: str) -> None:
    raise MessageError(f"{path}: {problem}" if path != name else problem, field=name, message_id=message_id)
