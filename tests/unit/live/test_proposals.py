"""The daemon's memory proposals (:mod:`coinswarm.live.proposals`): one ``add_episode`` per closed
round trip, written to the outbox with the checkpoint, with deterministic ids — the same
proposals, once each, whether a replay runs whole, is stopped and resumed, or crashes; none
unless enabled; a proposal that cannot be built never stops trading."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinswarm.adapters.bus import InProcessBus
from coinswarm.live import faults
from coinswarm.live.config import load_config
from coinswarm.live.ledger import Ledger
from coinswarm.live.outbox import PROPOSAL_SUBJECT
from coinswarm.live.proposals import HISTORY, MemoryProposer, attach, decision_features, episode_id, run_key
from coinswarm.live.protocols import Fill, Side
from coinswarm.live.replay import ReplaySpec, build, feed_for, replay, replay_served
from coinswarm.memory.episodic import FEATURES
from coinswarm.memory.nodes import submit
from coinswarm.quorum import Manager
from coinswarm.quorum.manager import Context
from coinswarm.quorum.proposals import Proposal
from tests.helpers.live import Crash, crash_at, proposals_in, run_until

BTC, ETH = "binance:BTC/USDT:1h", "binance:ETH/USDT:1h"
START, END = "2023-01-01", "2023-03-01"
T0 = 1_672_531_200_000  # 2023-01-01
H = 3_600_000




def content(proposals: list[Proposal]) -> dict[str, tuple]:
    """Id → everything but the wall-clock timestamp."""
    return {p.id: (p.kind, p.submitter, p.data_time, p.data, p.justification) for p in proposals}


def book(db: str) -> tuple[list, list]:
    ledger = Ledger(db)
    try:
        return (sorted((f.fill_id, f.qty, f.price, f.fee) for f in ledger.fills()),
                sorted((o.client_order_id, o.status.value) for o in ledger.orders()))
    finally:
        ledger.close()


def fill(k: int, side: Side, qty: float, price: float, fee: float = 1.0, symbol: str = "BTC/USDT") -> Fill:
    return Fill(f"f{k}", f"c{k}", symbol, side, qty, price, fee, "USDT", T0 + k * H)


class Flat:
    """A stepper stand-in without a committee (only ``joint`` is read)."""

    joint = False


def tracker() -> MemoryProposer:
    return MemoryProposer(["BTC/USDT"], "trend", "run1")


def push(p: MemoryProposer, k: int, fills=(), close: float = 100.0) -> None:
    p.on_bar(T0 + k * H, np.array([close]), list(fills), Flat())


# -- round trips ------------------------------------------------------------------------
def test_a_long_round_trip_with_an_add_and_a_partial_exit_is_one_episode_after_fees():
    p = tracker()
    push(p, 0)
    push(p, 1, [fill(1, Side.BUY, 1.0, 100.0, fee=0.1)])
    push(p, 2, [fill(2, Side.BUY, 1.0, 110.0, fee=0.11)])
    push(p, 3, [fill(3, Side.SELL, 0.5, 120.0, fee=0.06)])
    assert not p.closed and p.trips["BTC/USDT"].qty == pytest.approx(1.5)
    push(p, 4, [fill(4, Side.SELL, 1.5, 90.0, fee=0.135)])
    [(trip, symbol, last)] = p.closed
    proposal = p.proposal(trip, symbol, last, T0 + 10 * H)
    gross = 0.5 * (120 - 105) + 1.5 * (90 - 105)
    fees = 0.1 + 0.11 + 0.06 + 0.135
    d = proposal.data
    assert d["action"] == "buy" and d["pnl"] == pytest.approx(gross - fees)
    assert d["outcome"] == pytest.approx((gross - fees) / 210.0) and d["fees"] == pytest.approx(fees)
    assert d["entry_price"] == pytest.approx(105.0) and d["exit_price"] == pytest.approx((60 + 135) / 2.0)
    assert d["decided_ms"] == T0 and d["entry_ms"] == T0 + H and d["exit_ms"] == T0 + 4 * H
    assert proposal.data_time == T0 + 4 * H and proposal.kind == "add_episode"
    assert proposal.id == episode_id("run1", "BTC/USDT", "f1", "f4")
    assert len(d["embedding"]) == 384 and abs(np.linalg.norm(d["embedding"]) - 1) < 1e-5
    assert p.positions[0] == 0.0 and not p.trips


def test_a_reversal_closes_the_long_and_opens_a_short_with_its_share_of_the_fee():
    p = tracker()
    push(p, 0, [fill(0, Side.BUY, 2.0, 100.0, fee=0.2)])
    push(p, 1, [fill(1, Side.SELL, 3.0, 110.0, fee=0.3)])
    [(trip, _, _)] = p.closed
    assert trip.gross == pytest.approx(20.0) and trip.fees == pytest.approx(0.2 + 0.2)
    short = p.trips["BTC/USDT"]
    assert short.side == -1 and short.qty == pytest.approx(1.0) and short.fees == pytest.approx(0.1)
    push(p, 2, [fill(2, Side.BUY, 1.0, 100.0, fee=0.1)])
    proposal = p.proposal(*p.closed[1], T0 + 9 * H)
    assert proposal.data["action"] == "sell" and proposal.data["pnl"] == pytest.approx(10.0 - 0.2)


def test_a_position_open_before_tracking_began_closes_without_an_episode():
    p = tracker()
    p.load(None, [0.5])
    push(p, 0, [fill(0, Side.SELL, 0.5, 100.0)])
    assert not p.closed and p.positions[0] == 0.0
    push(p, 1, [fill(1, Side.BUY, 0.1, 100.0)])
    assert p.trips["BTC/USDT"].entry_fill == "f1"


class Broken:
    joint = True

    @property
    def states(self):
        raise RuntimeError("a bug in the view")

    _weights = np.zeros((1, 2))


def test_a_failure_inside_the_tracker_is_counted_never_raised():
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("coinswarm.live.proposals")
    logger.addHandler(handler)  # whatever an earlier test did to the logging configuration
    try:
        p = tracker()
        p.on_bar(T0, np.array([100.0]), [], Broken())
        p.on_bar(T0 + H, np.array([100.0]), [], Broken())
    finally:
        logger.removeHandler(handler)
    assert p.failures == 2 and len(seen) == 1 and "not tracked" in seen[0]


def test_features_are_causal_and_what_is_unknown_is_zero():
    closes = np.exp(np.linspace(0, 1, HISTORY))
    f = decision_features(closes, cell=4, trend_vc=-0.5, mr_vc=float("nan"), decided_ms=T0 + 8 * H)
    named = dict(zip(FEATURES, f, strict=True))
    assert named["r1"] == pytest.approx(1 / (HISTORY - 1)) and named["r168"] == pytest.approx(168 / (HISTORY - 1))
    assert named["cell4"] == 1.0 and named["europe"] == 1.0 and named["spread"] == 0.0
    assert named["trend_vote"] == -1.0 and named["trend_conf"] == 0.5 and named["mr_vote"] == named["mr_conf"] == 0
    short = decision_features(closes[:3], cell=-1, trend_vc=0.0, mr_vc=0.0, decided_ms=T0)
    assert np.isfinite(short).all() and short[2:18].sum() == 0.0  # no r24.., no vol, no trend t, no cell


def test_the_record_round_trips_exactly():
    p = tracker()
    for k in range(HISTORY + 5):
        push(p, k, [fill(k, Side.BUY, 0.1, 100.0 + k)] if k == HISTORY else [], close=100.0 + k)
    q = tracker()
    q.load(p.record(), [0.0])
    assert q.record() == p.record() and q.trips == p.trips
    assert np.array_equal(q._history(0), p._history(0))


# -- the daemon -------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_a_replay_proposes_valid_episodes_that_the_managers_approve(tmp_path):
    spec = ReplaySpec([BTC, ETH], "committee", f"sqlite:///{tmp_path / 'm.db'}", start=START, end=END, memory=True)
    bus = InProcessBus()
    asyncio.run(replay(spec, bus=bus))
    proposals = proposals_in(spec.db)
    assert len(proposals) > 5 and len({p.id for p in proposals}) == len(proposals)
    manager = Manager("m1", b"key")
    assert all(manager.reasons(p, Context(now=p.timestamp)) == () for p in proposals)
    assert {p.data["symbol"] for p in proposals} == {"BTC/USDT", "ETH/USDT"}
    assert all(p.data["regime"] and set(p.data["weights"]) == {"trend", "mean_reversion"} for p in proposals)
    ledger = Ledger(spec.db)
    run = run_key(ledger.get_meta("run"))
    ledger.close()
    assert all(p.id == episode_id(run, p.data["symbol"], p.justification["entry_fill"], p.justification["exit_fill"])
               for p in proposals)
    published = bus.streams[PROPOSAL_SUBJECT]  # the relay delivered them, as the quorum's submit does,
    sent = [Proposal.decode(m.data) for m in published]  # stamped when published
    assert [m.msg_id for m in published] == [p.id for p in proposals] == [q.id for q in sent]
    assert content(sent) == content(proposals)
    assert all(q.timestamp >= p.timestamp for p, q in zip(proposals, sent, strict=True))
    other = InProcessBus()
    asyncio.run(submit(other, sent[0]))
    assert other.streams[PROPOSAL_SUBJECT][0].data == published[0].data


@pytest.mark.timeout(300)
def test_stops_and_crashes_resume_to_the_same_proposals_once_each(tmp_path, monkeypatch):
    whole = ReplaySpec([BTC, ETH], "committee", f"sqlite:///{tmp_path / 'w.db'}", start=START, end=END, memory=True)
    asyncio.run(replay(whole))
    pieces = ReplaySpec([BTC, ETH], "committee", f"sqlite:///{tmp_path / 'p.db'}", start=START, end=END, memory=True)
    for n in (5, 701, 333):
        asyncio.run(run_until(pieces, n))
    monkeypatch.setattr(faults, "point", crash_at("after_sent", 9))
    with pytest.raises(Crash):
        asyncio.run(replay(pieces))
    monkeypatch.undo()
    assert asyncio.run(replay(pieces))["resumed"]
    a, b = proposals_in(whole.db), proposals_in(pieces.db)
    assert len(b) == len({p.id for p in b}) == len(a) > 5
    assert content(a) == content(b)
    assert book(whole.db) == book(pieces.db)


@pytest.mark.timeout(300)
def test_nothing_is_proposed_unless_enabled(tmp_path):
    off = ReplaySpec([BTC], "committee", f"sqlite:///{tmp_path / 'off.db'}", start=START, end=END)
    asyncio.run(replay(off))
    assert proposals_in(off.db) == [] and book(off.db)[0]
    embedded = ReplaySpec([BTC], "committee", f"sqlite:///{tmp_path / 'e.db'}", start=START, end=END)
    asyncio.run(replay_served(embedded))  # no NATS URL: memory stays off
    assert proposals_in(embedded.db) == []
    assert not load_config(env={}).memory.enabled
    assert load_config(env={"COINSWARM_NATS_URL": "nats://127.0.0.1:4222"}).memory.enabled
    assert not load_config(env={"COINSWARM_NATS_URL": "nats://127.0.0.1:4222", "COINSWARM_MEMORY": "no"}).memory.enabled
    assert load_config(env={"COINSWARM_MEMORY": "1"}).memory.enabled


@pytest.mark.timeout(300)
def test_memory_enabled_on_a_resumed_run_proposes_only_trips_it_saw_open(tmp_path):
    spec = ReplaySpec([BTC, ETH], "committee", f"sqlite:///{tmp_path / 'a.db'}", start=START, end=END, memory=True)
    asyncio.run(replay(spec))
    later = ReplaySpec([BTC, ETH], "committee", f"sqlite:///{tmp_path / 'b.db'}", start=START, end=END)
    asyncio.run(run_until(later, 1500))
    later.memory = True
    asyncio.run(replay(later))
    a, b = content(proposals_in(spec.db)), content(proposals_in(later.db))
    assert b and set(b) < set(a)  # the trips closed before, or open when memory began, are not proposed
    trade = ("action", "outcome", "pnl", "entry_ms", "exit_ms", "symbol")  # the features saw a shorter history
    assert all([b[k][3][f] for f in trade] == [a[k][3][f] for f in trade] for k in b)


@pytest.mark.timeout(300)
def test_a_proposal_that_cannot_be_built_is_skipped_and_trading_goes_on(tmp_path):
    plain = ReplaySpec([BTC], "committee", f"sqlite:///{tmp_path / 'plain.db'}", start=START, end=END)
    asyncio.run(replay(plain))
    spec = ReplaySpec([BTC], "committee", f"sqlite:///{tmp_path / 'm.db'}", start=START, end=END, memory=True)
    runner, _ = build(spec)
    try:
        runner.clock = lambda: 0  # before every exit bar: no valid proposal
        asyncio.run(runner.run(feed_for(spec, runner)))
        assert runner.memory.skipped > 0 and runner.memory.closed == []
    finally:
        runner.ledger.close()
    assert proposals_in(spec.db) == [] and book(spec.db)[0] == book(plain.db)[0]


def test_attach_reads_the_stored_state(tmp_path):
    spec = ReplaySpec([BTC], "committee", f"sqlite:///{tmp_path / 'x.db'}", start=START, end="2023-01-20",
                      memory=True)
    asyncio.run(replay(spec))
    runner, _ = build(spec)
    try:
        stored = runner.ledger.get_meta("memory")
        assert stored["count"] > HISTORY and len(stored["closes"]) == HISTORY
        assert attach(runner).record() == stored
    finally:
        runner.ledger.close()


@pytest.mark.timeout(300)
def test_the_cli_replay_takes_memory_on_and_off(tmp_path, capsys, monkeypatch):
    from coinswarm.cli.main import main

    monkeypatch.delenv("COINSWARM_NATS_URL", raising=False)
    on, off = f"sqlite:///{tmp_path / 'on.db'}", f"sqlite:///{tmp_path / 'off.db'}"
    args = ["live", "replay", "--data", BTC, "--strategy", "committee", "--start", START, "--end", END]
    assert main([*args, "--db", on, "--memory"]) == 0
    assert main([*args, "--db", off]) == 0  # no NATS: off by default
    assert proposals_in(on) and proposals_in(off) == []

_STEPS = st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 40), st.integers(50, 150)),
                  min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(_STEPS)
def test_round_trips_account_for_every_fill_and_fee(steps):
    """Whatever the fills (adds, partial exits, reversals), once flat again the closed trips'
    gross PnL is the fills' cash flow and their fees are the fills' fees; trips alternate flat."""
    p = tracker()
    pos, k = 0, 0
    fills = []
    for side, units, price in steps:
        fills.append(fill(k, side, units / 8, float(price), fee=units / 800))
        pos += units if side is Side.BUY else -units
        k += 1
    if pos:  # flatten at the end
        fills.append(fill(k, Side.SELL if pos > 0 else Side.BUY, abs(pos) / 8, 100.0, fee=abs(pos) / 800))
    for i, f in enumerate(fills):
        push(p, i, [f])
    assert not p.trips and p.positions[0] == 0.0
    cash = sum((f.qty if f.side is Side.SELL else -f.qty) * f.price for f in fills)
    assert sum(t.gross for t, _, _ in p.closed) == pytest.approx(cash, abs=1e-6)
    assert sum(t.fees for t, _, _ in p.closed) == pytest.approx(sum(f.fee for f in fills), abs=1e-9)
    ids = [p.proposal(t, s, f, T0 + 10_000 * H).id for t, s, f in p.closed]
    assert len(set(ids)) == len(ids)


@pytest.mark.timeout(300)
def test_the_paper_daemon_proposes_when_its_config_says_so(tmp_path):
    from test_daemon import HOUR, Venue

    import coinswarm as cs
    from coinswarm.live.daemon import run_paper

    def run(db: str, memory: str) -> None:
        config = load_config(None, env={"COINSWARM_DB_URL": db, "COINSWARM_SYMBOLS": "BTC/USDT,ETH/USDT",
                                        "COINSWARM_STRATEGY": "trend", "COINSWARM_MAX_DRAWDOWN": "0.9",
                                        "COINSWARM_DAILY_LOSS": "0.9", "COINSWARM_MEMORY": memory})
        start = cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-10", end="2021-01-10").index[0].value
        venue = Venue(int(start // 1_000_000) + HOUR // 2)
        runner = asyncio.run(run_paper(config, venue, max_bars=600, sleep=venue.sleep))
        assert (runner.memory is not None) == (memory == "on")

    on, off = f"sqlite:///{tmp_path / 'on.db'}", f"sqlite:///{tmp_path / 'off.db'}"
    run(on, "on")
    run(off, "off")
    proposals = proposals_in(on)
    assert proposals and proposals_in(off) == [] and book(on)[0] == book(off)[0]
    assert all(p.data["strategy"] == "trend" and p.data["regime"] == "" for p in proposals)
