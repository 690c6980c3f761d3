"""Fuzz the research entry points (issue 17): malformed files, frames, parameters, grids and
windows through ``load_ohlcv``, ``validate_ohlcv``, ``make_params``/``expand_grid``, ``sweep``
and ``walk_forward``. Each case returns a valid result or raises a ``CoinswarmError``; never
another exception, never a hang (per-case deadline), never a change of the caller's data.

The candles are a slice of real Binance BTC/USDT 1h data, corrupted on purpose.
"""

from __future__ import annotations

import gzip
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coinswarm as cs
from coinswarm.errors import CoinswarmError
from tests.fuzz.budget import DEADLINE_MS, examples, seen

pytestmark = pytest.mark.timeout(600)
COLUMNS = ("open", "high", "low", "close", "volume")
SETTINGS = dict(deadline=DEADLINE_MS, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
_FILES = itertools.count()


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2022-01-01", end="2022-03-31")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_research")


def _assert_valid_candles(df: pd.DataFrame) -> None:
    """What an accepted frame must be: no silent acceptance of a malformed one."""
    assert isinstance(df, pd.DataFrame) and len(df) > 0
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.is_monotonic_increasing and df.index.is_unique
    values = df[list(COLUMNS)].to_numpy(np.float64)
    assert np.isfinite(values).all() and (values[:, :4] > 0).all() and (values[:, 4] >= 0).all()
    assert (df["high"] >= df["low"]).all()
    assert ((df["open"] >= df["low"]) & (df["open"] <= df["high"])).all()


# --- load_ohlcv: files -----------------------------------------------------------------------

STAMP = st.one_of(
    st.integers(-10**19, 10**19).map(str),
    st.sampled_from(["", "nan", "2024-01-01T00:00:00Z", "2024-13-01", "yesterday", "1.7e12", "1e30"]),
    st.integers(0, 200).map(lambda k: str(1_640_995_200_000 + k * 3_600_000)),
    st.integers(0, 200).map(lambda k: str((1_640_995_200_000 + k * 3_600_000) * 1000)),
    st.integers(0, 200).map(lambda k: (pd.Timestamp("2022-01-01", tz="UTC") + pd.Timedelta(hours=k)).isoformat()),
)
CELL = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.sampled_from(["", "x", "1", "10", "-1", "0", "True", "1e400", "10,5"]))


@st.composite
def csv_files(draw):
    good = draw(st.integers(0, 3)) > 0  # three in four files start well-formed and get one defect at most
    header = draw(st.one_of(st.just("timestamp,open,high,low,close,volume"),
                            st.permutations(["timestamp", *COLUMNS]).map(",".join),
                            st.lists(st.sampled_from(["timestamp", *COLUMNS, "x", ""]), max_size=7).map(",".join)))
    rows = draw(st.lists(st.tuples(STAMP, st.lists(CELL, min_size=5, max_size=6)), max_size=8))
    mode = draw(st.sampled_from(["plain", "gzip", "corrupt-gzip", "bytes"]))
    if good:
        header, mode = "timestamp,open,high,low,close,volume", draw(st.sampled_from(["plain", "gzip"]))
        base = draw(st.integers(0, 10)) * 3_600_000 + 1_640_995_200_000
        n_rows = draw(st.sampled_from([0, 1, 2, 4, 6, 6, 6]))
        rows = [(str(base + k * 3_600_000), ["10", "11", "9", "10.5", "1"]) for k in range(n_rows)]
        if rows and draw(st.booleans()):
            k = draw(st.integers(0, len(rows) - 1))
            rows[k] = (draw(STAMP), rows[k][1]) if draw(st.booleans()) else (rows[k][0], draw(
                st.lists(CELL, min_size=5, max_size=5)))
    text = header + "\n" + "".join(f"{t},{','.join(c)}\n" for t, c in rows)
    return text, mode


