"""The MCP server's resources (all JSON): market data, regimes and the committee's state of
catalog data, the run's ledger, quorum memory, the session's reports and the audit trail.

In URIs a symbol is written ``BTC-USDT`` (a ``/`` would split the path); ``BTC_USDT`` and
``BTC%2FUSDT`` are accepted too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from coinswarm.errors import CoinswarmError
from coinswarm.mcpserver.models import untrusted

if TYPE_CHECKING:
    from coinswarm.mcpserver.server import CoinswarmMCP

JSON = "application/json"
MAX_CANDLES = 5_000


def _dump(obj: Any) -> str:
    from coinswarm.backtest.engine import _json_safe

    return json.dumps(_json_safe(obj), default=str)


async def _read(app: CoinswarmMCP, work) -> str:
    """Run ``work`` in a worker thread; a CoinswarmError becomes a readable resource error."""
    from coinswarm.mcpserver.server import resource_error

    try:
        return _dump(await anyio.to_thread.run_sync(work))
    except CoinswarmError as exc:
        raise resource_error(exc) from None


def _name(exchange: str, symbol: str, timeframe: str) -> str:
    from coinswarm.mcpserver.market import symbol_from_uri

    return f"{exchange}:{symbol_from_uri(symbol)}:{timeframe}"


def register_resources(app: CoinswarmMCP) -> None:
    """Every resource and resource template of the server."""
    _market_resources(app)
    _ledger_resources(app)
    _memory_resources(app)
    _report_resources(app)


def _candles(app: CoinswarmMCP, name: str, limit: str) -> dict:
    from coinswarm.errors import ConfigError

    if not limit.isdigit() or not 1 <= int(limit) <= MAX_CANDLES:
        raise ConfigError(f"limit {limit!r:.20} must be a whole number from 1 to {MAX_CANDLES}")
    frame = app.market.candles(name).tail(int(limit))
    times = frame.index.as_unit("ms").asi8.tolist()
    columns = ["open", "high", "low", "close", "volume"]
    rows = [[t, *values] for t, values in zip(times, frame[columns].to_numpy().tolist(), strict=True)]
    return {"data": name, "columns": ["time_ms", *columns], "bars": rows, "timeframe": frame.attrs.get("timeframe")}


def _committee(app: CoinswarmMCP, name: str) -> dict:
    from coinswarm.regime.detector import CELL_NAMES

    run = app.market.committee(name)
    last = run.iloc[-1]
    weights = {c[2:]: float(last[c]) for c in run.columns if c.startswith("w_")}
    contributions = {c[2:]: float(last[c]) for c in run.columns if c.startswith("c_")}
    out = {"data": name, "time": run.index[-1].isoformat(), "target": float(last["target"]),
           "risked": float(last["risked"]), "raw_vote": float(last["raw"]), "brake": float(last["brake"]),
           "regime_cell": CELL_NAMES[int(last["regime"])], "weights": weights, "contributions": contributions,
           "planner_weights": None}
    if app.config.memory is not None:
        out["planner_weights"] = untrusted("quorum memory", app.store().memory().planner_weights)
    return out


def _market_resources(app: CoinswarmMCP) -> None:
    @app.server.resource("candles://{exchange}/{symbol}/{timeframe}{?limit}", mime_type=JSON,
                         description="OHLCV bars of a bundled catalog data set (the newest `limit`, default 500)")
    async def candles(exchange: str, symbol: str, timeframe: str, limit: str = "500") -> str:
        return await _read(app, lambda: _candles(app, _name(exchange, symbol, timeframe), limit))

    @app.server.resource("regime://{exchange}/{symbol}/{timeframe}", mime_type=JSON,
                         description="the current (newest bar's) causal regime of a catalog data set")
    async def regime(exchange: str, symbol: str, timeframe: str) -> str:
        from coinswarm.mcpserver.research import regime_at

        return await _read(app, lambda: regime_at(app.market, _name(exchange, symbol, timeframe), None))

    @app.server.resource("committee://{exchange}/{symbol}/{timeframe}", mime_type=JSON,
                         description="the default committee's state at the newest bar: per-agent weights, "
                                     "contributions, regime cell, target; learned planner weights from memory")
    async def committee(exchange: str, symbol: str, timeframe: str) -> str:
        return await _read(app, lambda: _committee(app, _name(exchange, symbol, timeframe)))


def _ledger_resources(app: CoinswarmMCP) -> None:
    ledger = app.ledger

    @app.server.resource("ledger://orders", mime_type=JSON, description="every order of the run, oldest first")
    async def orders() -> str:
        return await _read(app, lambda: ledger.report()["orders"])

    @app.server.resource("ledger://positions", mime_type=JSON,
                         description="positions (with PnL at the last known close) and cash")
    async def positions() -> str:
        def work() -> dict:
            marks = {}
            for symbol in ledger.positions():
                try:
                    marks[symbol] = app._mark(symbol)[1]
                except CoinswarmError:
                    continue
            report = ledger.report(marks)
            return {"positions": report["positions"], "cash": report["cash"], "marks": marks}

        return await _read(app, work)

    @app.server.resource("ledger://equity", mime_type=JSON,
                         description="the newest equity snapshot, cash and the kill switch's state")
    async def equity() -> str:
        def work() -> dict:
            snapshot, kill = ledger.equity(), ledger.kill_state()
            return {"equity": None if snapshot is None else snapshot[1],
                    "time_ms": None if snapshot is None else snapshot[0], "cash": ledger.cash(),
                    "mark_to_market": _mark_to_market(app), "halted": kill.halted, "halt_reason": kill.reason,
                    "mode": ledger.mode()}

        return await _read(app, work)

    @app.server.resource("ledger://report", mime_type=JSON,
                         description="the whole `coinswarm live report --json` object of the run")
    async def report() -> str:
        return await _read(app, ledger.report)

    @app.server.resource("audit://recent", mime_type=JSON, description="the newest 100 audited calls")
    async def audit() -> str:
        return await _read(app, lambda: [_entry(e) for e in app.audit.entries()])


def _mark_to_market(app: CoinswarmMCP) -> dict[str, float | None]:
    """Cash plus every position at the last known close, per quote currency (None when a
    position of that quote has no catalog price)."""
    from coinswarm.live.ledger import split_symbol

    totals: dict[str, float | None] = dict(app.ledger.cash())
    for symbol, position in app.ledger.positions().items():
        quote = split_symbol(symbol)[1]
        try:
            value = position.qty * app._mark(symbol)[1]
        except CoinswarmError:
            totals[quote] = None
            continue
        if totals.get(quote, 0.0) is not None:
            totals[quote] = totals.get(quote, 0.0) + value
    return totals


def _entry(entry) -> dict:
    return {f: getattr(entry, f) for f in entry.__slots__}


def _memory_resources(app: CoinswarmMCP) -> None:
    from coinswarm.mcpserver.memory import query

    @app.server.resource("memory://patterns", mime_type=JSON,
                         description="committed quorum patterns (marked untrusted)")
    async def patterns() -> str:
        return await _read(app, lambda: untrusted("quorum memory", query(app.store(), "patterns", None, None,
                                                                         10_000)[1]).model_dump(mode="json"))

    @app.server.resource("memory://episodes", mime_type=JSON,
                         description="committed episodes, newest first, embeddings left out (marked untrusted)")
    async def episodes() -> str:
        return await _read(app, lambda: untrusted("quorum memory", query(app.store(), "episodes", None, None,
                                                                         1_000)[1]).model_dump(mode="json"))


def _report_resources(app: CoinswarmMCP) -> None:
    @app.server.resource("reports://index", mime_type=JSON, description="this session's backtest, sweep and "
                                                                         "walk-forward reports")
    async def index() -> str:
        return await _read(app, app.reports.index)

    @app.server.resource("reports://{report_id}", mime_type=JSON, description="one full report (folds, metrics, "
                                                                               "assumptions)")
    async def report(report_id: str) -> str:
        return await _read(app, lambda: app.reports.get(report_id))
