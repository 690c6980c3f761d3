"""The MCP server's settings: where the ledger and memory live, which market prices paper
orders, and the order limits every ``place_order`` is checked against.

Nothing here reads the wall clock or the network; :func:`coinswarm.cli.mcp` builds a
:class:`ServerConfig` from flags and the environment and injects the clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from coinswarm.errors import ConfigError
from coinswarm.live.config import DEFAULT_DB, RiskLimits

_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
TOKEN_ENV = "COINSWARM_MCP_TOKEN"  # the bearer token an HTTP server bound beyond loopback requires


@dataclass(frozen=True)
class OrderLimits:
    """What an order placed through MCP may do (checked before anything is written).

    Parameters
    ----------
    symbols : tuple of str
        The allowlist (``BASE/QUOTE``); any other symbol is refused.
    risk : RiskLimits
        ``max_order_notional`` (quote) and ``max_position`` (base units, per symbol) — the
        live risk limits, applied by :func:`coinswarm.live.killswitch.limit_intents`.
    max_daily_notional : float
        Quote notional all orders accepted through MCP may add up to per UTC day.
    fee_bps, slippage_bps : float
        The paper fill's fee (charged in the quote currency) and adverse slippage.
    init_cash : float
        Cash of every quote currency a fresh paper ledger starts with (paper buys must be
        paid for).
    """

    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    risk: RiskLimits = field(default_factory=lambda: RiskLimits(max_position=0.5, max_order_notional=1_000.0))
    max_daily_notional: float = 5_000.0
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    init_cash: float = 10_000.0

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("order limits: the symbol allowlist is empty; give at least one BASE/QUOTE symbol")
        for symbol in self.symbols:
            if not isinstance(symbol, str) or not _SYMBOL.match(symbol):
                raise ConfigError(f"order limits: symbol {symbol!r} is not BASE/QUOTE in capitals (e.g. 'BTC/USDT')")
        _positive("max_daily_notional", self.max_daily_notional)
        _positive("init_cash", self.init_cash)
        _positive("risk.max_order_notional", self.risk.max_order_notional)
        _positive("risk.max_position", self.risk.max_position)
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not _real(value) or not 0 <= value <= 1000:
                raise ConfigError(f"order limits: {name} must be a number in [0, 1000], got {value!r}")


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`coinswarm.mcpserver.build_server` needs.

    Parameters
    ----------
    db : str
        The ledger database (the paper or live run's; SQLite or PostgreSQL URL). Paper orders
        are booked here, so ``coinswarm live report --db URL`` shows them; the audit trail
        (``mcp_audit``) lives here too.
    memory : str or None
        The quorum memory store URL (read-only here); None: memory resources/tools say so.
    nats : str or None
        NATS URL for ``propose_memory`` (proposals go to the quorum's ``mem.propose`` stream).
    exchange, timeframe : str
        The catalog market that prices paper orders (``{exchange}:{symbol}:{timeframe}``).
    live : bool
        Orders go to the exchange (needs ``--live`` and keys); paper otherwise.
    principal : str
        Who is calling, as recorded in the audit (``stdio``, ``http:<token fingerprint>``).
    """

    db: str = DEFAULT_DB
    memory: str | None = None
    nats: str | None = None
    exchange: str = "binance"
    timeframe: str = "1h"
    limits: OrderLimits = field(default_factory=OrderLimits)
    live: bool = False
    principal: str = "stdio"
    max_reports: int = 100


def _real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _positive(name: str, value: object) -> None:
    if not _real(value) or value <= 0:
        raise ConfigError(f"order limits: {name} must be a positive finite number, got {value!r}")


def parse_symbols(text: str) -> tuple[str, ...]:
    """``"BTC/USDT,eth/usdt"`` → ``("BTC/USDT", "ETH/USDT")`` (checked by :class:`OrderLimits`)."""
    symbols = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"--symbols {text!r} names a symbol twice")
    return symbols


def check_bind(host: str, token: str | None) -> None:
    """An HTTP server beyond loopback needs a bearer token (of at least 16 characters)."""
    if host in LOOPBACK:
        return
    if not token:
        raise ConfigError(f"--host {host} is not loopback: set {TOKEN_ENV} to a bearer token (≥ 16 characters) "
                          "that every request must carry, or bind 127.0.0.1")
    if len(token) < 16:
        raise ConfigError(f"{TOKEN_ENV} is {len(token)} characters; use at least 16")
