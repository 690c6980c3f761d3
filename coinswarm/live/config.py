"""The live runner's configuration: one frozen, typed record loaded from TOML, with ``COINSWARM_*``
environment overrides, validated at load.

Sections and keys (``runners/coinswarm.example.toml`` is a commented example)::

    symbols = ["BTC/USDT"]            # one or more ccxt symbols, BASE/QUOTE
    timeframe = "1h"                  # 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d
    [strategy]  name = "committee";  [strategy.params] ...   # any TOML table
    [broker]    kind = "paper" | "binance" | "coinbase";  sandbox = true;  grace_ms = 300000
                api_url = ""      # "" = the exchange's own URLs; "http://127.0.0.1:PORT" = a fake venue
    [risk]      max_drawdown = 0.2;  daily_loss = 0.05;  max_position = 1.0;  max_order_notional = 1000.0
    [servers]   db = "sqlite:///coinswarm-paper.db";  redis = "";  nats = ""   # "" = embedded default
    [memory]    enabled = true    # episodes to the quorum; default: true when servers.nats is set
    metrics_port = 9108               # 0 = no /metrics endpoint
    funding_wait_s = 120              # perpetuals: wait this long for a settlement published late, then hold

Environment overrides (:data:`ENV_OVERRIDES`; the environment wins over the file)::

    COINSWARM_SYMBOLS            symbols              comma-separated
    COINSWARM_TIMEFRAME          timeframe
    COINSWARM_STRATEGY           strategy.name
    COINSWARM_BROKER             broker.kind
    COINSWARM_SANDBOX            broker.sandbox       true/false/1/0/yes/no
    COINSWARM_GRACE_MS           broker.grace_ms
    COINSWARM_MAX_DRAWDOWN       risk.max_drawdown
    COINSWARM_DAILY_LOSS         risk.daily_loss
    COINSWARM_MAX_POSITION       risk.max_position
    COINSWARM_MAX_ORDER_NOTIONAL risk.max_order_notional
    COINSWARM_DB_URL             servers.db           (may carry a password: env only)
    COINSWARM_REDIS_URL          servers.redis
    COINSWARM_NATS_URL           servers.nats
    COINSWARM_METRICS_PORT       metrics_port
    COINSWARM_FUNDING_WAIT_S     funding_wait_s
    COINSWARM_MEMORY             memory.enabled       true/false/1/0/yes/no

Secrets never live in the file: a key named like a secret (``api_key``, ``secret``,
``password``, ``token``, ``passphrase``, ``private_key``) or a server URL with a password is
refused. Exchange keys come from ``COINSWARM_<EXCHANGE>_API_KEY`` / ``COINSWARM_<EXCHANGE>_SECRET``
(``COINSWARM_<EXCHANGE>_PASSPHRASE`` optional), or from a file named by
``COINSWARM_<EXCHANGE>_KEY_FILE`` (TOML with ``api_key``/``secret``, mode 0600). They are held
in :class:`Credentials`, whose ``repr`` shows neither.

Modes: the ``paper`` broker → mode ``paper`` (the default); an exchange broker with
``sandbox = true`` → mode ``live`` on the testnet, keys required; ``sandbox = false`` → real
orders, which need ``live=True`` (the ``--live`` flag) **and** keys, else :class:`ConfigError`.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coinswarm.errors import ConfigError

BROKERS = ("paper", "binance", "coinbase")
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
SECRET_WORDS = ("api_key", "apikey", "secret", "password", "passwd", "token", "passphrase", "private_key")
DEFAULT_DB = "sqlite:///coinswarm-paper.db"
_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")

ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "COINSWARM_SYMBOLS": ("symbols",),
    "COINSWARM_TIMEFRAME": ("timeframe",),
    "COINSWARM_STRATEGY": ("strategy", "name"),
    "COINSWARM_BROKER": ("broker", "kind"),
    "COINSWARM_SANDBOX": ("broker", "sandbox"),
    "COINSWARM_GRACE_MS": ("broker", "grace_ms"),
    "COINSWARM_MAX_DRAWDOWN": ("risk", "max_drawdown"),
    "COINSWARM_DAILY_LOSS": ("risk", "daily_loss"),
    "COINSWARM_MAX_POSITION": ("risk", "max_position"),
    "COINSWARM_MAX_ORDER_NOTIONAL": ("risk", "max_order_notional"),
    "COINSWARM_DB_URL": ("servers", "db"),
    "COINSWARM_REDIS_URL": ("servers", "redis"),
    "COINSWARM_NATS_URL": ("servers", "nats"),
    "COINSWARM_METRICS_PORT": ("metrics_port",),
    "COINSWARM_FUNDING_WAIT_S": ("funding_wait_s",),
    "COINSWARM_MEMORY": ("memory", "enabled"),
}
_SECTIONS = {
    "strategy": ("name", "params"),
    "broker": ("kind", "sandbox", "grace_ms", "api_url"),
    "risk": ("max_drawdown", "daily_loss", "max_position", "max_order_notional"),
    "servers": ("db", "redis", "nats"),
    "memory": ("enabled",),
}
_TOP = ("symbols", "timeframe", "metrics_port", "funding_wait_s", *_SECTIONS)


def mask_url(url: str) -> str:
    """``url`` with its password (``scheme://user:PASSWORD@host``), or a NATS token
    (``nats://TOKEN@host``), replaced by ``***``."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(\b(?:nats|tls)://)[^:/@\s]+@", r"\1***@", url)


@dataclass(frozen=True)
class StrategyConfig:
    """The strategy (a registry name) and its parameters (read-only mapping)."""

    name: str = "committee"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class BrokerConfig:
    """Where orders go; ``grace_ms``: how long a venue's "order does not exist" after a submit
    keeps the order in flight before reconciliation resolves it; ``api_url``: a base URL replacing
    the exchange's (the fake venue on 127.0.0.1; "" = the exchange's own)."""

    kind: str = "paper"
    sandbox: bool = True
    grace_ms: int = 300_000
    api_url: str = ""


@dataclass(frozen=True)
class RiskLimits:
    """Kill-switch and sizing limits: drawdown and daily loss as fractions of equity (peak, and
    the UTC day's start), ``max_position`` in base units per symbol, ``max_order_notional`` in quote."""

    max_drawdown: float = 0.25
    daily_loss: float = 0.05
    max_position: float = 1.0
    max_order_notional: float = 10_000.0


@dataclass(frozen=True)
class ServerUrls:
    """Server URLs; an empty string means the embedded default (in-process bus, no Redis)."""

    db: str = field(default=DEFAULT_DB, repr=False)
    redis: str = field(default="", repr=False)
    nats: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return (f"ServerUrls(db={mask_url(self.db)!r}, redis={mask_url(self.redis)!r}, "
                f"nats={mask_url(self.nats)!r})")


@dataclass(frozen=True)
class MemoryConfig:
    """Memory proposals to the quorum (:mod:`coinswarm.live.proposals`): one ``add_episode`` per
    closed round trip, through the outbox to NATS ``mem.propose``. On by default when a NATS URL
    is configured; off in the embedded default (no quorum to hear them)."""

    enabled: bool = False


@dataclass(frozen=True)
class Credentials:
    """Exchange keys from the environment (never from the config file); ``repr`` hides them."""

    exchange: str
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Credentials(exchange={self.exchange!r}, api_key='***', secret='***')"


@dataclass(frozen=True)
class LiveConfig:
    """The whole runner configuration (see the module docstring)."""

    symbols: tuple[str, ...] = ("BTC/USDT",)
    timeframe: str = "1h"
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    servers: ServerUrls = field(default_factory=ServerUrls)
    metrics_port: int = 0
    funding_wait_s: float = 120.0
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    live: bool = False
    credentials: Credentials | None = field(default=None, repr=False)

    @property
    def mode(self) -> str:
        """``paper`` for the paper broker, ``live`` for an exchange (testnet included)."""
        return "paper" if self.broker.kind == "paper" else "live"

    @property
    def venue(self) -> str:
        """``paper``, ``binance``, ``binance-sandbox``, …: the ledger refuses a db of another venue."""
        if self.broker.kind == "paper":
            return "paper"
        return self.broker.kind + ("-sandbox" if self.broker.sandbox else "")


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                live: bool = False) -> LiveConfig:
    """Load and validate the configuration.

    Parameters
    ----------
    path : str, Path or None
        A TOML file; None = defaults (paper trading) plus the environment.
    env : mapping, optional
        The environment (``os.environ`` by default): ``COINSWARM_*`` overrides and exchange keys.
    live : bool
        The ``--live`` flag: required for real (non-sandbox) orders.

    Raises
    ------
    ConfigError
        Naming the key path, the value and what would be valid.
    """
    env = os.environ if env is None else env
    raw = _read_toml(path) if path is not None else {}
    _refuse_secrets(raw, "")
    _check_keys(raw)
    for name, keys in ENV_OVERRIDES.items():
        if env.get(name, "") != "":
            _set(raw, keys, env[name], name)
    config = _build(raw, live)
    return _with_credentials(config, env)


def _read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None


def _refuse_secrets(table: Mapping, prefix: str) -> None:
    for key, value in table.items():
        where = f"{prefix}{key}"
        if any(word in str(key).lower().replace("-", "_") for word in SECRET_WORDS):
            raise ConfigError(f"{where}: secrets never go in the config file; pass them in the environment: "
                              "COINSWARM_<EXCHANGE>_API_KEY / COINSWARM_<EXCHANGE>_SECRET (or COINSWARM_<EXCHANGE>"
                              "_KEY_FILE, mode 0600), server passwords inside COINSWARM_DB_URL/_NATS_URL/_REDIS_URL")
        if isinstance(value, Mapping):
            _refuse_secrets(value, where + ".")
        elif isinstance(value, str) and mask_url(value) != value:
            raise ConfigError(f"{where}: a URL with a password does not belong in the config file "
                              f"({mask_url(value)!r}); pass it in the environment (e.g. COINSWARM_DB_URL)")


def _check_keys(raw: Mapping) -> None:
    for key, value in raw.items():
        if key not in _TOP:
            raise ConfigError(f"{key}: unknown key; valid top-level keys are {', '.join(_TOP)}")
        if key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key}: must be a table [{key}], got {value!r}")
            for sub in value:
                if sub not in _SECTIONS[key]:
                    raise ConfigError(f"{key}.{sub}: unknown key; valid keys of [{key}] are "
                                      f"{', '.join(_SECTIONS[key])}")


