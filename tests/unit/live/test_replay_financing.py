"""A financed replay (``Costs(cash_rate=…, borrow_rate=…)``) equals the financed backtest, and
the paper account's interest and borrow fees are booked in the ledger as cash flows, so the
ledger's cash is the kernel's after every checkpoint (real BTC/USDT candles)."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.live.ledger import Ledger
from coinswarm.live.parity import compare
from coinswarm.live.replay import ReplaySpec, build, replay

DATA = ["binance:BTC/USDT:1h"]
FINANCED = cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.10)


@pytest.mark.timeout(300)
def test_a_financed_replay_equals_the_financed_backtest():
    report = compare(DATA, "trend", "2021-01-01", "2021-03-31", costs=FINANCED)
    assert report.identical, report.first
    assert report.fills > 10


@pytest.mark.timeout(300)
def test_interest_is_booked_as_cash_flows_and_the_ledger_keeps_the_kernels_cash(tmp_path):
    spec = ReplaySpec(DATA, "trend", f"sqlite:///{tmp_path / 'r.db'}", start="2021-01-01", end="2021-02-28",
                      costs=FINANCED)
    asyncio.run(replay(spec))
    runner, recovery = build(spec)  # a restart: recovery compares the ledger's cash with the kernel's
    try:
        assert recovery.unexplained == [] and not runner.kill.halted
        flows = runner.ledger.cash_flows()
        interest = sum(f.amount for f in flows if f.kind == "interest")
        assert interest == pytest.approx(runner.broker.financing()[1], rel=1e-12) and interest > 0
        days = {f.time_ms for f in flows if f.kind == "interest"}
        assert len(days) == 31 + 28 and {(t + 3_600_000) % 86_400_000 for t in days} == {0}  # each day's close
        assert runner.ledger.cash()["USDT"] == pytest.approx(runner.broker.cash, rel=1e-12)
    finally:
        runner.ledger.close()


@pytest.mark.timeout(300)
def test_an_unfinanced_replay_books_no_cash_flows(tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    summary = asyncio.run(replay(ReplaySpec(DATA, "trend", db, start="2021-01-01", end="2021-01-05",
                                            costs=cs.Costs(fee_bps=10))))
    assert summary["bars"] > 0
    ledger = Ledger(db)
    try:
        assert ledger.cash_flows() == []
    finally:
        ledger.close()


@pytest.mark.timeout(300)
def test_a_replay_resumed_with_other_financing_is_refused(tmp_path):
    from coinswarm.errors import ConfigError
    from tests.helpers.live import run_until

    db = f"sqlite:///{tmp_path / 'r.db'}"
    plain = ReplaySpec(DATA, "trend", db, start="2021-01-01", end="2021-01-20", costs=cs.Costs(fee_bps=10))
    asyncio.run(run_until(plain, 100))
    with pytest.raises(ConfigError, match=r"financing: stored None, now \{'daily_credit'"):
        build(ReplaySpec(DATA, "trend", db, start="2021-01-01", end="2021-01-20", costs=FINANCED))
    financed = f"sqlite:///{tmp_path / 'f.db'}"
    asyncio.run(run_until(ReplaySpec(DATA, "trend", financed, start="2021-01-01", end="2021-01-20", costs=FINANCED),
                          100))
    with pytest.raises(ConfigError, match="financing: stored"):
        build(ReplaySpec(DATA, "trend", financed, costs=cs.Costs(fee_bps=10, cash_rate=0.05, borrow_rate=0.10)))
    runner, recovery = build(ReplaySpec(DATA, "trend", financed, costs=FINANCED))  # the same costs resume
    runner.ledger.close()
    assert not recovery.fresh


@pytest.mark.timeout(300)
def test_a_replay_resumed_on_other_funding_rates_is_refused(tmp_path):
    from coinswarm.errors import ConfigError
    from tests.helpers.live import run_until

    rates = cs.load_funding("binance-perp:BTC/USDT:funding")
    csv = tmp_path / "funding.csv"
    frame = pd.DataFrame({"timestamp": rates.index.as_unit("ms").asi8, "funding_rate": rates.to_numpy()})
    frame.to_csv(csv, index=False)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    sources = ["binance:BTC/USDT:1h", "binance-perp:BTC/USDT:1h"]
    asyncio.run(run_until(ReplaySpec(sources, "trend", db, start="2021-01-01", end="2021-01-10"), 50))
    other = {"BTC/USDT:USDT": str(csv)}
    with pytest.raises(ConfigError, match=r"funding: stored \{'BTC/USDT:USDT': 'binance-perp:BTC/USDT:funding'\}"):
        build(ReplaySpec(sources, "trend", db, start="2021-01-01", end="2021-01-10", funding=other))
    runner, recovery = build(ReplaySpec(sources, "trend", db, start="2021-01-01", end="2021-01-10"))
    runner.ledger.close()
    assert not recovery.fresh and runner.funding.sources == {"BTC/USDT:USDT": "binance-perp:BTC/USDT:funding"}
