"""Crash points for the fault tests: ``COINSWARM_LIVE_FAULT=<point>:<n>`` makes the runner kill
itself with SIGKILL the ``n``-th time it reaches ``<point>`` (counted from process start).

The points (:data:`POINTS`) are the four moments of an order's write-ahead path: before it is
persisted (``before_new``), after it is persisted (``after_new``), after it is marked sent
(``after_sent``) and after the venue acknowledged and executed it but before its fill is
stored (``after_ack``). Unset (the default), :func:`point` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

from coinswarm.errors import ConfigError

POINTS = ("before_new", "after_new", "after_sent", "after_ack")
_ENV = "COINSWARM_LIVE_FAULT"


def _parse(text: str) -> tuple[str, int] | None:
    if not text:
        return None
    name, _, count = text.partition(":")
    if name not in POINTS or not count.isdigit() or int(count) < 1:
        raise ConfigError(f"{_ENV}={text!r} is not valid; expected <point>:<n> with point one of "
                          f"{', '.join(POINTS)} and n ≥ 1")
    return name, int(count)


_PLAN = _parse(os.environ.get(_ENV, ""))
_SEEN: dict[str, int] = {}


def point(name: str) -> None:
    """Reached crash point ``name``: SIGKILL this process if the plan says so."""
    if _PLAN is None or _PLAN[0] != name:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] >= _PLAN[1]:
        os.kill(os.getpid(), signal.SIGKILL)
