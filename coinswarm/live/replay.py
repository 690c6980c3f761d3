"""``coinswarm live replay``: the daemon on a replay feed with the paper broker.

:func:`replay` builds the parts (ledger, strategy, paper broker, feed), recovers (start-up is
recovery: the same command on the same ``--db`` resumes after the last checkpoint) and runs
the feed to its end (or until ``stop``). The embedded default needs no server: SQLite, the
in-process bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coinswarm.costs import Costs
from coinswarm.errors import ConfigError
from coinswarm.live.config import RiskLimits
from coinswarm.live.ledger import Ledger
from coinswarm.live.paper import PaperBroker
from coinswarm.live.recovery import Recovery, recover
from coinswarm.live.runner import NO_LIMITS, Runner, RunnerSettings
from coinswarm.live.sinks import Sinks
from coinswarm.live.stepper import Stepper


@dataclass
class ReplaySpec:
    """One replay run (the ``coinswarm live replay`` arguments)."""

    sources: Sequence[str]
    strategy: str
    db: str
    start: str | None = None
    end: str | None = None
    speed: float | str = "max"
    params: Mapping[str, Any] = field(default_factory=dict)
    init_cash: float = 10_000.0
    costs: Costs = field(default_factory=Costs)
    limits: RiskLimits = field(default_factory=lambda: NO_LIMITS)
    one_commit_write_ahead: bool = True  # the paper broker cannot lose an order between NEW and SENT
    memory: bool | None = None  # propose episodes to the quorum (None: when NATS is configured)
    funding: Mapping[str, str] = field(default_factory=dict)  # perpetual → funding source (default: found
    # beside a binance-perp:BASE/QUOTE:tf source as binance-perp:BASE/QUOTE:funding)


def symbol_of(source: str) -> tuple[str, str]:
    """``(symbol, source)`` of a ``--data`` value: ``binance:BTC/USDT:1h`` → ``BTC/USDT``, a
    perpetual's ``binance-perp:BTC/USDT:1h`` → ``BTC/USDT:USDT`` (settled in its quote);
    ``BTC/USDT=path/to/file.csv`` names the symbol of a CSV file."""
    symbol, eq, path = source.partition("=")
    if eq:
        return symbol.strip(), path.strip()
    parts = source.split(":")
    if len(parts) == 3 and "/" in parts[1]:
        if parts[0].endswith("-perp"):
            return f"{parts[1]}:{parts[1].split('/')[1]}", source
        return parts[1], source
    raise ConfigError(f"--data {source!r}: name the symbol of a CSV file as SYMBOL=PATH (e.g. BTC/USDT=btc.csv), "
                      "or give a catalog name like binance:BTC/USDT:1h")


def sources_by_symbol(sources: Sequence[str]) -> dict[str, str]:
    """``{symbol: source}``; a symbol given twice, or one that is not BASE/QUOTE, is a :class:`ConfigError`."""
    import re

    if not sources:
        raise ConfigError("--data: give at least one source (a catalog name like binance:BTC/USDT:1h or a CSV path)")
    out: dict[str, str] = {}
    for given in sources:
        symbol, source = symbol_of(given)
        if not re.match(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$", symbol):
            raise ConfigError(f"--data {given!r}: symbol {symbol!r} is not BASE/QUOTE like BTC/USDT")
        if symbol in out:
            raise ConfigError(f"--data: {given!r} replays {symbol} again (already {out[symbol]!r})")
        out[symbol] = source
    return out


def funding_sources(spec: ReplaySpec) -> dict[str, str]:
    """Perpetual → funding source: ``spec.funding``, else the catalog's funding series beside a
    ``…-perp:BASE/QUOTE:tf`` source. A perpetual without one is a :class:`ConfigError` (its
    funding cannot be left out of the paper account silently)."""
    if spec.costs.funding is not None:
        raise ConfigError("a replay reads the perpetuals' funding from --funding or the catalog "
                          "(ReplaySpec.funding), not from Costs.funding: leave Costs.funding unset")
    pairs = sources_by_symbol(spec.sources)
    out = {}
    for symbol, source in pairs.items():
        if ":" not in symbol:
            continue
        given = spec.funding.get(symbol)
        parts = source.split(":")
        if given is None and len(parts) == 3 and parts[0].endswith("-perp"):
            given = f"{parts[0]}:{parts[1]}:funding"
        if given is None:
            raise ConfigError(f"perpetual {symbol} ({source}) needs its funding rates: give --funding "
                              f"{symbol}=SOURCE (a catalog name like binance-perp:BTC/USDT:funding or a "
                              "timestamp,funding_rate CSV)")
        out[symbol] = given
    unknown = sorted(set(spec.funding) - set(out))
    if unknown:
        raise ConfigError(f"--funding for {unknown}, which are not perpetuals of this replay ({list(pairs)})")
    return out


def funding_book(spec: ReplaySpec, symbols: Sequence[str]):
    """The :class:`~coinswarm.live.funding.FundingBook` of the replay's perpetuals (None: none)."""
    sources = funding_sources(spec)
    if not sources:
        return None
    from coinswarm.data.load import load_funding
    from coinswarm.live.funding import FundingBook

    return FundingBook({s: load_funding(src) for s, src in sources.items()}, symbols, sources)


