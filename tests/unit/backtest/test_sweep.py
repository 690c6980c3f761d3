import numpy as np
import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError

GRID = {"fast": range(5, 51, 15), "slow": range(20, 211, 60)}


def test_fused_equals_generic_bit_for_bit(btc_1h):
    for execution in ("next_open", "close"):
        fused = cs.sweep("sma_cross", btc_1h, GRID, execution=execution)
        generic = cs.sweep("sma_cross", btc_1h, GRID, execution=execution, fused=False)
        np.testing.assert_array_equal(fused.to_numpy(), generic.to_numpy())


def test_sweep_rows_match_single_simulations(btc_1h):
    table = cs.sweep("sma_cross", btc_1h, GRID, costs=cs.Costs(fee_bps=7, slippage_bps=2))
    sma = cs.get_strategy("sma_cross")
    for _, row in table.sample(3, random_state=0).iterrows():
        params = cs.SmaCrossParams(int(row.fast), int(row.slow))
        result = cs.simulate(btc_1h, sma.targets(btc_1h, params),
                             costs=cs.Costs(fee_bps=7, slippage_bps=2))
        for name, value in result.metrics.items():
            assert row[name] == pytest.approx(value, rel=1e-12, nan_ok=True)
    assert table.attrs["assumptions"]["fee_bps"] == 7


def test_invalid_combinations_are_skipped_and_bad_grids_fail(btc_1h):
    table = cs.sweep("sma_cross", btc_1h.iloc[:3000], {"fast": [10, 50], "slow": [20, 40]})
    assert set(zip(table.fast, table.slow, strict=True)) == {(10, 20), (10, 40)}
    with pytest.raises(ConfigError, match="no parameter"):
        cs.sweep("sma_cross", btc_1h, {"speed": [1]})
    with pytest.raises(ConfigError, match="unknown strategy"):
        cs.sweep("moon", btc_1h, {})
    with pytest.raises(ConfigError, match="no valid combination"):
        cs.sweep("sma_cross", btc_1h, {"fast": [50], "slow": [10]})


@pytest.mark.slow
def test_dask_local_cluster_gives_identical_results(btc_1h):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = cs.sweep("sma_cross", btc_1h, GRID, client=client)
    local = cs.sweep("sma_cross", btc_1h, GRID)
    np.testing.assert_array_equal(remote.to_numpy(), local.to_numpy())


# --- issue 17: the sweep's boundary -------------------------------------------------------------


def test_sweep_of_none_or_an_unknown_strategy_is_typed(btc_1h):
    with pytest.raises(ConfigError, match="strategy must be a registered name"):
        cs.sweep(None, btc_1h.iloc[:500], {"fast": [5], "slow": [20]})
    with pytest.raises(ConfigError, match="unknown strategy 'moon'; available: .*sma_cross"):
        cs.sweep("moon", btc_1h.iloc[:500], {"fast": [5]})


def test_empty_grid_is_an_error_and_none_is_the_default_grid(btc_1h):
    with pytest.raises(ConfigError, match="empty grid for sma_cross; pass grid=None"):
        cs.sweep("sma_cross", btc_1h.iloc[:2000], {})
    table = cs.sweep("sma_cross", btc_1h.iloc[:2000], None)
    assert len(table) == len(cs.strategies.expand_grid(cs.get_strategy("sma_cross"), None)) == 184


def test_slow_longer_than_the_data_is_a_typed_error_not_nan_metrics(btc_1h):
    with pytest.raises(ConfigError, match=r"warm-up of 500 bars but the data .* has 300 bars"):
        cs.sweep("sma_cross", btc_1h.iloc[:300], {"fast": [5], "slow": [50, 500]})


def test_strict_parameter_coercion_in_a_grid(btc_1h):
    prices = btc_1h.iloc[:500]
    for bad in (2.5, True, float("nan"), float("inf"), 1j, "2.5", None):
        with pytest.raises(ConfigError, match="sma_cross.fast: cannot use"):
            cs.sweep("sma_cross", prices, {"fast": [bad], "slow": [50]})
    a = cs.sweep("sma_cross", prices, {"fast": [5.0, "10"], "slow": [np.int64(50)]})
    b = cs.sweep("sma_cross", prices, {"fast": [5, 10], "slow": [50]})
    assert a.equals(b)


def test_invalid_parameters_say_why():
    with pytest.raises(ConfigError, match="fast=200 ≥ slow=100"):
        cs.make_params(cs.get_strategy("sma_cross"), {"fast": 200, "slow": 100})
    with pytest.raises(ConfigError, match="e.g. fast=50 ≥ slow=10"):
        cs.strategies.expand_grid(cs.get_strategy("sma_cross"), {"fast": [50], "slow": [10]})


def test_sweep_refuses_bad_prices_and_settings(btc_1h):
    prices = btc_1h.iloc[:500]
    grid = {"fast": [5], "slow": [50]}
    broken = prices.copy()
    broken.iloc[10, broken.columns.get_loc("close")] = np.nan
    with pytest.raises(cs.DataError, match="close is nan"):
        cs.sweep("sma_cross", broken, grid)
    with pytest.raises(cs.DataError, match="tz-naive"):
        cs.sweep("sma_cross", prices.tz_localize(None), grid)
    for kwargs, match in (({"init_cash": 0}, "init_cash"), ({"init_cash": "100"}, "init_cash"),
                          ({"costs": "10bps"}, "costs must be"), ({"execution": "later"}, "execution")):
        with pytest.raises(ConfigError, match=match):
            cs.sweep("sma_cross", prices, grid, **kwargs)
