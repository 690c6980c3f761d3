"""Committee: learned weights, risk last, attribution that adds up, multi-asset use."""

import math

import numpy as np
import pytest

import coinswarm as cs
from coinswarm.agents.base import ohlcv_arrays, ohlcv_matrices
from coinswarm.agents.execution import EXEC_SIZE, ExecutionParams, execution_bars_nb, execution_init
from coinswarm.agents.mean_reversion import MeanReversion, mean_reversion_bands_nb
from coinswarm.agents.risk import RiskParams, risk_history, risk_init, risk_state_size
from coinswarm.agents.trend import Trend, TrendParams
from coinswarm.committee.committee import CommitteeConfig
from coinswarm.committee.kernel import CHUNK, committee_run, learn_weights_py, shared_chains_nb
from coinswarm.regime import RegimeDetector
from coinswarm.regime.detector import RegimeParams, regime_step_nb
from coinswarm.regime.kernel import MOVE_SPREAD, N_MOVES, bar_moves_nb, trend_window_full_nb


def test_hedge_moves_weight_to_the_agent_that_was_right():
    w = np.array([0.5, 0.5])
    for _ in range(50):
        learn_weights_py(w, np.array([1.0, -1.0]), 1.0, 0.5, 0.05, 2)  # price went up; agent 0 was long
    assert w[0] > 0.9 and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert w[1] >= 0.05 - 1e-15


def test_weight_floor_holds_under_extreme_gains():
    w = np.array([1 / 3, 1 / 3, 1 / 3])
    for _ in range(1000):
        learn_weights_py(w, np.array([1.0, -1.0, 0.0]), 100.0, 5.0, 0.02, 3)
    assert np.isfinite(w).all() and (w >= 0.02 - 1e-15).all()
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.fixture(scope="module")
def btc(btc_1h):
    return btc_1h.loc["2021":"2023"]


def test_attribution_adds_up_to_the_backtest_pnl(btc):
    result = cs.Committee.default().backtest(btc, costs=cs.Costs(fee_bps=10, slippage_bps=2))
    att = result.attribution
    pnl = result.equity.iloc[-1] - result.assumptions["init_cash"]
    assert att.loc["total", "total"] == pytest.approx(pnl, rel=1e-9, abs=1e-6)
    assert list(att.index) == ["trend", "mean_reversion", "execution_and_costs", "total"]
    assert att.loc["execution_and_costs", "total"] < 0, "costs must show as a loss"


def test_realised_pnl_per_symbol_sums_to_equity_changes(btc):
    from coinswarm.backtest.attribution import realised_pnl

    result = cs.Committee.default().backtest(btc)
    pnl = realised_pnl(result, next(iter(result.prices)))
    np.testing.assert_allclose(pnl.iloc[1:].to_numpy(), result.equity.diff().iloc[1:].to_numpy(), atol=1e-6)


def test_risk_is_applied_after_the_vote(btc):
    table = cs.Committee.default().run(btc, gaps="ignore")
    killed = table["brake"] == 0
    assert killed.any()
    assert (table.loc[killed, "risked"] == 0).all()
    np.testing.assert_allclose(table[["c_trend", "c_mean_reversion"]].sum(axis=1), table["risked"], atol=1e-12)


def test_committee_with_a_pair_trades_both_legs(btc):
    eth = cs.load_ohlcv("binance:ETH/USDT:1h", start="2021", end="2023")
    prices = {"ETH/USDT": eth, "BTC/USDT": btc}
    committee = cs.Committee.default(pair=("ETH/USDT", "BTC/USDT"))
    table = committee.run(prices, gaps="ignore")
    assert committee.agent_names == ("trend", "mean_reversion", "arbitrage")
    assert (table[("ETH/USDT", "c_arbitrage")] != 0).any()
    result = committee.backtest(prices)
    assert set(result.attribution.index) >= {"arbitrage", "trend"}
    assert result.assumptions["symbols"] == ["ETH/USDT", "BTC/USDT"]


def test_pair_must_name_given_symbols(btc):
    with pytest.raises(cs.ConfigError, match="no prices for"):
        cs.Committee.default(pair=("ETH/USDT", "BTC/USDT")).run({"BTC/USDT": btc, "SOL/USDT": btc}, gaps="ignore")


def test_committee_is_a_strategy_for_sweep_and_walk_forward(btc):
    table = cs.sweep("committee", btc, {"learning_rate": [0.02, 0.1]})
    assert len(table) == 2 and table["n_trades"].gt(0).all()
    report = cs.walk_forward("committee", btc, {"target_vol": [0.3, 0.5]}, train="180D", test="90D")
    assert len(report.folds) >= 3 and np.isfinite(report.oos_sharpe)


def test_invalid_committee_params_raise():
    with pytest.raises(cs.ConfigError):
        cs.make_params(cs.get_strategy("committee"), {"weight_floor": 0.6})
    with pytest.raises(cs.ConfigError, match="invalid trend"):
        cs.Committee(cs.CommitteeConfig(trend=cs.TrendParams(fast=200, mid=100)))


