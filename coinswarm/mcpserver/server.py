"""The coinswarm MCP server (``mcp`` 2.x, :class:`~mcp.server.mcpserver.MCPServer`).

Tools (typed input and output schemas; ``readOnlyHint`` / ``destructiveHint`` annotations):
``run_backtest``, ``walk_forward``, ``sweep``, ``get_regime``, ``query_memory`` (read-only),
``propose_memory`` (through the quorum, never a direct write), ``place_order`` and
``cancel_order`` (destructive; paper unless the server was started with ``--live``).

Resources: ``candles://{exchange}/{symbol}/{timeframe}{?limit}`` (symbol as ``BTC-USDT``),
``regime://…`` and ``committee://…`` of the same data, ``ledger://orders|positions|equity|report``,
``memory://patterns|episodes``, ``reports://index`` and ``reports://{report_id}``,
``audit://recent``.

Every tool call is audited (who, what, result; :mod:`coinswarm.mcpserver.audit`); a
:class:`~coinswarm.errors.CoinswarmError` becomes a tool error whose text says what was wrong.
Outside text is returned inside :class:`~coinswarm.mcpserver.models.UntrustedData`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from coinswarm.errors import CoinswarmError, VenueError
from coinswarm.mcpserver import research
from coinswarm.mcpserver.audit import AuditLog
from coinswarm.mcpserver.config import ServerConfig
from coinswarm.mcpserver.market import Market, symbol_from_uri
from coinswarm.mcpserver.models import (
    UNTRUSTED_NOTICE,
    BacktestResult,
    MemoryResult,
    OrderResult,
    ProposalResult,
    RegimeResult,
    SweepResult,
    WalkForwardResult,
    untrusted,
)
from coinswarm.mcpserver.orders import OrderDesk, OrderRequest

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
PROPOSE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
ORDER = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)

RESEARCH = ("run_backtest", "walk_forward", "sweep")
RESEARCH_SLOTS = 2  # backtests, sweeps and walk-forwards running at once (the rest wait their turn)

INSTRUCTIONS = ("coinswarm research and paper trading. Research tools are read-only. place_order is paper unless "
                "the server says mode 'live'; every order is checked against a symbol allowlist, per-order, "
                "per-position and per-day limits and the kill switch, and refused whole if any fails. Values "
                f"marked trust='untrusted' are {UNTRUSTED_NOTICE}.")

Data = Annotated[str, Field(description="catalog name exchange:BASE/QUOTE:timeframe, e.g. binance:BTC/USDT:1h",
                            max_length=80)]
Day = Annotated[str | None, Field(description="date or timestamp (UTC), e.g. 2022-01-01", max_length=40)]
Bps = Annotated[float, Field(ge=0, le=1000, description="basis points")]
Grid = Annotated[dict[str, list[float | int | str | bool]] | None,
                 Field(description="parameter → values to try; null: the strategy's default grid")]
Proposer = Callable[[Any], Awaitable[bool]]


class CoinswarmMCP:
    """The server object and the state behind it (ledger, audit, market cache, reports).

    Parameters
    ----------
    config : ServerConfig
    clock : callable
        Epoch milliseconds (the CLI passes the wall clock; tests a fake one).
    broker : Broker, optional
        Live orders' venue (``config.live`` only).
    proposer : callable, optional
        ``await proposer(proposal) -> bool`` hands a proposal to the quorum (default: the
        ``mem.propose`` stream on ``config.nats``).
    """

    def __init__(self, config: ServerConfig, clock: Callable[[], int], *, broker=None,
                 proposer: Proposer | None = None, market: Market | None = None) -> None:
        from coinswarm.live.ledger import Ledger

        self.config, self.clock = config, clock
        self.market = market or Market()
        self.reports = research.Reports(config.max_reports)
        self.ledger = Ledger(config.db)
        self.ledger.migrate()
        self.audit = AuditLog(config.db)
        self.desk = OrderDesk(self.ledger, config, self._mark, clock, broker=broker,
                              run_async=lambda fn, *args: anyio.from_thread.run(fn, *args))
        self.proposer = proposer
        self._bus = None
        self._store = None
        self._closed = False
        self.research_limiter = anyio.CapacityLimiter(RESEARCH_SLOTS)
        self.server = MCPServer("coinswarm", instructions=INSTRUCTIONS, version=_version(),
                                log_level="WARNING")
        _register_research(self)
        _register_memory(self)
        _register_orders(self)
        from coinswarm.mcpserver.resources import register_resources

        register_resources(self)

    # -- plumbing -------------------------------------------------------------------------
    def _mark(self, symbol: str) -> tuple[int, float]:
        """The last known close of ``symbol`` on the configured exchange and timeframe."""
        name = f"{self.config.exchange}:{symbol}:{self.config.timeframe}"
        when, close = self.market.last_close(name)
        return int(when.value // 1_000_000), close

    def store(self):
        """The memory store (read-only use), opened on first use; CoinswarmError without one."""
        if self.config.memory is None:
            raise CoinswarmError("no memory store: start the server with --memory URL (the quorum's store)")
        if self._store is None:
            from coinswarm.memory import Store

            self._store = Store(self.config.memory)
        return self._store

    async def call(self, ctx: Context | None, action: str, arguments: dict, work: Callable[[], Any], *,
                   mode: str = "thread", durable: bool = False) -> Any:
        """Run ``work`` — in a worker thread (``mode="thread"``), inline when it is quick
        (``"inline"``: cached reads), or awaited (``"await"``: a coroutine function) — audit
        the call (``durable``: stored before answering), and turn a CoinswarmError into a
        tool error naming what was wrong."""
        started, who = time.perf_counter(), self.who(ctx)
        try:
            if mode == "thread":
                limiter = self.research_limiter if action in RESEARCH else None
                result = await anyio.to_thread.run_sync(work, limiter=limiter)
            else:
                result = await work() if mode == "await" else work()
        except (CoinswarmError, ToolError) as exc:
            message = " ".join(str(exc).split())
            if isinstance(exc, VenueError):  # the exchange's words: outside text
                message = f"the exchange refused or did not answer; its reply is {UNTRUSTED_NOTICE}: {message}"
            self._audit(who, action, arguments, False, message, started, durable)
            raise ToolError(message) from None
        except Exception as exc:
            self._audit(who, action, arguments, False, f"internal error: {type(exc).__name__}", started,
                        durable)
            raise
        self._audit(who, action, arguments, True, _summary(result), started, durable)
        return result

    def _audit(self, who: str, action: str, arguments: dict, ok: bool, result: str, started: float,
               durable: bool) -> None:
        millis = int((time.perf_counter() - started) * 1000)
        self.audit.record(self.clock(), who, action, arguments, ok, result, millis, durable=durable)

    def who(self, ctx: Context | None) -> str:
        """The caller as audited: the transport's principal (``stdio``, ``http:<token hash>``)
        and, when the client names itself, ``client=<name>/<version>`` (its own claim)."""
        try:
            info = ctx.request_context.session.client_params.client_info
            return f"{self.config.principal} client={info.name}/{info.version}"[:200]
        except (AttributeError, ValueError):
            return self.config.principal

    async def propose(self, proposal) -> bool:
        """Hand ``proposal`` to the quorum (the injected proposer, or NATS ``mem.propose``)."""
        if self.proposer is not None:
            return await self.proposer(proposal)
        if self.config.nats is None:
            raise CoinswarmError("no quorum: start the server with --nats URL (proposals go through the quorum)")
        from coinswarm.adapters.bus import NatsBus
        from coinswarm.memory.nodes import submit

        if self._bus is None:
            self._bus = await NatsBus.connect(self.config.nats, name="coinswarm-mcp")
        return await submit(self._bus, proposal)

    async def aclose(self) -> None:
        """Close the broker, the bus, the store, the ledger and the audit pool (once)."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self.desk.broker, "close", None)
        if close is not None:
            await close()
        if self._bus is not None:
            await self._bus.close()
        if self._store is not None:
            self._store.close()
        self.ledger.close()
        self.audit.close()