def _write(folder, text: str, mode: str):
    path = folder / f"f{next(_FILES)}.csv{'.gz' if 'gzip' in mode else ''}"
    raw = text.encode()
    if mode == "gzip":
        raw = gzip.compress(raw)
    elif mode == "corrupt-gzip":
        raw = gzip.compress(raw)[: max(1, len(raw) // 3)]
    elif mode == "bytes":
        raw = bytes(b ^ 0x5A for b in raw[:40]) + raw[40:]
    path.write_bytes(raw)
    return path


BOUND = st.one_of(st.none(), st.none(), st.none(),
                  st.sampled_from(["2022", "2022-01-01", "2030", "2024-13-01", "now", "", "2021-12-31T23:00Z"]),
                  st.integers(-5, 5), st.booleans(), st.floats())


@settings(max_examples=examples(800), **SETTINGS)
@given(file=csv_files(), start=BOUND, end=BOUND,
       timeframe=st.sampled_from([None, None, None, "1h", "1h", "0h", "-1h", "1.5h", "1y", "2M", 5, "1H"]),
       gaps=st.sampled_from(["ignore", "keep", "warn", "raise", "ffill", "nope", None]))
def test_load_ohlcv_of_malformed_files(folder, file, start, end, timeframe, gaps):
    seen("research")
    path = _write(folder, *file)
    try:
        df = cs.load_ohlcv(path, start=start, end=end, timeframe=timeframe, gaps=gaps)
    except CoinswarmError:
        return
    if gaps == "ffill":
        df = df.dropna()
    _assert_valid_candles(df)


# --- validate_ohlcv: frames ------------------------------------------------------------------

MUTATIONS = ("none", "nan", "inf", "negative", "zero", "swap", "dup", "unsorted", "naive", "paris", "empty",
             "drop", "text", "bool", "complex", "range-index", "nat", "dup-column", "one-row", "off-grid")


def mutate(df: pd.DataFrame, kind: str, row: int, col: str) -> pd.DataFrame:
    """``df`` with one defect of ``kind`` at ``row``/``col`` (a copy)."""
    out = df.copy()
    j = out.columns.get_loc(col)
    if kind in ("nan", "inf", "negative", "zero"):
        out.iloc[row, j] = {"nan": np.nan, "inf": np.inf, "negative": -1.0, "zero": 0.0}[kind]
    elif kind == "swap":
        out.iloc[row, [1, 2]] = out.iloc[row, [2, 1]].to_numpy() * [0.9, 1.1]
    elif kind in ("dup", "unsorted"):
        index = out.index.to_numpy().copy()
        other = min(row + 1, len(index) - 1)
        index[other] = index[row] if kind == "dup" else index[row] - pd.Timedelta(hours=3)
        out.index = pd.DatetimeIndex(index, name="time")
    elif kind in ("naive", "paris"):
        out = out.tz_localize(None) if kind == "naive" else out.tz_convert("Europe/Paris")
    elif kind == "empty":
        out = out.iloc[:0]
    elif kind == "drop":
        out = out.drop(columns=col)
    elif kind in ("text", "bool", "complex"):
        out[col] = {"text": "x", "bool": True, "complex": 1 + 1j}[kind]
    elif kind == "range-index":
        out = out.reset_index(drop=True)
    elif kind == "nat":
        out.index = pd.DatetimeIndex([pd.NaT, *out.index[1:]], name="time")
    elif kind == "dup-column":
        out = pd.concat([out, out[[col]]], axis=1)
    elif kind == "one-row":
        out = out.iloc[:1]
    elif kind == "off-grid":
        out.index = pd.DatetimeIndex([*out.index[:row], out.index[row] + pd.Timedelta(minutes=7),
                                      *out.index[row + 1:]], name="time")
    return out


@settings(max_examples=examples(1000), **SETTINGS)
@given(kinds=st.lists(st.sampled_from(("none",) * len(MUTATIONS) + MUTATIONS), min_size=1, max_size=2),
       row=st.integers(0, 40),
       col=st.sampled_from(COLUMNS), size=st.integers(1, 48),
       timeframe=st.sampled_from([None, None, "1h", "2h", "0h", "1M"]))
def test_validate_ohlcv_of_malformed_frames(real, kinds, row, col, size, timeframe):
    seen("research")
    frame = real.iloc[:size]
    for kind in kinds:
        try:
            frame = mutate(frame, kind, min(row, max(len(frame) - 1, 0)), col)
        except (IndexError, KeyError, ValueError, TypeError):
            break  # the mutation itself does not apply to this shape
    before = frame.copy(deep=True)
    try:
        cs.validate_ohlcv(frame, timeframe=timeframe)
    except CoinswarmError:
        pd.testing.assert_frame_equal(frame, before)
        return
    _assert_valid_candles(frame)


# --- make_params / expand_grid ---------------------------------------------------------------

VALUE = st.one_of(st.integers(1, 50), st.integers(51, 300), st.floats(0.01, 3.0),
                  st.integers(-10**25, 10**25), st.floats(), st.booleans(), st.none(), st.complex_numbers(),
                  st.sampled_from(["20", "2.5", " 7 ", "x", "", "1e3", "nan", "true", "inf"]),
                  st.integers(-3, 300), st.integers(-3, 300).map(float), st.floats(0, 5))
NAMES = sorted(cs.available_strategies())


@settings(max_examples=examples(1000), **SETTINGS)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_make_params_is_exact_or_refuses(name, data):
    seen("research")
    strategy = cs.get_strategy(name)
    keys = st.one_of(st.sampled_from(strategy.Params._fields), st.sampled_from(["nope", "", "FAST"]))
    values = data.draw(st.dictionaries(keys, VALUE, max_size=3))
    try:
        params = cs.make_params(strategy, values)
    except CoinswarmError:
        return
    defaults = strategy.Params()
    assert strategy.is_valid(params)
    for key, given_value in values.items():
        got, kind = getattr(params, key), type(getattr(defaults, key))
        assert type(got) is kind, (key, given_value, got)
        if kind in (int, float):
            assert not isinstance(given_value, bool | complex | type(None))
            number = float(given_value) if not isinstance(given_value, str) else float(given_value.strip())
            assert math.isfinite(number) and number == got, (key, given_value, got)


@settings(max_examples=examples(500), **SETTINGS)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_expand_grid_is_valid_or_refuses(name, data):
    seen("research")
    strategy = cs.get_strategy(name)
    fields = strategy.Params._fields
    grid = data.draw(st.one_of(
        st.none(), st.just({}), st.integers(), st.text(max_size=3),
        st.dictionaries(st.sampled_from([*fields, "nope"]),
                        st.one_of(st.lists(VALUE, max_size=4), VALUE, st.just(range(0, 10**8))), max_size=3)))
    try:
        combos = cs.strategies.expand_grid(strategy, grid)
    except CoinswarmError:
        return
    assert combos and all(strategy.is_valid(p) for p in combos)
    assert grid is None or len(grid) > 0


# --- sweep and walk-forward ------------------------------------------------------------------

GRID = st.one_of(st.none(), st.just({}),
                 st.fixed_dictionaries({"fast": st.lists(st.sampled_from([1, 3, 5, 3.0, 1, 3, 2.5, 0, -1, True]),
                                                         min_size=1, max_size=2),
                                        "slow": st.lists(st.sampled_from([10, 20, 48, 48.0, 400, 5000]),
                                                         min_size=1, max_size=3)}))


@settings(max_examples=examples(400), **SETTINGS)
@given(strategy=st.sampled_from(["sma_cross"] * 8 + [None, "moon", 3]), grid=GRID,
       size=st.one_of(st.integers(1, 300), st.integers(60, 300)), kind=st.sampled_from(("none",) * 20 + MUTATIONS),
       cash=st.sampled_from([10_000.0] * 8 + [1, 0, -1, float("nan"), "100", True]),
       costs=st.sampled_from([None] * 6 + ["10bps", cs.Costs(fee_bps=20)]),
       execution=st.sampled_from(["next_open"] * 4 + ["close"] * 4 + ["later"]))
def test_sweep_of_malformed_inputs(real, strategy, grid, size, kind, cash, costs, execution):
    seen("research")
    if grid is None and strategy == "sma_cross":
        grid = {"fast": [3], "slow": [10, 20]}  # the default grid is 184 combinations: keep cases small
    prices = mutate(real.iloc[:size], kind, size // 2, "close")
    before = prices.copy(deep=True)
    try:
        table = cs.sweep(strategy, prices, grid, init_cash=cash, costs=costs, execution=execution)
    except CoinswarmError:
        pd.testing.assert_frame_equal(prices, before)
        return
    _assert_valid_candles(prices)
    assert len(table) > 0 and np.isfinite(table["total_return"].to_numpy()).all()
    assert (table["slow"] < len(prices)).all()


WINDOW = st.sampled_from(["30D", "20D", "10D", "0D", "-10D", "1y", "365", 365, 30.0, None, "1h", "10min", "NaT",
                          pd.Timedelta("15D"), pd.Timedelta(-1), True, "60D", "200D"])
GOOD_WINDOW = st.sampled_from(["30D", "20D", "10D", "15D", pd.Timedelta("12D"), "300h"])
GAP = st.sampled_from([None, None, None, "0D", "1D", "12h", pd.Timedelta(0)])


# a fresh clone compiles the sweep kernels inside the first valid case (measured 7.9 s): a
# minute per case still turns a hang into a failure
@settings(max_examples=examples(300), **{**SETTINGS, "deadline": 60_000})
@given(train=st.one_of(GOOD_WINDOW, WINDOW), test=st.one_of(GOOD_WINDOW, WINDOW), purge=st.one_of(GAP, WINDOW),
       embargo=st.one_of(GAP, WINDOW), anchored=st.sampled_from([False, True, False, True, 1]),
       objective=st.sampled_from(["sharpe", "total_return", "sharpe", "nope", None]),
       grid=st.sampled_from([{"fast": [3], "slow": [10, 20]}] * 4 + [{}, {"fast": [3], "slow": [3000]}]))
def test_walk_forward_windows(real, train, test, purge, embargo, anchored, objective, grid):
    seen("research")
    prices = real.iloc[:1500]
    before = prices.copy(deep=True)
    try:
        report = cs.walk_forward("sma_cross", prices, grid, train=train, test=test, purge=purge, embargo=embargo,
                                 anchored=anchored, objective=objective, pbo_splits=4)
    except CoinswarmError:
        pd.testing.assert_frame_equal(prices, before)
        return
    assert report.folds
    for fold in report.folds:  # never lookahead: training ends before its test window starts
        assert fold["train_start"] < fold["train_end"] <= fold["test_start"] < fold["test_end"]
    assert np.isfinite(report.oos_equity.to_numpy()).all()
