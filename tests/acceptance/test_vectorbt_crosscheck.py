"""coinswarm's engine against vectorbt on real data.

Conventions compared on purpose: vectorbt rejects orders below ``min_size=1e-8`` units by
default while coinswarm skips orders below 1e-10 of equity, so vectorbt runs with
``min_size=0``. coinswarm scales targets whose gross exceeds ``max_leverage`` while vectorbt
fills in call order until cash runs out, so the rebalancing targets here keep gross ≤ 1.
"""

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs

vbt = pytest.importorskip("vectorbt")


def _rebalancing_weights(close: pd.DataFrame) -> pd.DataFrame:
    momentum = close.pct_change(24)
    weights = (momentum.rank(axis=1) / (2.0 * close.shape[1]) * 0.95).fillna(0.0)
    weights.iloc[::7] = 0.9 / close.shape[1]  # forces frequent two-way trading
    return weights


def _vbt_equity(close, weights, fee, slip):
    pf = vbt.Portfolio.from_orders(
        close, size=weights, size_type="targetpercent", fees=fee, slippage=slip,
        init_cash=10_000.0, cash_sharing=True, group_by=True, call_seq="auto", min_size=0.0,
        freq="1h",
    )
    return pf.value(), pf.orders.count()


def test_single_asset_btc_2018_2024_matches_vectorbt(btc_1h):
    close = btc_1h[["close"]].rename(columns={"close": "BTC/USDT"})
    # 0.8 after a rising day, 0.2 after a falling one: rebalances every bar as prices drift
    weights = (0.5 + 0.3 * np.sign(close.pct_change(24))).fillna(0.0)
    ours = cs.simulate(btc_1h, weights, costs=cs.Costs(fee_bps=10, slippage_bps=5),
                       execution="close")
    theirs, n_orders = _vbt_equity(close, weights, 0.001, 0.0005)
    # coinswarm also sends orders between 1e-10 of equity and vectorbt's zero-cash cut-off
    assert n_orders > 20_000 and abs(len(ours.fills) - n_orders) <= 0.01 * n_orders
    np.testing.assert_allclose(ours.equity.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=0)


def test_three_assets_shared_cash_matches_vectorbt(majors_1h):
    frames = cs.align(majors_1h, how="inner")
    close = pd.DataFrame({s: df["close"] for s, df in frames.items()})
    weights = _rebalancing_weights(close)
    ours = cs.simulate(frames, weights, costs=cs.Costs(fee_bps=10, slippage_bps=5),
                       execution="close")
    theirs, n_orders = _vbt_equity(close, weights, 0.001, 0.0005)
    assert len(ours.fills) == n_orders > 50_000
    np.testing.assert_allclose(ours.equity.to_numpy(), theirs.to_numpy(), rtol=1e-9, atol=0)


def test_sweep_final_values_equal_vectorbt_from_signals():
    prices = cs.load_ohlcv("binance:BTC/USDT:5m:2022-08_2023-09").iloc[:40_000]
    grid = {"fast": [5, 10, 25, 50], "slow": [20, 60, 130, 210]}
    ours = cs.sweep("sma_cross", prices, grid, execution="close")
    fast = vbt.MA.run(prices["close"], [int(f) for f in ours["fast"]], short_name="fast")
    slow = vbt.MA.run(prices["close"], [int(s) for s in ours["slow"]], short_name="slow")
    entries = fast.ma.to_numpy() > slow.ma.to_numpy()  # NaN warm-up compares False: flat
    pf = vbt.Portfolio.from_signals(prices["close"], entries, ~entries, fees=0.001,
                                    init_cash=10_000.0, freq="5min")
    np.testing.assert_allclose(ours["final_equity"].to_numpy(), pf.final_value().to_numpy(),
                               rtol=1e-9)