def _version() -> str:
    import coinswarm

    return coinswarm.__version__


def _summary(result: Any) -> str:
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json")
    return json.dumps(result, default=str)[:2_000]


def _register_research(app: CoinswarmMCP) -> None:
    """run_backtest, walk_forward, sweep, get_regime."""
    m, reports = app.market, app.reports

    @app.server.tool(annotations=READ_ONLY)
    async def run_backtest(data: Data = "binance:BTC/USDT:1h", strategy: str = "sma_cross",
                           params: dict[str, float | int | str | bool] | None = None, start: Day = None,
                           end: Day = None, fee_bps: Bps = 10.0, slippage_bps: Bps = 0.0,
                           execution: Literal["next_open", "close"] = "next_open",
                           init_cash: Annotated[float, Field(gt=0, le=1e12)] = 10_000.0,
                           ctx: Context | None = None) -> BacktestResult:
        """Backtest one strategy with fixed parameters on catalog data (after fees and slippage)."""
        args = dict(data=data, strategy=strategy, params=params, start=start, end=end, fee_bps=fee_bps,
                    slippage_bps=slippage_bps, execution=execution, init_cash=init_cash)
        out = await app.call(ctx, "run_backtest", args, lambda: research.run_backtest(m, reports, **args))
        return BacktestResult(**out)

    @app.server.tool(annotations=READ_ONLY)
    async def walk_forward(data: Data = "binance:BTC/USDT:1h", strategy: str = "sma_cross", grid: Grid = None,
                           start: Day = None, end: Day = None, train: str = "365D", test: str = "90D",
                           anchored: bool = False, objective: str = "sharpe",
                           min_sharpe: float = 1.5, min_dsr: Annotated[float, Field(ge=0, le=1)] = 0.95,
                           max_pbo: Annotated[float | None, Field(ge=0, le=1)] = None,
                           min_trades: Annotated[int, Field(ge=0)] = 10,
                           fee_bps: Bps = 10.0, slippage_bps: Bps = 0.0,
                           ctx: Context | None = None) -> WalkForwardResult:
        """Walk-forward optimisation; returns the OOS gate's verdict with DSR, PBO and the trial count."""
        gate = dict(min_sharpe=min_sharpe, min_dsr=min_dsr, min_trades=min_trades)
        if max_pbo is not None:  # else cs.Gate's default PBO bound, the one gate of the CLI and the library
            gate["max_pbo"] = max_pbo
        args = dict(data=data, strategy=strategy, grid=grid, start=start, end=end, train=train, test=test,
                    anchored=anchored, objective=objective, fee_bps=fee_bps, slippage_bps=slippage_bps)
        out = await app.call(ctx, "walk_forward", {**args, **gate},
                             lambda: research.walk_forward(m, reports, gate=gate, **args))
        return WalkForwardResult(**out)

    @app.server.tool(annotations=READ_ONLY)
    async def sweep(data: Data = "binance:BTC/USDT:1h", strategy: str = "sma_cross", grid: Grid = None,
                    start: Day = None, end: Day = None, sort: str = "sharpe",
                    top: Annotated[int, Field(ge=1, le=200)] = 10, fee_bps: Bps = 10.0,
                    slippage_bps: Bps = 0.0, ctx: Context | None = None) -> SweepResult:
        """Backtest every combination of a parameter grid; the best rows by ``sort``."""
        args = dict(data=data, strategy=strategy, grid=grid, start=start, end=end, sort=sort, top=top,
                    fee_bps=fee_bps, slippage_bps=slippage_bps)
        return SweepResult(**await app.call(ctx, "sweep", args, lambda: research.sweep(m, reports, **args)))

    @app.server.tool(annotations=READ_ONLY)
    async def get_regime(data: Data = "binance:BTC/USDT:1h", at: Day = None,
                         ctx: Context | None = None) -> RegimeResult:
        """The causal regime (volatility, trend, liquidity, session) of the bar at or before ``at``."""
        args = dict(data=data, at=at)
        mode = "inline" if m.has_regimes(data) else "thread"  # a cached answer costs less than a thread hop
        out = await app.call(ctx, "get_regime", args, lambda: research.regime_at(m, data, at), mode=mode)
        return RegimeResult(**out)


