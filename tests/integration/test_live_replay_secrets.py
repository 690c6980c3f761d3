"""No secret leaks on the daemon's own path: ``replay_served`` (what ``coinswarm live replay``
runs) with a PostgreSQL password, a NATS token and a Redis ACL user's password in its URLs, at
DEBUG; the JSON logs, the NATS messages, /metrics, the Redis values, the ledger's rows and the
errors of a wrong token are scanned for each secret (raw, URL-encoded, base64)."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import urllib.parse
import urllib.request
import uuid

import pytest
import redis
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from coinswarm.adapters.servers import executable, free_port, launch
from coinswarm.errors import ConfigError
from coinswarm.live.ledger import Ledger
from coinswarm.live.logs import LOGGERS
from coinswarm.live.outbox import LIVE_STREAM
from coinswarm.live.replay import ReplaySpec, replay_served

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
NATS_TOKEN, REDIS_PW, PG_PW = "dummyNatsTok-9Wq2", "dummyRedisPw-6Tf3", "dummyPgPw-1Xv8"
SECRETS = (NATS_TOKEN, REDIS_PW, PG_PW)
DATA = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]


def leaks(outputs: dict[str, str]) -> list[str]:
    def variants(s: str) -> set[str]:
        return {s, urllib.parse.quote(s, safe=""), base64.b64encode(s.encode()).decode()}
    return [f"{v!r} in {where}" for where, out in outputs.items() for s in SECRETS for v in variants(s) if v in out]


async def nats_text(url: str) -> str:
    import nats

    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=5)
        last = (await js.stream_info(LIVE_STREAM)).state.last_seq
        return "\n".join(f"{m.subject} {m.headers} {m.data!r}"
                         for m in [await js.get_msg(LIVE_STREAM, seq) for seq in range(1, last + 1)])
    finally:
        await nc.close()


def test_replay_with_passwords_in_every_url_leaks_none(postgres_url, redis_server, server_dir):
    import psycopg

    base = make_url(postgres_url)
    role = "cs_" + uuid.uuid4().hex[:8]
    with psycopg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{PG_PW}'")
    db = base.set(username=role, password=PG_PW).render_as_string(hide_password=False)
    port = free_port()
    nats = launch("nats", [executable("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                           str(server_dir / "js"), "--auth", NATS_TOKEN], port=port,
                  url=f"nats://127.0.0.1:{port}", workdir=server_dir, log=server_dir / "nats.log", ready_timeout=15)
    nats_url = f"nats://{NATS_TOKEN}@127.0.0.1:{port}"
    admin = redis.Redis.from_url(redis_server[0])
    user = "cs" + uuid.uuid4().hex[:6]
    admin.acl_setuser(user, enabled=True, passwords=["+" + REDIS_PW], keys=["coinswarm:live:*"], commands=["+@all"])
    redis_url = redis_server[0].replace("redis://", f"redis://{user}:{REDIS_PW}@")
    stream, scraped, outputs = io.StringIO(), {}, {}
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in LOGGERS}

    class Scrape:  # a sink: /metrics read while the replay runs
        bars = 0

        def on_bar(self, snapshot) -> None:
            self.bars += 1
            if self.bars % 200 == 0:
                scraped["text"] = urllib.request.urlopen(services_url["url"], timeout=5).read().decode()

        def on_order(self, order) -> None: ...
        def on_fill(self, fill) -> None: ...
        def on_event(self, name, fields) -> None: ...
        def close(self) -> None: ...

    services_url: dict[str, str] = {}

    def on_services(services) -> None:
        services_url["url"] = services.metrics.url
        services.sinks.sinks.append(Scrape())
        logging.getLogger("coinswarm.live").info("urls db=%s nats=%s redis=%s", db, nats_url, redis_url)

    try:
        spec = ReplaySpec(DATA, "trend", db, start="2021-01-01", end="2021-02-15")
        summary = asyncio.run(replay_served(spec, redis=redis_url, nats=nats_url, metrics_port=free_port(),
                                            log_stream=stream, log_level="DEBUG", run="secretrun",
                                            on_services=on_services))
        assert summary["bars"] > 1000
        outputs["nats"] = asyncio.run(nats_text(nats_url))
        outputs["redis"] = "\n".join(f"{k}={admin.dump(k)!r}" for k in admin.keys("coinswarm:live:secretrun:*"))
        ledger = Ledger(db)
        with ledger.engine.connect() as conn:
            outputs["ledger"] = "\n".join(f"{t} {tuple(r)!r}" for t in inspect(conn).get_table_names()
                                          for r in conn.execute(text(f'SELECT * FROM "{t}"')))
        ledger.close()
        with pytest.raises(ConfigError) as wrong:
            asyncio.run(replay_served(spec, nats=f"nats://{NATS_TOKEN}x@127.0.0.1:{port}", log_stream=stream))
        outputs["error"] = f"{wrong.value} {wrong.value!r}"
    finally:
        nats.stop()
        admin.acl_deluser(user)
        admin.delete(*(admin.keys("coinswarm:live:secretrun:*") or ["_"]))
        admin.close()
        for name, (level, propagate) in saved.items():
            logger = logging.getLogger(name)
            for h in [h for h in logger.handlers if h.get_name() == "coinswarm-json"]:
                logger.removeHandler(h)
            logger.setLevel(level)
            logger.propagate = propagate
    outputs["logs"] = stream.getvalue()
    outputs["metrics"] = scraped["text"]
    assert "coinswarm_live_fills_total" in outputs["metrics"]
    assert "agent.trade" in outputs["nats"] and "positions" in outputs["redis"] and "live_fills" in outputs["ledger"]
    assert "***" in outputs["logs"] and outputs["logs"].count("\n") >= 2
    assert leaks({"planted": f"a{urllib.parse.quote(PG_PW)}b"})  # the scan can fail
    assert leaks(outputs) == []
