"""Crash points for the fault tests: ``COINSWARM_LIVE_FAULT`` makes the runner kill itself with
SIGKILL at one of the points of an order's write-ahead path.

The points (:data:`POINTS`) are the four moments of that path: before the order is persisted
(``before_new``), after it is persisted (``after_new``), after it is marked sent
(``after_sent``) and after the venue acknowledged and executed it but before its fill is stored
(``after_ack``). Two plans:

* ``<point>:<n>`` — SIGKILL the ``n``-th time ``<point>`` is reached (counted from process start);
* ``random:<seed>:<p>`` — at every point reached, SIGKILL with probability ``p`` (0 < p ≤ 1),
  drawn from ``random.Random(seed)``: the same seed and the same run die at the same hit, so a
  failure is reproducible (a harness that restarts gives each restart its own seed).

Unset (the default), :func:`point` is one comparison.
"""

from __future__ import annotations

import os
import random
import signal

from coinswarm.errors import ConfigError

POINTS = ("before_new", "after_new", "after_sent", "after_ack")
_ENV = "COINSWARM_LIVE_FAULT"


class _Plan:
    """A parsed plan: a fixed point and count, or a seeded probability at every point."""

    def __init__(self, name: str, count: int = 0, p: float = 0.0, seed: int = 0) -> None:
        self.name, self.count, self.p = name, count, p
        self.rng = random.Random(seed)
        self.seen: dict[str, int] = {}

    def fires(self, name: str) -> bool:
        if self.name == "random":
            return name in POINTS and self.rng.random() < self.p
        if name != self.name:
            return False
        self.seen[name] = self.seen.get(name, 0) + 1
        return self.seen[name] >= self.count


def _invalid(text: str) -> ConfigError:
    return ConfigError(f"{_ENV}={text!r} is not valid; expected <point>:<n> with point one of "
                       f"{', '.join(POINTS)} and n ≥ 1, or random:<seed>:<p> with an integer seed "
                       "and 0 < p ≤ 1")


def _parse(text: str) -> _Plan | None:
    if not text:
        return None
    name, _, rest = text.partition(":")
    if name == "random":
        seed, _, prob = rest.partition(":")
        try:
            p = float(prob)
            plan = _Plan("random", p=p, seed=int(seed))
        except ValueError:
            raise _invalid(text) from None
        if not 0.0 < p <= 1.0:
            raise _invalid(text)
        return plan
    if name not in POINTS or not rest.isdigit() or int(rest) < 1:
        raise _invalid(text)
    return _Plan(name, count=int(rest))


_PLAN = _parse(os.environ.get(_ENV, ""))


def arm(text: str | None = None) -> None:
    """(Re)read the plan from ``text`` (default: ``$COINSWARM_LIVE_FAULT``), counts from zero —
    for a process forked after this module was imported (a test's pre-imported launcher)."""
    global _PLAN
    _PLAN = _parse(os.environ.get(_ENV, "") if text is None else text)


def point(name: str) -> None:
    """Reached crash point ``name``: SIGKILL this process if the plan says so."""
    if _PLAN is not None and _PLAN.fires(name):
        os.kill(os.getpid(), signal.SIGKILL)
