"""The live runner daemon on real hourly candles: replay equals the backtest order for order
and fill for fill, a stopped replay resumes exactly, the kill switch is persisted and obeyed,
the report has its keys, and bad input gets typed errors that change nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from coinswarm.cli.main import main
from coinswarm.errors import CoinswarmError, ConfigError, DataError, DuplicateTimestampError, StateError
from coinswarm.live import faults
from coinswarm.live.faults import POINTS
from coinswarm.live.ledger import Ledger
from coinswarm.live.paper import PaperBroker
from coinswarm.live.parity import compare
from coinswarm.live.protocols import ClosedBar
from coinswarm.live.replay import ReplaySpec, build, feed_for, replay
from coinswarm.live.stepper import STEP_STRATEGIES, Stepper
from tests.helpers.live import Crash, Replaying, book, crash_at, ledger_rows, run_until

BTC, ETH = "binance:BTC/USDT:1h", "binance:ETH/USDT:1h"
START, END = "2021-01-01", "2021-03-31"


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'paper.db'}"


@pytest.mark.timeout(300)
def test_replay_equals_the_backtest_on_one_quarter_of_two_symbols():
    report = compare([BTC, ETH], "committee", START, END)
    assert report.identical, report.first
    assert report.orders == report.fills == report.backtest_fills > 10


@pytest.mark.timeout(300)
def test_a_single_agent_replays_at_parity():
    report = compare([BTC], "trend", START, "2021-01-31")
    assert report.identical, report.first
    assert report.fills > 10


@pytest.mark.timeout(300)
def test_a_stopped_replay_resumes_to_exactly_the_uninterrupted_book(tmp_path):
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    asyncio.run(replay(ReplaySpec([BTC, ETH], "committee", whole, start=START, end=END)))
    pieces = f"sqlite:///{tmp_path / 'pieces.db'}"
    spec = ReplaySpec([BTC, ETH], "committee", pieces, start=START, end=END)
    for n in (7, 333, 1201, 50):
        asyncio.run(run_until(spec, n))
    summary = asyncio.run(replay(spec))
    assert summary["resumed"]
    a, b = book(whole), book(pieces)
    assert a[0] == b[0] and a[1] == b[1] and len(a[1]) > 10
    assert a[2]["bars_processed"] == b[2]["bars_processed"]
    assert a[2]["positions"] == b[2]["positions"] and a[2]["cash"] == b[2]["cash"]


def test_report_json_has_the_issue_keys(db, capsys):
    asyncio.run(replay(ReplaySpec([BTC], "committee", db, start=START, end="2021-02-15")))
    assert main(["live", "report", "--db", db, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("orders", "fills", "positions", "cash", "equity", "bars_processed", "decision_latency_us", "halted"):
        assert key in report
    assert set(report["decision_latency_us"]) == {"p50", "p99"} and report["decision_latency_us"]["p50"] > 0
    assert report["orders"], "the committee traded in six weeks of 2021"
    for order in report["orders"]:
        assert {"client_order_id", "symbol", "side", "qty", "price", "status", "bar_time"} <= set(order)
        assert order["status"] == "filled"
    import coinswarm as cs

    assert report["bars_processed"] == len(cs.load_ohlcv(BTC, start=START, end="2021-02-15"))
    assert report["equity"] > 0 and report["halted"] is False


def test_halt_and_resume_are_persisted_and_obeyed(db, capsys):
    spec = ReplaySpec([BTC], "trend", db, start=START, end="2021-01-10")
    asyncio.run(replay(spec))
    assert main(["live", "halt", "--db", db, "--reason", "test"]) == 0
    assert main(["live", "status", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["halted"] is True
    before = book(db)[2]
    held = {s: p["qty"] for s, p in before["positions"].items()}
    asyncio.run(replay(ReplaySpec([BTC], "trend", db, start=START, end="2021-01-31")))
    after = book(db)
    assert after[2]["halted"] is True
    new = [o for o in after[2]["orders"] if o["client_order_id"] not in {x["client_order_id"]
                                                                        for x in before["orders"]}]
    assert all(o["side"] == "sell" for o in new), "while halted only reductions pass"
    assert all(p["qty"] <= held.get(s, 0.0) + 1e-12 for s, p in after[2]["positions"].items())
    assert main(["live", "resume", "--db", db]) == 0
    assert main(["live", "status", "--db", db]) == 0
    assert "trading: running" in capsys.readouterr().out


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid strategies for the live runner: committee"):
        Stepper("sma_cross", ["BTC/USDT"])
    assert main(["live", "replay", "--data", BTC, "--strategy", "sma_cross", "--db", "sqlite:///:memory:"]) == 2
    assert set(STEP_STRATEGIES) >= {"committee", "trend"}


def test_another_run_on_the_same_db_is_refused(db):
    asyncio.run(replay(ReplaySpec([BTC], "trend", db, start=START, end="2021-01-05")))
    with pytest.raises(ConfigError, match="holds another run"):
        asyncio.run(replay(ReplaySpec([BTC], "mean_reversion", db, start=START, end="2021-01-05")))


def test_paper_broker_refuses_two_quote_currencies():
    with pytest.raises(ConfigError, match="one cash account"):
        PaperBroker(["BTC/USDT", "ETH/BTC"])


@pytest.mark.parametrize("bad", [
    dict(close=float("nan")), dict(low=-1.0), dict(high=1.0), dict(volume=-5.0)])
def test_a_bad_bar_is_a_typed_error_and_changes_nothing(db, bad):
    spec = ReplaySpec([BTC], "trend", db, start=START, end="2021-01-03")
    asyncio.run(replay(spec))
    runner, _ = build(spec)
    try:
        before = (runner.last_time, runner.stepper.to_record(), runner.broker.to_bytes())
        fields = dict(symbol="BTC/USDT", time=runner.last_time + 3_600_000, open=30000.0, high=30100.0,
                      low=29900.0, close=30050.0, volume=1.0) | bad
        with pytest.raises(DataError):
            asyncio.run(runner.on_bar(ClosedBar(**fields)))
        with pytest.raises(DuplicateTimestampError):
            asyncio.run(runner.on_bar(ClosedBar("BTC/USDT", runner.last_time, 1.0, 1.0, 1.0, 1.0, 1.0)))
        assert (runner.last_time, runner.stepper.to_record(), runner.broker.to_bytes()) == before
    finally:
        runner.ledger.close()


def test_an_unexplained_position_difference_halts_at_start(db):
    spec = ReplaySpec([BTC], "trend", db, start=START, end="2021-02-10")
    asyncio.run(replay(spec))
    ledger = Ledger(db)
    ledger.set_baseline("BTC/USDT", 0.0, 0)
    ledger.deposit("USDT", 123.0)  # cash the venue does not have
    ledger.close()
    runner, recovery = build(spec)
    runner.ledger.close()
    assert recovery.halted and any("cash USDT" in u for u in recovery.unexplained)
    report = book(db)[2]
    assert report["halted"] and report["halt_reason"] == "reconcile"


def test_a_damaged_checkpoint_is_a_state_error(db):
    spec = ReplaySpec([BTC], "trend", db, start=START, end="2021-01-03")
    asyncio.run(replay(spec))
    ledger = Ledger(db)
    cp = ledger.get_meta("checkpoint")
    cp["strategy"]["states"] = ["AAAA"]
    ledger.set_meta("checkpoint", cp)
    ledger.close()
    with pytest.raises(StateError):
        build(spec)


def _checkpoint_time(db: str) -> int:
    ledger = Ledger(db)
    try:
        return int(ledger.get_meta("checkpoint")["time"])
    finally:
        ledger.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("one_commit", [True, False], ids=["one-commit", "two-commits"])
@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_each_write_ahead_point_resumes_exactly(tmp_path, monkeypatch, point, one_commit):
    spec = ReplaySpec([BTC, ETH], "trend", f"sqlite:///{tmp_path / 'whole.db'}", start=START, end="2021-02-10")
    asyncio.run(replay(spec))
    crashed = ReplaySpec([BTC, ETH], "trend", f"sqlite:///{tmp_path / 'crash.db'}", start=START, end="2021-02-10",
                         one_commit_write_ahead=one_commit)
    for k in (3, 1, 40):
        monkeypatch.setattr(faults, "point", crash_at(point, k))
        with pytest.raises(Crash):
            asyncio.run(replay(crashed))
        monkeypatch.undo()
        orders = book(crashed.db)[0]
        checkpoint = _checkpoint_time(crashed.db)
        in_flight = [o for o in orders if o[4] != "filled"]
        assert all(o[4] in ("new", "sent") and o[5] >= checkpoint for o in in_flight)
        if point != "before_new":  # the crashed bar's orders are stored, not booked (one commit: NEW+SENT)
            stored = "new" if point == "after_new" and not one_commit else "sent"
            assert in_flight and any(o[4] == stored for o in in_flight)
    asyncio.run(replay(crashed))
    a, b = book(spec.db), book(crashed.db)
    assert a[0] == b[0] and a[1] == b[1] and len(a[1]) > 10
    assert a[2]["positions"] == b[2]["positions"] and a[2]["cash"] == b[2]["cash"]
    assert a[2]["bars_processed"] == b[2]["bars_processed"] and not b[2]["halted"]


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["live", "report", "--db", f"sqlite:///{tmp_path / 'nope.db'}"]) == 2
    assert "no such database" in capsys.readouterr().err
    assert main(["live", "replay", "--data", BTC, "--strategy", "trend", "--db", "sqlite:///x.db",
                 "--speed", "fast"]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('symbols = ["BTC/USDT"]\n[broker]\nkind = "binance"\nsandbox = false\n')
    assert main(["live", "run", "--config", str(bad)]) == 2
    assert "--live" in capsys.readouterr().err
    assert issubclass(ConfigError, CoinswarmError)


def test_every_decision_and_trade_goes_through_the_outbox_and_is_published(db):
    asyncio.run(replay(ReplaySpec([BTC], "trend", db, start=START, end="2021-02-10")))
    orders, fills, rows = ledger_rows(db)
    subjects = [r.subject for r in rows]
    assert subjects.count("agent.action") == len(orders) > 0
    assert subjects.count("agent.trade") == len(fills) == len(orders)
    assert subjects.count("live.heartbeat") >= 1
    assert all(r.published_ms is not None for r in rows), "the relay published everything to the bus"


def test_a_csv_source_names_its_symbol(tmp_path, capsys):
    import gzip
    import shutil

    csv = tmp_path / "btc.csv"
    with gzip.open("/work/shared/datasets/ohlcv/binance_BTCUSDT_1h.csv.gz", "rb") as src, csv.open("wb") as out:
        shutil.copyfileobj(src, out)
    db = f"sqlite:///{tmp_path / 'csv.db'}"
    args = ["live", "replay", "--strategy", "trend", "--db", db, "--start", START, "--end", "2021-02-10"]
    assert main([*args, "--data", str(csv)]) == 2
    assert "SYMBOL=PATH" in capsys.readouterr().err
    assert main([*args, "--data", f"BTC/USDT={csv}"]) == 0
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    asyncio.run(replay(ReplaySpec([BTC], "trend", catalog, start=START, end="2021-02-10")))
    assert book(db)[1] == book(catalog)[1] and book(db)[1]


def test_a_drawdown_limit_trips_the_kill_switch_and_only_reductions_follow(db, capsys):
    args = ["live", "replay", "--data", BTC, "--strategy", "trend", "--db", db, "--start", START,
            "--end", "2021-03-31"]
    assert main([*args, "--max-drawdown", "0"]) == 2
    assert main([*args, "--max-drawdown", "0.02"]) == 0
    assert "HALTED" in capsys.readouterr().out
    ledger = Ledger(db)
    try:
        kill = ledger.kill_state()
        orders = ledger.orders()
        fills = {f.client_order_id: f for f in ledger.fills()}
    finally:
        ledger.close()
    assert kill.halted and kill.reason == "drawdown" and "below its peak" in kill.detail
    after = [o for o in orders if fills[o.client_order_id].time_ms > kill.since_ms]
    assert all(o.side.value == "sell" for o in after)


def test_a_checkpoint_retried_after_its_lost_commit_ack_queues_one_heartbeat(db, monkeypatch):
    """The checkpoint commits but its acknowledgement is lost (the database reads as locked): the
    guard retries the same transaction, whose heartbeat (same deterministic id) is skipped, not
    an integrity error."""
    import sqlite3

    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError

    from coinswarm.live import ledger_bulk as bulk
    from coinswarm.live.dbretry import DbGuard
    from coinswarm.live.ledger import OutboxRow

    spec = ReplaySpec([BTC], "trend", db, start=START, end="2021-01-03")
    asyncio.run(replay(spec))
    runner, _ = build(spec)
    runner.guard = DbGuard(backoff_s=0.001, max_wait_s=5.0)
    real, calls = bulk.commit_bars, []

    def commit_then_lose_the_ack(*args, **kwargs):
        calls.append([m.msg_id for m in kwargs["events"]])
        real(*args, **kwargs)
        if len(calls) == 1:
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        return 0

    monkeypatch.setattr(bulk, "commit_bars", commit_then_lose_the_ack)
    runner._beat_at = -float("inf")  # this checkpoint carries a heartbeat
    try:
        asyncio.run(runner.aflush())
        with runner.ledger.sessions() as s:
            ids = list(s.scalars(select(OutboxRow.msg_id).where(OutboxRow.subject == "live.heartbeat")))
    finally:
        runner.ledger.close()
    assert len(calls) == 2 and calls[0] == calls[1] and len(calls[0]) == 1
    assert ids.count(calls[0][0]) == 1


def test_a_stale_bar_in_the_paper_feed_is_logged_skipped_and_not_applied(tmp_path, caplog):
    """The feed repeats its first and its latest bar after the 50th: the loop logs each as a
    typed stale-bar error (check_bar_order, the exchange daemon's rule too), tells the sinks and
    goes on; the book equals the uninterrupted replay's."""
    from coinswarm.live.sinks import Sinks

    events = []

    class Events:
        def on_order(self, order): ...
        def on_fill(self, fill): ...
        def on_bar(self, snapshot): ...
        def on_event(self, name, fields):
            events.append((name, dict(fields)))
        def close(self): ...

    plain, stale = (f"sqlite:///{tmp_path / name}.db" for name in ("plain", "stale"))
    asyncio.run(replay(ReplaySpec([BTC], "trend", plain, start=START, end="2021-01-20")))
    spec = ReplaySpec([BTC], "trend", stale, start=START, end="2021-01-20")
    runner, _ = build(spec, sinks=Sinks([Events()]))
    try:
        bars = asyncio.run(runner.run(Replaying(feed_for(spec, runner), 50)))
    finally:
        runner.ledger.close()
    details = [fields["detail"] for name, fields in events if name == "stale_bar"]
    assert runner.telemetry.stale_bars == 2 and len(details) == 2
    assert "BTC/USDT bar at 2021-01-01" in details[0] and "valid bars open after" in details[0]
    assert bars == book(plain)[2]["bars_processed"]
    assert book(stale)[:2] == book(plain)[:2]