def test_mean_reversion_on_the_detectors_t_statistic_votes_exactly_as_alone(btc):
    """The committee feeds mean reversion the regime detector's t-statistic when both use the
    same trend window: the votes must be the agent's own, bit for bit."""
    frame = btc.iloc[:3000]
    alone = MeanReversion().run(frame, gaps="ignore")
    detector = RegimeDetector().init()
    params, regime_state = detector.params, detector.values
    agent = MeanReversion()
    state = agent.init()
    time_ms, o, h, low, c, _ = ohlcv_arrays(frame)
    votes = []
    for t in range(len(frame)):
        tstat = regime_step_nb(regime_state, params, time_ms[t], o[t], h[t], low[t], c[t])[5]
        full = trend_window_full_nb(regime_state, params)
        votes.append(mean_reversion_bands_nb(state.values, state.params, math.log(c[t]), tstat, full))
    assert np.array_equal(np.array(votes), alone[["vote", "confidence"]].to_numpy())


def test_a_committee_whose_windows_differ_runs_mean_reversion_on_its_own_window(btc):
    config = CommitteeConfig(regime=RegimeParams(trend_window=120))
    table = cs.Committee(config).run(btc, gaps="ignore")
    assert table["c_mean_reversion"].abs().sum() > 0
    assert not np.array_equal(table["target"], cs.Committee.default().run(btc, gaps="ignore")["target"])


def test_runs_in_chunks_equal_one_long_run(btc):
    """Splitting history at any bar, including inside a chunk, changes nothing."""
    committee = cs.Committee.default()
    whole = committee.run(btc, gaps="ignore")
    state = committee.init(["BTC/USDT"])
    cut = 5 * CHUNK + 17
    time_ms, _, h, low, c, _ = ohlcv_matrices({"BTC/USDT": btc})
    params = committee._kernel_params(committee.Params(), state.symbols)
    parts = [committee_run(state.arrays, *params, 2, time_ms[a:b], np.log(h[a:b]), np.log(low[a:b]),
                           np.log(c[a:b]), c[a:b]) for a, b in ((0, cut), (cut, len(btc)))]
    target = np.concatenate([p[0][:, 0] for p in parts])
    assert np.array_equal(target, whole["target"].to_numpy())


def test_an_empty_run_changes_no_state(btc):
    """A call with no bars (e.g. a feed that delivered nothing) returns empty outputs and leaves
    every member's state as it was; the kernels index a call's first and last bar, so zero
    bars must not reach them."""
    committee = cs.Committee.default()
    state = committee.init(["BTC/USDT"])
    time_ms, _, h, low, c, _ = ohlcv_matrices({"BTC/USDT": btc.iloc[:700]})
    params = committee._kernel_params(committee.Params(), state.symbols)
    committee_run(state.arrays, *params, 2, time_ms, np.log(h), np.log(low), np.log(c), c)
    before = [np.array(a, copy=True) for a in state.arrays if isinstance(a, np.ndarray)]
    out = committee_run(state.arrays, *params, 2, time_ms[:0], np.log(h[:0]), np.log(low[:0]), np.log(c[:0]), c[:0])
    assert out[0].shape == (0, 1)
    after = [a for a in state.arrays if isinstance(a, np.ndarray)]
    assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True))


def _run_kernel(committee, frame):
    """``committee_run`` over one symbol: ``(state, outputs, time_ms, close)``."""
    state = committee.init(["BTC/USDT"])
    time_ms, _, h, low, c, _ = ohlcv_matrices({"BTC/USDT": frame})
    params = committee._kernel_params(committee.Params(), state.symbols)
    out = committee_run(state.arrays, *params, 2, time_ms, np.log(h), np.log(low), np.log(c), c)
    return state, out, time_ms, c


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "own chains"])
def test_members_on_shared_chains_end_as_on_their_own(btc, shared):
    """With the default half-lives trend and risk read the committee's EWMA variance, and
    execution the detector's spread EWMA, instead of running the same chains again. Either way
    trend's state must be the agent's own after the same closes, risk must limit the raw vote
    and execution shape the risked target exactly as each does alone, states included."""
    config = CommitteeConfig() if shared else CommitteeConfig(
        trend=TrendParams(vol_halflife=100.0), risk=RiskParams(vol_halflife=72.0),
        execution=ExecutionParams(spread_halflife=12.0))
    committee = cs.Committee(config)
    frame = btc.iloc[:4 * CHUNK + 100]
    fresh = committee.init(["BTC/USDT"])
    members, *_, committee_params, _ = committee._kernel_params(committee.Params(), fresh.symbols)
    assert shared_chains_nb(fresh.arrays, members, committee_params, 1) == (shared, shared, shared)
    state, out, time_ms, c = _run_kernel(committee, frame)
    trend = Trend()
    alone = trend.init(config.trend)
    trend._run(alone.values, alone.params, ohlcv_arrays(frame))
    assert np.array_equal(state.arrays[1][0], alone.values)
    risk = np.zeros(risk_state_size(1))
    risk_init(risk, config.risk)
    risked, brakes = risk_history(risk, config.risk, time_ms, c, out[2])
    assert np.array_equal(risked, out[1]) and np.array_equal(brakes, out[6])
    assert np.array_equal(risk, state.arrays[7])
    moves = np.empty((1, N_MOVES, len(frame)))
    bar_moves_nb(fresh.arrays[0][0], 0, *(np.log(frame[[f]].to_numpy()) for f in ("high", "low", "close")), moves)
    has_spread = np.r_[0.0, np.ones(len(frame) - 1)]
    execution, target = np.zeros(EXEC_SIZE), np.empty(len(frame))
    execution_init(execution, 0, config.execution)
    execution_bars_nb(execution, 0, config.execution._replace(band=committee.Params().band), moves[0, MOVE_SPREAD],
                      has_spread, out[1][:, 0], target, target, False)
    assert np.array_equal(target, out[0][:, 0]) and np.array_equal(execution, state.arrays[8])
