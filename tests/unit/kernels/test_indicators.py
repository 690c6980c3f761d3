"""The shared indicators: the prices' log is the C library's, bit for bit, on any CPU (real BTC bars)."""

from __future__ import annotations

import math

import numpy as np

import coinswarm as cs
from coinswarm.kernels.indicators import log_each_nb, log_each_py, log_prices


def test_log_prices_is_the_c_librarys_log_bit_for_bit_on_real_closes():
    closes = cs.load_ohlcv("binance:BTC/USDT:1h", start="2021", end="2021-03")[["high", "low", "close"]].to_numpy()
    want = np.array([[math.log(v) for v in row] for row in closes])
    got = log_prices(closes)
    assert got.shape == closes.shape and got.tobytes() == want.tobytes()
    assert log_each_py(closes[:, 2].copy()).tobytes() == log_each_nb(closes[:, 2].copy()).tobytes()
    gaps = log_prices(np.array([[np.nan, 2.0], [1.0, 0.0]]))  # an aligned asset's missing bar stays NaN
    assert np.isnan(gaps[0, 0]) and gaps[1, 0] == 0.0 and gaps[0, 1] == math.log(2.0) and gaps[1, 1] == -np.inf
    assert log_prices(closes[::2, ::2]).tobytes() == want[::2, ::2].copy().tobytes()  # strided views too
