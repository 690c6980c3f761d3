"""Parity, the issue's bar: one year of real hourly candles of two symbols (Binance BTC/USDT and
ETH/USDT, 2021), replayed through the daemon (paper broker, SQLite ledger) and backtested with
``Committee.backtest``: every order and every fill identical (``==`` on every float), and the
``coinswarm parity`` command says so on its last line with exit code 0."""

from __future__ import annotations

import pytest

from coinswarm.cli.main import main
from coinswarm.live.parity import compare

DATA = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_year_two_symbols_committee_bit_for_bit():
    report = compare(DATA, "committee", "2021-01-01", "2021-12-31")
    assert report.identical, report.first
    assert report.orders == report.fills == report.backtest_fills > 300


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_parity_command_last_line_and_exit_code(capsys):
    args = ["parity", "--strategy", "mean_reversion", "--start", "2021-01-01", "--end", "2021-12-31"]
    for source in DATA:
        args += ["--data", source]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("parity: ") and last.endswith(" fills compared, 0 differences")
    n_orders, n_fills = (int(last.split()[1]), int(last.split()[3]))
    assert n_orders == n_fills > 100


@pytest.mark.parametrize("column,cause", [("fee", "cost"), ("price", "price"), ("time", "timing")])
def test_a_divergence_is_found_and_named(monkeypatch, capsys, column, cause):
    import pandas as pd

    from coinswarm.live import parity

    real = parity.backtest_result

    def altered(*args, **kwargs):
        result = real(*args, **kwargs)
        fills = result.fills.copy()
        k = len(fills) // 2
        if column == "time":
            fills.loc[k, "time"] = fills.loc[k, "time"] + pd.Timedelta(hours=1)
        else:
            fills.loc[k, column] = fills.loc[k, column] * (1 + 1e-12)
        result.fills = fills
        return result

    monkeypatch.setattr(parity, "backtest_result", altered)
    report = parity.compare(DATA[:1], "trend", "2021-01-01", "2021-02-28")
    assert report.differences >= 1 and report.cause == cause, report.first
    args = ["parity", "--data", DATA[0], "--strategy", "trend", "--start", "2021-01-01", "--end", "2021-02-28"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"first divergence ({cause})" in out and not out.strip().endswith(" 0 differences")



@pytest.mark.timeout(300)
def test_the_money_moved_without_orders_is_compared_exactly(monkeypatch):
    import numpy as np

    import coinswarm as cs
    from coinswarm.live import parity

    financed = cs.Costs(fee_bps=10, cash_rate=0.04, borrow_rate=0.10)
    report = compare(DATA[:1], "trend", "2021-01-01", "2021-02-28", costs=financed)
    assert report.identical, report.first  # cash, interest and borrow fees equal to the bit
    real = parity.backtest_result

    def richer(*args, **kwargs):  # the backtest's interest one ulp higher: a difference
        result = real(*args, **kwargs)
        result.metrics = {**result.metrics, "interest_earned": np.nextafter(result.metrics["interest_earned"], 1e9)}
        return result

    monkeypatch.setattr(parity, "backtest_result", richer)
    report = compare(DATA[:1], "trend", "2021-01-01", "2021-02-28", costs=financed)
    assert report.differences == 1 and report.cause == "financing", report.first
    assert report.first.startswith("interest earned: daemon ") and "cash" not in report.first


@pytest.mark.timeout(300)
def test_a_csv_source_is_compared_under_its_symbol(tmp_path):
    import coinswarm as cs

    frame = cs.load_ohlcv(DATA[0], start="2021-01-01", end="2021-02-28")
    csv = tmp_path / "btc.csv"
    frame.assign(timestamp=frame.index.as_unit("ms").asi8)[["timestamp", "open", "high", "low", "close", "volume"]] \
        .to_csv(csv, index=False)
    report = compare([f"BTC/USDT={csv}"], "trend")
    assert report.identical and report.fills > 10, report.first  # the backtest called it 'asset': all differed
