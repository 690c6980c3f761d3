"""The components under test and how to read their outputs as one float matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

import coinswarm as cs
from coinswarm.regime import regimes

SINGLE_AGENTS = ("trend", "mean_reversion", "risk", "execution")
TWO_LEG = ("arbitrage", "carry")
ALL = SINGLE_AGENTS + TWO_LEG + ("regime", "committee", "committee_pair")


def load_inputs(start: str = "2022-01-01", end: str = "2023-12-31") -> dict[str, object]:
    """Real Binance 1h inputs for each kind of component."""
    btc = cs.load_ohlcv("binance:BTC/USDT:1h", start=start, end=end)
    eth = cs.load_ohlcv("binance:ETH/USDT:1h", start=start, end=end)
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start=start, end=end)
    return {"single": btc, "pair": cs.align({"ETH/USDT": eth, "BTC/USDT": btc}, how="inner"),
            "carry": cs.align({"BTC/USDT": btc, "BTC/USDT:USDT": perp}, how="inner")}


def input_kind(name: str) -> str:
    return {"arbitrage": "pair", "committee_pair": "pair", "carry": "carry"}.get(name, "single")


def outputs(name: str, prices) -> np.ndarray:
    """Every number the component emits per bar, as an (n, k) float array."""
    if name in SINGLE_AGENTS:
        return cs.get_strategy(name).run(prices, gaps="ignore").to_numpy(np.float64)
    if name in TWO_LEG:
        return cs.get_strategy(name).run(prices).to_numpy(np.float64)
    if name == "regime":
        frame = regimes(prices, gaps="ignore")
        codes = np.column_stack([frame[c].cat.codes for c in ("volatility", "trend", "liquidity", "session")])
        return np.column_stack([codes, frame[["regime", "realized_vol", "trend_t", "spread"]]]).astype(np.float64)
    if name == "committee":
        return cs.Committee.default().run(prices, gaps="ignore").to_numpy(np.float64)
    if name == "committee_pair":
        return cs.Committee.default(pair=("ETH/USDT", "BTC/USDT")).run(prices, gaps="ignore").to_numpy(np.float64)
    raise KeyError(name)


def head(prices, n: int):
    """The first ``n`` bars (of every frame)."""
    if isinstance(prices, dict):
        return {k: v.iloc[:n] for k, v in prices.items()}
    return prices.iloc[:n]


def length(prices) -> int:
    return len(next(iter(prices.values()))) if isinstance(prices, dict) else len(prices)


def mirrored(prices: pd.DataFrame) -> pd.DataFrame:
    """Price path reflected in log space: every up move becomes a down move of the same size."""
    out = pd.DataFrame({"open": 1.0 / prices["open"], "high": 1.0 / prices["low"],
                        "low": 1.0 / prices["high"], "close": 1.0 / prices["close"],
                        "volume": prices["volume"]}, index=prices.index)
    out.attrs = dict(prices.attrs)
    return out
