"""The portfolio committee's state as bytes, and funding told one settlement at a time (real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.committee.portfolio import PortfolioCommittee, PortfolioParams, PortfolioState
from coinswarm.committee.portfolio_state import FUNDING_SLACK_DAYS, LAYOUT, state_to_bytes
from coinswarm.errors import ConfigError, DataError, StaleStateError, StateError

PERP = "BTC/USDT:USDT"


def _no_funding_yet(funding: dict) -> dict:
    return {s: pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float) for s in funding}


def _drive(committee, aligned: dict, *, restore_every: int = 0, told: pd.Series | None = None) -> np.ndarray:
    """Step like the daemon: before each bar, tell the settlements before its close (``told``); every
    ``restore_every`` bars, continue from the state's bytes instead of the object."""
    state = committee.init(tuple(aligned))
    closes = np.column_stack([f["close"].to_numpy() for f in aligned.values()])
    stamps = next(iter(aligned.values())).index.as_unit("ms").asi8
    settle = told.index.as_unit("ms").asi8 if told is not None else np.zeros(0, dtype=np.int64)
    out, k = np.full(closes.shape, np.nan), 0
    for t in range(len(stamps)):
        while k < settle.size and settle[k] < stamps[t] + 3_600_000:
            committee.observe_funding(state, PERP, int(settle[k]), float(told.iloc[k]))
            k += 1
        _, orders = committee.step(state, int(stamps[t]), closes[t])
        if orders is not None:
            out[t] = orders
        if restore_every and t % restore_every == restore_every - 1:
            state = PortfolioState.from_bytes(state.to_bytes())
    return out


@pytest.fixture(scope="module")
def universe(pairs_2021):
    prices, funding = pairs_2021
    return {s: f.iloc[: 24 * 150] for s, f in cs.align(prices).items()}, funding


def test_funding_told_bar_by_bar_equals_the_whole_series_at_init(universe):
    aligned, funding = universe
    reference = _drive(PortfolioCommittee(funding), aligned)
    live = _drive(PortfolioCommittee(_no_funding_yet(funding)), aligned, told=funding[PERP])
    np.testing.assert_array_equal(live, reference)
    perp = list(aligned).index(PERP)
    assert np.isfinite(reference[:, perp]).any()  # the carry sleeve traded: the funding mattered
    blind = _drive(PortfolioCommittee(_no_funding_yet(funding)), aligned)
    assert not np.array_equal(blind, reference, equal_nan=True)  # never told: a different book


def test_a_run_restored_from_bytes_every_few_bars_equals_one_run(universe):
    aligned, funding = universe
    reference = _drive(PortfolioCommittee(funding), aligned)
    restored = _drive(PortfolioCommittee(_no_funding_yet(funding)), aligned, restore_every=37,
                      told=funding[PERP])
    np.testing.assert_array_equal(restored, reference)


def test_round_trip_is_exact_and_keeps_the_state_small(universe):
    aligned, funding = universe
    committee = PortfolioCommittee(_no_funding_yet(funding), params=PortfolioParams(learn=True, band=0.2))
    state = committee.init(tuple(aligned))
    series = funding[PERP].loc[: aligned[PERP].index[-1]]
    for when, rate in series.items():
        committee.observe_funding(state, PERP, int(when.value // 1_000_000), float(rate))
    back = PortfolioState.from_bytes(state.to_bytes())
    assert (back.params, back.symbols, back.day, back.days, back.clock) == \
        (state.params, state.symbols, state.day, state.days, state.clock)
    keys = ("pairs", "n_returns", "last_decision_ms")
    assert {k: back.extra[k] for k in keys} == {k: state.extra.get(k, -1 if k == keys[2] else 0) for k in keys}
    for name in ("history", "signal", "cov", "held", "carry_on", "shadow", "scored", "margin_set"):
        np.testing.assert_array_equal(getattr(back, name), getattr(state, name))
    stamps, rates = back.extra["funding"][0]
    window = (committee.defaults.funding_days + FUNDING_SLACK_DAYS) * 86_400_000
    assert stamps[-1] - stamps[0] <= window and 0 < stamps.size < len(series)  # old settlements dropped
    np.testing.assert_array_equal(rates, series.to_numpy()[-stamps.size:])


def test_repeated_settlement_is_a_no_op_and_disorder_is_refused(universe):
    aligned, funding = universe
    committee = PortfolioCommittee(_no_funding_yet(funding))
    state = committee.init(tuple(aligned))
    committee.observe_funding(state, PERP, 1_000, 0.0001)
    committee.observe_funding(state, PERP, 1_000, 0.0001)  # delivered twice
    assert state.extra["funding"][0][0].tolist() == [1_000]
    with pytest.raises(DataError, match="not newer than the last one told"):
        committee.observe_funding(state, PERP, 1_000, 0.0002)
    with pytest.raises(DataError, match="not newer"):
        committee.observe_funding(state, PERP, 999, 0.0001)
    for bad in (float("nan"), 1.5, "0.01", True):
        with pytest.raises(DataError, match="finite fraction"):
            committee.observe_funding(state, PERP, 2_000, bad)
    for bad in (-1, 1.5, True):
        with pytest.raises(DataError, match="epoch milliseconds"):
            committee.observe_funding(state, PERP, bad, 0.0001)
    with pytest.raises(ConfigError, match="not a perpetual"):
        committee.observe_funding(state, "BTC/USDT", 2_000, 0.0001)
    assert state.extra["funding"][0][0].tolist() == [1_000]  # nothing changed


def test_foreign_or_damaged_blobs_are_refused(universe):
    aligned, funding = universe
    state = PortfolioCommittee(funding).init(tuple(aligned))
    blob = state.to_bytes()
    with pytest.raises(StateError, match="CRC"):
        PortfolioState.from_bytes(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    with pytest.raises(StaleStateError, match="layout"):
        PortfolioState.from_bytes(cs.Trend().init(cs.TrendParams()).to_bytes())
    with pytest.raises(StateError):
        PortfolioState.from_bytes(b"not a state at all, clearly")
    state.signal = np.zeros((3, 2))  # arrays that do not fit the symbols
    with pytest.raises(StateError, match="do not fit"):
        PortfolioState.from_bytes(state_to_bytes(state))
    assert LAYOUT.startswith("portfolio-v1")
