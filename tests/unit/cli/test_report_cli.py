"""``coinswarm report`` in-process on short windows of real data: a multi-asset backtest, a
walk-forward and a committee backtest each write a tearsheet; contradictory flags exit 2 with
one line and write nothing."""

from __future__ import annotations

import pytest

from coinswarm.cli.main import main


def _page(path):
    text = path.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") and "</html>" in text
    return text


def test_a_two_asset_backtest_writes_a_tearsheet(tmp_path, capsys):
    out = tmp_path / "two.html"
    code = main(["report", "--out", str(out), "--data", "binance:BTC/USDT:1h,binance:ETH/USDT:1h",
                 "--start", "2022-01-01", "--end", "2022-03-31", "--strategy", "buy_and_hold"])
    assert code == 0
    page = _page(out)
    assert "BTC/USDT" in page and "ETH/USDT" in page
    assert f"tearsheet: {out}" in capsys.readouterr().out


@pytest.mark.timeout(600)
def test_a_walk_forward_writes_its_tearsheet(tmp_path, capsys):
    out = tmp_path / "wf.html"
    code = main(["report", "--out", str(out), "--walkforward", "--start", "2021-01-01", "--end", "2022-06-30",
                 "--train", "180D", "--test", "90D", "--grid", "fast=10,20;slow=50,100"])
    assert code == 0, capsys.readouterr().err
    page = _page(out)
    assert "walk-forward sma_cross on binance:BTC/USDT:1h" in page


@pytest.mark.timeout(600)
def test_the_committee_backtest_carries_attribution(tmp_path, capsys):
    out = tmp_path / "committee.html"
    code = main(["report", "--out", str(out), "--strategy", "committee", "--start", "2023-01-01",
                 "--end", "2023-03-31", "--title", "committee Q1"])
    assert code == 0, capsys.readouterr().err
    assert "committee Q1" in _page(out)


@pytest.mark.parametrize(("flags", "why"), [
    (["--walkforward", "--params", "fast=5,slow=20"], "--params is for one backtest"),
    (["--grid", "fast=5;slow=20"], "--grid, --train and --test are for --walkforward"),
    (["--start", "2023-02-01", "--end", "2023-01-01"], "--end 2023-01-01 is before --start 2023-02-01"),
    (["--data", "binance:BTC/USDT:1h,binance:BTC/USDT:5m:2022-08_2023-09"],
     "--data holds two data sets of the symbol BTC/USDT"),
])
def test_contradictory_flags_exit_2_with_one_line(tmp_path, capsys, flags, why):
    out = tmp_path / "never.html"
    code = main(["report", "--out", str(out), "--start", "2023-01-01", "--end", "2023-01-31", *flags])
    err = capsys.readouterr().err
    assert code == 2 and why in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
