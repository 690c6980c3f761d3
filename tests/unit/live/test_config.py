"""The live config: the example loads, environment overrides, every bad value names its key,
value and what is valid, secrets are refused in the file and hidden in repr, live needs
``--live`` and keys."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from coinswarm.errors import ConfigError
from coinswarm.live.config import ENV_OVERRIDES, LiveConfig, load_config, mask_url

EXAMPLE = Path(__file__).parents[3] / "runners" / "coinswarm.example.toml"
KEYS = {"COINSWARM_BINANCE_API_KEY": "dummy-key-AAAA1111", "COINSWARM_BINANCE_SECRET": "dummy-secret-BBBB2222"}


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_the_example_loads_as_paper_trading():
    config = load_config(EXAMPLE, env={})
    assert config.symbols == ("BTC/USDT", "ETH/USDT") and config.timeframe == "1h"
    assert (config.mode, config.venue, config.live, config.credentials) == ("paper", "paper", False, None)
    assert config.risk.max_drawdown == 0.25 and config.metrics_port == 9108
    assert config.servers.db == "sqlite:///coinswarm-paper.db" and config.servers.nats == ""


def test_defaults_without_a_file_are_paper_trading():
    assert load_config(None, env={}) == LiveConfig()


def test_the_config_is_frozen():
    config = load_config(EXAMPLE, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timeframe = "1m"
    with pytest.raises(TypeError):
        config.strategy.params["x"] = 1


def test_every_documented_environment_variable_overrides_its_key():
    env = {"COINSWARM_SYMBOLS": "SOL/USDT, BTC/USDT", "COINSWARM_TIMEFRAME": "4h", "COINSWARM_STRATEGY": "sma_cross",
           "COINSWARM_BROKER": "binance", "COINSWARM_SANDBOX": "yes", "COINSWARM_GRACE_MS": "1000",
           "COINSWARM_MAX_DRAWDOWN": "0.1", "COINSWARM_DAILY_LOSS": "0.02", "COINSWARM_MAX_POSITION": "3",
           "COINSWARM_MAX_ORDER_NOTIONAL": "500", "COINSWARM_DB_URL": "postgresql+psycopg://cs:pw@127.0.0.1/live",
           "COINSWARM_REDIS_URL": "redis://127.0.0.1:6379/0", "COINSWARM_NATS_URL": "nats://127.0.0.1:4222",
           "COINSWARM_METRICS_PORT": "9200", "COINSWARM_MEMORY": "off", "COINSWARM_FUNDING_WAIT_S": "30", **KEYS}
    assert set(env) - set(KEYS) == set(ENV_OVERRIDES)
    config = load_config(EXAMPLE, env=env)
    assert config.symbols == ("SOL/USDT", "BTC/USDT") and config.timeframe == "4h"
    assert (config.strategy.name, config.broker.kind, config.broker.sandbox, config.broker.grace_ms) == \
        ("sma_cross", "binance", True, 1000)
    assert dataclasses.astuple(config.risk) == (0.1, 0.02, 3.0, 500.0)
    assert config.servers.db.endswith("@127.0.0.1/live") and config.metrics_port == 9200
    assert config.funding_wait_s == 30.0
    assert not config.memory.enabled  # on by default with a NATS URL; the environment turned it off
    assert (config.mode, config.venue) == ("live", "binance-sandbox")


@pytest.mark.parametrize("text, match", [
    ('timeframe = "7m"', r"timeframe: '7m' is not valid; valid: 1m, 3m"),
    ('symbols = "BTC/USDT"', r"symbols: 'BTC/USDT' is not valid; expected a non-empty list"),
    ('symbols = []', "non-empty list"),
    ('symbols = ["BTCUSDT"]', r"symbols\[0\]: 'BTCUSDT' is not a symbol; expected BASE/QUOTE"),
    ('symbols = ["BTC/USDT", "BTC/USDT"]', "twice"),
    ('metrics_port = 70000', r"metrics_port: 70000 is out of range; valid: an integer in \[0, 65535\]"),
    ('metrics_port = 1.5', r"metrics_port: 1.5 is not an integer"),
    ('[risk]\nmax_drawdown = 0', r"risk.max_drawdown: 0 is out of range; valid: a number in \(0, 1\]"),
    ('[risk]\ndaily_loss = 1.5', r"risk.daily_loss: 1.5 is out of range"),
    ('[risk]\nmax_position = "lots"', r"risk.max_position: 'lots' is not a number"),
    ('[risk]\nmax_order_notional = nan', "risk.max_order_notional: nan is out of range"),
    ('[risk]\nmax_leverage = 3', r"risk.max_leverage: unknown key; valid keys of \[risk\] are max_drawdown"),
    ('[broker]\nkind = "kraken"', r"broker.kind: 'kraken' is not valid; valid: paper, binance, coinbase"),
    ('[broker]\nsandbox = "maybe"', r"broker.sandbox: 'maybe' is not a boolean"),
    ('[broker]\ngrace_ms = -1', r"broker.grace_ms: -1 is out of range"),
    ('[strategy]\nname = "Bad Name!"', r"strategy.name: 'Bad Name!' is not valid"),
    ('[strategy]\nparams = 3', "strategy.params: 3 is not a table"),
    ('[servers]\ndb = "mysql://x/y"', r"servers.db: 'mysql://x/y' is not valid; expected a URL with scheme sqlite"),
    ('[servers]\nnats = "http://x"', r"servers.nats: 'http://x' is not valid"),
    ('broker = "paper"', r"broker: must be a table \[broker\]"),
    ('symbolz = ["BTC/USDT"]', "symbolz: unknown key; valid top-level keys are symbols"),
    ('timeframe = ', "is not valid TOML"),
])
def test_a_bad_value_names_the_key_the_value_and_what_is_valid(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text), env={})


@pytest.mark.parametrize("name, value, match", [
    ("COINSWARM_MAX_DRAWDOWN", "abc", r"COINSWARM_MAX_DRAWDOWN \(risk.max_drawdown\): 'abc' is not a number"),
    ("COINSWARM_METRICS_PORT", "-5", r"COINSWARM_METRICS_PORT \(metrics_port\): -5 is out of range"),
    ("COINSWARM_FUNDING_WAIT_S", "-1", r"COINSWARM_FUNDING_WAIT_S \(funding_wait_s\): -1.0 is out of range"),
    ("COINSWARM_SANDBOX", "perhaps", r"COINSWARM_SANDBOX \(broker.sandbox\)"),
    ("COINSWARM_BROKER", "ftx", r"COINSWARM_BROKER \(broker.kind\): 'ftx'"),
    ("COINSWARM_SYMBOLS", "btc", r"symbols\[0\]: 'btc'"),
])
def test_a_bad_environment_value_names_the_variable(name, value, match):
    with pytest.raises(ConfigError, match=match):
        load_config(EXAMPLE, env={name: value})


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


@pytest.mark.parametrize("text", ['[broker]\napi_key = "abc"', '[broker]\nsecret = "abc"',
                                  '[strategy.params]\nnats_token = "abc"', '[servers]\npassword = "abc"',
                                  '[servers]\ndb = "postgresql://cs:hunter2@db/live"'])
def test_secrets_are_refused_in_the_file_without_echoing_them(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert "abc" not in str(info.value) and "hunter2" not in str(info.value)
    assert "environment" in str(info.value)


def test_secrets_never_appear_in_repr():
    env = {**KEYS, "COINSWARM_BROKER": "binance", "COINSWARM_DB_URL": "postgresql+psycopg://cs:hunter2@db/live",
           "COINSWARM_NATS_URL": "nats://u:natspw@127.0.0.1:4222"}
    config = load_config(EXAMPLE, env=env)
    assert config.credentials.api_key == KEYS["COINSWARM_BINANCE_API_KEY"]
    text = repr(config) + str(config) + repr(config.credentials) + repr(config.servers)
    for secret in (*KEYS.values(), "hunter2", "natspw"):
        assert secret not in text
    assert mask_url("postgresql+psycopg://cs:hunter2@db/live") == "postgresql+psycopg://cs:***@db/live"


def test_real_orders_need_the_live_flag_and_keys():
    real = {"COINSWARM_BROKER": "binance", "COINSWARM_SANDBOX": "false"}
    with pytest.raises(ConfigError, match="sends real orders: pass --live"):
        load_config(EXAMPLE, env={**real, **KEYS})
    with pytest.raises(ConfigError, match="needs keys for real orders.*COINSWARM_BINANCE_API_KEY"):
        load_config(EXAMPLE, env=real, live=True)
    config = load_config(EXAMPLE, env={**real, **KEYS}, live=True)
    assert (config.live, config.mode, config.venue) == (True, "live", "binance")
    with pytest.raises(ConfigError, match="--live needs broker.kind"):
        load_config(EXAMPLE, env={}, live=True)
    with pytest.raises(ConfigError, match="needs keys for the sandbox"):
        load_config(EXAMPLE, env={"COINSWARM_BROKER": "coinbase"})


def test_keys_from_a_0600_file_and_refused_from_a_readable_one(tmp_path):
    keyfile = tmp_path / "binance.toml"
    keyfile.write_text('api_key = "file-key-1234"\nsecret = "file-secret-5678"\n')
    keyfile.chmod(0o600)
    env = {"COINSWARM_BROKER": "binance", "COINSWARM_BINANCE_KEY_FILE": str(keyfile)}
    assert load_config(EXAMPLE, env=env).credentials.secret == "file-secret-5678"
    keyfile.chmod(0o644)
    with pytest.raises(ConfigError, match="mode 0644; it must be 0600"):
        load_config(EXAMPLE, env=env)
    keyfile.write_text('api_key = "only-a-key"\n')
    keyfile.chmod(0o600)
    with pytest.raises(ConfigError, match="needs string entries api_key and secret"):
        load_config(EXAMPLE, env=env)


def test_the_process_environment_is_the_default(monkeypatch):
    monkeypatch.setenv("COINSWARM_TIMEFRAME", "15m")
    assert load_config(EXAMPLE).timeframe == "15m"
    assert os.environ["COINSWARM_TIMEFRAME"] == "15m"


def test_the_systemd_unit_runs_the_documented_command():
    unit = (EXAMPLE.parent / "coinswarm-live.service").read_text()
    assert "ExecStart=" in unit and "coinswarm live run --config" in unit and "EnvironmentFile=" in unit
    assert "[Install]" in unit and "Restart=always" in unit and "KillSignal=SIGTERM" in unit
