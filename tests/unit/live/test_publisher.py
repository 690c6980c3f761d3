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


def test_unreachable_nats_logs_one_line_per_failed_attempt_and_no_traceback():
    """The daemon's JSON log (every logger it configures, nats-py's included) on an unreachable
    loopback port: one line per failed connect attempt, bounded, then one line giving up."""
    import io
    import json
    import logging

    from coinswarm.adapters.servers import free_port
    from coinswarm.live.logs import LOGGERS, configure_logging

    stream = io.StringIO()
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in LOGGERS}
    handler = configure_logging("INFO", stream, secrets=["tok-secret-77"])
    try:
        with pytest.raises(ConfigError, match="cannot connect to NATS"):
            asyncio.run(connect_publisher(f"nats://tok-secret-77@127.0.0.1:{free_port()}", connect_timeout=5,
                                          connect_attempts=3))
    finally:
        for name, (level, propagate) in saved.items():
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).propagate = propagate
    text = stream.getvalue()
    assert "Traceback" not in text and "tok-secret-77" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    attempts = [r for r in lines if "failed:" in r["message"]]
    assert [r["message"].split(" failed")[0][-9:] for r in attempts] == ["attempt 1", "attempt 2", "attempt 3"]
    assert all("ConnectionRefusedError" in r["message"] for r in attempts)
    assert len(lines) == 4 and "gave up after 3" in lines[-1]["message"], text


def test_connection_log_goes_quiet_after_the_first_failures_of_an_outage():
    from coinswarm.live.publisher import ConnectionLog

    now = [0.0]
    events = ConnectionLog("nats://u:pw-secret@127.0.0.1:4222", loud=2, every_s=60.0, clock=lambda: now[0])
    events.connected = True
    records = []
    handler = logging_handler(records)
    try:
        for _ in range(10):
            asyncio.run(events.error(OSError("refused")))
            now[0] += 1.0
        now[0] += 60.0
        asyncio.run(events.error(OSError("refused")))
        asyncio.run(events.disconnected())
        asyncio.run(events.error(OSError("refused")))
    finally:
        handler.close()
    warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
    assert len(records) == 13 and len(warnings) == 5, warnings  # attempts 1, 2, 11, the loss, attempt 1 again
    assert all("pw-secret" not in r.getMessage() and "\n" not in r.getMessage() for r in records)
    assert "disconnected" in warnings[3] and "attempt 1 failed" in warnings[4]


def logging_handler(records: list):
    import logging

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

        def close(self):
            logger.removeHandler(self)
            logger.setLevel(level)
            super().close()

    logger = logging.getLogger("coinswarm.live.publisher")
    level = logger.level
    handler = Keep(logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler
