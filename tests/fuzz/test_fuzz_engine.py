"""Fuzz: malformed prices, targets, costs and settings through ``cs.simulate`` and
``Committee.backtest``. Each case returns a valid ``Result`` (equity finite and ≥ 0 on every
bar) or raises a :class:`~coinswarm.errors.CoinswarmError` subclass — never another exception,
never a hang — and leaves its inputs unchanged. Prices are slices of real Binance BTC/USDT and
ETH/USDT 1h candles, corrupted one way at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coinswarm as cs
from coinswarm.errors import CoinswarmError
from tests.fuzz.budget import DEADLINE_MS, examples, seen

SETTINGS = dict(deadline=DEADLINE_MS, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

_REAL: dict[str, pd.DataFrame] = {}


def real(symbol: str = "BTC") -> pd.DataFrame:
    if symbol not in _REAL:
        _REAL[symbol] = cs.load_ohlcv(f"binance:{symbol}/USDT:1h", start="2022-03", end="2022-04")
    return _REAL[symbol]


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Compile the engine's kernels for every argument type the cases use before the per-case
    deadline applies (after an edit of a kernel-bearing file numba recompiles them)."""
    frame = real().iloc[:30]
    for short, lev in ((False, 1.0), (True, 2.0)):
        cs.simulate(frame, pd.Series(0.5, index=frame.index), allow_short=short, max_leverage=lev)
        cs.simulate(frame, np.full(30, 0.5), allow_short=short, max_leverage=lev, execution="close")
    ints = frame.assign(volume=frame["volume"].astype(np.int64))
    cs.simulate(ints, np.full(30, 0.5))
    cs.simulate({"a": frame, "b": real("ETH").iloc[:30]}, pd.DataFrame(0.5, index=frame.index, columns=["a", "b"]))


def _check(call, *inputs):
    """Run ``call``: a valid Result or a CoinswarmError, and the inputs unchanged either way."""
    seen("engine")
    before = [_snapshot(x) for x in inputs]
    try:
        result = call()
    except CoinswarmError:
        result = None
    after = [_snapshot(x) for x in inputs]
    assert all(_same(a, b) for a, b in zip(before, after, strict=True)), "an input changed"
    if result is not None:
        equity = result.equity.to_numpy()
        assert np.isfinite(equity).all() and (equity >= 0).all()
        assert np.isfinite(result.cash.to_numpy()).all()
        assert result.bankrupt is None or equity[-1] == 0.0
    return result


