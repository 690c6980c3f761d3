"""open_services on the embedded defaults: JSON logs with the config's secrets redacted, a
/metrics server when a port is given, the in-process bus, a DbGuard reporting to the sinks."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request

from coinswarm.adapters.bus import InProcessBus
from coinswarm.live.config import load_config
from coinswarm.live.logs import LOGGERS
from coinswarm.live.services import build_sinks, open_services


def test_embedded_services_with_metrics_and_redacted_logs():
    env = {"COINSWARM_BROKER": "binance", "COINSWARM_BINANCE_API_KEY": "dummyKey-123456",
           "COINSWARM_BINANCE_SECRET": "dummySecret-654321"}
    config = load_config(env=env)
    stream, handlers = io.StringIO(), []
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in LOGGERS}

    async def scenario():
        from coinswarm.adapters.servers import free_port

        services = await open_services(config, "t1", metrics_port=free_port(), log_stream=stream, env={})
        handlers.append(services.log_handler)
        try:
            assert isinstance(services.bus, InProcessBus) and services.hot is None
            services.guard.notify("db_pause", {"what": "apply_fill"})
            logging.getLogger("coinswarm.live.x").warning("key %s", "dummySecret-654321")
            return urllib.request.urlopen(services.metrics.url, timeout=5).read().decode(), services
        finally:
            await services.close()
            await services.close()

    try:
        text, services = asyncio.run(scenario())
    finally:
        for name, (level, propagate) in saved.items():
            logger = logging.getLogger(name)
            for handler in handlers:
                logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
    assert "coinswarm_live_bars_total" in text and services.metrics.server is None
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "services up" and lines[-1]["message"] == "key ***"


def test_build_sinks_without_port_or_redis_is_empty():
    sinks, metrics, hot = build_sinks(load_config(env={}), "t2")
    assert sinks.sinks == [] and metrics is None and hot is None
