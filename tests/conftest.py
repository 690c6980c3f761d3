"""Shared fixtures: real data from the catalog (../shared/datasets or COINSWARM_DATA_DIR)."""

from __future__ import annotations

import pytest

import coinswarm as cs
from coinswarm.data.catalog import find_entry, resolve_path


@pytest.fixture(scope="session")
def btc_1h():
    """Binance BTC/USDT 1h, 2018-01-01 → 2024-12-31 (real)."""
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2018", end="2024")


@pytest.fixture(scope="session")
def majors_1h():
    """BTC, ETH, SOL 1h (real), SOL from its 2020-08 listing."""
    names = {"BTC/USDT": "binance:BTC/USDT:1h", "ETH/USDT": "binance:ETH/USDT:1h",
             "SOL/USDT": "binance:SOL/USDT:1h"}
    return {s: cs.load_ohlcv(n, start="2018", end="2024") for s, n in names.items()}


@pytest.fixture(scope="session")
def btc_csv_path():
    """Path of the real BTC 1h CSV."""
    return resolve_path(find_entry("binance:BTC/USDT:1h"))

