"""One gap vocabulary (issue 21): raise | warn | ignore | ffill for loading, the first three for
agents, regimes and the committee; the loaders' old "keep" is a deprecated alias of "ignore"."""

import warnings

import pytest

import coinswarm as cs
from coinswarm.data.validate import GAP_POLICIES, gap_policy
from coinswarm.errors import ConfigError, GapError, GapWarning

SOL = "binance:SOL/USDT:1h"  # 20 missing bars (see test_cli.test_data_commands)


def test_loading_takes_every_policy_and_keep_is_a_deprecated_ignore():
    quiet = cs.load_ohlcv(SOL)
    assert quiet.attrs["gaps"]["missing_bars"] == 20
    with pytest.deprecated_call(match="gaps='keep' is deprecated: use gaps='ignore'"):
        old = cs.load_ohlcv(SOL, gaps="keep")
    assert old.equals(quiet)
    with pytest.warns(GapWarning, match="20 missing 1h bars"):
        warned = cs.load_ohlcv(SOL, gaps="warn")
    assert warned.equals(quiet)
    with pytest.raises(GapError):
        cs.load_ohlcv(SOL, gaps="raise")
    assert len(cs.load_ohlcv(SOL, gaps="ffill")) == len(quiet) + 20


def test_agents_take_the_same_words_and_say_ffill_is_for_loading():
    sol = cs.load_ohlcv(SOL, start="2021", end="2021-12-31")
    trend = cs.get_strategy("trend")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trend.run(sol, gaps="ignore")
    with pytest.raises(ConfigError, match="gaps='ffill'\\) fills bars before an agent sees them"):
        trend.run(sol, gaps="ffill")
    with pytest.deprecated_call():
        trend.run(sol, gaps="keep")


def test_gap_policy_names_the_valid_words():
    assert GAP_POLICIES == ("raise", "warn", "ignore", "ffill")
    with pytest.raises(ConfigError, match="gaps must be one of 'raise', 'warn', 'ignore', 'ffill'"):
        gap_policy("nope")
    assert cs.GapWarning is GapWarning if hasattr(cs, "GapWarning") else True
    from coinswarm.agents import GapWarning as AgentsGapWarning

    assert AgentsGapWarning is GapWarning
