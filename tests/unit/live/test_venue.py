"""The live runner on an exchange broker (:mod:`coinswarm.live.venue`) against the fake Binance venue
on 127.0.0.1 (real catalog candles; the venue clock moves only when the feed sleeps)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from coinswarm.adapters.fake_venue import FakeVenue
from coinswarm.live.ledger import Ledger
from coinswarm.live.protocols import OrderStatus
from coinswarm.live.venue import round_to_market, run_venue
from tests.helpers.live import HOUR, SYMBOL, Replaying, broker_of, ledger_rows, make_config, make_venue, run

pytestmark = pytest.mark.timeout(300)


def venue_position(venue: FakeVenue) -> float:
    free, locked = venue.state.balances.get("BTC", [0.0, 0.0])
    return free + locked


def check_books(venue: FakeVenue, db: str) -> dict:
    """0 duplicated, 0 lost orders; the ledger's position is the venue's."""
    ledger = Ledger(db)
    try:
        orders = {o.client_order_id: o for o in ledger.orders()}
        at_venue = Counter(o.client_id for o in venue.state.orders.values())
        assert max(at_venue.values(), default=1) == 1, "an order reached the venue twice"
        assert set(at_venue) <= set(orders), "the venue holds an order the ledger does not know"
        sent = {cid for cid, o in orders.items() if o.sent_ms is not None}
        refused = [o for o in orders.values() if o.reason.startswith("rejected:")]
        posts = venue.count("POST", "/api/v3/order")  # each POST made a venue order or was refused: none resent
        assert posts == len(at_venue) + len(refused) and posts <= len(sent), (posts, len(at_venue), len(refused))
        position = ledger.positions().get(SYMBOL)
        assert abs((position.qty if position else 0.0) - venue_position(venue)) < 1e-9
        assert not ledger.kill_state().halted, ledger.kill_state()
        fills = {f.fill_id for f in ledger.fills()}
        assert fills == {str(t["id"]) for t in venue.state.trades}
        return {"orders": orders, "sent": sent, "in_flight": ledger.in_flight()}
    finally:
        ledger.close()


def test_lost_replies_are_never_resubmitted_and_all_resolve(tmp_path):
    """10 % of accepted submits lose their reply: each is UNKNOWN, found by client id, never sent again."""
    db = f"sqlite:///{tmp_path}/live.db"

    async def scenario():
        async with make_venue() as venue:
            venue.script(lost_reply_rate=0.1, seed=7)
            runner = await run(venue, make_config(venue, db), 240)
            venue.script(lost_reply_rate=0.0)
            await run(venue, make_config(venue, db), 3)  # the last orders fill and are read back
            return venue, runner

    venue, runner = asyncio.run(scenario())
    books = check_books(venue, db)
    lost = [o for o in books["orders"].values() if o.reason.startswith("OrderUnknownError")]
    print("SENT", len(books["sent"]), "LOST", len(lost), "POSTS", venue.count("POST", "/api/v3/order"))
    assert len(books["sent"]) >= 30 and len(lost) >= 2, (len(books["sent"]), len(lost))
    assert all(o.status is OrderStatus.FILLED for o in lost)
    assert [o.status for o in books["in_flight"]] in ([], [OrderStatus.OPEN])
    assert runner.bars_processed >= 240


def test_round_to_market_uses_the_lot_step_and_minimums():
    market = {"precision": {"amount": 0.001}, "limits": {"amount": {"min": 0.001}, "cost": {"min": 10.0}}}
    assert round_to_market(market, 0.12345, 100.0) == 0.123
    assert round_to_market(market, 0.0009, 1e6) == 0.0  # under the minimum amount
    assert round_to_market(market, 0.05, 100.0) == 0.0  # notional 5 < 10
    assert round_to_market({"precision": {"amount": 2}}, 1.239, 1.0) == 1.23  # decimal places


def test_rate_limits_are_waited_out_for_their_retry_after(tmp_path):
    """429s with Retry-After in the middle of a run: the waits are the venue's, nothing is lost."""
    db = f"sqlite:///{tmp_path}/live.db"
    sleeps: list[float] = []

    async def scenario():
        async with make_venue() as venue:
            await run(venue, make_config(venue, db), 5)
            def storm(k: int) -> None:  # once the run is going: 6 × 429 with Retry-After 2.5 s
                if k == 3:
                    venue.script(rate_limit=6, retry_after_s=2.5)

            runner = await run(venue, make_config(venue, db), 10, sleeps, storm)
            return venue, runner

    venue, runner = asyncio.run(scenario())
    assert sleeps.count(2.5) >= 6 - 1  # each 429 waited its Retry-After (one may hit the submit: UNKNOWN)
    assert runner.bars_processed >= 15
    check_books(venue, db)


