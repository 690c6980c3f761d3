"""``cs.simulate``'s edge on real candles: every malformed price or target input is a typed
``CoinswarmError`` naming what is wrong; the small index helpers agree with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.engine import bar_length, day_end_mask, span_days
from coinswarm.errors import ConfigError, DataError, DuplicateTimestampError, SchemaError


@pytest.fixture(scope="module")
def btc(btc_1h):
    return btc_1h.iloc[:300]


@pytest.fixture(scope="module")
def eth(majors_1h):
    return majors_1h["ETH/USDT"].iloc[:300]


def _half(frame):
    return pd.Series(0.5, index=frame.index)


@pytest.mark.parametrize(("make", "error", "why"), [
    (lambda b: [b], ConfigError, "prices must be an OHLCV DataFrame or a non-empty dict of them, got list"),
    (lambda b: {}, ConfigError, "non-empty dict of them, got dict"),
    (lambda b: {1: b}, ConfigError, "prices must map symbol names .str. to OHLCV DataFrames; got int → DataFrame"),
    (lambda b: {"BTC/USDT": b.reset_index(drop=True)}, SchemaError, "DatetimeIndex of bar open times, got RangeIndex"),
    (lambda b: {"BTC/USDT": b.tz_convert("Asia/Tokyo")}, SchemaError, "must be in UTC, got tz=Asia/Tokyo"),
    (lambda b: {"BTC/USDT": b.tz_localize(None)}, SchemaError, "must be in UTC, got tz=None"),
    (lambda b: {"BTC/USDT": pd.concat([b, b.iloc[[5]]]).sort_index()}, DuplicateTimestampError, "repeats an earlier"),
    (lambda b: b.iloc[:0], DataError, "prices are empty"),
    (lambda b: b.drop(columns=["volume"]), SchemaError, r"missing column\(s\) \['volume'\]"),
    (lambda b: pd.concat([b, b[["close"]]], axis=1), SchemaError, "duplicate column names"),
    (lambda b: b.assign(close=b["close"].astype(str)), SchemaError, "column 'close' has dtype .*must be numbers"),
])
def test_malformed_prices_are_typed_errors(btc, make, error, why):
    prices = make(btc)
    target = _half(btc)
    with pytest.raises(error, match=why):
        cs.simulate(prices, target)


def test_integer_columns_are_taken_as_numbers(btc):
    ints = btc.assign(volume=btc["volume"].round().astype(np.int64))
    a = cs.simulate(ints, _half(btc))
    b = cs.simulate(btc.assign(volume=btc["volume"].round()), _half(btc))
    np.testing.assert_array_equal(a.equity.to_numpy(), b.equity.to_numpy())


def test_malformed_targets_are_typed_errors(btc, eth):
    both = {"BTC/USDT": btc, "ETH/USDT": eth}
    cases = [
        (both, _half(btc), "a Series target needs a single asset"),
        (both, pd.DataFrame({"BTC/USDT": 0.5}, index=btc.index), r"target has no column for \['ETH/USDT'\]"),
        (both, pd.DataFrame({"BTC/USDT": "x", "ETH/USDT": 0.5}, index=btc.index), "target columns must be numbers"),
        (btc, np.full((len(btc), 2), 0.5), r"target shape \(300, 2\) != prices \(300, 1\)"),
        (btc, [0.5] * len(btc), "target must be a Series, DataFrame or array, got list"),
        (btc, np.ones(len(btc), dtype=bool), "target array has dtype bool; target weights must be real numbers"),
        (btc, np.full((len(btc), 1, 1), 0.5), "target array must be 1-D or 2-D, got 3 dimensions"),
        (btc, _half(btc).iloc[1:], r"target index differs from the prices' index \(299 vs 300 rows\)"),
        (btc, _half(btc).where(btc.index != btc.index[7], np.inf), r"target is ±inf at row 7 \(2018-01-01 07:00"),
    ]
    for prices, target, why in cases:
        with pytest.raises(ConfigError, match=why):
            cs.simulate(prices, target)


def test_a_dataframe_target_in_another_column_order_is_reordered(btc, eth):
    both = {"BTC/USDT": btc, "ETH/USDT": eth}
    target = pd.DataFrame({"ETH/USDT": 0.2, "BTC/USDT": 0.6}, index=btc.index)
    a = cs.simulate(both, target)
    b = cs.simulate(both, target[["BTC/USDT", "ETH/USDT"]])
    np.testing.assert_array_equal(a.equity.to_numpy(), b.equity.to_numpy())
    one = cs.simulate(btc, np.full(len(btc), 0.5))
    np.testing.assert_array_equal(one.equity.to_numpy(), cs.simulate(btc, _half(btc)).equity.to_numpy())


def test_one_funding_series_for_several_assets_is_refused(btc, eth):
    rates = pd.Series([0.0001], index=pd.DatetimeIndex([btc.index[8]]))
    rates.index = rates.index.tz_convert("UTC")
    with pytest.raises(ConfigError, match="one funding Series given for several assets"):
        cs.simulate({"BTC/USDT": btc, "ETH/USDT": eth}, pd.DataFrame(0.4, index=btc.index, columns=["BTC/USDT",
                    "ETH/USDT"]), costs=cs.Costs(funding=rates))


def test_index_helpers():
    hours = pd.date_range("2024-01-01 20:00", periods=8, freq="1h", tz="UTC")
    assert bar_length(hours) == pd.Timedelta(hours=1)
    assert bar_length(hours[:1]) == pd.Timedelta(hours=1), "one bar: the default hour"
    mixed = hours.delete([2, 5])  # steps 1h,2h,1h,2h,1h: the most common wins
    assert bar_length(mixed) == pd.Timedelta(hours=1)
    tie = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 02:00", "2024-01-01 03:00"], tz="UTC")
    assert bar_length(tie) == pd.Timedelta(hours=1), "a tie: the smallest step"
    assert day_end_mask(hours).tolist() == [False, False, False, True, False, False, False, True]
    assert day_end_mask(hours[:0]).tolist() == []
    assert span_days(hours) == (8 / 24, 1 / 24)
    assert span_days(hours[:0]) == (0.0, 0.0)
