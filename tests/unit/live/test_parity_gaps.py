"""Financing on gapped real data: the backtest and the daemon finance a UTC day at the first bar
whose close reaches the day's end (:func:`coinswarm.kernels.days.finance_days`), so a replay of
candles with missing hours and days, ending mid-day, equals the financed backtest — cash,
interest and borrow fees exactly (``coinswarm parity`` reported a ``financing`` difference
while the backtest financed each day's last *present* bar and the final bar).

Real Binance BTC/USDT and ETH/USDT 1h candles (2021-01 → 2021-03) with bars dropped: a whole
day, a day's last hours, hours inside a day, one symbol's afternoon, and the series cut at 15:00.
"""

from __future__ import annotations

import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.live.parity import compare

FINANCED = cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.10)
DROPPED = [("2021-01-15 00:00", "2021-01-15 23:00"),  # a whole day
           ("2021-01-20 20:00", "2021-01-20 23:00"),  # the day's last hours
           ("2021-02-03 10:00", "2021-02-03 14:00"),  # inside a day
           ("2021-02-27 22:00", "2021-03-01 02:00")]  # across two day ends
END = "2021-03-30 15:00"  # mid-day


def gapped_csv(tmp_path, symbol: str, extra: tuple[str, str] | None = None) -> str:
    """``SYMBOL=path`` of the real candles with :data:`DROPPED` (and ``extra``) removed."""
    frame = cs.load_ohlcv(f"binance:{symbol}:1h", start="2021-01-01", end="2021-03-31")
    frame = frame[frame.index <= pd.Timestamp(END, tz="UTC")]
    for lo, hi in DROPPED + ([extra] if extra else []):
        frame = frame[~((frame.index >= pd.Timestamp(lo, tz="UTC")) & (frame.index <= pd.Timestamp(hi, tz="UTC")))]
    path = tmp_path / f"{symbol.replace('/', '')}.csv"
    frame.assign(timestamp=frame.index.as_unit("ms").asi8)[["timestamp", "open", "high", "low", "close", "volume"]] \
        .to_csv(path, index=False)
    return f"{symbol}={path}"


@pytest.mark.timeout(300)
def test_a_financed_replay_of_gapped_candles_equals_the_backtest(tmp_path):
    report = compare([gapped_csv(tmp_path, "BTC/USDT")], "trend", costs=FINANCED)
    assert report.identical, report.first
    assert report.fills > 10


@pytest.mark.timeout(300)
def test_two_symbols_with_their_own_gaps_are_financed_alike(tmp_path):
    sources = [gapped_csv(tmp_path, "BTC/USDT"),
               gapped_csv(tmp_path, "ETH/USDT", ("2021-02-10 12:00", "2021-02-11 06:00"))]
    report = compare(sources, "trend", costs=FINANCED)
    assert report.identical, report.first
    assert report.fills > 10
