import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError


@pytest.mark.parametrize("base", ["ETH", "LTC", "XRP", "ADA", "SOL"])
def test_resample_reproduces_shipped_daily_files(base):
    hourly = cs.load_ohlcv(f"binance:{base}/USDT:1h")
    shipped = cs.load_ohlcv(f"binance:{base}/USDT:1d")
    ours = cs.resample_ohlcv(hourly, "1d")
    pd.testing.assert_frame_equal(ours, shipped, check_freq=False, rtol=0, atol=0)


def test_resample_btc_matches_genuine_binance_daily_on_overlap():
    ours = cs.resample_ohlcv(cs.load_ohlcv("binance:BTC/USDT:1h", start="2017-08-18"), "1d")
    genuine = cs.load_ohlcv("binance:BTC/USDT:1d", start="2017-08-18")
    pd.testing.assert_frame_equal(ours, genuine.loc[ours.index], check_freq=False)


def test_resample_4h_and_refuses_finer(btc_1h):
    four = cs.resample_ohlcv(btc_1h.loc["2024-01-01"], "4h")
    assert len(four) == 6 and four["volume"].sum() == pytest.approx(
        btc_1h.loc["2024-01-01", "volume"].sum())
    with pytest.raises(ConfigError):
        cs.resample_ohlcv(btc_1h, "5m")


def test_align_outer_and_inner(majors_1h):
    outer = cs.align(majors_1h)
    inner = cs.align(majors_1h, how="inner")
    assert len({len(df) for df in outer.values()}) == 1
    assert outer["SOL/USDT"]["close"].isna().sum() > 15_000  # SOL listed 2020-08
    assert inner["BTC/USDT"].index[0] == pd.Timestamp("2020-08-11 06:00", tz="UTC")
    assert not inner["SOL/USDT"]["close"].isna().any()
