"""RedisHotState's argument checks (the Redis behaviour is tested on a real server in
tests/integration/test_live_hotstate_redis.py)."""

from __future__ import annotations

import pytest

from coinswarm.errors import ConfigError
from coinswarm.live.hotstate import HotStateError, RedisHotState
from coinswarm.live.sinks import Snapshot


@pytest.mark.parametrize("run", ["", "a b", "x:y", "r*", 5])
def test_bad_run_names_are_refused(run):
    with pytest.raises(ConfigError, match="run name"):
        RedisHotState("redis://127.0.0.1:1/0", run)


def test_bad_url_is_a_config_error_without_the_password():
    with pytest.raises(ConfigError) as caught:
        RedisHotState("http://user:hunter2-secret@127.0.0.1:1/0")
    assert "hunter2-secret" not in str(caught.value)


def test_bad_timings_are_refused():
    with pytest.raises(ConfigError):
        RedisHotState("redis://127.0.0.1:1/0", heartbeat_ttl_s=0)


def test_unreachable_redis_fails_fast_then_stays_quiet():
    from coinswarm.adapters.servers import free_port

    now = [100.0]
    hot = RedisHotState(f"redis://u:hunter2-secret@127.0.0.1:{free_port()}/0", retry_s=5.0, clock=lambda: now[0])
    with pytest.raises(HotStateError) as first:
        hot.on_bar(Snapshot(0, {}, 1.0, 1.0))
    with pytest.raises(HotStateError, match="down"):  # inside retry_s: no round trip
        hot.on_bar(Snapshot(0, {}, 1.0, 1.0))
    assert hot.failures == 1 and "hunter2-secret" not in str(first.value)
    now[0] += 6.0
    with pytest.raises(HotStateError):
        hot.on_bar(Snapshot(0, {}, 1.0, 1.0))
    assert hot.failures == 2