def test_order_does_not_exist_within_grace_stays_in_flight(tmp_path):
    """A lost reply, then "order does not exist" for 20 venue minutes: at a restart 5 minutes
    later the order stays UNKNOWN (pending, not rejected); later it is found and filled."""
    db = f"sqlite:///{tmp_path}/live.db"

    async def scenario():
        async with make_venue() as venue:
            venue.script(lost_replies=1, not_found_ms=20 * 60_000)
            config = make_config(venue, db, grace_ms=2 * HOUR)
            for _ in range(120):  # until the strategy first trades
                await run(venue, config, 1)
                if venue.faults.lost_replies == 0:
                    break
            venue.advance(5 * 60_000)
            async with broker_of(venue) as broker:
                early = await run_venue(config, broker=broker, max_bars=0)
            ledger = Ledger(db)
            unknown = [o.client_order_id for o in ledger.orders([OrderStatus.UNKNOWN])]
            ledger.close()
            venue.advance(30 * 60_000)
            await run(venue, config, 3)
            return venue, early, unknown

    venue, early, unknown = asyncio.run(scenario())
    assert len(unknown) == 1 and early.last_report.pending == unknown and not early.last_report.halted
    books = check_books(venue, db)
    assert books["orders"][unknown[0]].status is OrderStatus.FILLED


def test_duplicate_shuffled_and_partial_fill_reports_book_once(tmp_path):
    """The venue repeats every trade, shuffles them and fills in two parts: each fill is booked once."""
    db = f"sqlite:///{tmp_path}/live.db"

    async def scenario():
        async with make_venue() as venue:
            venue.script(duplicate_trades=True, shuffle_trades=True, partial_fills=[0.3, 0.7], seed=3)
            await run(venue, make_config(venue, db), 120)
            return venue

    venue = asyncio.run(scenario())
    books = check_books(venue, db)
    assert len(venue.state.trades) >= 20 and len(books["sent"]) >= 10


def test_config_takes_an_api_url_and_refuses_a_bad_one(tmp_path):
    from coinswarm.errors import ConfigError
    from coinswarm.live.config import load_config

    path = tmp_path / "c.toml"
    env = {"COINSWARM_BINANCE_API_KEY": "k" * 8, "COINSWARM_BINANCE_SECRET": "s" * 8}
    path.write_text('[broker]\nkind = "binance"\napi_url = "http://127.0.0.1:8080"\n')
    assert load_config(path, env=env).broker.api_url == "http://127.0.0.1:8080"
    path.write_text('[broker]\nkind = "binance"\napi_url = "ftp://x/y"\n')
    with pytest.raises(ConfigError, match="broker.api_url"):
        load_config(path, env=env)


