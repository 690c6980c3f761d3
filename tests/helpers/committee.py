"""Helpers shared by the committee tests (``from tests.helpers.committee import …``)."""

from __future__ import annotations

import numpy as np


def step_orders(committee, prices: dict) -> np.ndarray:
    """Step ``committee`` bar by bar over aligned ``prices`` as the live daemon does: each bar's orders
    (a row of NaN where a step returns none), shaped like the close prices."""
    state = committee.init(tuple(prices))
    closes = np.column_stack([f["close"].to_numpy() for f in prices.values()])
    stamps = next(iter(prices.values())).index.as_unit("ms").asi8
    live = np.full(closes.shape, np.nan)
    for t in range(len(stamps)):
        _, orders = committee.step(state, int(stamps[t]), closes[t])
        if orders is not None:
            live[t] = orders
    return live