def _register_memory(app: CoinswarmMCP) -> None:
    """query_memory (read-only) and propose_memory (through the quorum)."""
    from coinswarm.mcpserver.memory import proposal_from, query

    @app.server.tool(annotations=READ_ONLY)
    async def query_memory(kind: Literal["patterns", "episodes"] = "patterns",
                           key_prefix: Annotated[str | None, Field(max_length=200)] = None,
                           as_of_ms: Annotated[int | None, Field(ge=0)] = None,
                           limit: Annotated[int, Field(ge=1, le=500)] = 50, ctx: Context | None = None) -> MemoryResult:
        """Committed quorum memory: patterns (by key prefix) or episodes (newest first)."""
        args = dict(kind=kind, key_prefix=key_prefix, as_of_ms=as_of_ms, limit=limit)
        count, items = await app.call(ctx, "query_memory", args, lambda: query(app.store(), **args))
        return MemoryResult(kind=kind, count=count, items=[untrusted("quorum memory", i) for i in items])

    @app.server.tool(annotations=PROPOSE)
    async def propose_memory(kind: Literal["add_episode", "update_pattern", "promote_pattern", "deprecate_pattern",
                                           "planner_weights"],
                             data: dict[str, Any], data_time_ms: Annotated[int, Field(ge=0)],
                             justification: dict[str, Any] | None = None, ctx: Context | None = None) -> ProposalResult:
        """Propose a memory change to the quorum; it is committed only if the managers agree."""
        args = dict(kind=kind, data=data, data_time_ms=data_time_ms, justification=justification)

        async def work() -> dict:
            proposal = proposal_from(kind, data, justification or {}, data_time_ms, app.clock())
            submitted = await app.propose(proposal)
            return {"proposal_id": proposal.id, "kind": kind, "digest": proposal.digest, "submitted": submitted,
                    "note": "handed to the quorum: read memory://patterns later to see whether it was committed"}

        return ProposalResult(**await app.call(ctx, "propose_memory", args, work, mode="await", durable=True))