@pytest.mark.parametrize("lost_reply", [False, True], ids=["acknowledged", "reply-lost"])
def test_a_fill_whose_order_still_does_not_exist_resolves_it_filled(tmp_path, lost_reply):
    """Binance's lag: the order fills while every lookup (by client id and by order id) still
    answers "order does not exist" for 3 h, and the next process (a restart: the broker never
    saw the venue id) reads the trade. The trade history is the truth: the fill belongs to the
    in-flight order (by the venue id stored at the acknowledgement, or, the reply lost, as the
    only in-flight order it can be), the order is FILLED — no false halt."""
    db = f"sqlite:///{tmp_path}/live.db"

    async def scenario():
        async with make_venue() as venue:
            venue.script(lost_replies=1 if lost_reply else 0, not_found_ms=3 * HOUR)
            config = make_config(venue, db, grace_ms=6 * HOUR)
            for _ in range(120):  # one bar per process until the strategy first trades
                await run(venue, config, 1)
                if venue.state.orders:
                    break
            first = next(iter(venue.state.orders.values())).client_id
            runner = await run(venue, config, 2)
            return venue, runner, first

    venue, runner, first = asyncio.run(scenario())
    assert venue.state.trades and not runner.last_report.halted, runner.last_report.unexplained
    assert first in runner.last_report.attributed.values()
    books = check_books(venue, db)
    assert books["orders"][first].status is OrderStatus.FILLED
    assert books["orders"][first].venue_order_id == str(next(iter(venue.state.orders)))


def test_a_nameless_fill_two_in_flight_orders_could_own_is_unexplained(tmp_path):
    """Attribution never guesses: two in-flight orders without a venue id could own the fill."""
    from coinswarm.live.orders import owner_of
    from coinswarm.live.protocols import Fill, OrderIntent, Side

    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.migrate()
    try:
        for k in range(2):
            intent = OrderIntent(f"cs-{k}", SYMBOL, Side.BUY, 1.0, 1_000 + k, "s")
            ledger.record_new(intent, 1_000)
            ledger.transition(intent.client_order_id, OrderStatus.SENT, 1_000)
        fill = Fill("t1", "venue-77", SYMBOL, Side.BUY, 0.5, 10.0, 0.0, "USDT", 2_000)
        assert owner_of(ledger, fill, 3_000) is None
        ledger.transition("cs-1", OrderStatus.REJECTED, 3_000)
        assert owner_of(ledger, fill, 3_000) == "cs-0"
        assert ledger.order("cs-0").venue_order_id == "77"
        again = Fill("t2", "venue-77", SYMBOL, Side.BUY, 0.5, 10.0, 0.0, "USDT", 2_500)
        other = Fill("t3", "venue-78", SYMBOL, Side.SELL, 0.5, 10.0, 0.0, "USDT", 2_500)
        assert owner_of(ledger, again, 3_000) == "cs-0" and owner_of(ledger, other, 3_000) is None
    finally:
        ledger.close()


# -- wiring: sinks, /metrics, the outbox relay, stale bars --------------------------------------
class Recorder:
    """A sink that keeps what it hears."""

    def __init__(self) -> None:
        self.orders, self.fills, self.bars, self.events = [], [], [], []

    def on_order(self, order) -> None:
        self.orders.append((order.client_order_id, order.status))

    def on_fill(self, fill) -> None:
        self.fills.append(fill)

    def on_bar(self, snapshot) -> None:
        self.bars.append(snapshot)

    def on_event(self, name, fields) -> None:
        self.events.append((name, dict(fields)))

    def close(self) -> None:
        pass


