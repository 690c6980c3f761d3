"""Golden numbers: SHA-256 of every public result on the bundled real data.

``python -m tests.acceptance.golden --write`` records them in ``golden.json``;
``tests/acceptance/test_golden.py`` checks that nothing moved (a change that moves them is a
decision, recorded by re-writing the file in the same commit, never an accident).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

PATH = Path(__file__).with_name("golden.json")


def digest(values) -> str:
    """SHA-256 of an array's, a Series' or a DataFrame's float64 bytes (and its shape)."""
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    array = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


def compute() -> dict[str, str]:
    """Every golden result, by name."""
    import coinswarm as cs

    btc = cs.load_ohlcv("binance:BTC/USDT:1h", start="2021", end="2022")
    eth = cs.load_ohlcv("binance:ETH/USDT:1h", start="2021", end="2022")
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2021", end="2022")
    costs = cs.Costs(fee_bps=10, slippage_bps=2)
    out: dict[str, str] = {}
    sma = cs.get_strategy("sma_cross")
    res = cs.simulate(btc, sma.targets(btc, cs.SmaCrossParams(fast=20, slow=100)), costs=costs)
    out["simulate_sma_equity"] = digest(res.equity)
    table = cs.sweep("sma_cross", btc, {"fast": [5, 10, 20], "slow": [50, 100]}, costs=costs)
    out["sweep_sma"] = digest(table.select_dtypes("number"))
    for name in ("trend", "mean_reversion", "risk", "execution"):
        agent = cs.get_strategy(name)
        out[f"run_{name}"] = digest(agent.run(btc, gaps="ignore"))
        out[f"simulate_{name}"] = digest(cs.simulate(btc, agent.targets(btc), costs=costs).equity)
    pair = cs.align({"ETH/USDT": eth, "BTC/USDT": btc}, how="inner")
    arb = cs.get_strategy("arbitrage")
    out["run_arbitrage"] = digest(arb.run(pair))
    carry_prices = cs.align({"BTC/USDT": btc, "BTC/USDT:USDT": perp}, how="inner")
    carry = cs.get_strategy("carry")
    out["run_carry"] = digest(carry.run(carry_prices))
    labels = cs.regimes(btc, gaps="ignore")
    out["regimes"] = digest(labels.select_dtypes("number"))
    out["regimes_codes"] = digest(labels["regime"].astype(np.float64))
    committee = cs.Committee.default()
    out["committee_run"] = digest(committee.run(btc, gaps="ignore"))
    out["committee_backtest"] = digest(committee.backtest(btc, costs=costs).equity)
    paired = cs.Committee.default(pair=("ETH/USDT", "BTC/USDT"))
    out["committee_pair_run"] = digest(paired.run(pair, gaps="ignore"))
    out["committee_pair_backtest"] = digest(paired.backtest(pair, costs=costs).equity)
    report = cs.walk_forward("sma_cross", btc, {"fast": [10, 20], "slow": [50, 100]}, train="180D", test="60D",
                             costs=costs)
    out["walk_forward_sma_equity"] = digest(report.oos_equity)
    return out


def main(argv: list[str]) -> int:
    found = compute()
    if "--write" in argv:
        PATH.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(found)} golden digests to {PATH}")
        return 0
    expected = json.loads(PATH.read_text())
    moved = sorted(k for k in expected if found.get(k) != expected[k])
    print("moved:", moved or "nothing")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
