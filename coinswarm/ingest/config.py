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

    [fred]                               # one macro ingestor per series (key: COINSWARM_FRED_API_KEY)
    series = ["DGS10", "CPIAUCSL"];  every_s = 3600.0;  lookback_s = 7776000.0;  api_url = ""
    [newsapi]                            # one news ingestor per query (key: COINSWARM_NEWSAPI_KEY)
    query = "bitcoin OR ethereum";  language = "en";  every_s = 900.0;  lookback_s = 86400.0;  api_url = ""
    [rss]                                # one news ingestor per feed (no key)
    feeds = ["https://…/rss"];  every_s = 300.0;  lookback_s = 86400.0
    [news]                               # what is done with every news batch
    sentiment = true                     # VADER score per headline → the sentiment table
    vectors_url = ""                     # "" = off; postgresql://… (pgvector) or redis://… (vector set)
    embedder = "hashing"                 # hashing | minilm | auto (MiniLM needs the ml extra)

Environment overrides: ``COINSWARM_INGEST_STORE``, ``COINSWARM_NATS_URL``, ``COINSWARM_METRICS_PORT``,
``COINSWARM_INGEST_VECTORS_URL``. A missing API key does not stop the run: that ingestor reports
unhealthy with the variable to set, the others run.
A key that looks like a secret is refused (keys come from the environment, as for the live runner).
"""

from __future__ import annotations

import os
import re
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
_TOP_KEYS = {"store", "status_file", "metrics_port", "nats_url", "backoff", "exchange", "fred", "newsapi", "rss",
             "news"}
_FEED_ITEMS = {"fred": "series", "newsapi": "query", "rss": "feeds"}
_FEED_DEFAULTS = {"fred": (3600.0, 90 * 86400.0), "newsapi": (900.0, 86400.0), "rss": (300.0, 86400.0)}
_SERIES_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")
EMBEDDERS = ("hashing", "minilm", "auto")


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
class FeedConfig:
    """A ``[fred]``, ``[newsapi]`` or ``[rss]`` table: one ingestor per item."""

    kind: str
    items: tuple[str, ...]
    every_s: float
    lookback_s: float
    api_url: str = ""
    language: str = "en"


@dataclass(frozen=True)
class NewsConfig:
    """The ``[news]`` table: sentiment scoring and headline indexing of every news batch."""

    sentiment: bool = True
    vectors_url: str = ""
    embedder: str = "hashing"


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
    feeds: tuple[FeedConfig, ...] = ()
    news: NewsConfig = field(default_factory=NewsConfig)


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


def _items(kind: str, t: Mapping[str, Any]) -> tuple[str, ...]:
    name = _FEED_ITEMS[kind]
    raw = t.get(name)
    items = [raw] if kind == "newsapi" and isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise ConfigError(f"[{kind}]: {name} must be a non-empty list of non-empty strings, got {raw!r}")
    for item in items:
        if kind == "fred" and not _SERIES_ID.match(item):
            raise ConfigError(f"[fred]: series id {item!r} must be 1-64 letters, digits or '_' (like 'DGS10')")
        if kind == "rss" and not re.match(r"^https?://[^/\s]+", item):
            raise ConfigError(f"[rss]: feed {item!r} must be an absolute http(s)://host/... URL")
        if kind == "newsapi" and len(item) > 500:
            raise ConfigError(f"[newsapi]: a query has at most 500 characters, got {len(item)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"[{kind}]: {name} lists an item twice: {items}")
    return tuple(items)


def _feed(kind: str, t: Any) -> FeedConfig:
    """One ``[fred]`` / ``[newsapi]`` / ``[rss]`` table, checked."""
    valid = {_FEED_ITEMS[kind], "every_s", "lookback_s", "api_url"} | ({"language"} if kind == "newsapi" else set())
    if not isinstance(t, Mapping):
        raise ConfigError(f"[{kind}] must be a table with keys {sorted(valid)}")
    unknown = sorted(set(t) - valid)
    if unknown:
        raise ConfigError(f"[{kind}]: unknown key(s) {unknown}; valid: {sorted(valid)}")
    every, lookback = _FEED_DEFAULTS[kind]
    api_url = t.get("api_url", "")
    if kind == "rss" and api_url:
        raise ConfigError("[rss]: api_url is not used; list the feed URLs in feeds")
    if not isinstance(api_url, str) or (api_url and not re.match(r"^https?://[^/\s]+", api_url)):
        raise ConfigError(f"[{kind}]: api_url must be \"\" (the service) or an http(s):// base URL, got {api_url!r}")
    language = t.get("language", "en")
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2}|", language):
        raise ConfigError(f"[newsapi]: language must be a two-letter code like 'en' (or \"\" for all), "
                          f"got {language!r}")
    return FeedConfig(kind, _items(kind, t), _number(t, "every_s", every, f"[{kind}]", lo=0.01),
                      _number(t, "lookback_s", lookback, f"[{kind}]", lo=1.0), api_url, language)


def _news(t: Any, env: Mapping[str, str]) -> NewsConfig:
    """The ``[news]`` table, checked (``COINSWARM_INGEST_VECTORS_URL`` overrides ``vectors_url``)."""
    valid = {"sentiment", "vectors_url", "embedder"}
    if not isinstance(t, Mapping) or set(t) - valid:
        got = sorted(t) if isinstance(t, Mapping) else t
        raise ConfigError(f"[news]: a table with keys {sorted(valid)}; got {got!r}")
    sentiment = t.get("sentiment", True)
    if not isinstance(sentiment, bool):
        raise ConfigError(f"[news]: sentiment must be true or false, got {sentiment!r}")
    url = env.get("COINSWARM_INGEST_VECTORS_URL") or t.get("vectors_url", "")
    if not isinstance(url, str) or (url and not url.startswith(("postgresql://", "postgres://", "redis://",
                                                                "rediss://", "postgresql+psycopg://"))):
        raise ConfigError(f"[news]: vectors_url must be \"\" (off), postgresql://… or redis://…, got {url!r:.80}")
    embedder = t.get("embedder", "hashing")
    if embedder not in EMBEDDERS:
        raise ConfigError(f"[news]: embedder must be one of {list(EMBEDDERS)}, got {embedder!r}")
    return NewsConfig(sentiment, url, embedder)


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
    feeds = tuple(_feed(kind, table[kind]) for kind in _FEED_ITEMS if kind in table)
    if not isinstance(exchanges, list) or not (exchanges or feeds):
        raise ConfigError(f"{path}: at least one [[exchange]], [fred], [newsapi] or [rss] table is needed")
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
                        _number(backoff, "stale_after_s", 30.0, "backoff", lo=0.1), feeds,
                        _news(table.get("news", {}), env))
