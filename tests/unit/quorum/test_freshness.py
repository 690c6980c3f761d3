"""Freshness of a proposal judged at its arrival on the bus (``Context.received``), not at the
judge's clock: a backlog the managers read after an outage is not refused as stale, and
every manager reaches the same verdict whatever its clock."""

import numpy as np
import pytest
from proposals_factory import NOW

from coinswarm.errors import ConfigError
from coinswarm.quorum import Context, Manager, Policy, Proposal

HOUR = 3_600_000
MAX_AGE = Policy().max_age_ms
pytestmark = pytest.mark.timeout(30)


def weights(timestamp: int = NOW) -> Proposal:
    """A planner-weights proposal every other rule approves (it reads no memory)."""
    return Proposal("w1", "planner_weights", "planner", timestamp, timestamp - 1, {"weights": {"a": 0.25, "b": 0.75}})


def reasons(context: Context, proposal: Proposal | None = None) -> tuple[str, ...]:
    return Manager("m1", b"key").reasons(proposal or weights(), context)


def test_a_proposal_fresh_when_the_stream_received_it_is_approved_hours_later():
    received = NOW + 2_000  # published at once: two seconds on the bus
    assert reasons(Context(now=NOW + 2 * HOUR, received=received)) == ()  # managers were down two hours
    assert "stale" in " ".join(reasons(Context(now=NOW + 2 * HOUR)))  # without the receive time: refused


@pytest.mark.parametrize(("age", "stale"), [(MAX_AGE, False), (MAX_AGE + 1, True), (3 * HOUR, True)])
def test_a_proposal_already_old_when_it_reached_the_bus_is_stale(age, stale):
    found = reasons(Context(now=NOW + age + 5_000, received=NOW + age))
    assert bool(found) is stale
    if stale:
        assert found == (f"stale: {age} ms old when the stream received it > {MAX_AGE}",)


def test_every_manager_reaches_the_same_verdict_whatever_its_clock():
    """Two managers reading the same message either side of the age limit: with the stream's
    receive time they agree; with only their clocks they would split."""
    early, late = NOW + MAX_AGE - 1_000, NOW + MAX_AGE + 1_000
    received = NOW + 500
    assert reasons(Context(now=early, received=received)) == reasons(Context(now=late, received=received)) == ()
    assert reasons(Context(now=early)) == () and reasons(Context(now=late)) != ()


def test_a_replayed_proposal_gets_a_new_receive_time_and_is_stale():
    assert "stale" in " ".join(reasons(Context(now=NOW + 2 * HOUR, received=NOW + 2 * HOUR - 10)))


def test_without_a_receive_time_the_age_is_judged_now():
    assert reasons(Context(now=NOW + MAX_AGE)) == ()
    assert reasons(Context(now=NOW + MAX_AGE + 1)) == (f"stale: {MAX_AGE + 1} ms old now > {MAX_AGE}",)


def test_a_proposal_from_the_judges_future_is_refused_even_if_the_stream_received_it():
    found = reasons(Context(now=NOW - 1, received=NOW + 10))
    assert found == (f"timestamp {NOW} is in the future of {NOW - 1}",)


def test_the_receive_time_is_checked_like_now():
    assert Context(now=NOW, received=np.int64(NOW)).received == NOW
    assert type(Context(now=NOW, received=float(NOW)).received) is int
    for bad in (True, -1, 1.5, "NOW", float("nan")):
        with pytest.raises(ConfigError, match="Context.received"):
            Context(now=NOW, received=bad)
