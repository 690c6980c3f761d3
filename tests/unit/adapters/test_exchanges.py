"""The ccxt download recipe, driven by a local fake venue serving real candles (no network)."""

import json

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.adapters.exchanges import download_ohlcv, write_ohlcv_csv
from coinswarm.data.catalog import data_roots
from coinswarm.errors import DataError


class FakeVenue:
    """ccxt-shaped ``fetch_ohlcv`` over real candles; pages of ``limit`` from ``since``."""

    def __init__(self, df: pd.DataFrame, max_limit: int = 500):
        self.ts = df.index.as_unit("ms").asi8
        self.rows = df[["open", "high", "low", "close", "volume"]].to_numpy()
        self.max_limit = max_limit
        self.calls = 0

    def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
        self.calls += 1
        start = int(np.searchsorted(self.ts, since or 0))
        stop = start + min(limit or self.max_limit, self.max_limit)
        return [[int(t), *map(float, r)] for t, r in zip(self.ts[start:stop], self.rows[start:stop], strict=False)]


def test_download_pages_and_round_trips(tmp_path):
    real = cs.load_ohlcv("binance:ETH/USDT:1h", start="2018-02-01", end="2018-03-31")
    venue = FakeVenue(real, max_limit=300)
    got = download_ohlcv(venue, "ETH/USDT", "1h", "2018-02-01", "2018-04-01", limit=1000)
    assert venue.calls >= 5
    pd.testing.assert_frame_equal(got, real, check_freq=False)
    assert got.attrs["gaps"]["missing_bars"] == real.attrs["gaps"]["missing_bars"] > 0
    path = tmp_path / "eth.csv.gz"
    write_ohlcv_csv(got, path)
    pd.testing.assert_frame_equal(cs.load_ohlcv(path), real, check_freq=False)


def test_recorded_ccxt_response_parses_into_valid_candles(tmp_path):
    fixtures = [root / "ccxt_static" / "ccxt_response_binance.json" for root in data_roots()]
    fixture = next(f for f in fixtures if f.exists())  # StopIteration = fixtures missing: fail
    calls = json.loads(fixture.read_text())["methods"]["fetchOHLCV"]
    spot = next(c for c in calls if c["input"][:2] == ["BTC/USDT", "1h"])

    class Recorded:
        def fetch_ohlcv(self, symbol, timeframe, since=None, limit=None):
            return spot["parsedResponse"]

    got = download_ohlcv(Recorded(), "BTC/USDT", "1h", spot["input"][2])
    assert len(got) == 3 and got["close"].iloc[0] == 43488.71


def test_empty_venue_is_a_data_error():
    class Empty:
        def fetch_ohlcv(self, *a, **k):
            return []

    with pytest.raises(DataError, match="no candles"):
        download_ohlcv(Empty(), "BTC/USDT", "1h", "2020-01-01")


def test_venue_failures_and_bad_arguments_are_typed():
    import ccxt

    from coinswarm.errors import ConfigError

    class Offline:
        id = "fake"

        def fetch_ohlcv(self, *args):
            raise ccxt.NetworkError("no route to host")

    class Junk:
        def fetch_ohlcv(self, *args):
            return [["x", 1, 2]]

    with pytest.raises(DataError, match="fake fetch_ohlcv.*NetworkError: no route to host"):
        download_ohlcv(Offline(), "BTC/USDT", "1h", "2024-01-01")
    with pytest.raises(DataError, match="malformed page"):
        download_ohlcv(Junk(), "BTC/USDT", "1h", "2024-01-01")
    for kwargs, match in (({"symbol": "BTCUSDT"}, "BASE/QUOTE"), ({"timeframe": "0h"}, "timeframe"),
                          ({"since": "2024-13-01"}, "ISO-8601"), ({"until": "2023"}, "not after since"),
                          ({"exchange": "__doc__"}, "no exchange named")):
        args = {"exchange": Offline(), "symbol": "BTC/USDT", "timeframe": "1h", "since": "2024", **kwargs}
        with pytest.raises(ConfigError, match=match):
            download_ohlcv(**args)