def _set(raw: dict, keys: tuple[str, ...], text: str, source: str) -> None:
    """Put the environment's ``text`` at ``keys`` (typed later by the validators, which name ``source``)."""
    table = raw
    for key in keys[:-1]:
        if not isinstance(table.get(key), dict):
            table[key] = {}
        table = table[key]
    if keys == ("symbols",):
        table[keys[-1]] = [s.strip() for s in text.split(",") if s.strip()]
    else:
        table[keys[-1]] = _EnvText(text, source)


class _EnvText(str):
    """A string that came from an environment variable (its name goes into error messages)."""

    source: str

    def __new__(cls, text: str, source: str) -> _EnvText:
        obj = super().__new__(cls, text)
        obj.source = source
        return obj


def _where(path: str, value: object) -> str:
    return f"{value.source} ({path})" if isinstance(value, _EnvText) else path


def _build(raw: Mapping, live: bool) -> LiveConfig:
    section = {name: raw.get(name, {}) for name in _SECTIONS}
    strategy = StrategyConfig(
        name=_text("strategy.name", section["strategy"].get("name", "committee"), r"^[a-z][a-z0-9_\-]{0,63}$",
                   "a strategy name like 'committee' or 'sma_cross'"),
        params=_params(section["strategy"].get("params", {})))
    broker = BrokerConfig(
        kind=_choice("broker.kind", section["broker"].get("kind", "paper"), BROKERS),
        sandbox=_bool("broker.sandbox", section["broker"].get("sandbox", True)),
        grace_ms=int(_number("broker.grace_ms", section["broker"].get("grace_ms", 300_000), 0, 86_400_000,
                             integer=True)),
        api_url=_text("broker.api_url", section["broker"].get("api_url", ""), r"^(|https?://[A-Za-z0-9.\-\[\]:]+/?)$",
                      "\"\" or a base URL like 'http://127.0.0.1:8080'"))
    risk = _risk(section["risk"])
    servers = ServerUrls(*(_url(f"servers.{k}", section["servers"].get(k, d), k)
                           for k, d in (("db", DEFAULT_DB), ("redis", ""), ("nats", ""))))
    config = LiveConfig(symbols=_symbols(raw.get("symbols", ["BTC/USDT"])),
                        timeframe=_choice("timeframe", raw.get("timeframe", "1h"), TIMEFRAMES),
                        strategy=strategy, broker=broker, risk=risk, servers=servers,
                        metrics_port=int(_number("metrics_port", raw.get("metrics_port", 0), 0, 65535, integer=True)),
                        funding_wait_s=float(_number("funding_wait_s", raw.get("funding_wait_s", 120.0), 0, 3600)),
                        memory=MemoryConfig(enabled=_bool("memory.enabled", section["memory"].get(
                            "enabled", servers.nats != ""))),
                        live=bool(live))
    if live and broker.kind == "paper":
        raise ConfigError("--live needs broker.kind = 'binance' or 'coinbase'; got 'paper' (paper trading needs "
                          "no --live)")
    if broker.kind != "paper" and not broker.sandbox and not live:
        raise ConfigError(f"broker.kind = {broker.kind!r} with sandbox = false sends real orders: pass --live "
                          "(and keys in the environment), or set broker.sandbox = true for the testnet")
    return config