def build(spec: ReplaySpec, *, sinks: Sinks | None = None, bus=None, guard=None,
          metrics=None) -> tuple[Runner, Recovery]:
    """The runner of ``spec``, recovered from its ledger (fresh or resumed)."""
    pairs = sources_by_symbol(spec.sources)
    stepper = Stepper(spec.strategy, list(pairs), spec.params)
    funding = funding_book(spec, stepper.symbols)
    ledger = Ledger(spec.db)
    try:
        runner = _runner(spec, stepper, ledger, sinks, bus)
        runner.funding = funding
        runner.guard, runner.metrics = guard, metrics
        recovery = recover(runner, mode="replay", venue="paper", init_cash=spec.init_cash,
                           now_ms=time.time_ns() // 1_000_000)
        if spec.memory:
            from coinswarm.live.proposals import attach

            attach(runner)
    except BaseException:
        ledger.close()
        raise
    return runner, recovery


def _runner(spec: ReplaySpec, stepper: Stepper, ledger: Ledger, sinks: Sinks | None, bus) -> Runner:
    from coinswarm.stats import daily_rate

    borrow = np.array([0.0 if ":" in s else daily_rate(spec.costs.borrow_rate) for s in stepper.symbols])
    broker = PaperBroker(stepper.symbols, init_cash=spec.init_cash, fee=spec.costs.fee,
                         slippage=spec.costs.slippage, max_leverage=stepper.max_leverage,
                         allow_short=stepper.allow_short, fills_of=lambda symbols, since: [
                             f for f in ledger.fills() if f.symbol in symbols and f.time_ms >= since],
                         credit=daily_rate(spec.costs.cash_rate) if spec.costs.cash_rate else 0.0,
                         borrow=borrow if spec.costs.borrow_rate else None)
    settings = RunnerSettings(strategy_id=stepper.name, step_ms=0, limits=spec.limits,
                              one_commit_write_ahead=spec.one_commit_write_ahead)  # see RunnerSettings
    return Runner(ledger, stepper, broker, settings, sinks=sinks, bus=bus)


def feed_for(spec: ReplaySpec, runner: Runner):
    """The replay feed, resuming after the runner's last processed bar."""
    from coinswarm.live.feeds import ReplayFeed

    after = runner.last_time if runner.last_time >= 0 else None
    feed = ReplayFeed(sources_by_symbol(spec.sources), start=spec.start, end=spec.end, speed=spec.speed,
                      after_ms=after)
    runner.settings.step_ms = feed.step_ms or 3_600_000
    return feed


async def replay(spec: ReplaySpec, *, sinks: Sinks | None = None, bus=None,
                 stop: asyncio.Event | None = None, services=None) -> dict[str, Any]:
    """Run (or resume) ``spec`` to the end of its data; a summary of this run. ``services``
    (:class:`~coinswarm.live.services.Services`) gives the sinks, the bus and the database
    guard (then ``sinks`` and ``bus`` are not used)."""
    if services is not None:
        sinks, bus = services.sinks, services.bus
    runner, recovery = build(spec, sinks=sinks, bus=bus, guard=getattr(services, "guard", None),
                             metrics=getattr(services, "metrics", None))
    try:
        feed = feed_for(spec, runner)
        started = time.perf_counter()
        bars = await runner.run(feed, stop)
        elapsed = time.perf_counter() - started
        return {"bars": bars, "seconds": elapsed, "bars_per_s": bars / elapsed if elapsed > 0 else None,
                "resumed": not recovery.fresh, "halted": runner.kill.halted,
                "unexplained": recovery.unexplained, "in_flight_at_start": recovery.in_flight}
    finally:
        runner.sinks.close()
        runner.ledger.close()


def servers_config(db: str, *, redis: str = "", nats: str = "", metrics_port: int | None = None):
    """The :class:`~coinswarm.live.config.LiveConfig` a replay's services are built from (its
    URLs, validated as ``coinswarm live run`` validates them; only ``servers`` and
    ``metrics_port`` are read)."""
    from coinswarm.live.config import LiveConfig, MemoryConfig, ServerUrls, _url

    urls = ServerUrls(db=_url("--db", db, "db"), redis=_url("--redis", redis, "redis") if redis else "",
                      nats=_url("--nats", nats, "nats") if nats else "")
    return LiveConfig(servers=urls, metrics_port=int(metrics_port or 0), memory=MemoryConfig(enabled=bool(nats)))


async def replay_served(spec: ReplaySpec, *, redis: str = "", nats: str = "", metrics_port: int | None = None,
                        stop: asyncio.Event | None = None, log_stream=None, log_level: int | str = "INFO",
                        run: str | None = None,
                        on_services=None) -> dict[str, Any]:
    """:func:`replay` wired to the servers: Redis hot state (``redis``), the outbox published
    to NATS (``nats``), Prometheus ``/metrics`` on ``metrics_port``, JSON logs with every secret
    redacted and the ledger's writes through a :class:`~coinswarm.live.dbretry.DbGuard` (the
    database away pauses the replay). No URL: the embedded default. ``on_services(services)``
    is called once they are up (tests read the metrics URL from it); ``run`` names the hot
    state's keys (default: the strategy)."""
    from coinswarm.live.services import open_services

    config = servers_config(spec.db, redis=redis, nats=nats, metrics_port=metrics_port)
    if spec.memory is None:
        from dataclasses import replace

        spec = replace(spec, memory=config.memory.enabled)
    services = await open_services(config, run or spec.strategy, start_equity=spec.init_cash,
                                   hot_interval_s=0.25 if spec.speed == "max" else 0.0, log_stream=log_stream,
                                   log_level=log_level)
    try:
        if on_services is not None:
            on_services(services)
        return await replay(spec, stop=stop, services=services)
    finally:
        await services.close()
