"""The portfolio committee works unchanged for 10–20 assets (issue 19: "it must work unchanged for
10–20 pairs"; with ten pairs the old hourly committee divided each vote by N and starved).

Only six spot pairs are bundled, so the larger universes are built from **real** hourly paths:
each bundled pair's 2021 path, plus its 2019 and 2020 paths re-dated onto 2021's hours (real
returns, moved in time; they stand for further coins, not for those dates). The property under
test needs only the shape "many assets", not a claim about any market.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import PortfolioCommittee

PAIRS = ("BTC", "ETH", "SOL", "XRP", "ADA", "LTC")
YEARS = ("2021", "2020", "2019")


def _redated(frame: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """``frame``'s first ``len(index)`` real bars on ``index`` (the path moved in time)."""
    out = frame.iloc[: len(index)].copy()
    out.index = index[: len(out)]
    return out


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    """16 assets: 6 real 2021 paths, then the pairs' 2020 and 2019 paths re-dated (SOL listed in 2020-08)."""
    base = cs.load_ohlcv("binance:BTC/USDT:1h", start="2021-01-01", end="2021-12-31")
    index = base.index
    assets: dict[str, pd.DataFrame] = {}
    for year in YEARS:
        for pair in PAIRS:
            try:
                frame = cs.load_ohlcv(f"binance:{pair}/USDT:1h", start=f"{year}-01-01", end=f"{year}-12-31")
            except cs.CoinswarmError:
                continue  # a pair listed later than that year
            if len(frame) < 0.95 * len(index):
                continue
            assets[f"{pair}{year}/USDT"] = _redated(frame, index)
    return assets


def _gross(committee: PortfolioCommittee, prices: dict[str, pd.DataFrame]) -> tuple[float, int]:
    """Mean gross target weight over the decision days after warm-up, and the orders sent."""
    orders = committee.targets(prices)
    held = orders.ffill().fillna(0.0)
    days = orders.notna().any(axis=1)
    return float(held.abs().sum(axis=1)[days].mean()), int(orders.notna().to_numpy().sum())


@pytest.mark.timeout(600)
def test_exposure_does_not_starve_as_the_universe_grows(universe):
    names = list(universe)
    assert len(names) >= 15, f"only {len(names)} real paths"
    committee = PortfolioCommittee()
    results = {n: _gross(committee, {k: universe[k] for k in names[:n]}) for n in (6, 12, len(names))}
    gross6 = results[6][0]
    assert gross6 > 0.05
    for n, (gross, orders) in results.items():
        assert gross <= 1.0 + 1e-9  # the gross-exposure cap holds at every size
        assert gross >= 0.5 * gross6, f"{n} assets: mean gross {gross:.3f} vs {gross6:.3f} with 6"
        assert orders >= results[6][1], f"{n} assets trade less ({orders}) than 6 ({results[6][1]})"


@pytest.mark.timeout(600)
def test_many_assets_backtest_after_costs(universe):
    """All 16 real paths through the engine: shared cash, 10 bps on every fill, next-open fills."""
    prices = universe
    orders = PortfolioCommittee().targets(prices)
    result = cs.simulate(prices, orders, costs=cs.Costs(fee_bps=10))
    equity = np.asarray(result.equity, dtype=float).ravel()
    assert np.isfinite(equity).all() and equity.min() > 0
    traded = {f for f in result.fills["symbol"]}
    assert len(traded) == len(prices)  # every asset trades: no starvation at 16
