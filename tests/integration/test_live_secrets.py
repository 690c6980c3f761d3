"""No secret leaks: the live pieces run with dummy exchange keys, a NATS token, a Redis ACL
password and a PostgreSQL password, and every output — the JSON logs, the ledger's rows, the
NATS messages, the /metrics text, the Redis values, the text of every error raised on the
way — is scanned for each of them (raw, URL-encoded and base64)."""

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

from coinswarm.adapters.fake_venue import FakeVenue
from coinswarm.adapters.servers import Server, executable, free_port, launch
from coinswarm.errors import CoinswarmError
from coinswarm.live.ccxt_broker import ApiKeys, CcxtBroker
from coinswarm.live.config import load_config
from coinswarm.live.feeds import CcxtFeed
from coinswarm.live.hotstate import RedisHotState
from coinswarm.live.ledger import Ledger
from coinswarm.live.logs import LOGGERS, configure_logging, secrets_of
from coinswarm.live.metrics import PrometheusSink
from coinswarm.live.outbox import LIVE_STREAM, Relay, heartbeat_message
from coinswarm.live.protocols import OrderIntent, OrderStatus, Side, client_order_id
from coinswarm.live.publisher import connect_publisher
from coinswarm.live.sinks import Sinks, Snapshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
KEY, SECRET = "dummyKEY-7Qx4Lm2Np9", "dummySECRET-Zt8Rw3Kv6Bq1"
NATS_TOKEN, REDIS_PW, PG_PW = "dummyNatsTok-4Hs9", "dummyRedisPw-2Gd7", "dummyPgPw-8Jc5"
SECRETS = (KEY, SECRET, NATS_TOKEN, REDIS_PW, PG_PW)
SYMBOLS = {"BTC/USDT": "binance:BTC/USDT:1h"}
HOUR = 3_600_000


def variants(secret: str) -> set[str]:
    return {secret, urllib.parse.quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}


def leaks(outputs: dict[str, str]) -> list[str]:
    return [f"{secret!r} in {where}" for where, out in outputs.items() for s in SECRETS for secret in variants(s)
            if secret in out]


