"""2. Causality: outputs up to bar t are identical whether the component saw
``prices[:t]`` or all prices (20 cut points on real data)."""

import numpy as np
import pytest
from components import ALL, head, input_kind, length, outputs

N_CUTS = 20


@pytest.mark.parametrize("name", ALL)
def test_prefix_runs_match_the_full_run(name, inputs):
    prices = inputs[input_kind(name)]
    full = outputs(name, prices)
    n = length(prices)
    cuts = np.linspace(50, n - 1, N_CUTS).astype(int)
    for cut in cuts:
        prefix = outputs(name, head(prices, int(cut)))
        assert np.array_equal(prefix, full[:cut], equal_nan=True), f"{name} differs when cut at bar {cut}"