def _snapshot(x):
    if isinstance(x, pd.DataFrame | pd.Series):
        return x.copy(deep=True)
    if isinstance(x, dict):
        return {k: _snapshot(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return x.copy()
    return x


def _same(a, b) -> bool:
    if isinstance(a, pd.DataFrame | pd.Series):
        return a.equals(b) and a.index.equals(b.index)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    return True


BAD_VALUES = [np.nan, np.inf, -np.inf, 0.0, -1.0, -1e300, 1e300, 5e-324]
CORRUPTIONS = ["value", "swap_high_low", "open_above_high", "close_below_low", "negative_volume", "duplicate",
               "unsorted", "tz_naive", "tz_other", "drop_column", "object_column", "bool_column", "empty",
               "int_index", "none"]


@st.composite
def prices(draw):
    """A slice of real candles with at most one corruption."""
    base = real()
    start = draw(st.integers(0, len(base) - 60))
    n = draw(st.integers(1, 60))
    frame = base.iloc[start:start + n].copy()
    kind = draw(st.sampled_from(CORRUPTIONS))
    row = draw(st.integers(0, len(frame) - 1))
    col = draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
    if kind == "value":
        frame.iloc[row, frame.columns.get_loc(col)] = draw(st.sampled_from(BAD_VALUES))
    elif kind == "swap_high_low":
        frame.iloc[row, [1, 2]] = frame.iloc[row, [2, 1]].to_numpy() * [1.0, 1.01]
    elif kind == "open_above_high":
        frame.iloc[row, 0] = frame.iloc[row, 1] * 1.05
    elif kind == "close_below_low":
        frame.iloc[row, 3] = frame.iloc[row, 2] * 0.95
    elif kind == "negative_volume":
        frame.iloc[row, 4] = -draw(st.floats(1e-9, 1e9))
    elif kind == "duplicate" and n > 1:
        frame.index = frame.index.where(np.arange(n) != row, frame.index[max(row - 1, 0)])
    elif kind == "unsorted" and n > 1:
        frame = frame.iloc[::-1]
    elif kind == "tz_naive":
        frame.index = frame.index.tz_localize(None)
    elif kind == "tz_other":
        frame.index = frame.index.tz_convert("Europe/Paris")
    elif kind == "drop_column":
        frame = frame.drop(columns=[col])
    elif kind == "object_column":
        frame[col] = frame[col].astype(str)
    elif kind == "bool_column":
        frame[col] = frame[col] > frame[col].median()
    elif kind == "empty":
        frame = frame.iloc[:0]
    elif kind == "int_index":
        frame = frame.reset_index(drop=True)
    return frame, kind


@settings(max_examples=examples(1300), **SETTINGS)
@given(prices(), st.floats(-1.0, 2.0) | st.just(np.nan))
def test_simulate_malformed_prices(case, weight):
    frame, kind = case
    target = pd.Series(weight, index=frame.index, dtype=float)
    result = _check(lambda: cs.simulate(frame, target), frame, target)
    if kind in ("swap_high_low", "open_above_high", "close_below_low", "negative_volume", "tz_naive",
                "tz_other", "drop_column", "object_column", "bool_column", "empty", "int_index"):
        assert result is None, f"{kind} was accepted"
    if kind == "unsorted" and len(frame) > 1:
        assert result is None, "unsorted timestamps were accepted"


TARGET_KINDS = ["float", "inf", "complex", "bool", "object", "short", "long", "2d_wrong", "index_shift",
                "frame_wrong_column", "list", "none", "huge", "int"]


@st.composite
def targets(draw, frame: pd.DataFrame):
    n = len(frame)
    kind = draw(st.sampled_from(TARGET_KINDS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.uniform(-5, 5, n)
    values[rng.random(n) < draw(st.sampled_from([0.0, 0.3, 0.9]))] = np.nan
    if kind == "inf":
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.inf, -np.inf]))
        return pd.Series(values, index=frame.index), kind
    if kind == "complex":
        return pd.Series(values + 1j, index=frame.index), kind
    if kind == "bool":
        return pd.Series(values > 0, index=frame.index), kind
    if kind == "object":
        return pd.Series(values.astype(str).astype(object), index=frame.index), kind
    if kind == "short":
        return values[:-1], kind
    if kind == "long":
        return np.append(values, 0.5), kind
    if kind == "2d_wrong":
        return np.column_stack([values, values]), kind
    if kind == "index_shift":
        return pd.Series(values, index=frame.index + pd.Timedelta(hours=1)), kind
    if kind == "frame_wrong_column":
        return pd.DataFrame({"nope": values}, index=frame.index), kind
    if kind == "list":
        return list(values), kind
    if kind == "none":
        return None, kind
    if kind == "huge":
        return pd.Series(values * 1e306, index=frame.index), kind
    if kind == "int":
        return pd.Series(np.nan_to_num(values).astype(np.int64), index=frame.index), kind
    return pd.Series(values, index=frame.index), kind


@settings(max_examples=examples(1000), **SETTINGS)
@given(st.data(), st.integers(2, 80), st.booleans(), st.sampled_from([1.0, 2.0, 100.0]))
def test_simulate_malformed_targets(data, n, allow_short, max_leverage):
    frame = real().iloc[:n]
    target, kind = data.draw(targets(frame))
    result = _check(lambda: cs.simulate(frame, target, allow_short=allow_short, max_leverage=max_leverage),
                    frame, target)
    if kind in ("inf", "complex", "bool", "object", "short", "long", "2d_wrong", "index_shift",
                "frame_wrong_column", "list", "none"):
        assert result is None, f"target {kind} was accepted"
    elif kind in ("float", "int", "huge"):
        assert result is not None


JUNK = st.sampled_from([None, "100", "10bps", True, False, np.nan, np.inf, -np.inf, -1.0, 0.0, 1e-300, 1e300,
                        1 + 2j, [1.0], np.float64(5.0), np.int64(3), 2_000.0, 0.5])


@settings(max_examples=examples(900), **SETTINGS)
@given(JUNK, JUNK, JUNK, JUNK, JUNK, st.sampled_from(["next_open", "close", "open", "", None, 3]),
       st.sampled_from([True, False, "yes", None, np.True_]), st.sampled_from(["array", "series"]))
def test_simulate_costs_and_settings(fee, slip, cash, lev, funding_rate, execution, short, shape):
    frame = real().iloc[:48]
    target = np.linspace(-2, 2, 48) if shape == "array" else pd.Series(np.linspace(-2, 2, 48), index=frame.index)

    def call():
        funding = funding_rate  # a list or a number is not a funding schedule
        if funding_rate is not None and not isinstance(funding_rate, list):
            funding = pd.Series(funding_rate, index=frame.index[::8])
        costs = cs.Costs(fee_bps=fee if fee is not None else 10, slippage_bps=slip if slip is not None else 0,
                         funding=funding)
        return cs.simulate(frame, target, costs=costs, init_cash=cash if cash is not None else 10_000.0,
                           max_leverage=lev if lev is not None else 1.0, execution=execution,
                           allow_short=short)

    _check(call, frame, target)


RATES = st.one_of(JUNK, st.floats(-1.0, 2.0), st.sampled_from([0.999999, 1.0, -0.0, np.float32(0.04), np.bool_(True)]))


@settings(max_examples=examples(600), **SETTINGS)
@given(RATES, RATES, st.sampled_from([(False, 1.0), (True, 1.0), (True, 3.0), (False, 2.0)]),
       st.floats(-3.0, 3.0), st.sampled_from(["next_open", "close"]))
def test_simulate_financing_rates(cash_rate, borrow_rate, limits, weight, execution):
    """``Costs(cash_rate=…, borrow_rate=…)``: a valid financed Result (interest and borrow fees
    finite and ≥ 0, reported only when a rate is set) or a ConfigError naming the rate."""
    frame = real().iloc[:96]
    target = pd.Series(np.where(np.arange(96) % 30 < 15, weight, np.nan), index=frame.index)
    short, lev = limits
    try:
        costs = cs.Costs(fee_bps=10, cash_rate=cash_rate, borrow_rate=borrow_rate)
    except CoinswarmError as exc:
        seen("engine")
        assert "Costs.cash_rate" in str(exc) or "Costs.borrow_rate" in str(exc)
        return
    result = _check(lambda: cs.simulate(frame, target, costs=costs, allow_short=short, max_leverage=lev,
                                        execution=execution), frame, target)
    assert result is not None
    m = result.metrics
    if not costs.financed:
        assert "interest_earned" not in m and "borrow_paid" not in m
        return
    assert np.isfinite(m["interest_earned"]) and m["interest_earned"] >= 0.0
    assert np.isfinite(m["borrow_paid"]) and m["borrow_paid"] >= 0.0
    assert m["borrow_paid"] == 0.0 or (short and weight < 0) or (lev > 1 and weight > 1)  # a short, a USDT loan
    assert m["interest_earned"] == 0.0 or costs.cash_rate > 0


@settings(max_examples=examples(300), **SETTINGS)
@given(st.sampled_from(["10bps", 10, None, {"fee_bps": 10}]), st.floats(0, 1000), st.floats(0, 1000))
def test_simulate_costs_type(costs, fee, slip):
    frame = real().iloc[:24]
    target = pd.Series(1.0, index=frame.index)
    result = _check(lambda: cs.simulate(frame, target, costs=costs if costs is not None else
                                        cs.Costs(fee_bps=fee, slippage_bps=slip)), frame, target)
    assert (result is None) == (costs is not None)


@pytest.fixture(scope="module")
def compiled():
    """Compile the committee kernels (alone and with the pair) before the per-case deadline applies."""
    frame = real().iloc[:50]
    cs.Committee.default().backtest(frame)
    cs.Committee.default(pair=("ETH/USDT", "BTC/USDT")).backtest({"ETH/USDT": real("ETH").iloc[:50], "BTC/USDT": frame})


@pytest.mark.timeout(1200)  # the first run after an edit compiles the committee kernels
@settings(max_examples=examples(350), **SETTINGS)
@given(case=prices(), costs=st.sampled_from([None, cs.Costs(fee_bps=1000, slippage_bps=1000), cs.Costs(fee_bps=0),
                                             "x"]), pair=st.booleans())
def test_committee_backtest_malformed(compiled, case, costs, pair):
    frame, kind = case
    committee = cs.Committee.default(pair=("ETH/USDT", "BTC/USDT") if pair else None)
    if pair:
        eth = real("ETH").iloc[:len(frame)].copy() if len(frame) else real("ETH").iloc[:0]
        if isinstance(frame.index, pd.DatetimeIndex) and len(frame) == len(eth):
            eth.index = frame.index if kind not in ("tz_naive", "tz_other") else eth.index
        prices_in = {"ETH/USDT": eth, "BTC/USDT": frame}
    else:
        prices_in = frame
    _check(lambda: committee.backtest(prices_in, costs=costs), prices_in)


# -- named regressions (issue 17) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def btc():
    return real()


def test_fee_bps_20000_is_refused_with_the_valid_range():
    with pytest.raises(cs.ConfigError, match=r"\[0, 1000\]"):
        cs.Costs(fee_bps=20_000)


def test_equity_never_below_zero_bankruptcy_stops_trading(btc):
    """Short at 100× into real prices: the account is closed out, equity is 0 from then on."""
    target = pd.Series(-100.0, index=btc.index)
    r = cs.simulate(btc, target, allow_short=True, max_leverage=100.0, costs=cs.Costs(fee_bps=10))
    assert r.bankrupt is not None and (r.equity >= 0).all()
    assert (r.equity[r.equity.index > r.bankrupt] == 0).all() and r.metrics["total_return"] == -1.0
    assert (r.fills["time"] <= r.bankrupt).all() and "BANKRUPT" in str(r)


@pytest.mark.parametrize("value", [np.nan, np.inf, -5.0, 0.0])
def test_simulate_refuses_bad_candles(btc, value):
    frame = btc.iloc[:50].copy()
    frame.iloc[10, 3] = value
    with pytest.raises(cs.DataError) as info:
        cs.simulate(frame, pd.Series(1.0, index=frame.index))
    assert info.value.row == 10 and info.value.column in ("close", "high", "low")


def test_simulate_refuses_duplicate_unsorted_tz_naive_and_empty(btc):
    frame = btc.iloc[:20]
    for bad in (frame.iloc[[0, 1, 1, 2]], frame.iloc[::-1], frame.tz_localize(None), frame.iloc[:0]):
        with pytest.raises(cs.DataError):
            cs.simulate(bad, pd.Series(1.0, index=bad.index))


def test_simulate_refuses_high_below_low_and_negative_volume(btc):
    frame = btc.iloc[:20].copy()
    frame.iloc[5, 1] = frame.iloc[5, 2] * 0.9
    with pytest.raises(cs.errors.InconsistentBarError):
        cs.simulate(frame, pd.Series(1.0, index=frame.index))
    frame = btc.iloc[:20].copy()
    frame.iloc[5, 4] = -1.0
    with pytest.raises(cs.errors.NegativeVolumeError):
        cs.simulate(frame, pd.Series(1.0, index=frame.index))


@pytest.mark.parametrize("target", [np.inf, -np.inf, 1 + 1j])
def test_simulate_refuses_inf_and_complex_targets(btc, target):
    frame = btc.iloc[:20]
    with pytest.raises(cs.ConfigError):
        cs.simulate(frame, pd.Series(target, index=frame.index))


def test_costs_string_and_cash_string_are_config_errors(btc):
    frame = btc.iloc[:20]
    target = pd.Series(1.0, index=frame.index)
    with pytest.raises(cs.ConfigError, match="Costs"):
        cs.simulate(frame, target, costs="10bps")
    with pytest.raises(cs.ConfigError, match="init_cash"):
        cs.simulate(frame, target, init_cash="100")
    with pytest.raises(cs.ConfigError, match="init_cash"):
        cs.simulate(frame, target, init_cash=True)


def test_funding_with_nan_is_refused(btc):
    funding = pd.Series([0.0001, np.nan], index=btc.index[:2])
    with pytest.raises(cs.ConfigError, match="funding"):
        cs.Costs(funding=funding)


def test_wrong_shape_target_is_a_config_error(btc):
    frame = btc.iloc[:20]
    with pytest.raises(cs.ConfigError, match="shape"):
        cs.simulate(frame, np.ones(19))
