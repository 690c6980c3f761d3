"""Memory proposals from the daemons, delivered and measured: the outbox relay stamps a proposal
when it publishes it (one that waited through a long bus outage is not refused as stale, and is
counted and logged as delayed), Prometheus counts the proposals of both daemons, and a trip opened
right after a cold start's warm-up has its return and volatility features measured."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.adapters.bus import InProcessBus
from coinswarm.live.config import MemoryConfig, load_config
from coinswarm.live.ledger import Ledger
from coinswarm.live.metrics import PrometheusSink
from coinswarm.live.outbox import PROPOSAL_MAX_AGE_MS, PROPOSAL_SUBJECT, OutboxMessage, Relay
from coinswarm.live.proposals import HISTORY, MemoryProposer, decision_features
from coinswarm.live.protocols import Fill, Side
from coinswarm.live.replay import ReplaySpec, build, feed_for
from coinswarm.memory.episodic import FEATURES
from coinswarm.quorum import Manager
from coinswarm.quorum.manager import Context, Policy
from coinswarm.quorum.proposals import Proposal
from tests.helpers.live import proposals_in

sys.path.insert(0, str(Path(__file__).parent))
from test_daemon import HOUR, Venue  # noqa: E402
from test_metrics import scrape  # noqa: E402
from test_outbox import FlakyBus  # noqa: E402

T0 = 1_672_531_200_000  # 2023-01-01
H = 3_600_000
MEASURED = FEATURES[:8]  # r1 … r168, vol24, vol168, trend_t: what the closes give


@pytest.fixture
def relay_log():
    """The relay logger's messages (a handler on it: an earlier test may have stopped propagation)."""
    seen: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: seen.append(f"{record.levelname} {record.getMessage()}")
    logger = logging.getLogger("coinswarm.live.outbox")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)




def written(ledger: Ledger, now_ms: int) -> Proposal:
    """One closed round trip's proposal, written to the outbox at ``now_ms``; returns it as written."""
    p = MemoryProposer(["BTC/USDT"], "trend", "run1")
    for k, fills in enumerate(([], [Fill("f1", "c1", "BTC/USDT", Side.BUY, 1.0, 100.0, 0.1, "USDT", T0 + H)],
                               [Fill("f2", "c2", "BTC/USDT", Side.SELL, 1.0, 110.0, 0.1, "USDT", T0 + 2 * H)])):
        p.on_bar(T0 + k * H, np.array([100.0 + k]), fills, type("Flat", (), {"joint": False})())
    [message] = p.outbox(now_ms)
    ledger.enqueue([message], now_ms)
    p.flushed()
    return Proposal.decode(message.payload)


def test_the_relay_age_limit_is_the_managers():
    assert PROPOSAL_MAX_AGE_MS == Policy().max_age_ms


def test_a_proposal_written_hours_before_the_bus_comes_back_is_published_fresh_and_approved(ledger, relay_log):
    wrote = T0 + 3 * H
    proposal = written(ledger, wrote)
    now = [wrote]
    bus = FlakyBus()
    relay = Relay(ledger, bus, lambda: now[0])
    bus.down = True
    assert asyncio.run(relay.drain()) == 0 and relay.failures == 1  # NATS away: it waits in the outbox
    now[0] = wrote + 3 * H  # back three hours later
    bus.down = False
    assert asyncio.run(relay.drain()) == 1
    [msg] = bus.inner.streams[PROPOSAL_SUBJECT]
    sent = Proposal.decode(msg.data)
    assert msg.msg_id == sent.id == proposal.id
    assert sent.timestamp == wrote + 3 * H and dataclasses.replace(sent, timestamp=wrote) == proposal
    manager = Manager("m1", b"key")
    judged = Context(now=wrote + 3 * H + 2_000)  # the managers read it two seconds later
    assert manager.reasons(sent, judged) == ()
    assert any(r.startswith("stale") for r in manager.reasons(proposal, judged))  # as written: refused
    assert relay.delayed == 1 and relay.unreadable == 0
    [line] = relay_log
    assert line.startswith("WARNING") and proposal.id in line and "3.0 h" in line


def test_a_republish_after_a_lost_ack_is_stamped_again_and_dropped_by_its_id(ledger):
    proposal = written(ledger, T0 + 3 * H)
    now = [T0 + 3 * H + 600_000]
    bus = FlakyBus()
    bus.lose_acks = 1  # published, but the relay never heard: the row stays pending
    relay = Relay(ledger, bus, lambda: now[0])
    assert asyncio.run(relay.drain()) == 0
    now[0] += 60_000
    assert asyncio.run(relay.drain()) == 1
    [msg] = bus.inner.streams[PROPOSAL_SUBJECT]  # the id de-duplicates: one message, the first stamp
    assert msg.msg_id == proposal.id and Proposal.decode(msg.data).timestamp == T0 + 3 * H + 600_000
    assert relay.duplicates == 1 and relay.delayed == 0 and ledger.pending_outbox(10) == []


def test_a_relay_clock_behind_the_written_stamp_keeps_it(ledger):
    proposal = written(ledger, T0 + 3 * H)
    bus = InProcessBus()
    asyncio.run(Relay(ledger, bus, lambda: T0 + 3 * H - 5_000).drain())
    assert bus.streams[PROPOSAL_SUBJECT][0].data == proposal.encode()