def services_for(recorder: Recorder):
    from coinswarm.adapters.bus import InProcessBus
    from coinswarm.live.dbretry import DbGuard
    from coinswarm.live.metrics import PrometheusSink
    from coinswarm.live.services import Services
    from coinswarm.live.sinks import Sinks

    metrics = PrometheusSink(port=0)
    sinks = Sinks([recorder, metrics])
    metrics.watch(sinks)
    return Services(sinks, InProcessBus(), DbGuard(notify=sinks.on_event), metrics)


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (0 when absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_exchange_daemon_feeds_its_sinks_metrics_and_bus(tmp_path):
    """The exchange path wired like the paper one: the sinks hear every order move, fill and
    closed time; /metrics (served over HTTP) counts bars, latency, orders, fills, rejects by
    reason, feed reconnects; the outbox is relayed to the bus, nothing left unpublished."""
    import urllib.request


    db = f"sqlite:///{tmp_path}/live.db"
    recorder = Recorder()
    services = services_for(recorder)

    async def scenario():
        async with make_venue() as venue:
            venue.script(reject_next=1, reject_msg="Filter failure: LOT_SIZE")

            def outage(k: int) -> None:  # the kline endpoint down twice: the feed reconnects
                if k == 30:
                    venue.script(klines_down=2)

            runner = await run(venue, make_config(venue, db), 150, [], outage, services=services)
            return venue, runner

    try:
        venue, runner = asyncio.run(scenario())
        with urllib.request.urlopen(services.metrics.url, timeout=10) as reply:
            scrape = reply.read().decode()
    finally:
        services.sinks.close()
    orders, fills, rows = ledger_rows(db)
    statuses = {status for _, status in recorder.orders}
    assert {OrderStatus.NEW, OrderStatus.SENT, OrderStatus.REJECTED, OrderStatus.FILLED} <= statuses
    assert {cid for cid, _ in recorder.orders} == {o.client_order_id for o in orders}
    assert sorted(f.fill_id for f in recorder.fills) == sorted(f.fill_id for f in fills) and len(fills) >= 5
    assert len(recorder.bars) == runner.bars_processed >= 150  # a fresh ledger: warm-up steps are not bars
    last = recorder.bars[-1]
    assert last.positions.get(SYMBOL, 0.0) == pytest.approx(venue_position(venue)) and last.equity > 0
    assert not last.halted and last.latency_us > 0
    assert ("reconnect", {"component": "feed"}) in recorder.events
    assert metric(scrape, "coinswarm_live_bars_total") == len(recorder.bars)
    assert metric(scrape, "coinswarm_live_decision_latency_seconds_count") == len(recorder.bars)
    rejects = [line for line in scrape.splitlines() if line.startswith("coinswarm_live_rejects_total{")]
    assert rejects == ['coinswarm_live_rejects_total{reason="rejected filter failure lot_size submit refused "} 1.0']
    assert metric(scrape, "coinswarm_live_orders_total", status="filled") >= 5
    assert metric(scrape, "coinswarm_live_fills_total", side="buy", symbol=SYMBOL) >= 1
    assert metric(scrape, "coinswarm_live_reconnects_total", component="feed") >= 1
    assert metric(scrape, "coinswarm_live_halted") == 0.0 and "coinswarm_live_feed_lag_seconds" in scrape
    assert "coinswarm_live_pnl" in scrape and "coinswarm_live_drawdown" in scrape
    assert metric(scrape, "coinswarm_live_outbox_published_total") == len(rows)
    assert all(r.published_ms is not None for r in rows), "the relay drained the outbox"
    streams = services.bus.streams
    assert {m.msg_id for m in streams["agent.action"]} == {f"action:{o.client_order_id}" for o in orders}
    assert {m.msg_id for m in streams["agent.trade"]} == {f"trade:{f.fill_id}" for f in fills}
    assert len(streams["live.heartbeat"]) >= 1
    check_books(venue, db)


def test_a_stale_bar_on_the_exchange_path_is_a_typed_error_not_applied_and_skipped(tmp_path, monkeypatch):
    """The paper runner's rule (check_bar_order): on_bar raises a typed error naming the symbol,
    the bar's time and what is valid, changing nothing; the daemon's loop logs it, tells the
    sinks and goes on — the book equals a run without the stale bars."""
    from coinswarm.errors import DuplicateTimestampError, UnsortedTimestampError
    from coinswarm.live import feeds

    plain = CcxtFeedWith(feeds.CcxtFeed, None)
    books = {}
    for name, at in (("plain", None), ("stale", 4)):
        db = f"sqlite:///{tmp_path}/{name}.db"
        recorder = Recorder()
        monkeypatch.setattr(feeds, "CcxtFeed", CcxtFeedWith(plain.cls, at))

        async def scenario(db=db, recorder=recorder):
            async with make_venue() as venue:
                runner = await run(venue, make_config(venue, db), 12, services=services_for(recorder))
                return venue, runner

        venue, runner = asyncio.run(scenario())
        ledger = Ledger(db)
        books[name] = (sorted((o.client_order_id, o.status.value, o.qty) for o in ledger.orders()),
                       runner.bars_processed, runner.last_time)
        ledger.close()
        if at is not None:
            stale = [e for e in recorder.events if e[0] == "stale_bar"]
            assert runner.telemetry.stale_bars == 2 and len(stale) == 2
            detail = stale[0][1]["detail"]
            assert "BTC/USDT bar at 2024-03-01" in detail and "valid bars open after" in detail
    assert books["stale"] == books["plain"]
    # on_bar itself: typed, nothing applied (a bar at and one before the last processed time)
    from coinswarm.live.protocols import ClosedBar

    class Probe:
        symbols, index, last_time, _group_time, _group = [SYMBOL], {SYMBOL: 0}, books["plain"][2], None, {}

    from coinswarm.live.venue import VenueRunner

    for t, error in ((Probe.last_time, DuplicateTimestampError), (Probe.last_time - HOUR, UnsortedTimestampError)):
        with pytest.raises(error, match="BTC/USDT bar at"):
            asyncio.run(VenueRunner.on_bar(Probe(), ClosedBar(SYMBOL, t, 1.0, 1.0, 1.0, 1.0, 1.0)))


def CcxtFeedWith(cls, at):
    """A CcxtFeed factory whose feeds replay stale bars after their ``at``-th bar (None: plain)."""
    def make(*args, **kwargs):
        feed = cls(*args, **kwargs)
        return feed if at is None else Replaying(feed, at)

    make.cls = cls
    return make


def closed_trips(fills) -> list[tuple[str, str, str]]:
    """(symbol, entry fill, exit fill) of each round trip of the ledger's fills (spot: long only)."""
    trips, position, entry = [], {}, {}
    for fill in fills:
        held = position.get(fill.symbol, 0.0)
        if held <= 1e-12 and fill.side.value == "buy":
            entry[fill.symbol] = fill.fill_id
        held += fill.qty if fill.side.value == "buy" else -fill.qty
        if held <= 1e-9 * fill.qty and fill.side.value == "sell" and fill.symbol in entry:
            trips.append((fill.symbol, entry.pop(fill.symbol), fill.fill_id))
            held = 0.0
        position[fill.symbol] = held
    return trips


class Crash(Exception):
    """Stands for a SIGKILL before a checkpoint's commit (nothing of it written)."""


@pytest.mark.parametrize("crash", [False, True], ids=["restarts", "crash-before-checkpoint"])
def test_memory_proposals_on_the_exchange_path_one_per_round_trip_across_restarts(tmp_path, monkeypatch, crash):
    """[memory] on: every round trip closed at the venue is one ``mem.propose`` outbox message
    whose id is the deterministic episode id of its entry and exit fills; three restarts
    (start-up is recovery) neither lose nor repeat one; the relay publishes them. With a crash
    after the mass status booked a trip's closing fill but before the checkpoint holding its
    proposal, the restarted daemon proposes it (the fills since the stored checkpoint), once."""
    import dataclasses

    from sqlalchemy import select

    from coinswarm.live import ledger_bulk
    from coinswarm.live.config import MemoryConfig
    from coinswarm.live.ledger import OutboxRow
    from coinswarm.live.outbox import PROPOSAL_SUBJECT
    from coinswarm.live.proposals import episode_id, run_key
    from coinswarm.live.venue import RUN_KEY

    db = f"sqlite:///{tmp_path}/live.db"
    services = services_for(Recorder())
    real, crashed = ledger_bulk.commit_bars, []

    def commit_bars(*args, **kwargs):
        if crash and not crashed and any(m.subject == PROPOSAL_SUBJECT for m in kwargs["events"]):
            crashed.append(kwargs["now_ms"])
            raise Crash("killed before the checkpoint")
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger_bulk, "commit_bars", commit_bars)

    async def scenario():
        async with make_venue("2024-04-10T00:30", "2024-03-01", "2024-05-10") as venue:  # BTC falls: trend goes flat
            config = dataclasses.replace(make_config(venue, db), memory=MemoryConfig(enabled=True))
            for _ in range(4):
                try:
                    runner = await run(venue, config, 45, services=services)
                except Crash:
                    runner = await run(venue, config, 45, services=services)
            assert runner.memory is not None and runner.memory.failures == 0 and runner.memory.skipped == 0
            return venue

    try:
        venue = asyncio.run(scenario())
    finally:
        services.sinks.close()
    check_books(venue, db)
    ledger = Ledger(db)
    try:
        with ledger.sessions() as s:
            ids = list(s.scalars(select(OutboxRow.msg_id).where(OutboxRow.subject == PROPOSAL_SUBJECT)))
        run_id = run_key(ledger.get_meta(RUN_KEY))
        trips = closed_trips(ledger.fills())
    finally:
        ledger.close()
    assert len(trips) >= 2, trips
    assert sorted(ids) == sorted(episode_id(run_id, *trip) for trip in trips)
    assert len(set(ids)) == len(ids)
    published = [m.msg_id for m in services.bus.streams.get(PROPOSAL_SUBJECT, [])]
    assert sorted(set(published)) == sorted(ids)
    assert len(crashed) == int(crash)


