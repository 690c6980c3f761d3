"""connect_publisher without a server: the embedded bus, and bad URLs refused with the secret masked."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.adapters.bus import InProcessBus
from coinswarm.errors import ConfigError
from coinswarm.live.publisher import connect_publisher


def test_empty_url_is_the_in_process_bus():
    bus = asyncio.run(connect_publisher(""))
    assert isinstance(bus, InProcessBus)
    assert asyncio.run(bus.stream_publish("agent.trade", b"{}", "trade:1")) is True


@pytest.mark.parametrize("url", ["http://u:secret-pw-1@h:1", "redis://secret-pw-1@h", "127.0.0.1:4222", 4222])
def test_other_schemes_are_refused_without_the_secret(url):
    with pytest.raises(ConfigError, match="NATS URL") as caught:
        asyncio.run(connect_publisher(url))
    assert "secret-pw-1" not in str(caught.value)


def test_unreachable_nats_is_a_config_error_without_the_token():
    from coinswarm.adapters.servers import free_port

    with pytest.raises(ConfigError) as caught:
        asyncio.run(connect_publisher(f"nats://tok-secret-99@127.0.0.1:{free_port()}", connect_timeout=1,
                                      max_reconnect_attempts=1))
    assert "tok-secret-99" not in str(caught.value)