def test_an_unreadable_proposal_row_is_published_unchanged_counted_and_logged(ledger, relay_log):
    ledger.enqueue([OutboxMessage(PROPOSAL_SUBJECT, "live-bad", b'{"id": "live-bad"}')], T0)
    bus = InProcessBus()
    relay = Relay(ledger, bus, lambda: T0 + H)
    assert asyncio.run(relay.drain()) == 1
    assert bus.streams[PROPOSAL_SUBJECT][0].data == b'{"id": "live-bad"}'
    [line] = relay_log
    assert relay.unreadable == 1 and line.startswith("ERROR") and "live-bad" in line
    assert "not a readable proposal" in line




@pytest.mark.timeout(300)
def test_metrics_count_the_paper_daemons_memory_proposals_after_a_replay(tmp_path):
    spec = ReplaySpec(["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"], "committee", f"sqlite:///{tmp_path / 'm.db'}",
                      start="2023-01-01", end="2023-03-01", memory=True)
    sink = PrometheusSink(port=0)
    try:
        runner, _ = build(spec, metrics=sink)
        try:
            asyncio.run(runner.run(feed_for(spec, runner)))
        finally:
            runner.ledger.close()
        m = scrape(sink.url)
    finally:
        sink.close()
    proposals = proposals_in(spec.db)
    assert len(proposals) > 5
    assert m[("coinswarm_live_memory_proposals_total", ())] == len(proposals) == runner.memory.proposed
    assert m[("coinswarm_live_memory_proposals_skipped_total", ())] == 0
    assert m[("coinswarm_live_memory_proposal_failures_total", ())] == 0
    assert m[("coinswarm_live_outbox_proposals_delayed_total", ())] == 0
    assert m[("coinswarm_live_outbox_published_total", ())] >= len(proposals)


def test_metrics_show_zero_proposals_without_a_proposer():
    sink = PrometheusSink()
    text = sink.render()
    assert "coinswarm_live_memory_proposals_total 0.0" in text
    assert "coinswarm_live_memory_proposals_skipped_total 0.0" in text


def measured(symbol: str, decided_ms: int) -> np.ndarray:
    """The closes-only features of ``symbol`` at ``decided_ms`` from the catalog (the truth)."""
    frame = cs.load_ohlcv(f"binance:{symbol}:1h", start="2020-11-01", end="2021-03-31")
    ts = frame.index.as_unit("ms").asi8
    closes = frame["close"].to_numpy()[:int(np.searchsorted(ts, decided_ms, "right"))][-HISTORY:]
    return decision_features(closes, -1, float("nan"), float("nan"), decided_ms)[:len(MEASURED)]


@pytest.mark.timeout(300)
def test_a_trip_opened_right_after_the_paper_daemons_warm_up_has_its_features_measured(tmp_path):
    from coinswarm.live.daemon import run_paper

    db = f"sqlite:///{tmp_path / 'p.db'}"
    config = load_config(None, env={"COINSWARM_DB_URL": db, "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT",
                                    "COINSWARM_STRATEGY": "trend", "COINSWARM_MAX_DRAWDOWN": "0.9",
                                    "COINSWARM_DAILY_LOSS": "0.9", "COINSWARM_MEMORY": "on"})
    start = int(cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-10", end="2021-01-10").index[0].value
                // 1_000_000)
    venue = Venue(start + HOUR // 2)
    asyncio.run(run_paper(config, venue, max_bars=400, sleep=venue.sleep))
    proposals = proposals_in(db)
    first = min(p.data["decided_ms"] for p in proposals)
    assert first - start < 24 * HOUR  # decided within the first day of trading: before, r24 … vol168 were 0
    for p in proposals:
        if p.data["decided_ms"] == first:
            got = np.array([p.justification["features"][f] for f in MEASURED])
            assert np.all(got != 0), dict(zip(MEASURED, got, strict=True))
            np.testing.assert_allclose(got, measured(p.data["symbol"], first), rtol=1e-12, atol=1e-15)


@pytest.mark.timeout(300)
def test_the_exchange_daemon_warms_its_proposer_up_and_counts_its_proposals(tmp_path):
    from test_venue import Recorder, make_config, make_venue, run, services_for

    db = f"sqlite:///{tmp_path / 'live.db'}"
    services = services_for(Recorder())

    async def scenario():
        async with make_venue("2024-04-10T00:30", "2024-03-01", "2024-05-10") as venue:
            config = dataclasses.replace(make_config(venue, db), memory=MemoryConfig(enabled=True))
            return await run(venue, config, 180, services=services)

    try:
        runner = asyncio.run(scenario())
        m = scrape(services.metrics.url)
    finally:
        services.sinks.close()
        services.metrics.close()
    proposals = proposals_in(db)
    assert proposals and m[("coinswarm_live_memory_proposals_total", ())] == len(proposals) == runner.memory.proposed
    assert m[("coinswarm_live_memory_proposals_skipped_total", ())] == 0
    frame = cs.load_ohlcv("binance:BTC/USDT:1h", start="2024-03-01", end="2024-05-10")
    ts, closes = frame.index.as_unit("ms").asi8, frame["close"].to_numpy()
    opened = pd.Timestamp("2024-04-10T00:00", tz="UTC").value // 1_000_000  # the first traded bar
    assert min(p.data["decided_ms"] for p in proposals) - opened < 168 * HOUR  # before: r168 and vol168 were 0
    for p in proposals:
        decided = p.data["decided_ms"]
        got = np.array([p.justification["features"][f] for f in MEASURED])
        want = decision_features(closes[:int(np.searchsorted(ts, decided, "right"))][-HISTORY:], -1, float("nan"),
                                 float("nan"), decided)[:len(MEASURED)]
        assert np.all(got != 0)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
