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
