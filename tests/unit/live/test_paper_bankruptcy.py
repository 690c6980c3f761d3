"""A paper account driven into bankruptcy: the kernel closes the book out and writes the deficit
off; the ledger books that write-off as a ``write_off`` cash flow in the same checkpoint, so its
cash is the kernel's (exactly 0) and a restart reconciles cleanly, stays halted (reason
``bankrupt``), never trades again and does not crash-loop — also after a crash at the bankrupt
bar.

Real SOL/USDT 1h candles (Binance, 2021-01 → 2021-05) and the portfolio committee with a
deliberately extreme leverage: its engine cap raised from 2x to 10x (monkeypatched, for the
replay and the backtest alike) and ``gross_cap=10``, ``target_vol=10``, ``band=0``. The crash of
2021-05-19 bankrupts the book at 12:00 UTC; the backtest of the same targets goes bankrupt there
too.
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import PortfolioCommittee
from coinswarm.kernels.portfolio import portfolio_view
from coinswarm.live import faults
from coinswarm.live.replay import ReplaySpec, build, replay
from coinswarm.live.stepper import Stepper
from tests.helpers.live import Crash, book, crash_at

DATA = ["binance:SOL/USDT:1h"]
START, END = "2021-01-01", "2021-05-31"
PARAMS = {"gross_cap": 10.0, "target_vol": 10.0, "band": 0.0}
BANKRUPT = pd.Timestamp("2021-05-19 12:00", tz="UTC")


@pytest.fixture
def levered(monkeypatch):
    """The portfolio committee at 10x (the replay's paper broker and the backtest read this cap)."""
    monkeypatch.setattr(PortfolioCommittee, "max_leverage", 10.0)


def spec_of(db: str) -> ReplaySpec:
    return ReplaySpec(DATA, "portfolio", db, start=START, end=END, params=PARAMS)


def restart(spec: ReplaySpec):
    """A restart (start-up is recovery): what it found, the ledger's cash and flows, the kernel."""
    runner, recovery = build(spec)
    try:
        return (recovery, runner.ledger.cash(), runner.ledger.cash_flows(), runner.broker.cash,
                runner.broker.positions(), portfolio_view(runner.broker.state)["bankrupt_bar"], runner.kill)
    finally:
        runner.ledger.close()


@pytest.mark.timeout(300)
def test_the_backtest_of_this_config_goes_bankrupt(levered):
    frame = cs.load_ohlcv(DATA[0], start=START, end=END)
    frame.attrs["symbol"] = "SOL/USDT"
    stepper = Stepper("portfolio", ["SOL/USDT"], PARAMS)
    run = cs.simulate(frame, stepper.targets_for_backtest({"SOL/USDT": frame}, {}), costs=cs.Costs(),
                      max_leverage=stepper.max_leverage, allow_short=stepper.allow_short)
    assert run.bankrupt == BANKRUPT and float(run.cash.iloc[-1]) == 0.0


@pytest.mark.timeout(300)
def test_a_bankrupt_replay_books_the_write_off_and_restarts_cleanly(levered, tmp_path):
    spec = spec_of(f"sqlite:///{tmp_path / 'r.db'}")
    first = asyncio.run(replay(spec))
    assert first["halted"]
    recovery, cash, flows, kernel_cash, positions, bankrupt_bar, kill = restart(spec)
    assert recovery.unexplained == [] and not recovery.fresh
    assert kernel_cash == 0.0 and cash == {"USDT": 0.0}  # to the last bit
    assert not positions.any() and bankrupt_bar is not None
    (write_off,) = [f for f in flows if f.kind == "write_off"]
    assert write_off.time_ms == BANKRUPT.value // 1_000_000 and write_off.amount > 0
    assert write_off.flow_id == f"portfolio:write_off:{write_off.time_ms}"
    assert kill.halted and kill.reason == "bankrupt" and "written off" in kill.detail
    again = asyncio.run(replay(spec))  # the restart resumes (nothing left to replay), no crash
    assert again["resumed"] and again["halted"] and again["unexplained"] == [] and again["bars"] == 0


@pytest.mark.timeout(300)
def test_a_resume_cannot_lift_a_bankruptcy(levered, tmp_path):
    from coinswarm.live.killswitch import resume
    from coinswarm.live.ledger import Ledger

    spec = spec_of(f"sqlite:///{tmp_path / 'r.db'}")
    asyncio.run(replay(spec))
    ledger = Ledger(spec.db)
    try:
        ledger.save_kill_state(resume(ledger.kill_state(), 0.0), 1)  # `coinswarm live resume`
        assert not ledger.kill_state().halted
    finally:
        ledger.close()
    kill = restart(spec)[-1]
    assert kill.halted and kill.reason == "bankrupt"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("before", [0, 1], ids=["at-the-bankrupt-bar", "one-order-bar-before"])
def test_a_crash_around_the_bankruptcy_resumes_to_the_same_books(levered, tmp_path, monkeypatch, before):
    whole = spec_of(f"sqlite:///{tmp_path / 'whole.db'}")
    asyncio.run(replay(whole))
    fills = book(whole.db)[1]  # (fill_id, time_ms, qty, price, fee)
    bars_with_orders = sorted({f[1] for f in fills})
    k = bars_with_orders.index(BANKRUPT.value // 1_000_000) + 1 - before  # after_ack is hit once per such bar
    crashed = spec_of(f"sqlite:///{tmp_path / 'crash.db'}")
    monkeypatch.setattr(faults, "point", crash_at("after_ack", k))
    with pytest.raises(Crash):
        asyncio.run(replay(crashed))
    monkeypatch.setattr(faults, "point", lambda name: None)
    for _ in range(2):  # resumed, then restarted once more after the end: no crash loop
        summary = asyncio.run(replay(crashed))
        assert summary["unexplained"] == [] and summary["halted"]
    a, b = book(whole.db), book(crashed.db)
    assert a[0] == b[0] and a[1] == b[1]
    assert a[2]["cash"] == b[2]["cash"] == {"USDT": 0.0} and a[2]["halt_reason"] == b[2]["halt_reason"] == "bankrupt"
    assert restart(crashed)[2] == restart(whole)[2]  # the same cash flows, write-off included