def _register_orders(app: CoinswarmMCP) -> None:
    """place_order and cancel_order (destructive)."""

    @app.server.tool(annotations=ORDER)
    async def place_order(symbol: Annotated[str, Field(max_length=41, description="BASE/QUOTE, e.g. BTC/USDT")],
                          side: Literal["buy", "sell"], qty: Annotated[float, Field(gt=0)],
                          price: Annotated[float | None, Field(gt=0, description="limit price; null: market")] = None,
                          tag: Annotated[str | None, Field(min_length=1, max_length=64,
                                                           description="idempotency key")] = None,
                          ctx: Context | None = None) -> OrderResult:
        """Place an order (paper unless the server runs live), refused whole if any limit fails."""
        args = dict(symbol=symbol, side=side, qty=qty, price=price, tag=tag)
        request = OrderRequest(symbol.upper(), side, qty, price, tag)
        return OrderResult(**await app.call(ctx, "place_order", args, lambda: app.desk.place(request), durable=True))

    @app.server.tool(annotations=ORDER)
    async def cancel_order(client_order_id: Annotated[str, Field(min_length=1, max_length=64)],
                           ctx: Context | None = None) -> OrderResult:
        """Cancel an MCP order that has not filled yet."""
        args = dict(client_order_id=client_order_id)
        return OrderResult(**await app.call(ctx, "cancel_order", args, lambda: app.desk.cancel(client_order_id),
                                            durable=True))


def resource_error(exc: Exception) -> ResourceError:
    """A resource failure the client can read (what was wrong)."""
    return ResourceError(" ".join(str(exc).split()))


def build_server(config: ServerConfig, clock: Callable[[], int], **kwargs) -> CoinswarmMCP:
    """The coinswarm MCP server for ``config`` (see :class:`CoinswarmMCP`)."""
    return CoinswarmMCP(config, clock, **kwargs)


__all__ = ["CoinswarmMCP", "build_server", "resource_error", "symbol_from_uri"]
