"""The CLI's argument checks (``coinswarm.cli.checks``): exact values pass, everything else is one
clear line (a ``ConfigError``, or argparse's type error carrying the same message)."""

from __future__ import annotations

import argparse
import os

import pytest

from coinswarm.cli import checks
from coinswarm.errors import ConfigError


@pytest.mark.parametrize(("check", "text", "want"), [
    (checks.bps, "7.5", 7.5), (checks.positive, "1e3", 1000.0), (checks.finite, "-2", -2.0),
    (checks.probability, "1", 1.0), (checks.whole(1, 10), "10", 10), (checks.date, "2018-01-01", "2018-01-01"),
    (checks.duration, "0D", "0D"), (checks.timeframe, "4h", "4h"),
])
def test_valid_arguments_pass(check, text, want):
    assert check(text) == want


@pytest.mark.parametrize(("check", "text", "why"), [
    (checks.bps, "abc", "'abc' is not a number"), (checks.bps, "nan", "'nan' is not a finite number"),
    (checks.bps, "1001", "1001 bps is outside the valid range 0 to 1000 bps"),
    (checks.positive, "0", "0 must be > 0"), (checks.finite, "inf", "'inf' is not a finite number"),
    (checks.probability, "1.5", r"1.5 is not a probability in \[0, 1\]"),
    (checks.whole(1, 10), "2.5", "'2.5' is not a whole number"),
    (checks.whole(1, 10), "11", "11 is outside the valid range 1 to 10"),
    (checks.date, "yesterday", "date"), (checks.duration, "90", "window='90' is not a duration"),
])
def test_invalid_arguments_are_argparse_type_errors_with_our_message(check, text, why):
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        check(text)


def test_output_files_and_folders(tmp_path):
    checks.check_output(None, "--out")
    checks.check_output(str(tmp_path / "a.html"), "--out")
    for bad, why in [(" ", "is not a file path"), (str(tmp_path), "is not a file path"),
                     (str(tmp_path / "no" / "a.html"), "does not exist; create it first")]:
        with pytest.raises(ConfigError, match=why):
            checks.check_output(bad, "--out")
    checks.check_folder(str(tmp_path / "new"), "--out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        checks.check_folder(str(tmp_path / "file"), "--out")
    with pytest.raises(ConfigError, match="its parent folder .* does not exist"):
        checks.check_folder(str(tmp_path / "no" / "new"), "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="is not writable"):
        checks.check_output(str(locked / "a.html"), "--out")


def test_data_names():
    assert checks.data_names(" binance:BTC/USDT:1h , x.csv ") == ["binance:BTC/USDT:1h", "x.csv"]
    with pytest.raises(ConfigError, match="names no data set"):
        checks.data_names(" , ")
    with pytest.raises(ConfigError, match="names a data set twice"):
        checks.data_names("a.csv,a.csv")


def test_values_ranges_and_lists():
    assert checks.parse_values("5:20:5") == [5, 10, 15, 20]
    assert checks.parse_values("0.5:1.5:0.5") == [0.5, 1, 1.5]
    assert checks.parse_values("1, 2.5,-3") == [1, 2.5, -3]
    for bad, why in [("5:1:1", "need start ≤ stop and step > 0"), ("1:5:0", "step > 0"), ("1:2", "need start"),
                     ("1:2000000:1", "gives 2,000,000 values; at most"), ("a,b", "'a' is not a number"),
                     ("1,inf", "'inf' is not a finite number"), (",".join(["1"] * 1_000_001), "gives 1,000,001")]:
        with pytest.raises(ConfigError, match=why):
            checks.parse_values(bad)


def test_grids_and_params():
    assert checks.parse_grid(["fast=5,10", "slow=20:40:20"], "sma_cross") == {"fast": [5, 10], "slow": [20, 40]}
    assert checks.parse_grid(["fast=5;;slow=30"], "sma_cross") == {"fast": [5], "slow": [30]}
    assert checks.parse_grid(None, "sma_cross")["fast"][0] == 5, "no --grid: the strategy's own default grid"
    for bad, why in [(["fast"], "grid entry 'fast' is not name=values"), (["=5"], "is not name=values"),
                     (["fast=5;fast=6"], "grid parameter 'fast' is given twice"), ([";"], "--grid names no parameter")]:
        with pytest.raises(ConfigError, match=why):
            checks.parse_grid(bad, "sma_cross")
    assert checks.parse_params("fast=20, slow=100") == {"fast": 20, "slow": 100}
    assert checks.parse_params(None) == {}
    for bad, why in [("fast", "parameter 'fast' is not name=value"), ("fast=1,fast=2", "'fast' is given twice"),
                     ("fast=1:5:1", "takes one value"), ("fast=1,2", "is not name=value")]:
        with pytest.raises(ConfigError, match=why):
            checks.parse_params(bad)
