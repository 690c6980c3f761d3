import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError

SMA = cs.get_strategy("sma_cross")


def test_golden_sma_cross_btc_1h(btc_1h):
    """Golden numbers: a change that moves them is a decision, not an accident."""
    result = cs.simulate(btc_1h, SMA.targets(btc_1h, cs.SmaCrossParams(20, 100)))
    assert result.metrics["n_trades"] == 400
    assert result.metrics["n_fills"] == 800
    assert result.equity.iloc[-1] == pytest.approx(111236.15487863183, rel=1e-12)
    assert result.assumptions["fee_bps"] == 10 and result.assumptions["execution"] == "next_open"
    assert result.assumptions["start"].startswith("2018-01-01")


def test_next_open_fills_at_following_bar_open(btc_1h):
    prices = btc_1h.iloc[:2000]
    target = SMA.targets(prices, cs.SmaCrossParams(10, 50))
    result = cs.simulate(prices, target, costs=cs.Costs(fee_bps=0))
    changes = target.diff().fillna(target.iloc[0]).ne(0)
    decided = target.index[changes.to_numpy()]
    expected_times = [prices.index[prices.index.get_loc(t) + 1] for t in decided
                      if prices.index.get_loc(t) + 1 < len(prices) and target[t] != 0
                      or prices.index.get_loc(t) > 0]
    fills = result.fills
    assert set(fills["time"]).issubset(set(expected_times))
    assert np.allclose(fills["price"].to_numpy(), prices.loc[fills["time"], "open"].to_numpy())


def test_fees_and_slippage_cost(btc_1h):
    prices = btc_1h.iloc[:5000]
    target = SMA.targets(prices, cs.SmaCrossParams(10, 50))
    free = cs.simulate(prices, target, costs=cs.Costs(fee_bps=0, slippage_bps=0))
    fees = cs.simulate(prices, target, costs=cs.Costs(fee_bps=10))
    slip = cs.simulate(prices, target, costs=cs.Costs(fee_bps=10, slippage_bps=5))
    assert free.equity.iloc[-1] > fees.equity.iloc[-1] > slip.equity.iloc[-1]
    assert fees.metrics["fees_paid"] == pytest.approx(fees.fills["fee"].sum())
    assert free.metrics["fees_paid"] == 0


def test_zero_and_nan_targets_never_trade(btc_1h):
    prices = btc_1h.iloc[:500]
    for value in (0.0, np.nan):
        result = cs.simulate(prices, pd.Series(value, index=prices.index))
        assert result.fills.empty and (result.equity == 10_000).all()


def test_funding_charged_on_perp_longs():
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2021-01-01", end="2021-03-31")
    funding = cs.load_funding("binance-perp:BTC/USDT", start="2021-01-01", end="2021-03-31")
    target = pd.Series(1.0, index=perp.index)
    result = cs.simulate(perp, target, costs=cs.Costs(fee_bps=0, funding=funding))
    units = result.positions.iloc[:, 0].shift(1).fillna(0.0)
    expected = (units * perp["open"] * funding.reindex(perp.index).fillna(0.0)).sum()
    assert result.metrics["funding_paid"] == pytest.approx(expected, rel=1e-12)
    assert expected > 0  # early 2021: longs paid
    no_funding = cs.simulate(perp, target, costs=cs.Costs(fee_bps=0))
    assert no_funding.equity.iloc[-1] - result.equity.iloc[-1] > 0


def test_multi_asset_shared_cash_respects_leverage(majors_1h):
    prices = {s: df.loc["2021"] for s, df in majors_1h.items()}
    target = pd.DataFrame(0.6, index=prices["BTC/USDT"].index, columns=list(prices))
    result = cs.simulate(prices, target)
    close = pd.DataFrame({s: df["close"] for s, df in prices.items()})
    gross = (result.positions.abs() * close).sum(axis=1)
    assert (gross <= result.equity * (1 + 1e-9)).all()
    assert (result.cash >= -1e-6).all()


def test_short_and_leverage(btc_1h):
    prices = btc_1h.loc["2022"]
    target = pd.Series(-2.0, index=prices.index)
    flat = cs.simulate(prices, target)
    assert flat.fills.empty  # shorts clipped when not allowed
    short = cs.simulate(prices, target, max_leverage=2.0, allow_short=True)
    # at each fill, valued at the fill bar's open, gross exposure is within 2x equity
    units = short.positions.iloc[:, 0]
    at_open = units * prices["open"]
    equity_at_open = short.cash + at_open
    traded = prices.index.isin(short.fills["time"])
    assert traded.sum() > 5000
    assert (at_open.abs()[traded] <= 2.0 * equity_at_open[traded] * (1 + 1e-9)).all()
    assert short.equity.iloc[-1] > 10_000  # 2022 was a bear market


def test_bad_inputs_raise_config_errors(btc_1h):
    prices = btc_1h.iloc[:100]
    target = pd.Series(1.0, index=prices.index)
    with pytest.raises(ConfigError, match="execution"):
        cs.simulate(prices, target, execution="same_bar")
    with pytest.raises(ConfigError, match="index differs"):
        cs.simulate(prices, target.iloc[:50])
    with pytest.raises(ConfigError, match="init_cash"):
        cs.simulate(prices, target, init_cash=-1)
    with pytest.raises(ConfigError, match="fee_bps"):
        cs.Costs(fee_bps=float("nan"))


def test_result_json_and_plot(btc_1h, tmp_path):
    prices = btc_1h.iloc[:3000]
    result = cs.simulate(prices, SMA.targets(prices, cs.SmaCrossParams()))
    payload = json.loads(result.to_json())
    assert {"fee_bps", "slippage_bps", "start", "end"} <= set(payload["assumptions"])
    assert "sharpe" in payload["metrics"]
    result.plot(str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").stat().st_size > 10_000
    assert "fees 10 bps" in str(result)


TWIN_SCRIPT = """
import numpy as np, pandas as pd, coinswarm as cs, sys
prices = {s: cs.load_ohlcv(f"binance:{s}:1h", start="2021-01-01", end="2021-03-31")
          for s in ("BTC/USDT", "ETH/USDT")}
close = pd.DataFrame({s: df["close"] for s, df in cs.align(prices).items()})
w = (close.pct_change(12).rank(axis=1) / 3.0).fillna(0.0)
r = cs.simulate(prices, w, costs=cs.Costs(fee_bps=10, slippage_bps=3))
sw = cs.sweep("sma_cross", prices["BTC/USDT"], {"fast": [5, 10], "slow": [20, 40]})
np.savez(sys.argv[1], equity=r.equity.to_numpy(), fills=r.fills[["qty", "price", "fee"]].to_numpy(),
         sweep=sw.drop(columns=["fast", "slow"]).to_numpy())
"""


def test_plain_python_twins_match_numba_bit_for_bit(tmp_path):
    outputs = {}
    for flag in ("0", "1"):
        path = tmp_path / f"twin{flag}.npz"
        env = dict(os.environ, COINSWARM_DISABLE_NUMBA=flag)
        subprocess.run([sys.executable, "-c", TWIN_SCRIPT, str(path)], env=env, check=True,
                       timeout=600)
        outputs[flag] = np.load(path)
    for key in ("equity", "fills", "sweep"):
        np.testing.assert_array_equal(outputs["0"][key], outputs["1"][key])
