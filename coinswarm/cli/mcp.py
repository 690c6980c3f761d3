"""``coinswarm mcp``: the MCP server over stdio (default) or streamable HTTP (``--http PORT``)."""

from __future__ import annotations

import os
import time

from coinswarm.cli import checks


def add_commands(sub) -> None:
    """Register ``mcp``."""
    p = sub.add_parser("mcp", help="MCP server: research tools, memory via the quorum, paper orders within limits")
    p.add_argument("--db", default=None,
                   help="ledger db of the paper/live run (default $COINSWARM_DB_URL or sqlite:///coinswarm-paper.db)")
    p.add_argument("--memory", default=None, help="quorum memory store URL (default $COINSWARM_MEMORY_URL)")
    p.add_argument("--nats", default=None, help="NATS URL for propose_memory (default $COINSWARM_NATS_URL)")
    p.add_argument("--exchange", default="binance", help="catalog exchange that prices paper orders")
    p.add_argument("--timeframe", default="1h", type=checks.timeframe, help="catalog timeframe of the marks")
    p.add_argument("--symbols", default="BTC/USDT,ETH/USDT", help="order allowlist, comma-separated")
    p.add_argument("--max-order-notional", type=checks.positive, default=1_000.0, help="quote, per order")
    p.add_argument("--max-daily-notional", type=checks.positive, default=5_000.0, help="quote, per UTC day")
    p.add_argument("--max-position", type=checks.positive, default=0.5, help="base units, per symbol")
    p.add_argument("--fee-bps", type=checks.bps, default=10.0, help="paper fee (default 10)")
    p.add_argument("--slippage-bps", type=checks.bps, default=0.0, help="paper slippage (default 0)")
    p.add_argument("--init-cash", type=checks.positive, default=10_000.0,
                   help="cash of each quote currency a fresh paper ledger starts with")
    p.add_argument("--http", type=checks.whole(1, 65_535), default=None, metavar="PORT",
                   help="serve streamable HTTP on PORT instead of stdio")
    p.add_argument("--host", default="127.0.0.1",
                   help="HTTP bind address; beyond loopback $COINSWARM_MCP_TOKEN (a bearer token) is required")
    p.add_argument("--live", action="store_true", help="send orders to the exchange (needs keys in the environment)")
    p.add_argument("--venue", choices=("binance", "coinbase"), default="binance", help="live orders' exchange")
    p.add_argument("--sandbox", action="store_true", help="live orders on the exchange's testnet")
    p.set_defaults(func=cmd_mcp)


def _config(args, principal: str):
    from coinswarm.live.config import DEFAULT_DB, RiskLimits
    from coinswarm.mcpserver.config import OrderLimits, ServerConfig, parse_symbols

    limits = OrderLimits(symbols=parse_symbols(args.symbols),
                         risk=RiskLimits(max_position=args.max_position, max_order_notional=args.max_order_notional),
                         max_daily_notional=args.max_daily_notional, fee_bps=args.fee_bps,
                         slippage_bps=args.slippage_bps, init_cash=args.init_cash)
    return ServerConfig(db=args.db or os.environ.get("COINSWARM_DB_URL") or DEFAULT_DB,
                        memory=args.memory or os.environ.get("COINSWARM_MEMORY_URL"),
                        nats=args.nats or os.environ.get("COINSWARM_NATS_URL"), exchange=args.exchange,
                        timeframe=args.timeframe, limits=limits, live=args.live, principal=principal)


def _broker(args):
    if not args.live:
        return None
    from coinswarm.live.ccxt_broker import CcxtBroker, load_keys

    return CcxtBroker(args.venue, keys=load_keys(args.venue), sandbox=args.sandbox)


def wall_clock_ms() -> int:
    """Epoch milliseconds (the CLI owns the wall clock and injects it)."""
    return int(time.time() * 1000)


def cmd_mcp(args) -> int:
    import anyio

    from coinswarm.mcpserver.config import TOKEN_ENV, check_bind
    from coinswarm.mcpserver.http import principal, serve_http
    from coinswarm.mcpserver.server import build_server

    token = os.environ.get(TOKEN_ENV) or None
    if args.http is not None:
        check_bind(args.host, token)
    who = "stdio" if args.http is None else principal(token)
    config = _config(args, who)
    app = build_server(config, wall_clock_ms, broker=_broker(args))

    async def serve() -> None:
        try:
            if args.http is None:
                await app.server.run_stdio_async()
            else:
                await serve_http(app.server, args.host, args.http, token)
        finally:
            await app.aclose()

    anyio.run(serve)
    return 0
