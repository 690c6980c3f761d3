"""The strategies' own code on a short slice of real data: the SMA indicators, ``sma_cross``'s
fused sweep kernel against the generic engine, ``gated_trend``'s memory gate and the
buy-and-hold baseline. Small inputs, so the coverage job's ``COINSWARM_DISABLE_NUMBA=1`` pass
runs the kernels as their Python twins too."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError
from coinswarm.kernels.indicators import running_sum_nb, sma_at_nb, sma_nb
from coinswarm.quorum.memory import MemoryView
from coinswarm.regime.detector import regimes
from coinswarm.strategies.gated import GatedTrend, trend_key


@pytest.fixture(scope="module")
def btc(btc_1h):
    return btc_1h.iloc[:1500]


def test_sma_matches_a_rolling_mean_with_nan_warm_up(btc):
    close = btc["close"].to_numpy(np.float64)
    got = sma_nb(close, 24)
    want = pd.Series(close).rolling(24).mean().to_numpy()
    assert np.isnan(got[:23]).all() and not np.isnan(got[23:]).any()
    np.testing.assert_allclose(got[23:], want[23:], rtol=1e-9)
    csum = running_sum_nb(close)
    assert csum[-1] == pytest.approx(close.sum(), rel=1e-12)
    assert sma_at_nb(csum, 23, 24) == csum[23] / 24
    assert np.isnan(sma_at_nb(csum, 5, 24))


def test_sma_cross_targets_are_long_exactly_where_fast_is_above_slow(btc):
    sma = cs.get_strategy("sma_cross")
    params = cs.SmaCrossParams(10, 40)
    target = sma.targets(btc, params)
    close = btc["close"]
    fast, slow = close.rolling(10).mean(), close.rolling(40).mean()
    clear = (fast - slow).abs() > 1e-6 * close  # away from ties, where summation order could flip
    assert (target[clear & (fast > slow)] == 1.0).all()
    assert (target[clear & (fast < slow)] == 0.0).all()
    assert (target.iloc[:39] == 0.0).all(), "flat during the slow window's warm-up"
    assert sma.warmup(params) == 40
    with pytest.raises(ConfigError, match="one asset"):
        sma.targets({"BTC/USDT": btc}, params)


def test_sma_cross_says_why_parameters_are_invalid():
    sma = cs.get_strategy("sma_cross")
    assert sma.invalid_reason(cs.SmaCrossParams(0, 10)).startswith("fast=0 < 1")
    assert "need 1 ≤ fast < slow" in sma.invalid_reason(cs.SmaCrossParams(30, 30))
    assert sma.invalid_reason(cs.SmaCrossParams(5, 30)) is None
    assert not sma.is_valid(cs.SmaCrossParams(30, 30)) and sma.is_valid(cs.SmaCrossParams(5, 30))


@pytest.mark.parametrize("execution", ["next_open", "close"])
def test_fused_sweep_equals_the_generic_engine_bit_for_bit(btc, execution):
    grid = {"fast": [5, 20], "slow": [30, 90]}
    fused = cs.sweep("sma_cross", btc, grid, execution=execution)
    generic = cs.sweep("sma_cross", btc, grid, execution=execution, fused=False)
    assert len(fused) == 4
    np.testing.assert_array_equal(fused.to_numpy(), generic.to_numpy())


def test_fused_kernel_declines_input_it_cannot_take(btc):
    sma = cs.get_strategy("sma_cross")
    kwargs = dict(fee=0.0, slip=0.0, init_cash=1.0, next_open=True, span=1.0, bar=1.0,
                  day_end=np.zeros(len(btc), dtype=np.bool_))
    combos = [cs.SmaCrossParams(5, 30)]
    assert sma.sweep_metrics({"BTC/USDT": btc}, combos, **kwargs) is None
    holed = btc.copy()
    holed.iloc[100, holed.columns.get_loc("close")] = np.nan
    assert sma.sweep_metrics(holed, combos, **kwargs) is None


def test_gated_trend_trades_only_in_enabled_cells(btc):
    gated = GatedTrend()
    params = cs.get_strategy("trend").Params()
    plain = gated.targets(btc, params)
    cells = regimes(btc, gaps="ignore")["regime"].to_numpy()
    enabled_cell = int(np.bincount(cells).argmax())
    view = MemoryView(patterns={trend_key(enabled_cell): {"enabled": True},
                                trend_key((enabled_cell + 1) % 9): {"enabled": False}})
    gated_target = gated.targets_with_memory(btc, params, view)
    on = cells == enabled_cell
    pd.testing.assert_series_equal(gated_target[on], plain[on])
    assert (gated_target[~on] == 0.0).all()
    assert (gated.targets_with_memory(btc, params, MemoryView()) == 0.0).all(), "empty memory: flat"
    assert trend_key(0).endswith("|trend")


def test_buy_and_hold_buys_once_when_every_spot_asset_trades(btc_1h):
    bh = cs.get_strategy("buy_and_hold")
    one = bh.targets(btc_1h.iloc[:50])
    assert one.iloc[0] == 1.0 and one.iloc[1:].isna().all()
    late = btc_1h.iloc[10:60]
    both = bh.targets({"BTC/USDT": btc_1h.iloc[:60], "ETH/USDT": late})
    first = both.dropna(how="all")
    assert list(first.index) == [late.index[0]]
    assert first.iloc[0].tolist() == [0.5, 0.5]
    with pytest.raises(ConfigError, match="non-empty dict"):
        bh.targets({})
    assert bh.warmup() == 0 and bh.is_valid(bh.Params()) and not bh.is_valid(bh.Params(1.5))
