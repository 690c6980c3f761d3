"""PnL attribution: the compiled one-pass kernels give the same bits as the numpy formulation they
replaced (kept here as the reference), on real data, for one symbol and for two on a union grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.backtest.attribution import attribute, realised_pnl
from coinswarm.errors import ConfigError
from coinswarm.kernels.attribution import attribution_bins_nb, attribution_bins_py, realised_bars_nb, realised_bars_py
from coinswarm.regime.detector import CELL_NAMES


def _reference_realised(result, symbol: str) -> np.ndarray:
    frame = result.prices[symbol]
    open_ = frame["open"].to_numpy(np.float64)
    close = pd.Series(frame["close"].to_numpy(np.float64)).ffill().to_numpy()
    pos = result.positions[symbol].to_numpy(np.float64)
    pnl = np.zeros(len(pos))
    prev_close = np.concatenate([[np.nan], close[:-1]])
    prev_pos = np.concatenate([[0.0], pos[:-1]])
    gap = np.where(np.isfinite(open_), prev_pos * (open_ - prev_close), 0.0)
    body = np.where(np.isfinite(open_), pos * (close - open_), prev_pos * (close - prev_close))
    pnl[1:] = np.nan_to_num(gap[1:]) + np.nan_to_num(body[1:])
    fills = result.fills
    if len(fills):
        fills = fills[fills["symbol"].to_numpy() == symbol]
    if len(fills):
        rows = result.equity.index.get_indexer(fills["time"])
        side = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0)
        slip_cost = side * fills["qty"].to_numpy() * (fills["price"].to_numpy() - open_[rows])
        np.subtract.at(pnl, rows, fills["fee"].to_numpy() + np.nan_to_num(slip_cost))
    return pnl


def _reference_attribute(result, table: pd.DataFrame, agents: tuple[str, ...]) -> pd.DataFrame:
    rows = list(agents) + ["execution_and_costs"]
    out = np.zeros((len(rows), len(CELL_NAMES)))
    eq = result.equity.to_numpy()
    for symbol in result.prices:
        part = table if not isinstance(table.columns, pd.MultiIndex) else table[symbol]
        if not part.index.equals(result.equity.index):
            part = part.reindex(result.equity.index)
        close = pd.Series(result.prices[symbol]["close"].to_numpy(np.float64)).ffill().to_numpy()
        next_return = np.nan_to_num(np.concatenate([close[1:], [np.nan]]) / close - 1.0, nan=0.0, posinf=np.inf,
                                    neginf=-np.inf)
        regime = pd.Series(part["regime"].to_numpy(np.float64)).ffill().fillna(4).astype(int).to_numpy()
        decided = np.roll(regime, 1)
        decided[0] = regime[0]
        actual = _reference_realised(result, symbol)
        paper_total = np.zeros(len(eq))
        for a, agent in enumerate(agents):
            share = np.nan_to_num(part[f"c_{agent}"].to_numpy(np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
            paper = share * eq * next_return
            paper_total += paper
            out[a] += np.bincount(regime, weights=paper, minlength=9)
        residual = actual - np.roll(paper_total, 1)
        residual[0] = actual[0]
        out[-1] += np.bincount(decided, weights=residual, minlength=9)
    frame = pd.DataFrame(0.0, index=rows, columns=CELL_NAMES)
    frame.iloc[:, :] = out
    frame["total"] = frame.sum(axis=1)
    frame.loc["total"] = frame.sum(axis=0)
    return frame


@pytest.fixture(scope="module")
def btc():
    return cs.load_ohlcv("binance:BTC/USDT:1h", start="2021", end="2022")


@pytest.fixture(scope="module")
def sol():
    return cs.load_ohlcv("binance:SOL/USDT:1h", start="2021-06", end="2022")


def _same_bits(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes()


def test_one_symbol_same_bits_as_the_numpy_formulation(btc):
    committee = cs.Committee.default()
    result = committee.backtest(btc, costs=cs.Costs(fee_bps=10, slippage_bps=2))
    _same_bits(result.attribution, _reference_attribute(result, result.committee, committee.agent_names))
    pnl = realised_pnl(result, "BTC/USDT").to_numpy()
    assert pnl.tobytes() == _reference_realised(result, "BTC/USDT").tobytes()


def test_two_symbols_on_a_union_grid_same_bits(btc, sol):
    """SOL starts later than BTC: NaN candles, a reindexed table and fills of two symbols."""
    committee = cs.Committee.default()
    result = committee.backtest({"BTC/USDT": btc, "SOL/USDT": sol}, costs=cs.Costs(fee_bps=5, slippage_bps=3))
    assert result.prices["SOL/USDT"]["close"].isna().any()
    _same_bits(result.attribution, _reference_attribute(result, result.committee, committee.agent_names))
    for symbol in ("BTC/USDT", "SOL/USDT"):
        assert realised_pnl(result, symbol).to_numpy().tobytes() == _reference_realised(result, symbol).tobytes()


def test_compiled_kernels_equal_their_python_twins(btc):
    committee = cs.Committee.default()
    result = committee.backtest(btc)
    close = btc["close"].to_numpy()
    open_ = btc["open"].to_numpy().copy()
    open_[5] = np.nan  # a bar without an open takes the close-to-close branch
    pos = result.positions["BTC/USDT"].to_numpy()
    a, b = np.empty(len(close)), np.empty(len(close))
    realised_bars_nb(open_, close, pos, a)
    realised_bars_py(open_, close, pos, b)
    assert a.tobytes() == b.tobytes()
    table = result.committee
    shares = np.stack([table[f"c_{name}"].to_numpy() for name in committee.agent_names])
    regime = table["regime"].to_numpy().astype(np.int64)
    bins_nb, bins_py = np.zeros((3, 9)), np.zeros((3, 9))
    attribution_bins_nb(result.equity.to_numpy(), close, shares, regime, a, bins_nb)
    attribution_bins_py(result.equity.to_numpy(), close, shares, regime, a, bins_py)
    assert bins_nb.tobytes() == bins_py.tobytes()
    assert np.isclose(bins_nb.sum(), a.sum())  # every currency unit is credited somewhere


def test_a_regime_code_outside_the_cells_is_refused(btc):
    committee = cs.Committee.default()
    result = committee.backtest(btc)
    table = result.committee.copy()
    table.loc[table.index[7], "regime"] = 9
    with pytest.raises(ConfigError, match="regime code 9 at row 7"):
        attribute(result, table, committee.agent_names)


def test_table_and_attribution_are_built_once_on_first_read_and_survive_pickling(btc):
    import pickle

    committee = cs.Committee.default()
    result = committee.backtest(btc)
    assert "_attribution" in result.__dict__ and not isinstance(result.__dict__["_attribution"], pd.DataFrame)
    table, attribution = result.committee, result.attribution
    assert result.committee is table and result.attribution is attribution  # computed once, then kept
    _same_bits(table, committee.run(btc, gaps="ignore"))
    again = pickle.loads(pickle.dumps(committee.backtest(btc)))  # unread deferred fields pickle as values
    _same_bits(again.attribution, attribution)
    _same_bits(again.committee, table)
    result.attribution = None  # a plain value replaces a deferred one
    assert result.attribution is None


def test_a_plain_result_has_no_attribution(btc):
    result = cs.simulate(btc, cs.Committee.default().targets(btc))
    assert result.attribution is None and result.committee is None


def test_the_deferred_attribution_is_of_the_simulation_as_returned(btc):
    committee = cs.Committee.default()
    expected = committee.backtest(btc).attribution
    result = committee.backtest(btc)
    result.equity = result.equity * 0.0  # rebinding a field before the first read changes nothing
    _same_bits(result.attribution, expected)
