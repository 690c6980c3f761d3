"""The kill switch: drawdown, daily loss (UTC day), manual halt/resume, persistence, and the
filter that lets only reductions through while halted."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinswarm.errors import ConfigError
from coinswarm.live.config import RiskLimits
from coinswarm.live.killswitch import (
    DAY_MS,
    KillState,
    KillSwitch,
    filter_intents,
    halt,
    is_reduction,
    limit_intents,
    update,
)
from coinswarm.live.ledger import Ledger
from coinswarm.live.protocols import OrderIntent, Side

LIMITS = RiskLimits(max_drawdown=0.2, daily_loss=0.05, max_position=1.0, max_order_notional=1e6)
DAY0 = 19_675 * DAY_MS  # a UTC midnight


def intent(symbol: str, side: Side, qty: float, reduce_only: bool = False) -> OrderIntent:
    return OrderIntent(f"{symbol}-{side.value}-{qty}", symbol, side, qty, DAY0, "s", reduce_only=reduce_only)


def test_drawdown_trips_at_the_limit_from_the_peak_and_stays_until_resume():
    state = update(KillState(), 1000.0, DAY0, LIMITS)
    state = update(state, 1500.0, DAY0 + 1, LIMITS)
    state = update(state, 1201.0, DAY0 + 2 + DAY_MS, LIMITS)  # a new day: -19.9 % from the peak
    assert not state.halted and state.peak_equity == 1500.0
    state = update(state, 1200.0, DAY0 + 3 + DAY_MS, LIMITS)
    assert state.halted and state.reason == "drawdown" and "20.00%" in state.detail
    assert update(state, 1500.0, DAY0 + 3 * DAY_MS, LIMITS).halted  # recovery does not lift it


def test_daily_loss_trips_within_the_utc_day_and_lifts_at_the_next():
    state = update(KillState(), 1000.0, DAY0 + 3_600_000, LIMITS)
    state = update(state, 1100.0, DAY0 + DAY_MS - 1, LIMITS)
    assert not state.halted and state.day_start_equity == 1000.0
    state = update(state, 1040.0, DAY0 + DAY_MS, LIMITS)  # new day starts at 1040
    state = update(state, 988.0, DAY0 + DAY_MS + 5, LIMITS)
    assert state.halted and state.reason == "daily_loss" and state.since_ms == DAY0 + DAY_MS + 5
    assert not update(state, 988.0, DAY0 + 2 * DAY_MS, LIMITS).halted


def test_a_manual_halt_is_not_lifted_by_a_new_day():
    state = halt(update(KillState(), 1000.0, DAY0, LIMITS), "manual", "ops", DAY0)
    assert update(state, 1000.0, DAY0 + 5 * DAY_MS, LIMITS).halted


@pytest.mark.parametrize("equity", [math.nan, math.inf, -math.inf])
def test_non_finite_equity_is_refused(equity):
    with pytest.raises(ConfigError, match="finite"):
        update(KillState(), equity, DAY0, LIMITS)


def test_an_unknown_reason_is_refused():
    with pytest.raises(ConfigError, match="reason 'oops'"):
        halt(KillState(), "oops", "", DAY0)


def test_halt_and_resume_are_persisted(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    ledger = Ledger(url)
    ledger.migrate()
    switch = KillSwitch(ledger, LIMITS)
    switch.observe(1000.0, DAY0)
    switch.halt(DAY0 + 1, "operator says stop")
    ledger.close()
    reopened = Ledger(url)
    switch = KillSwitch(reopened, LIMITS)
    assert switch.halted and switch.state.detail == "operator says stop" and switch.state.peak_equity == 1000.0
    switch.observe(700.0, DAY0 + 2)  # would trip the drawdown; the first reason stays
    assert switch.state.reason == "manual"
    switch.resume(DAY0 + 3, equity=700.0)
    assert not switch.halted and switch.state.peak_equity == 700.0
    assert not switch.observe(690.0, DAY0 + 4).halted
    reopened.close()


def test_while_halted_only_reductions_pass_and_they_cannot_flip_together():
    halted = KillState(halted=True, reason="manual")
    intents = [intent("BTC/USDT", Side.SELL, 0.6), intent("BTC/USDT", Side.SELL, 0.6),
               intent("ETH/USDT", Side.BUY, 1.0), intent("ETH/USDT", Side.BUY, 3.0),
               intent("SOL/USDT", Side.SELL, 1.0, reduce_only=True)]
    passed, blocked = filter_intents(intents, {"BTC/USDT": 1.0, "ETH/USDT": -2.0}, halted)
    assert passed == [intents[0], intents[2]]
    assert blocked == [intents[1], intents[3], intents[4]]
    assert filter_intents(intents, {}, KillState()) == (intents, [])


@settings(max_examples=200, deadline=None)
@given(position=st.floats(-10, 10, allow_nan=False),
       orders=st.lists(st.tuples(st.booleans(), st.floats(0, 20, allow_nan=False)), max_size=8))
def test_while_halted_the_passed_intents_never_grow_or_flip_the_position(position, orders):
    intents = [intent("BTC/USDT", Side.BUY if buy else Side.SELL, qty) for buy, qty in orders]
    passed, blocked = filter_intents(intents, {"BTC/USDT": position}, KillState(halted=True, reason="manual"))
    assert len(passed) + len(blocked) == len(intents)
    left = position
    for order in passed:
        assert is_reduction(order, left)
        left += order.qty if order.side is Side.BUY else -order.qty
        assert abs(left) <= abs(position) + 1e-9 and left * position >= -1e-9


def test_sizing_limits_block_big_orders_and_positions_but_never_reductions():
    limits = RiskLimits(max_drawdown=0.2, daily_loss=0.05, max_position=1.0, max_order_notional=30_000.0)
    big = intent("BTC/USDT", Side.BUY, 0.7)  # 35,000 notional at 50,000
    ok = intent("BTC/USDT", Side.BUY, 0.5)
    over = intent("BTC/USDT", Side.BUY, 0.4)  # 0.3 + 0.5 + 0.4 > 1.0
    unpriced = intent("DOGE/USDT", Side.BUY, 1.0)
    cut = intent("ETH/USDT", Side.SELL, 5.0)  # reduces a 5 ETH long: passes despite its notional
    passed, blocked = limit_intents([big, ok, over, unpriced, cut], {"BTC/USDT": 0.3, "ETH/USDT": 5.0},
                                    {"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0}, limits)
    assert passed == [ok, cut]
    reasons = dict((i.client_order_id, why) for i, why in blocked)
    assert "max_order_notional" in reasons[big.client_order_id]
    assert "beyond max_position" in reasons[over.client_order_id]
    assert "no price" in reasons[unpriced.client_order_id]
