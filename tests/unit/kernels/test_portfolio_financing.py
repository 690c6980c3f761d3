"""Financing of the book (``Costs(cash_rate=…, borrow_rate=…)``) on real hourly data: idle cash
earns the daily rate at each UTC day's close, every position commits its full notional, short
spot positions pay a borrow fee, perpetuals (symbols with funding) do not, and stepping the
kernel bar by bar equals ``cs.simulate`` bit for bit with financing on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.engine import (
    day_end_mask,
    financing,
    financing_days,
    funding_matrix,
    price_matrices,
    target_matrix,
)
from coinswarm.errors import ConfigError
from coinswarm.kernels.portfolio import P_BORROW, P_INTEREST, portfolio_init, portfolio_step, portfolio_view
from coinswarm.stats import annualized_sharpe, daily_rate, excess_returns


@pytest.fixture(scope="module")
def btc():
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2021", end="2021-06")


@pytest.fixture(scope="module")
def book():
    """BTC spot beside the BTC and ETH perpetuals with their real funding, 2022 H1."""
    frames = {"BTC/USDT": cs.load_ohlcv("binance:BTC/USDT:1h", start="2022", end="2022-06")}
    for base in ("BTC", "ETH"):
        frames[f"{base}/USDT:USDT"] = cs.load_ohlcv(f"binance-perp:{base}/USDT:1h", start="2022", end="2022-06")
    funding = {s: f.attrs["funding"] for s, f in frames.items() if ":" in s}
    return cs.align(frames, how="inner"), funding


def _daily(result) -> np.ndarray:
    eq = result.equity[day_end_mask(result.equity.index)].to_numpy()
    return eq[1:] / eq[:-1] - 1.0


def test_idle_cash_earns_exactly_the_cash_rate(btc):
    res = cs.simulate(btc, np.zeros(len(btc)), costs=cs.Costs(fee_bps=10, cash_rate=0.04))
    daily = _daily(res)
    assert np.abs(daily - daily_rate(0.04)).max() < 1e-15
    assert np.abs(excess_returns(daily, 0.04)).max() < 1e-15
    assert np.isnan(annualized_sharpe(excess_returns(daily, 0.04)))  # no spread: no Sharpe, not 1e16
    assert res.metrics["interest_earned"] == pytest.approx(res.equity.iloc[-1] - 10_000.0, rel=1e-12)
    assert res.metrics["borrow_paid"] == 0.0
    plain = cs.simulate(btc, np.zeros(len(btc)), costs=cs.Costs(fee_bps=10))
    assert "interest_earned" not in plain.metrics and plain.equity.iloc[-1] == 10_000.0


def test_only_cash_not_committed_to_positions_earns(btc):
    """Half long BTC: on a day-end bar without a fill, cash grows by (equity − |position|) × rate."""
    rate = daily_rate(0.05)
    target = np.full(len(btc), np.nan)
    target[::168] = 0.5  # rebalanced weekly, no order (NaN) in between
    res = cs.simulate(btc, target, costs=cs.Costs(fee_bps=10, cash_rate=0.05))
    ends = np.flatnonzero(day_end_mask(btc.index))
    units = res.positions.iloc[:, 0].to_numpy()
    cash, close = res.cash.to_numpy(), btc["close"].to_numpy()
    quiet = [t for t in ends if t > 0 and units[t] == units[t - 1]]
    assert len(quiet) > 150
    for t in quiet:
        idle = cash[t - 1] - abs(units[t] * close[t]) + units[t] * close[t]  # equity − gross, before interest
        assert cash[t] - cash[t - 1] == pytest.approx(max(idle, 0.0) * rate, rel=1e-9, abs=1e-9)
    assert 0 < res.metrics["interest_earned"] < 10_000 * 0.05 * 0.6


def test_a_fully_invested_or_levered_book_earns_nothing(btc):
    for target, lev in ((1.0, 1.0), (1.5, 2.0)):
        res = cs.simulate(btc, np.full(len(btc), target), costs=cs.Costs(fee_bps=10, cash_rate=0.05),
                          max_leverage=lev)
        plain = cs.simulate(btc, np.full(len(btc), target), costs=cs.Costs(fee_bps=10), max_leverage=lev)
        assert res.metrics["interest_earned"] < 1e-6 * 10_000
        assert res.equity.iloc[-1] == pytest.approx(plain.equity.iloc[-1], rel=1e-9)


def test_a_short_spot_position_pays_borrow_and_earns_no_interest_on_its_proceeds(btc):
    costs = cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.10)
    res = cs.simulate(btc, np.full(len(btc), -0.5), costs=costs, allow_short=True)
    units = res.positions.iloc[:, 0].to_numpy()
    ends = day_end_mask(btc.index)
    short_value = -(units * btc["close"].to_numpy())[ends]
    assert (short_value > 0).all() or (short_value[1:] > 0).all()
    expected = (short_value * daily_rate(0.10)).sum()
    assert res.metrics["borrow_paid"] == pytest.approx(expected, rel=1e-9)
    # idle = equity − gross: the proceeds of the sale are collateral, only the other half earns
    assert res.metrics["interest_earned"] == pytest.approx(
        (np.maximum(res.equity.to_numpy()[ends] - short_value, 0) * daily_rate(0.04)).sum(), rel=1e-3)


def test_perpetuals_pay_funding_not_borrow(book):
    frames, funding = book
    costs = cs.Costs(fee_bps=4, funding=funding, borrow_rate=0.10)
    credit, borrow = financing(costs, list(frames))
    assert credit == 0.0
    assert borrow.tolist() == [daily_rate(0.10), 0.0, 0.0]
    target = pd.DataFrame({s: np.full(len(f), -0.3) for s, f in frames.items()}, index=frames["BTC/USDT"].index)
    perps_only = target.assign(**{"BTC/USDT": 0.0})
    res = cs.simulate(frames, perps_only, costs=costs, allow_short=True)
    assert res.metrics["borrow_paid"] == 0.0 and res.metrics["funding_paid"] != 0.0
    res = cs.simulate(frames, target, costs=costs, allow_short=True)
    assert res.metrics["borrow_paid"] > 0.0


@pytest.mark.timeout(600)
def test_stepping_the_kernel_with_financing_equals_simulate_bit_for_bit(book):
    frames, funding = book
    costs = cs.Costs(fee_bps=4, slippage_bps=1, funding=funding, cash_rate=0.04, borrow_rate=0.08)
    index, symbols = frames["BTC/USDT"].index, list(frames)
    close_df = pd.DataFrame({s: f["close"] for s, f in frames.items()})
    target = np.sign(close_df / close_df.shift(72) - 1.0).fillna(0.0) * 0.3
    ref = cs.simulate(frames, target, costs=costs, allow_short=True, max_leverage=2.0)
    open_, close = price_matrices(frames, symbols)
    tgt, fund, ends = target_matrix(target, index, symbols), funding_matrix(costs, index, symbols), day_end_mask(index)
    days = financing_days(index)
    credit, borrow = financing(costs, symbols)
    state = portfolio_init(len(symbols), 10_000.0)
    equity = np.empty(len(index))
    for t in range(len(index)):
        portfolio_step(state, open_[t], close[t], tgt[t], funding=fund[t], day_end=ends[t], days=int(days[t]),
                       fee=costs.fee,
                       slippage=costs.slippage, max_leverage=2.0, allow_short=True, credit=credit, borrow=borrow)
        equity[t] = portfolio_view(state)["equity"]
    assert equity.tobytes() == ref.equity.to_numpy().tobytes()
    assert state[P_INTEREST] == ref.metrics["interest_earned"] > 0
    assert state[P_BORROW] == ref.metrics["borrow_paid"] > 0


def test_a_sweep_with_financing_agrees_with_simulate(btc):
    costs = cs.Costs(fee_bps=10, cash_rate=0.04)
    table = cs.sweep("sma_cross", btc, {"fast": [10], "slow": [50]}, costs=costs)
    sma = cs.get_strategy("sma_cross")
    res = cs.simulate(btc, sma.targets(btc, cs.SmaCrossParams(fast=10, slow=50)), costs=costs)
    assert table["final_equity"].iloc[0] == res.metrics["final_equity"]
    plain = cs.sweep("sma_cross", btc, {"fast": [10], "slow": [50]}, costs=cs.Costs(fee_bps=10))
    assert plain["final_equity"].iloc[0] < table["final_equity"].iloc[0]


@pytest.mark.parametrize("bad", [-0.01, 1.0, float("nan"), float("inf"), True, "4%", None])
@pytest.mark.parametrize("name", ["cash_rate", "borrow_rate"])
def test_bad_financing_rates_are_typed_errors(name, bad):
    with pytest.raises(ConfigError, match=rf"Costs\.{name} must be an annual fraction in \[0, 1\)"):
        cs.Costs(**{name: bad})


def test_financing_shows_in_the_assumptions_only_when_set():
    assert "cash_rate" not in cs.Costs().describe()
    assert cs.Costs(cash_rate=0.04).describe()["cash_rate"] == 0.04
    assert cs.Costs(borrow_rate=0.05).financed and not cs.Costs().financed


def test_portfolio_step_refuses_non_finite_financing_rates():
    state = portfolio_init(1, 100.0)
    one = np.array([1.0])
    with pytest.raises(ConfigError, match="credit and borrow rates must be finite"):
        portfolio_step(state, one, one, one, credit=float("nan"))
    with pytest.raises(ConfigError, match=r"borrow must have shape \(1,\)"):
        portfolio_step(state, one, one, one, borrow=[0.0, 0.0])


def test_an_insolvent_book_is_not_financed_before_its_close_out():
    """A short whose asset triples by a day's close leaves equity < 0: the book is closed out and
    the deficit written off — no borrow fee is charged on it (it could never be paid), none is
    counted in ``borrow_paid``, and no interest is credited."""
    state = portfolio_init(1, 100.0)
    daily = np.array([daily_rate(0.10)])
    portfolio_step(state, [100.0], [100.0], [-1.0], fee=0.0, next_open=False, allow_short=True,
                   credit=daily_rate(0.04), borrow=daily)
    assert portfolio_view(state)["positions"][0] == pytest.approx(-1.0)
    portfolio_step(state, [300.0], [300.0], [np.nan], day_end=True, fee=0.0, next_open=False,
                   allow_short=True, credit=daily_rate(0.04), borrow=daily)
    view = portfolio_view(state)
    assert view["bankrupt_bar"] == 1 and view["equity"] == 0.0 and view["cash"] == 0.0
    assert state[P_BORROW] == 0.0 and state[P_INTEREST] == 0.0


def test_a_solvent_short_pays_its_borrow_fee_at_the_day_close():
    state = portfolio_init(1, 100.0)
    daily = np.array([daily_rate(0.10)])
    portfolio_step(state, [100.0], [100.0], [-0.5], fee=0.0, next_open=False, allow_short=True, borrow=daily)
    units = portfolio_view(state)["positions"][0]
    portfolio_step(state, [110.0], [110.0], [np.nan], day_end=True, fee=0.0, next_open=False,
                   allow_short=True, borrow=daily)
    assert state[P_BORROW] == pytest.approx(-units * 110.0 * daily[0], rel=1e-12) and state[P_BORROW] > 0


FINANCED_TWIN = """
import pickle, sys, numpy as np, pandas as pd, coinswarm as cs
prices = {s: cs.load_ohlcv(f"binance:{s}:1h", start="2021-05-01", end="2021-06-30") for s in ("BTC/USDT", "ETH/USDT")}
close = pd.DataFrame({s: df["close"] for s, df in cs.align(prices).items()})
w = np.sign(close / close.shift(48) - 1.0).fillna(0.0) * 0.6
r = cs.simulate(prices, w, costs=cs.Costs(fee_bps=10, cash_rate=0.05, borrow_rate=0.09), allow_short=True,
                max_leverage=1.5)
