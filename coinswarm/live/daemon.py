"""``coinswarm live run``: the daemon from a :class:`~coinswarm.live.config.LiveConfig` on an
exchange's closed candles (ccxt REST polling, :class:`~coinswarm.live.feeds.CcxtFeed`).

Paper trading (``broker.kind = "paper"``, the default) is what this runner drives: the paper
broker fills with the portfolio kernel, every order and fill goes to the ledger, start-up is
recovery (the same path as ``coinswarm live replay``). On a fresh database it first warms the
strategy up on the feed's REST history (``strategy.warmup()`` bars, no trading), so its first
decision is made on a primed state. Perpetuals (``BTC/USDT:USDT``) trade with their funding: a
:class:`~coinswarm.live.funding.LiveFundingBook` fetches the venue's settlements as they happen
(Binance's public funding history), tells them to the strategy before each close (warm-up
included) and the paper kernel charges them, as a replay does; a settlement the venue announced
(``nextFundingTime``) but publishes late holds the bar that needs it until it is published. Exchange brokers
(``broker.kind = "binance"|"coinbase"``, spot only) run through
:func:`coinswarm.live.venue.run_venue` (:func:`run_config` dispatches).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from coinswarm.errors import ConfigError
from coinswarm.live.config import LiveConfig, spot_only
from coinswarm.live.signals import signal_stop

if TYPE_CHECKING:  # the paper path (its portfolio kernel: numba) is imported when it runs, not for an exchange
    from coinswarm.live.runner import Runner
    from coinswarm.live.sinks import Sinks


def build_runner(config: LiveConfig, *, init_cash: float = 10_000.0, sinks: Sinks | None = None,
                 bus=None, services=None, funding=None) -> Runner:
    """The paper runner of ``config`` (not yet recovered); ``funding`` (a
    :class:`~coinswarm.live.funding.FundingBook`) funds its perpetuals (none: spot symbols only)."""
    from coinswarm.data.validate import timeframe_ms
    from coinswarm.live.ledger import Ledger
    from coinswarm.live.paper import PaperBroker
    from coinswarm.live.runner import Runner, RunnerSettings
    from coinswarm.live.stepper import Stepper

    if config.broker.kind != "paper":
        raise ConfigError(f"broker.kind = {config.broker.kind!r}: this runner trades on the paper broker only so "
                          "far; set broker.kind = 'paper' (exchange brokers: see the live-venue work)")
    if funding is None:
        spot_only(config.symbols, "this paper runner", "give it funding= (`coinswarm live run` fetches the venue's "
                  "funding history itself), or run perpetuals in `coinswarm live replay`")
    stepper = Stepper(config.strategy.name, config.symbols, config.strategy.params)
    ledger = Ledger(config.servers.db)
    broker = PaperBroker(stepper.symbols, init_cash=init_cash, max_leverage=stepper.max_leverage,
                         allow_short=stepper.allow_short,
                         fills_of=lambda symbols, since: [f for f in ledger.fills()
                                                          if f.symbol in symbols and f.time_ms >= since])
    settings = RunnerSettings(strategy_id=stepper.name, step_ms=int(timeframe_ms(config.timeframe)),
                              limits=config.risk, one_commit_write_ahead=True)  # paper broker only
    if services is not None:
        return Runner(ledger, stepper, broker, settings, sinks=services.sinks, bus=services.bus,
                      guard=services.guard, metrics=services.metrics, funding=funding)
    return Runner(ledger, stepper, broker, settings, sinks=sinks, bus=bus, funding=funding)


async def warm_up(runner: Runner, feed, until_ms: int) -> int:
    """Step the strategy over ``warmup()`` bars of history before ``until_ms`` (no trading);
    returns how many times were stepped. Each step is told the funding settled before its close
    first, as the runner tells it before a live decision (nothing is charged: no position). The
    checkpoint then starts after them (with the memory proposer's state, which saw the same
    bars: :meth:`~coinswarm.live.proposals.MemoryProposer.warm`)."""
    from coinswarm.live.runner import warm_up_history

    stepped = 0
    bars = runner.stepper.warmup(runner.settings.step_ms)
    for t, group, closes in await warm_up_history(feed, runner.symbols, until_ms, bars,
                                                  runner.memory):
        if group:
            await runner.refresh_funding(t)
            runner._tell_funding(t)
            runner.stepper.decide(runner._rows(group), runner.settings.step_ms)
            runner.last_time = t
            stepped += 1
        if runner.memory is not None:  # memory proposals measure their features from this history too
            runner.memory.warm(t, closes, runner.stepper)
    if stepped:
        await runner.aflush()
    return stepped


async def run_paper(config: LiveConfig, source=None, *, max_bars: int | None = None, sleep=None,
                    stop: asyncio.Event | None = None, log_stream=None) -> Runner:
    """Run the paper daemon of ``config`` on ``source``'s closed candles (a
    :class:`~coinswarm.live.feeds.CandleSource`; default: Binance's public REST candles through
    ccxt) until ``stop``, SIGTERM/SIGINT or ``max_bars``. Its sinks, bus, JSON logs and database
    guard come from :func:`~coinswarm.live.services.open_services` (the config's server URLs and
    ``metrics_port``). Returns the (closed) runner."""
    from coinswarm.live.services import open_services

    services = await open_services(config, config.strategy.name, start_equity=10_000.0, log_stream=log_stream)
    try:
        return await _run_paper(config, services, source, max_bars=max_bars, sleep=sleep, stop=stop)
    finally:
        await services.close()


async def _run_paper(config: LiveConfig, services, source, *, max_bars: int | None, sleep,
                     stop: asyncio.Event | None) -> Runner:
    from coinswarm.live.feeds import CcxtFeed

    perps = any(":" in s for s in config.symbols)
    own = source is None
    if own:
        from coinswarm.live.ccxt_broker import PUBLIC, CcxtBroker

        source = CcxtBroker("binance", keys=PUBLIC, perpetuals=perps)  # perpetuals: their candles and funding
    try:
        feed = CcxtFeed(source, config.symbols, config.timeframe, max_bars=max_bars,
                        **({"sleep": sleep} if sleep else {}))
        book = None
        if perps:
            from coinswarm.live.funding import LiveFundingBook

            # outages: the feed's back-off; a settlement announced but not yet published: waited for on its clock
            book = LiveFundingBook(source, config.symbols, call=feed.guarded, wait_s=config.funding_wait_s,
                                   **({"sleep": sleep} if sleep else {}))
        runner = build_runner(config, services=services, funding=book)
        if book is not None:
            book.events = runner.sinks.on_event  # funding_late / funding_resume: logs, metrics, alerts
        try:
            await _recover_and_run(config, runner, feed, book, own, stop)
        finally:
            runner.ledger.close()
    finally:
        if own:
            await source.close()
    return runner


async def _recover_and_run(config: LiveConfig, runner: Runner, feed, book, own: bool,
                           stop: asyncio.Event | None) -> None:
    """Recover, start the source, warm up a fresh run (its funding fetched from the carry window
    before the first warm-up close) or resume after the checkpoint, then run the feed."""
    from coinswarm.errors import FundingHeldError
    from coinswarm.live.recovery import recover

    recovery = recover(runner, mode="paper", venue="paper", init_cash=10_000.0, now_ms=time.time_ns() // 1_000_000)
    if config.memory.enabled:
        from coinswarm.live.proposals import attach

        attach(runner)
    if own:
        await feed.source.start()
    stop = stop or signal_stop()
    if book is not None:
        book.stop = stop  # a bar held for unpublished funding is given up (not decided) on a stop
    feed.last_ms = {s: runner.last_time if runner.last_time >= 0 else None for s in config.symbols}
    if recovery.fresh or runner.last_time < 0:  # a fresh run, or one stopped before its warm-up completed
        now = await feed.source.server_time_ms()
        if book is not None:
            from coinswarm.live.funding import lookback_ms

            step = runner.settings.step_ms
            book.start_at(now - (runner.stepper.warmup(step) + 2) * step - lookback_ms(runner.stepper.params))
        try:
            await warm_up(runner, feed, now)
        except FundingHeldError:  # stopped while a warm-up bar waited for funding: the next start warms up again
            if stop.is_set():
                return
            raise
        feed.last_ms = {s: runner.last_time if runner.last_time >= 0 else None for s in config.symbols}
    elif book is not None:
        from coinswarm.live.funding import DAY_MS

        # the strategy's state holds what was told before (the runner tells only settlements after its last
        # close, charges only those after its last bar); the two days before show the book the settlements'
        # interval, so one due but not yet published at the restart is known due (LiveFundingBook)
        book.start_at(runner.last_time + 1 - 2 * DAY_MS)
    await runner.run(feed, stop)


def run_config(config: LiveConfig) -> int:
    """Run the daemon until SIGTERM/SIGINT; 0 on a graceful stop."""
    if config.broker.kind != "paper":
        from coinswarm.live.venue import run_venue

        asyncio.run(run_venue(config))
        return 0
    asyncio.run(run_paper(config))
    return 0
