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



def spot_and_perp(start: str, end: str) -> tuple[dict, dict]:
    """BTC and ETH spot + the BTC perpetual, 1h from ``start`` to ``end`` (real, not aligned), and the
    perp's funding up to ``end``."""
    prices = {f"{a}/USDT": cs.load_ohlcv(f"binance:{a}/USDT:1h", start=start, end=end) for a in ("BTC", "ETH")}
    prices["BTC/USDT:USDT"] = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start=start, end=end)
    funding = {"BTC/USDT:USDT": cs.load_funding("binance-perp:BTC/USDT:funding").loc[:end]}
    return prices, funding


@pytest.fixture(scope="session")
def pairs_2021():
    """``(prices, funding)``: BTC, ETH spot + the BTC perpetual over 2021 (real); do not mutate."""
    return spot_and_perp("2021-01-01", "2021-12-31")


@pytest.fixture(scope="session")
def pairs_2021_22():
    """``(prices, funding)``: BTC, ETH spot + the BTC perpetual, 2021-06 → 2022-12 (real: a bull top and
    a bear); do not mutate."""
    return spot_and_perp("2021-06-01", "2022-12-31")