np.savez(sys.argv[1], equity=r.equity.to_numpy(), cash=r.cash.to_numpy(),
         financing=np.array([r.metrics["interest_earned"], r.metrics["borrow_paid"]]))
"""


@pytest.mark.timeout(1200)
def test_financing_python_twins_match_numba_bit_for_bit(tmp_path):
    import os
    import subprocess
    import sys

    outputs = {}
    for flag in ("0", "1"):
        path = tmp_path / f"twin{flag}.npz"
        subprocess.run([sys.executable, "-c", FINANCED_TWIN, str(path)],
                       env=dict(os.environ, COINSWARM_DISABLE_NUMBA=flag), check=True, timeout=1100)
        outputs[flag] = np.load(path)
    assert (outputs["0"]["financing"] > 0).all()
    for key in ("equity", "cash", "financing"):
        np.testing.assert_array_equal(outputs["0"][key], outputs["1"][key])


def test_a_financed_result_pickles_and_serialises_its_financing(btc):
    import json
    import pickle

    res = cs.simulate(btc.iloc[:500], np.full(500, -0.5), allow_short=True,
                      costs=cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.1))
    payload = json.loads(res.to_json())
    assert payload["assumptions"]["cash_rate"] == 0.04 and payload["assumptions"]["borrow_rate"] == 0.1
    assert payload["metrics"]["borrow_paid"] == res.metrics["borrow_paid"] > 0
    back = pickle.loads(pickle.dumps(res))
    assert back.assumptions == res.assumptions
    assert {k: back.metrics[k] for k in ("interest_earned", "borrow_paid")} == {
        k: res.metrics[k] for k in ("interest_earned", "borrow_paid")}
    assert "idle cash credited at 4" in str(res) and "borrow_paid" not in str(res)


def test_a_levered_spot_long_pays_the_borrow_rate_on_its_quote_loan(btc):
    """1.5× long BTC spot borrows half its equity in USDT: at each day's close the negative cash
    pays the borrow rate (a margin loan is not free), and earns no interest."""
    costs = cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.10)
    target = np.full(len(btc), np.nan)
    target[::168] = 1.5  # rebalanced weekly, no order (NaN) in between
    res = cs.simulate(btc, target, costs=costs, max_leverage=2.0)
    ends = np.flatnonzero(day_end_mask(btc.index))
    cash = res.cash.to_numpy()
    units = res.positions.iloc[:, 0].to_numpy()
    quiet = [t for t in ends if t > 0 and units[t] == units[t - 1]]
    assert len(quiet) > 100 and (cash[quiet] < 0).all()
    for t in quiet:  # no fill on the bar: the change of cash is the loan's fee alone
        assert cash[t] - cash[t - 1] == pytest.approx(cash[t - 1] * daily_rate(0.10), rel=1e-9)
    assert res.metrics["borrow_paid"] > 0 and res.metrics["interest_earned"] == 0.0
    plain = cs.simulate(btc, target, costs=cs.Costs(fee_bps=10), max_leverage=2.0)
    assert res.equity.iloc[-1] < plain.equity.iloc[-1]


def test_perpetual_legs_take_no_quote_loan(book):
    """A levered long of perpetuals pays funding, and a spot long hedged by a perpetual short
    (the carry legs) with cash beside it to cover the short's losses takes no loan: neither pays
    the borrow rate. (A hedge of 95 % of equity whose perpetual loses more than the 5 % of cash
    left would: its USDT balance goes negative, which a unified account lends at interest.)"""
    frames, funding = book
    costs = cs.Costs(fee_bps=4, funding=funding, borrow_rate=0.10)
    index = frames["BTC/USDT"].index
    perps = pd.DataFrame({"BTC/USDT": 0.0, "BTC/USDT:USDT": 0.9, "ETH/USDT:USDT": 0.9}, index=index)
    res = cs.simulate(frames, perps, costs=costs, max_leverage=2.0)
    assert res.metrics["borrow_paid"] == 0.0 and (res.cash.to_numpy() < 0).any()
    carry = pd.DataFrame({"BTC/USDT": 0.5, "BTC/USDT:USDT": -0.5, "ETH/USDT:USDT": 0.0}, index=index)
    res = cs.simulate(frames, carry, costs=costs, max_leverage=2.0, allow_short=True)
    assert res.metrics["borrow_paid"] == 0.0 and res.metrics["funding_paid"] != 0.0
    tight = cs.simulate(frames, carry * 1.9, costs=costs, max_leverage=2.0, allow_short=True)
    usdt = tight.cash + tight.positions["BTC/USDT:USDT"] * frames["BTC/USDT:USDT"]["close"]
    assert (usdt < 0).any() and tight.metrics["borrow_paid"] > 0
