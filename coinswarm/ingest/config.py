"""The ingest configuration (TOML; ``runners/ingest.example.toml`` is a commented example).

Top-level keys::

    store = "parquet:data/ingest"        # or postgresql://user@host:port/db (password: env only)
    status_file = "data/ingest/status.json"
    metrics_port = 9109                  # 0 = no /metrics endpoint (127.0.0.1)
    nats_url = ""                        # "" = do not publish; else stream batches go to NATS

    [backoff]    base_s = 1.0;  max_s = 60.0;  stale_after_s = 30.0

    [[exchange]]                         # one table per exchange
    name = "binance"                     # ccxt id
    symbols = ["BTC/USDT", "ETH-USDT"]   # any spelling; normalised
    candles = ["1m", "1h"]               # a REST candle ingestor per symbol and timeframe
    candles_ws = []                      # candles by WebSocket
    trades = true                        # trades by REST (polling, also the WebSocket's safety net)
    trades_ws = true                     # trades by WebSocket
    book_depth = 20                      # order-book snapshots (0 = off)
    funding = false                      # funding-rate history (perpetuals)
    every_s = 10.0;  lookback_s = 3600.0 # poll period; history fetched on the first run
    api_url = "";  ws_url = ""           # another base URL (a local fake venue)
    label = ""                           # the exchange's name in the store (default: name)
    clock_every_s = 30.0                 # re-sample the venue's clock this often
    options = {}                         # ccxt options

Environment overrides: ``COINSWARM_INGEST_STORE``, ``COINSWARM_NATS_URL``, ``COINSWARM_METRICS_PORT``.
A key that looks like a secret is refused (keys come from the environment, as for the live runner).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinswarm.adapters.sources.symbols import canonical_symbol
from coinswarm.data.validate import timeframe_ms
from coinswarm.errors import ConfigError

SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token", "passphrase", "private_key")
_EXCHANGE_KEYS = {"name", "symbols", "candles", "candles_ws", "trades", "trades_ws", "book_depth", "funding",
                  "every_s", "lookback_s", "api_url", "ws_url", "options", "label", "clock_every_s"}
_TOP_KEYS = {"store", "status_file", "metrics_port", "nats_url", "backoff", "exchange"}


@dataclass(frozen=True)
class ExchangeConfig:
    """One ``[[exchange]]`` table."""

    name: str
    symbols: tuple[str, ...]
    candles: tuple[str, ...] = ("1m",)
    candles_ws: tuple[str, ...] = ()
    trades: bool = True
    trades_ws: bool = False
    book_depth: int = 0
    funding: bool = False
    every_s: float = 10.0
    lookback_s: float = 3600.0
    api_url: str = ""
    ws_url: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    clock_every_s: float = 30.0


@dataclass(frozen=True)
class IngestConfig:
    """The whole ingest configuration (see the module docstring)."""

    store: str
    status_file: str
    exchanges: tuple[ExchangeConfig, ...]
    metrics_port: int = 0
    nats_url: str = ""
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    stale_after_s: float = 30.0


def _secretless(table: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        if any(w in key.lower() for w in SECRET_WORDS):
            raise ConfigError(f"{where}: key {key!r} looks like a secret; secrets come from the environment only")
        if isinstance(value, Mapping):
            _secretless(value, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    _secretless(item, f"{where}.{key}[{i}]")


def _number(table: Mapping[str, Any], key: str, default: float, where: str, *, lo: float = 0.0) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= lo:
        raise ConfigError(f"{where}: {key} must be a number ≥ {lo}, got {value!r}")
    return float(value)


def _exchange(t: Mapping[str, Any], i: int) -> ExchangeConfig:
    where = f"exchange[{i}]"
    unknown = sorted(set(t) - _EXCHANGE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_EXCHANGE_KEYS)}")
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a ccxt exchange id such as 'binance'")
    symbols = t.get("symbols")
    if not isinstance(symbols, list) or not symbols:
        raise ConfigError(f"{where} ({name}): symbols must be a non-empty list like ['BTC/USDT']")
    tfs = {}
    for key in ("candles", "candles_ws"):
        tfs[key] = tuple(t.get(key, ["1m"] if key == "candles" else []))
        for tf in tfs[key]:
            try:
                fixed = isinstance(tf, str) and timeframe_ms(tf) is not None
            except ConfigError:
                fixed = False
            if not fixed:
                raise ConfigError(f"{where} ({name}): {key} holds {tf!r}; valid: 1m 5m 15m 1h 4h 1d ...")
    for key in ("trades", "trades_ws", "funding"):
        if not isinstance(t.get(key, False), bool):
            raise ConfigError(f"{where} ({name}): {key} must be true or false")
    depth = t.get("book_depth", 0)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 5000:
        raise ConfigError(f"{where} ({name}): book_depth must be a whole number in [0, 5000]")
    return ExchangeConfig(name, tuple(canonical_symbol(s) for s in symbols), tfs["candles"], tfs["candles_ws"],
                          t.get("trades", True), t.get("trades_ws", False), depth, t.get("funding", False),
                          _number(t, "every_s", 10.0, where, lo=0.01), _number(t, "lookback_s", 3600.0, where),
                          str(t.get("api_url", "")), str(t.get("ws_url", "")), dict(t.get("options", {})),
                          str(t.get("label", "")), _number(t, "clock_every_s", 30.0, where, lo=0.01))


def load_config(path: str | os.PathLike, *, env: Mapping[str, str] | None = None) -> IngestConfig:
    """Read and check an ingest TOML file (environment overrides applied).

    Raises
    ------
    ConfigError
        Missing/unreadable file, bad TOML, unknown keys, bad values, a secret in the file.
    """
    env = os.environ if env is None else env
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ingest config {path}: {' '.join(str(exc).split())[:200]}") from None
    _secretless(table, str(path))
    unknown = sorted(set(table) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid: {sorted(_TOP_KEYS)}")
    exchanges = table.get("exchange", [])
    if not isinstance(exchanges, list) or not exchanges:
        raise ConfigError(f"{path}: at least one [[exchange]] table is needed")
    store = env.get("COINSWARM_INGEST_STORE") or table.get("store", "parquet:data/ingest")
    backoff = table.get("backoff", {})
    port = int(env.get("COINSWARM_METRICS_PORT") or table.get("metrics_port", 0))
    if not 0 <= port <= 65535:
        raise ConfigError(f"{path}: metrics_port must be in [0, 65535], got {port}")
    return IngestConfig(str(store), str(table.get("status_file", "data/ingest/status.json")),
                        tuple(_exchange(t, i) for i, t in enumerate(exchanges)), port,
                        str(env.get("COINSWARM_NATS_URL") or table.get("nats_url", "")),
                        _number(backoff, "base_s", 1.0, "backoff", lo=0.001),
                        _number(backoff, "max_s", 60.0, "backoff", lo=0.001),
                        _number(backoff, "stale_after_s", 30.0, "backoff", lo=0.1))
