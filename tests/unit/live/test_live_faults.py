"""``COINSWARM_LIVE_FAULT`` plans (:mod:`coinswarm.live.faults`): ``<point>:<n>`` and the seeded
``random:<seed>:<p>``; bad plans are a ConfigError naming what is valid. The kill itself is
replaced by a recorder (the real SIGKILL is exercised by the integration tests)."""

from __future__ import annotations

import pytest

from coinswarm.errors import ConfigError
from coinswarm.live import faults
from coinswarm.live.faults import POINTS


@pytest.fixture
def kills(monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: seen.append(sig))
    yield seen
    faults.arm("")


def hits_until_kill(kills: list, sequence: list[str]) -> int | None:
    for k, name in enumerate(sequence):
        faults.point(name)
        if kills:
            return k
    return None


def test_unset_never_kills(kills):
    faults.arm("")
    assert hits_until_kill(kills, list(POINTS) * 50) is None


def test_point_and_count_kill_at_the_nth_hit_of_that_point_only(kills):
    faults.arm("after_sent:3")
    sequence = ["before_new", "after_sent", "after_ack", "after_sent", "before_new", "after_sent", "after_ack"]
    assert hits_until_kill(kills, sequence) == 5
    assert kills == [faults.signal.SIGKILL]


def test_random_plan_is_reproducible_and_spread_over_the_points(kills):
    sequence = list(POINTS) * 200
    first = []
    for seed in range(40):
        faults.arm(f"random:{seed}:0.05")
        first.append(hits_until_kill(kills, sequence))
        kills.clear()
    again = []
    for seed in range(40):
        faults.arm(f"random:{seed}:0.05")
        again.append(hits_until_kill(kills, sequence))
        kills.clear()
    assert first == again and None not in first
    assert {sequence[k] for k in first} == set(POINTS), "every point is reached by some seed"
    assert len(set(first)) > 20, "different seeds die at different hits"


def test_random_plan_ignores_unknown_names(kills):
    faults.arm("random:1:1.0")
    faults.point("somewhere_else")
    assert kills == []
    faults.point("after_ack")
    assert kills == [faults.signal.SIGKILL]


@pytest.mark.parametrize("text", ["nowhere:1", "after_new", "after_new:0", "after_new:-1", "after_new:x",
                                  "random", "random:1", "random:x:0.5", "random:1:0", "random:1:1.5",
                                  "random:1:nan", "random:1:-0.1"])
def test_bad_plans_are_refused_and_the_old_plan_kept(kills, text):
    faults.arm("after_ack:1")
    with pytest.raises(ConfigError, match="COINSWARM_LIVE_FAULT"):
        faults.arm(text)
    faults.point("after_ack")
    assert kills == [faults.signal.SIGKILL]
