"""JSON logs and the secret-redacting filter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from coinswarm.live.config import load_config
from coinswarm.live.logs import RedactingFilter, configure_logging, redact, secrets_of, url_secrets

KEY, SECRET, TOKEN, RPW, PGPW = "AKdummykey123", "sEcReT-dummy-456", "natsTok3nDummy", "redisPw-9x", "pg%40pass-7"


@pytest.fixture
def capture():
    stream = io.StringIO()
    names = ("coinswarm", "ccxt")
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    handler = configure_logging("DEBUG", stream, secrets=[KEY, SECRET, TOKEN], loggers=names)
    yield stream, handler
    for n, (level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def test_lines_are_json_with_extras_and_secrets_masked(capture):
    stream, _ = capture
    log = logging.getLogger("coinswarm.live.test")
    log.info("connecting %s with key %s", f"nats://{TOKEN}@127.0.0.1:4222", KEY,
             extra={"client_order_id": "cs1", "header": f"X-MBX-APIKEY: {KEY}"})
    try:
        raise ValueError(f"signature {SECRET} refused at postgresql+psycopg://u:{PGPW}@h/db")
    except ValueError:
        log.exception("broker failed")
    logging.getLogger("ccxt.base").debug("GET https://x/?signature=1 %s", SECRET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "coinswarm.live.test"
    assert lines[0]["client_order_id"] == "cs1" and lines[0]["time"].endswith("Z")
    assert lines[0]["message"] == "connecting nats://***@127.0.0.1:4222 with key ***"
    assert lines[0]["header"] == "X-MBX-APIKEY: ***"
    assert "ValueError" in lines[1]["exception"] and "u:***@h" in lines[1]["exception"]
    text = stream.getvalue()
    for secret in (KEY, SECRET, TOKEN, PGPW):
        assert secret not in text


def test_added_secrets_and_url_passwords_without_registration(capture):
    stream, handler = capture
    handler.filters[0].add("late-secret-value", "ab")  # too short ones are ignored
    logging.getLogger("coinswarm").warning("a late-secret-value and redis://user:%s@h:1/0 and ab", RPW)
    line = json.loads(stream.getvalue())
    assert line["message"] == "a *** and redis://user:***@h:1/0 and ab"


def test_secrets_of_a_config_and_the_environment(tmp_path):
    env = {"COINSWARM_BINANCE_API_KEY": KEY, "COINSWARM_BINANCE_SECRET": SECRET,
           "COINSWARM_NATS_URL": f"nats://{TOKEN}@127.0.0.1:4222",
           "COINSWARM_REDIS_URL": f"redis://cs:{RPW}@127.0.0.1:6379/0",
           "COINSWARM_DB_URL": f"postgresql+psycopg://cs:{PGPW}@127.0.0.1/db", "COINSWARM_BROKER": "binance"}
    config = load_config(env=env)
    found = secrets_of(config, env={})
    assert {KEY, SECRET, TOKEN, RPW, PGPW, "pg@pass-7"} <= found
    assert secrets_of(env=env) >= {KEY, SECRET, TOKEN, RPW, PGPW}
    assert url_secrets("postgresql://postgres@127.0.0.1/db") == set()  # no password
    assert url_secrets("nats://u:p4ssword@h:1") == {"p4ssword"}


def test_redact_is_idempotent_and_leaves_plain_text():
    text = f"key={KEY} url=tls://{TOKEN}@h:1 ok"
    once = redact(text, [KEY])
    assert once == "key=*** url=tls://***@h:1 ok" and redact(once, [KEY]) == once
    assert redact("nothing secret here", [KEY]) == "nothing secret here"


def test_filter_survives_a_bad_format_string():
    record = logging.LogRecord("coinswarm", logging.INFO, "f", 1, "bad %d %s", ("x",), None)
    assert RedactingFilter([KEY]).filter(record)
    assert "bad" in record.msg and record.args is None


def test_config_masks_a_nats_token_and_refuses_it_in_the_file(tmp_path):
    from coinswarm.errors import ConfigError
    from coinswarm.live.config import mask_url

    assert mask_url(f"nats://{TOKEN}@127.0.0.1:4222") == "nats://***@127.0.0.1:4222"
    assert mask_url("postgresql://postgres@127.0.0.1/db") == "postgresql://postgres@127.0.0.1/db"
    config = load_config(env={"COINSWARM_NATS_URL": f"nats://{TOKEN}@127.0.0.1:4222"})
    assert TOKEN not in repr(config) and TOKEN not in repr(config.servers)
    path = tmp_path / "c.toml"
    path.write_text(f'[servers]\nnats = "nats://{TOKEN}@127.0.0.1:4222"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert TOKEN not in str(caught.value)
