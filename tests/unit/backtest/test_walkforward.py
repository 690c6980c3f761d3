import json

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs

GRID = {"fast": [5, 10, 20, 40], "slow": [50, 100, 200]}


@pytest.fixture(scope="module")
def report(btc_1h):
    return cs.walk_forward("sma_cross", btc_1h, GRID, train="365D", test="90D")


def test_folds_are_causal_and_contiguous(report):
    purge = pd.Timedelta(hours=200)
    for fold in report.folds:
        assert fold["train_end"] <= fold["test_start"] - purge
        assert fold["train_end"] - fold["train_start"] == pd.Timedelta("365D") - purge
    for a, b in zip(report.folds, report.folds[1:], strict=False):
        assert a["test_end"] == b["test_start"]
    assert report.n_trials == len(report.folds) * 12  # every combo of every fold counts


def test_oos_equity_uses_only_test_windows(report, btc_1h):
    assert report.oos_equity.index[0] == report.folds[0]["test_start"]
    assert report.oos.assumptions["fee_bps"] == 10


def test_report_fields_and_json(report, tmp_path):
    payload = json.loads(report.to_json(str(tmp_path / "wf.json")))
    for key in ("oos_sharpe", "psr", "dsr", "pbo", "n_trials", "passed", "reasons", "folds"):
        assert key in payload
    assert payload["passed"] is False and payload["reasons"]
    assert 0 <= payload["pbo"] <= 1 and 0 <= payload["dsr"] <= 1
    report.plot(str(tmp_path / "wf.png"))


def test_fold_results_do_not_depend_on_future_data(btc_1h, report):
    cut = report.folds[5]["test_end"]
    early = cs.walk_forward("sma_cross", btc_1h.loc[btc_1h.index < cut], GRID)
    for a, b in zip(early.folds[:5], report.folds[:5], strict=True):
        assert a["params"] == b["params"]
    stop = report.folds[4]["test_end"]
    np.testing.assert_array_equal(early.oos_equity[early.oos_equity.index < stop].to_numpy(),
                                  report.oos_equity[report.oos_equity.index < stop].to_numpy())


def _permuted(prices: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Real BTC returns in random order: same distribution, no exploitable structure."""
    rng = np.random.default_rng(seed)
    log_ret = np.diff(np.log(prices["close"].to_numpy()))
    close = prices["close"].iloc[0] * np.exp(np.concatenate([[0.0], np.cumsum(
        rng.permutation(log_ret))]))
    open_ = np.concatenate([[close[0]], close[:-1]])
    out = pd.DataFrame({"open": open_, "high": np.maximum(open_, close),
                        "low": np.minimum(open_, close), "close": close,
                        "volume": prices["volume"].to_numpy()}, index=prices.index)
    out.attrs = dict(prices.attrs)
    return out


@pytest.mark.slow
def test_gate_does_not_pass_noise(btc_1h):
    grid = {"fast": range(5, 51, 5), "slow": range(20, 211, 10)}
    verdicts = [cs.walk_forward("sma_cross", _permuted(btc_1h, seed), grid).passed
                for seed in range(8)]
    assert sum(verdicts) == 0


def test_selection_variance_ignores_differences_between_folds():
    from coinswarm.backtest.walkforward import selection_variance

    rng = np.random.default_rng(7)
    folds = [rng.normal(size=12) for _ in range(5)]
    shifted = [f + 10.0 * k for k, f in enumerate(folds)]  # every combo better in later folds
    assert selection_variance(shifted) == pytest.approx(selection_variance(folds), rel=1e-12)
    pooled = np.concatenate([f - f.mean() for f in folds]) / np.sqrt(365.0)
    assert selection_variance(folds) == pytest.approx((pooled ** 2).sum() / (60 - 5), rel=1e-12)
    assert selection_variance([np.array([1.0])]) == 0.0


# --- issue 17: windows that would hang or leak the future are refused ----------------------------

SMALL = {"fast": [5, 10], "slow": [20, 40]}


@pytest.fixture(scope="module")
def two_years(btc_1h):
    return btc_1h.loc["2021":"2022"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"test": "0D"}, "test='0D' must be > 0"),
    ({"train": 365, "test": 90}, "train=365 .int. is not a duration"),
    ({"train": "365"}, "train='365' is not a duration"),
    ({"test": "1y"}, "test='1y' is not a duration"),
    ({"purge": "-10D"}, "purge='-10D' must be ≥ 0 .a negative purge would let the future leak"),
    ({"embargo": "-1h"}, "embargo='-1h' must be ≥ 0"),
    ({"train": "-30D"}, "train='-30D' must be > 0"),
    ({"test": "10min"}, "shorter than one bar"),
    ({"test": "1h"}, "more than 1000 folds"),
    ({"train": "30h"}, r"leaves 0 bars, not more than the warm-up of 40 bars"),
    ({"train": "700D", "test": "90D"}, r"the data has 17,507 bars .* one fold needs train 700 days"),
    ({"objective": "nope"}, "objective 'nope' is not a metric"),
    ({"pbo_splits": 3}, "pbo_splits"),
])
def test_bad_windows_are_typed_errors_never_hangs(two_years, kwargs, match):
    with pytest.raises(cs.ConfigError, match=match):
        cs.walk_forward("sma_cross", two_years, SMALL, **kwargs)


def test_train_shorter_than_the_warm_up_names_both(two_years):
    with pytest.raises(cs.ConfigError, match=r"train='10D' less purge .* warm-up of 200 bars"):
        cs.walk_forward("sma_cross", two_years, {"fast": [5], "slow": [200]}, train="10D", test="30D")


def test_zero_purge_is_allowed_and_windows_never_overlap(two_years):
    report = cs.walk_forward("sma_cross", two_years, SMALL, train="180D", test="90D", purge="0D")
    for fold in report.folds:
        assert fold["train_end"] <= fold["test_start"]
    assert report.settings["purge"] == "0 days 00:00:00"


def test_bad_gate_is_refused():
    for kwargs in ({"min_dsr": 2.0}, {"max_pbo": -1}, {"min_sharpe": float("nan")}, {"min_trades": 2.5}):
        with pytest.raises(cs.ConfigError, match="Gate"):
            cs.Gate(**kwargs)