def _risk(table: Mapping) -> RiskLimits:
    defaults = RiskLimits()
    return RiskLimits(
        max_drawdown=_number("risk.max_drawdown", table.get("max_drawdown", defaults.max_drawdown), 0.0, 1.0,
                             open_low=True),
        daily_loss=_number("risk.daily_loss", table.get("daily_loss", defaults.daily_loss), 0.0, 1.0, open_low=True),
        max_position=_number("risk.max_position", table.get("max_position", defaults.max_position), 0.0, 1e12,
                             open_low=True),
        max_order_notional=_number("risk.max_order_notional",
                                   table.get("max_order_notional", defaults.max_order_notional), 0.0, 1e15,
                                   open_low=True))


def _number(path: str, value: object, low: float, high: float, *, integer: bool = False,
            open_low: bool = False) -> float:
    where = _where(path, value)
    valid = f"{'an integer' if integer else 'a number'} in {'(' if open_low else '['}{low:g}, {high:g}]"
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise ConfigError(f"{where}: {str(value)!r} is not {valid}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ConfigError(f"{where}: {value!r} is not {valid}")
    if not (low <= value <= high) or value != value or (open_low and value == low):
        raise ConfigError(f"{where}: {value!r} is out of range; valid: {valid}")
    return value


def _bool(path: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{_where(path, value)}: {value!r} is not a boolean; valid: true or false")


def _choice(path: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{_where(path, value)}: {value!r} is not valid; valid: {', '.join(choices)}")
    return str(value)


def _text(path: str, value: object, pattern: str, valid: str) -> str:
    if not isinstance(value, str) or not re.match(pattern, value):
        raise ConfigError(f"{_where(path, value)}: {value!r} is not valid; expected {valid}")
    return str(value)


def spot_only(symbols: tuple[str, ...], where: str, remedy: str | None = None) -> None:
    """Refuse perpetuals (``BASE/QUOTE:SETTLE``) where no funding feed charges them: the exchange
    daemon (its broker trades spot) and a paper runner built without a funding book (the paper
    account would silently skip funding). ``coinswarm live run`` on the paper broker and
    ``coinswarm live replay`` fund them."""
    perps = [s for s in symbols if ":" in s]
    if perps:
        remedy = remedy or ("trade spot symbols here; the paper daemon (broker.kind = 'paper') and "
                            "`coinswarm live replay` run perpetuals with their funding")
        raise ConfigError(f"symbols: {perps} are perpetuals, which {where} cannot trade (no funding feed: "
                          f"their funding would be left out of the account); {remedy}")


def _symbols(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"symbols: {value!r} is not valid; expected a non-empty list like [\"BTC/USDT\"]")
    for k, symbol in enumerate(value):
        if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
            raise ConfigError(f"symbols[{k}]: {symbol!r} is not a symbol; expected BASE/QUOTE like 'BTC/USDT'")
    if len(set(value)) != len(value):
        raise ConfigError(f"symbols: {value!r} lists a symbol twice")
    return tuple(value)


def _params(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"strategy.params: {value!r} is not a table; expected [strategy.params] key = value")
    return MappingProxyType(dict(value))


def _url(path: str, value: object, kind: str) -> str:
    schemes = {"db": ("sqlite", "postgresql"), "redis": ("redis", "rediss", "unix"), "nats": ("nats", "tls")}[kind]
    if not isinstance(value, str):
        raise ConfigError(f"{_where(path, value)}: {value!r} is not a URL")
    if value == "" and kind != "db":
        return ""
    scheme = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ConfigError(f"{_where(path, value)}: {mask_url(value)!r} is not valid; expected a URL with scheme "
                          f"{' or '.join(schemes)}" + ("" if kind == "db" else ", or \"\" for the embedded default"))
    return str(value)


def _with_credentials(config: LiveConfig, env: Mapping[str, str]) -> LiveConfig:
    kind = config.broker.kind
    if kind == "paper":
        return config
    prefix = f"COINSWARM_{kind.upper()}_"
    key, secret = env.get(prefix + "API_KEY", ""), env.get(prefix + "SECRET", "")
    passphrase = env.get(prefix + "PASSPHRASE", "")
    if not (key and secret) and env.get(prefix + "KEY_FILE"):
        key, secret, passphrase = _key_file(Path(env[prefix + "KEY_FILE"]), prefix + "KEY_FILE")
    if not (key and secret):
        what = "real orders (--live)" if not config.broker.sandbox else "the sandbox"
        raise ConfigError(f"broker.kind = {kind!r} needs keys for {what}: set {prefix}API_KEY and {prefix}SECRET "
                          f"in the environment (or {prefix}KEY_FILE naming a 0600 TOML file)")
    creds = Credentials(exchange=kind, api_key=key, secret=secret, passphrase=passphrase)
    return _replace(config, credentials=creds)


def _replace(config: LiveConfig, **changes) -> LiveConfig:
    from dataclasses import replace

    return replace(config, **changes)


def _key_file(path: Path, var: str) -> tuple[str, str, str]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{var}: key file {path} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"{var}: key file {path} has mode {mode:04o}; it must be 0600 (chmod 600 {path})")
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{var}: key file {path} is not TOML with api_key and secret "
                          f"({type(exc).__name__})") from None
    values = tuple(table.get(k, "") for k in ("api_key", "secret", "passphrase"))
    if not all(isinstance(v, str) for v in values) or not (values[0] and values[1]):
        raise ConfigError(f"{var}: key file {path} needs string entries api_key and secret")
    return values  # type: ignore[return-value]
