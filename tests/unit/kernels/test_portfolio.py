"""The portfolio kernel's per-bar API is the engine: stepping it over history (with a serialise /
restore of the state in the middle) reproduces ``cs.simulate`` bit for bit on a year of real
hourly data for two perpetuals with their real funding, shorts and leverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.engine import (
    day_end_mask,
    financing_days,
    funding_matrix,
    metrics_dict,
    price_matrices,
    target_matrix,
)
from coinswarm.errors import ConfigError
from coinswarm.kernels.metrics import ACC_SIZE
from coinswarm.kernels.portfolio import (
    P_ACC,
    fill_dt,
    portfolio_from_bytes,
    portfolio_init,
    portfolio_step,
    portfolio_to_bytes,
    portfolio_view,
)

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")


@pytest.fixture(scope="module")
def perps():
    frames = {s: cs.load_ohlcv(f"binance-perp:{s.split(':')[0]}:1h", start="2022", end="2022") for s in SYMBOLS}
    funding = {s: f.attrs["funding"] for s, f in frames.items()}
    return cs.align(frames), funding


def _momentum_targets(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long/short 0.8 on the sign of the 48-bar return, NaN (no order) while unchanged."""
    out = {}
    for symbol, frame in frames.items():
        close = frame["close"].ffill()
        signal = np.sign(close / close.shift(48) - 1.0).fillna(0.0) * 0.8
        out[symbol] = signal.where(signal != signal.shift(1))
    return pd.DataFrame(out)


def _step_through(frames, target, costs, *, execution, max_leverage, allow_short, restore_at):
    symbols = list(frames)
    index = next(iter(frames.values())).index
    open_, close = price_matrices(frames, symbols)
    tgt = target_matrix(target, index, symbols)
    funding = funding_matrix(costs, index, symbols)
    day_end, days = day_end_mask(index), financing_days(index)
    state = portfolio_init(len(symbols), 10_000.0)
    equity, cash, pos, fills = [], [], [], []
    for t in range(len(index)):
        if t == restore_at:
            state = portfolio_from_bytes(portfolio_to_bytes(state))
        fills.append(portfolio_step(state, open_[t], close[t], tgt[t], funding=funding[t], day_end=day_end[t],
                                    days=int(days[t]), fee=costs.fee, slippage=costs.slippage,
                                    next_open=execution == "next_open", max_leverage=max_leverage,
                                    allow_short=allow_short))
        view = portfolio_view(state)
        equity.append(view["equity"])
        cash.append(view["cash"])
        pos.append(view["positions"])
    return np.array(equity), np.array(cash), np.array(pos), np.concatenate(fills), state


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("execution", "max_leverage", "allow_short"),
                         [("next_open", 2.0, True), ("close", 1.0, False)])
def test_stepping_the_kernel_equals_simulate_bit_for_bit(perps, execution, max_leverage, allow_short):
    frames, funding = perps
    target = _momentum_targets(frames)
    costs = cs.Costs(fee_bps=4, slippage_bps=1, funding=funding)
    ref = cs.simulate(frames, target, costs=costs, execution=execution, max_leverage=max_leverage,
                      allow_short=allow_short)
    n = len(ref.equity)
    assert n > 8_700
    equity, cash, pos, fills, state = _step_through(frames, target, costs, execution=execution,
                                                    max_leverage=max_leverage, allow_short=allow_short,
                                                    restore_at=n // 2)
    assert equity.tobytes() == ref.equity.to_numpy().tobytes()
    assert cash.tobytes() == ref.cash.to_numpy().tobytes()
    assert pos.tobytes() == ref.positions.to_numpy().tobytes()
    assert len(fills) == len(ref.fills) > 100
    assert fills["qty"].tobytes() == np.where(ref.fills["side"] == "buy", 1.0, -1.0).__mul__(
        ref.fills["qty"].to_numpy()).tobytes()
    assert fills["price"].tobytes() == ref.fills["price"].to_numpy().tobytes()
    assert fills["fee"].tobytes() == ref.fills["fee"].to_numpy().tobytes()
    assert (ref.equity.index[fills["bar"]] == ref.fills["time"].to_numpy()).all()
    assert ref.metrics["funding_paid"] != 0.0
    stepped = metrics_dict(state[P_ACC:P_ACC + ACC_SIZE], ref.equity.index)
    assert np.array(list(stepped.values())).tobytes() == np.array(list(ref.metrics.values())).tobytes()


def test_state_round_trips_through_bytes_and_refuses_garbage():
    state = portfolio_init(3, 5_000.0)
    portfolio_step(state, [1.0, 2.0, 3.0], [1.1, 2.1, 3.1], [0.3, 0.3, 0.3])
    portfolio_step(state, [1.2, 2.2, np.nan], [1.3, 2.3, np.nan], [np.nan, 0.0, 0.5])
    back = portfolio_from_bytes(portfolio_to_bytes(state))
    assert back.tobytes() == state.tobytes() and back.flags.writeable
    assert portfolio_view(back)["bars"] == 2
    for junk in (b"", b"1234567", np.zeros(3).tobytes(), "state"):
        with pytest.raises(ConfigError):
            portfolio_from_bytes(junk)
    with pytest.raises(ConfigError, match="shape"):
        portfolio_step(state, [1.0, 2.0], [1.0, 2.0], [0.1, 0.1])
    with pytest.raises(ConfigError):
        portfolio_init(0, 100.0)
    with pytest.raises(ConfigError):
        portfolio_init(1, float("nan"))


def test_fills_are_records_a_store_can_write():
    state = portfolio_init(1, 1_000.0)
    portfolio_step(state, [100.0], [100.0], [1.0])
    fills = portfolio_step(state, [101.0], [102.0], [0.5], fee=0.001)
    assert fills.dtype == fill_dt and len(fills) == 1
    (fill,) = fills.tolist()
    assert fill[0] == 1 and fill[1] == 0 and fill[2] > 0 and fill[3] == 101.0
    assert fill[4] == pytest.approx(fill[2] * 101.0 * 0.001)


def test_bankruptcy_closes_out_and_stops_trading():
    """Short 5× into a rally that more than doubles the price: equity would go negative, so the
    account is closed out at that close."""
    state = portfolio_init(1, 1_000.0)
    kw = dict(fee=0.001, allow_short=True, max_leverage=5.0)
    portfolio_step(state, [100.0], [100.0], [-5.0], **kw)
    portfolio_step(state, [100.0], [100.0], [np.nan], **kw)  # short ~5× from this open
    assert portfolio_view(state)["positions"][0] < -49.0
    out = portfolio_step(state, [110.0], [250.0], [np.nan], **kw)  # capped at the open, then +127 %
    view = portfolio_view(state)
    assert view["equity"] == 0.0 and view["cash"] == 0.0 and view["bankrupt_bar"] == 2
    assert (view["positions"] == 0.0).all() and out["qty"][-1] > 0 and out["fee"][-1] == 0.0
    assert len(portfolio_step(state, [120.0], [90.0], [1.0], **kw)) == 0
    assert portfolio_view(state)["equity"] == 0.0