def start_nats_with_token(workdir, token: str) -> Server:
    port = free_port()
    args = [executable("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "js"),
            "--auth", token]
    return launch("nats", args, port=port, url=f"nats://127.0.0.1:{port}", workdir=workdir,
                  log=workdir / "nats.log", ready_timeout=15.0)


def pg_url_with_password(postgres_url: str) -> tuple[str, str]:
    """A role with a password owning the test's database (the test server trusts loopback, so the
    password travels in the URL as a real deployment's would)."""
    import psycopg

    base = make_url(postgres_url)
    role = "cs_" + uuid.uuid4().hex[:8]
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{PG_PW}'")
    return base.set(username=role, password=PG_PW).render_as_string(hide_password=False), role


def test_no_secret_in_any_output(postgres_url, redis_server, server_dir, tmp_path, monkeypatch):
    pg_url, role = pg_url_with_password(postgres_url)
    nats = start_nats_with_token(server_dir, NATS_TOKEN)
    nats_url = nats.url.replace("nats://", f"nats://{NATS_TOKEN}@")
    admin = redis.Redis.from_url(redis_server[0])
    user = "cs" + uuid.uuid4().hex[:6]
    admin.acl_setuser(user, enabled=True, passwords=["+" + REDIS_PW], keys=["coinswarm:live:*"], commands=["+@all"])
    redis_url = redis_server[0].replace("redis://", f"redis://{user}:{REDIS_PW}@")
    env = {"COINSWARM_BINANCE_API_KEY": KEY, "COINSWARM_BINANCE_SECRET": SECRET, "COINSWARM_BROKER": "binance",
           "COINSWARM_DB_URL": pg_url, "COINSWARM_NATS_URL": nats_url, "COINSWARM_REDIS_URL": redis_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream, errors = io.StringIO(), []
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in LOGGERS}
    config = load_config()
    handler = configure_logging("DEBUG", stream, secrets=secrets_of(config))
    log = logging.getLogger("coinswarm.live.daemon")
    ledger = Ledger(config.servers.db)
    metrics = PrometheusSink(port=0)
    hot = RedisHotState(config.servers.redis, "secrets")
    sinks = Sinks([metrics, hot])
    outputs: dict[str, str] = {}
    try:
        log.info("starting with %r db=%s nats=%s redis=%s", config, config.servers.db, nats_url, redis_url)
        ledger.migrate()
        ledger.claim("live", config.venue)
        try:
            ledger.claim("paper", "paper")
        except CoinswarmError as exc:
            errors.append(exc)
        bus_text = asyncio.run(asyncio.wait_for(
            exercise(config, ledger, sinks, metrics, log, errors, nats_url, redis_url), 180))
        outputs["nats messages"] = bus_text
        outputs["metrics"] = urllib.request.urlopen(metrics.url, timeout=5).read().decode()
        outputs["redis"] = "\n".join(f"{k}={admin.dump(k)!r}{admin.hgetall(k) if admin.type(k) == b'hash' else ''}"
                                     for k in admin.keys("coinswarm:live:secrets:*"))
        outputs["ledger rows"] = dump_tables(ledger)
        for bad in (f"postgresql+psycopg://{role}:{PG_PW}@127.0.0.1:{free_port()}/x",):
            try:
                Ledger(bad, connect_args={"connect_timeout": 2}).migrate()
            except Exception as exc:  # noqa: BLE001 - scanned below whatever it is
                errors.append(exc)
        log.error("broker said %s", errors[-1] if errors else "", exc_info=errors[-1] if errors else None)
    finally:
        sinks.close()
        ledger.close()
        nats.stop()
        admin.acl_deluser(user)
        admin.delete(*(admin.keys("coinswarm:live:secrets:*") or ["_"]))
        admin.close()
        for name, (level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
    outputs["logs"] = stream.getvalue()
    outputs["errors"] = "\n".join(f"{type(e).__name__}: {e} | {e!r}" for e in errors)
    outputs["reprs"] = repr(config) + repr(config.servers) + repr(config.credentials) + repr(hot)
    assert len(errors) >= 5 and outputs["logs"].count("\n") >= 5 and "agent.trade" in outputs["nats messages"]
    assert "coinswarm_live_fills_total" in outputs["metrics"] and "positions" in outputs["redis"]
    assert "live_fills" in outputs["ledger rows"] and outputs["ledger rows"].count("\n") > 5
    assert leaks({"planted": f"x{urllib.parse.quote(PG_PW)}y"}) == [f"{PG_PW!r} in planted"]  # the scan can fail
    assert leaks(outputs) == []


async def exercise(config, ledger, sinks, metrics, log, errors, nats_url, redis_url) -> str:
    """The venue, the broker, the feed, the ledger, the relay and the sinks working together,
    with errors provoked on purpose; returns the NATS stream's content as text."""
    creds = config.credentials
    async with FakeVenue(SYMBOLS, start="2024-03-01", data_start="2024-02-25", data_end="2024-03-05",
                         api_key=creds.api_key, secret=creds.secret) as venue:
        broker = CcxtBroker("binance", keys=ApiKeys(creds.api_key, creds.secret), api_url=venue.url,
                            timeout_ms=3000, min_interval_ms=1)
        await broker.start()
        try:
            bars = await CcxtFeed(broker, ["BTC/USDT"], "1h").history("BTC/USDT", 1709251200000, 5)
            intent = OrderIntent(client_order_id("s", "BTC/USDT", bars[-1].time, 0), "BTC/USDT", Side.BUY, 0.01,
                                 bars[-1].time, "s")
            ledger.record_new(intent, bars[-1].time)
            sinks.on_order(ledger.transition(intent.client_order_id, OrderStatus.SENT, bars[-1].time))
            sent = await broker.submit(intent)
            log.info("sent", extra={"order": repr(sent)})
            venue.advance(HOUR)
            for fill in await broker.fills_since(["BTC/USDT"], 0):
                ledger.apply_fill(fill, fill.time_ms)
                sinks.on_fill(fill)
            ledger.record_bar("BTC/USDT", bars[-1].time, bars[-1].time, 250.0,
                              [heartbeat_message("secrets", bars[-1].time)])
            ledger.halt("manual", f"operator halt via {config!r}", bars[-1].time)
            sinks.on_bar(Snapshot(bars[-1].time, {"BTC/USDT": 0.01}, 9000.0, 9999.0, halted=True))
            sinks.on_event("halt", {"reason": "manual"})
            venue.script(rate_limit=1, rate_limit_status=429)
            for call in (broker.balances(), broker.order_status("nope", "BTC/USDT")):
                try:
                    await call
                except CoinswarmError as exc:
                    errors.append(exc)
                    log.warning("venue error: %s", exc)
            wrong = CcxtBroker("binance", keys=ApiKeys(creds.api_key, "x" + creds.secret[1:]), api_url=venue.url,
                               timeout_ms=3000, min_interval_ms=1)
            try:
                await wrong.balances()
            except CoinswarmError as exc:
                errors.append(exc)
            finally:
                await wrong.close()
        finally:
            await broker.close()
    for bad in (nats_url.replace(NATS_TOKEN, NATS_TOKEN[::-1]), "http://" + nats_url.split("://")[1]):
        try:
            await connect_publisher(bad, connect_timeout=2, max_reconnect_attempts=1)
        except CoinswarmError as exc:
            errors.append(exc)
    try:
        RedisHotState(redis_url.replace(REDIS_PW, "wrong" + REDIS_PW), "secrets").on_bar(Snapshot(0, {}, 1.0, 1.0))
    except CoinswarmError as exc:
        errors.append(exc)
    bus = await connect_publisher(nats_url, connect_timeout=5)
    try:
        relay = Relay(ledger, bus, clock=lambda: 0)
        metrics.watch(relay=relay)
        assert await relay.drain() >= 3
        js = bus.js
        last = (await js.stream_info(LIVE_STREAM)).state.last_seq
        raws = [await js.get_msg(LIVE_STREAM, seq) for seq in range(1, last + 1)]
        return "\n".join(f"{m.subject} {m.headers} {m.data!r}" for m in raws)
    finally:
        await bus.close()


def dump_tables(ledger: Ledger) -> str:
    lines = []
    with ledger.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                lines.append(f"{table} {tuple(row)!r}")
    return "\n".join(lines)