def test_the_exchange_daemon_pauses_while_the_ledger_is_down_and_loses_nothing(tmp_path):
    """The ledger's database fails every statement for a while (disk I/O errors): the exchange
    daemon waits in its guard — no order reaches the venue meanwhile — then resumes; every
    venue fill is booked once, the position equals the venue's."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from coinswarm.live.dbretry import DbGuard

    db = f"sqlite:///{tmp_path}/live.db"
    state = {"down": False, "waits": 0, "outages": 0}
    seen: dict[str, int] = {}

    def fail(conn, cursor, statement, parameters, context, executemany):
        if state["down"]:
            raise sqlite3.OperationalError("disk I/O error")

    async def guard_sleep(seconds: float) -> None:
        state["waits"] += 1
        if state["waits"] == 12:  # the database is back
            seen["posts_back"] = state["venue"].count("POST", "/api/v3/order")
            state["down"] = False
        await asyncio.sleep(0.001)

    def outage(k: int) -> None:  # feed sleeps; from the 40th, the database goes away (once)
        if k == 40 and not state["outages"]:
            state["outages"], state["down"] = 1, True
            seen["posts_down"] = state["venue"].count("POST", "/api/v3/order")

    services = services_for(Recorder())
    services.guard = DbGuard(backoff_s=0.001, max_wait_s=60.0, sleep=guard_sleep, notify=services.sinks.on_event)
    event.listen(Engine, "before_cursor_execute", fail)
    try:
        async def scenario():
            async with make_venue() as venue:
                state["venue"] = venue
                return venue, await run(venue, make_config(venue, db), 150, [], outage, services=services)

        venue, runner = asyncio.run(scenario())
    finally:
        event.remove(Engine, "before_cursor_execute", fail)
        services.sinks.close()
    assert services.guard.pauses >= 1 and state["waits"] >= 12 and not state["down"]
    assert seen["posts_back"] == seen["posts_down"], "an order was sent while the ledger was down"
    assert runner.bars_processed >= 150
    books = check_books(venue, db)
    assert venue.count("POST", "/api/v3/order") > seen["posts_back"], "trading resumed"
    assert len(books["sent"]) >= 5


def test_the_exchange_daemon_does_not_import_the_paper_broker():
    """``coinswarm live run`` on an exchange loads neither the paper runner's broker nor Alembic
    at import; ``signal_stop`` keeps its old import path."""
    import subprocess
    import sys

    code = ("import sys; import coinswarm.live.daemon, coinswarm.live.venue; "
            "from coinswarm.live.runner import signal_stop; from coinswarm.live.signals import signal_stop as s; "
            "assert signal_stop is s; "
            "print(sorted(m for m in ('coinswarm.live.paper', 'alembic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stderr
