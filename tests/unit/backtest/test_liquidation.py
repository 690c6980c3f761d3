"""The liquidation audit of short perpetuals and the borrow need of short spot legs.

The series here are synthetic on purpose: each test needs one specific shape (a spike of a known
size at a known bar, or none) that real data cannot be relied on to contain. The audit on the
real bundled data is exercised by ``coinswarm evidence --suite portfolio``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coinswarm.backtest.engine import simulate
from coinswarm.backtest.liquidation import (
    MAINTENANCE,
    LiquidationInputError,
    MarginError,
    audit_result,
    audit_short_leg,
    borrow_need,
    liquidation_threshold,
)
from coinswarm.errors import ConfigError, DataError


def _bars(n: int = 72, spike_at: int | None = None, spike: float = 0.0) -> pd.DataFrame:
    """Flat 100 with a ±0.5 % hourly range; optionally one bar whose high is ``100 × (1 + spike)``."""
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    close = np.full(n, 100.0)
    high = close * 1.005
    if spike_at is not None:
        high[spike_at] = 100.0 * (1.0 + spike)
    return pd.DataFrame({"open": close, "high": high, "low": close * 0.995, "close": close, "volume": 1.0},
                        index=index)


def _short(index: pd.DatetimeIndex, start: int, stop: int, units: float = -2.0) -> pd.Series:
    position = np.zeros(len(index))
    position[start:stop] = units
    return pd.Series(position, index=index)


def test_threshold_is_the_isolated_short_liquidation_price():
    x = liquidation_threshold(0.5, 0.005)
    assert x == pytest.approx(0.495 / 1.005)
    # at that excursion the margin balance equals the maintenance margin of the current notional
    assert 0.5 - x == pytest.approx(0.005 * (1 + x))


def test_spike_breaches_at_its_bar_with_the_margin_as_loss():
    bars = _bars(spike_at=30, spike=0.60)
    leg = audit_short_leg(bars, _short(bars.index, 10, 60), margin=0.5, symbol="X:USDT")
    assert leg["sets"] == 1 and leg["short_bars"] == 50
    assert len(leg["breaches"]) == 1
    breach = leg["breaches"][0]
    assert breach["time"] == bars.index[30] and breach["set_time"] == bars.index[10]
    assert breach["excursion"] == pytest.approx(0.60)
    assert breach["loss"] == pytest.approx(0.5 * 2.0 * 100.0)  # margin × units × set price
    assert leg["worst_time"] == bars.index[30]
    assert leg["min_headroom"] == pytest.approx(liquidation_threshold(0.5) - 0.60)


def test_spike_outside_the_held_span_or_below_the_buffer_is_no_breach():
    bars = _bars(spike_at=65, spike=0.60)  # after the short was closed at bar 60
    leg = audit_short_leg(bars, _short(bars.index, 10, 60), margin=0.5)
    assert leg["breaches"] == [] and leg["worst_excursion"] == pytest.approx(0.005)
    bars = _bars(spike_at=30, spike=0.40)  # inside, but under the +49.3 % buffer
    leg = audit_short_leg(bars, _short(bars.index, 10, 60), margin=0.5)
    assert leg["breaches"] == [] and leg["min_headroom"] == pytest.approx(liquidation_threshold(0.5) - 0.40)
    flat = _bars()
    assert audit_short_leg(flat, _short(flat.index, 10, 60), margin=0.5)["breaches"] == []


def test_exchange_gaps_are_skipped_and_counted():
    bars = _bars(spike_at=30, spike=0.60)
    bars.iloc[[20, 30]] = np.nan  # two missing bars, one of them where the spike was
    bars.iloc[10, bars.columns.get_loc("open")] = np.nan  # the set bar too: the last close before it is used
    leg = audit_short_leg(bars, _short(bars.index, 10, 60), margin=0.5)
    assert leg["gap_bars"] == 2 and leg["breaches"] == []
    assert leg["worst_excursion"] == pytest.approx(0.005)


def test_daily_topup_resets_the_set_price_every_day():
    """A slow 60 % rise over three days breaches with margin set once, not with a daily top-up."""
    bars = _bars(n=96)
    path = 100.0 * np.exp(np.linspace(0.0, math.log(1.6), 96))
    bars["open"] = bars["close"] = path
    bars["high"] = path * 1.001
    position = _short(bars.index, 0, 96)
    assert len(audit_short_leg(bars, position, 0.5)["breaches"]) == 1
    topped = audit_short_leg(bars, position, 0.5, daily_topup=True)
    assert topped["breaches"] == [] and topped["sets"] == 4


def test_audit_result_on_an_engine_run_and_sharpe_after_the_loss():
    spot = _bars(n=24 * 6)
    perp = _bars(n=24 * 6, spike_at=24 * 3, spike=0.70)
    prices = {"X/USDT": spot, "X/USDT:USDT": perp}
    target = pd.DataFrame(np.nan, index=spot.index, columns=list(prices))
    target.iloc[5] = [0.5, -0.5]
    result = simulate(prices, target, allow_short=True)
    audit = audit_result(result, margin=0.5)
    assert audit["breaches"] == 1 and audit["worst_symbol"] == "X/USDT:USDT"
    assert audit["breach_list"][0]["time"] == perp.index[24 * 3]
    units = -result.positions["X/USDT:USDT"].iloc[-1]
    assert audit["loss"] == pytest.approx(0.5 * units * 100.0)
    lost = audit["loss"] / result.assumptions["init_cash"]
    assert audit["total_return_after_liquidation"] == pytest.approx(audit["total_return"] - lost)
    assert audit["sharpe_after_liquidation"] != audit["sharpe_excess"]
    spot_mark = audit_result(result, margin=0.5, mark="spot")
    assert spot_mark["breaches"] == 0 and spot_mark["sharpe_after_liquidation"] == spot_mark["sharpe_excess"]


def test_borrow_need_counts_short_spot_notional_days():
    bars = _bars(n=24 * 4)
    target = pd.Series(np.nan, index=bars.index)
    target.iloc[0] = -0.5
    result = simulate(bars, target, allow_short=True)
    need = borrow_need(result)
    assert need["days"] == 4 and need["mean_short"] == pytest.approx(0.5, rel=0.01)
    assert need["notional_days"] == pytest.approx(2.0, rel=0.01)
    assert need["cost_per_year"]["0.1"] == pytest.approx(0.05, rel=0.01)


def test_bad_inputs_raise_typed_errors_that_say_what_is_valid():
    bars = _bars()
    position = _short(bars.index, 10, 60)
    with pytest.raises(LiquidationInputError, match="reindex") as err:
        audit_short_leg(bars, position.iloc[1:], 0.5)
    assert isinstance(err.value, DataError)
    with pytest.raises(LiquidationInputError, match="high"):
        audit_short_leg(bars.drop(columns="high"), position, 0.5)
    blind = bars.assign(high=np.nan)
    with pytest.raises(LiquidationInputError, match="no finite high"):
        audit_short_leg(blind, position, 0.5)
    for margin in (MAINTENANCE, 0.001, -1.0, math.nan):
        with pytest.raises(MarginError, match="above the maintenance margin") as err:
            audit_short_leg(bars, position, margin)
        assert isinstance(err.value, ConfigError)
    with pytest.raises(MarginError, match=r"\[0, 0.5\)"):
        liquidation_threshold(0.5, maintenance=0.6)
    result = simulate({"X/USDT": bars, "X/USDT:USDT": bars},
                      pd.DataFrame({"X/USDT": 0.5, "X/USDT:USDT": -0.5}, index=bars.index), allow_short=True)
    with pytest.raises(ConfigError, match="'perp'"):
        audit_result(result, mark="index")


@pytest.mark.timeout(120)
def test_real_rally_breaches_a_margin_set_once_but_not_a_daily_topup():
    """Real data: a BTC carry (long spot, short perp) opened 2020-10-01 and never rebalanced meets the
    Q4 2020 rally (BTC 10.8k → 16.1k by 2020-11-12, 29k by December); topped up daily, the worst
    one-day rise stays far under +49 %."""
    import coinswarm as cs
    from coinswarm.backtest.portfolio_evidence import _liquidation_lines, liquidation_fields

    prices = {"BTC/USDT": cs.load_ohlcv("binance:BTC/USDT:1h", start="2020-10-01", end="2020-12-31"),
              "BTC/USDT:USDT": cs.load_ohlcv("binance-perp:BTC/USDT:1h", start="2020-10-01", end="2020-12-31")}
    index = prices["BTC/USDT"].index.union(prices["BTC/USDT:USDT"].index)
    target = pd.DataFrame(np.nan, index=index, columns=list(prices))
    target.iloc[0] = [0.5, -0.5]
    result = simulate(prices, target, allow_short=True, max_leverage=2.0)  # the committee's cap: no trims
    fields = liquidation_fields(result, 0.04)["liquidation"]
    once, topped = fields["fills"], fields["daily_topup"]
    assert once["breaches"] == 1 and once["breach_times"][0].startswith("BTC/USDT:USDT 2020-11-12")
    assert topped["breaches"] == 0 and 0.2 < topped["min_headroom"] < once["threshold"]
    row = {"universe": 2, "phase": "development", "strategy": "committee", "liquidation": fields,
           "borrow": borrow_need(result)}
    text = "\n".join(_liquidation_lines([row]))
    assert "| 2 | development | committee |" in text and "| 1 / 1 / 0 / 0 |" in text and "2020-11-12" in text


def test_shortfall_is_the_lost_margin_less_the_loss_the_backtest_booked_and_freezes_at_the_next_fill():
    from coinswarm.backtest.liquidation import shortfall

    index = pd.date_range("2024-01-01", periods=6, freq="h", tz="UTC")
    close = pd.Series([100.0, 120.0, 151.0, 130.0, 110.0, 90.0], index=index)
    breach = {"time": index[2], "until": index[4], "set_price": 100.0, "units": 2.0, "loss": 0.5 * 2.0 * 100.0}
    gap = shortfall(close, breach).to_numpy()
    # before the breach nothing; at it the margin (100) less the short's booked loss (2 × 51); then frozen
    assert gap.tolist() == pytest.approx([0.0, 0.0, 100.0 - 102.0, 100.0 - 60.0, 40.0, 40.0])
