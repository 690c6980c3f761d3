"""The parameter door (``coinswarm.params``) and the funding check of ``coinswarm.costs``: every
refusal is a ``ConfigError`` that names the parameter and what would be valid; every exact
value is accepted unchanged."""

from __future__ import annotations

import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.costs import check_funding
from coinswarm.errors import ConfigError
from coinswarm.params import (
    MAX_COMBINATIONS,
    as_duration,
    coerce_value,
    default_grid,
    expand_grid,
    invalid_reason,
    make_params,
    resolve_params,
)


class ToyParams(NamedTuple):
    window: int = 10
    scale: float = 1.0
    short: bool = False
    label: str = "x"


class Toy:
    """A strategy with one field of each kind and no ``invalid_reason``."""

    name = "toy"
    Params = ToyParams

    def is_valid(self, params: ToyParams) -> bool:
        return params.window > 0


TOY = Toy()


@pytest.mark.parametrize(("value", "kind", "want"), [
    ("20", int, 20), (" -3 ", int, -3), (20.0, int, 20), (np.int64(7), int, 7), ("1e3", int, 1000),
    ("2.5", float, 2.5), (3, float, 3.0), (".5", float, 0.5),
    (True, bool, True), ("False", bool, False), (" true ", bool, True), (1, bool, True), (np.bool_(False), bool, False),
    ("abc", str, "abc"),
])
def test_exact_values_are_coerced(value, kind, want):
    got = coerce_value(TOY, "k", value, kind)
    assert got == want and type(got) is kind


@pytest.mark.parametrize(("value", "kind", "why"), [
    (2.5, int, "not a whole number.*such as 20"), (True, int, "not a whole number"), ("ten", int, "not a number"),
    (float("inf"), int, "not a whole number"), (10**12, int, "outside ±10,000,000"), (None, int, "not a whole"),
    ("nan", float, "not a number"), (float("nan"), float, "not a finite number.*a finite number"),
    (False, float, "not a real number"), ("1,5", float, "not a number"),
    (2, bool, "not True or False"), ("yes", bool, "not True or False"), (0.0, bool, "not True or False"),
    (5, str, "not a str"),
])
def test_inexact_values_are_refused_with_the_parameter_named(value, kind, why):
    with pytest.raises(ConfigError, match=f"^toy.k: cannot use .* as {kind.__name__}: {why}"):
        coerce_value(TOY, "k", value, kind)


def test_make_and_resolve_params():
    assert make_params(TOY) == ToyParams()
    assert make_params(TOY, {"window": "5", "short": "true"}) == ToyParams(window=5, short=True)
    assert resolve_params(TOY, None) == ToyParams()
    assert resolve_params(TOY, ToyParams(window=3)) == ToyParams(window=3)
    assert resolve_params(TOY, {"scale": 2}) == ToyParams(scale=2.0)
    with pytest.raises(ConfigError, match="toy has no parameter.*'speed'.*it takes"):
        make_params(TOY, {"speed": 1})
    with pytest.raises(ConfigError, match="parameters must be a mapping name → value, not list"):
        make_params(TOY, [("window", 1)])
    with pytest.raises(ConfigError, match="toy takes ToyParams or a mapping name → value, not int"):
        resolve_params(TOY, 5)
    with pytest.raises(ConfigError, match=r"invalid parameters: the combination .*'window': 0.* is refused by toy"):
        make_params(TOY, {"window": 0})
    assert invalid_reason(TOY, ToyParams(window=1)) is None


def test_expand_grid_without_a_default_grid_and_its_refusals():
    assert default_grid(TOY) == {}
    assert expand_grid(TOY, None) == [ToyParams()], "no default grid: the default parameters"
    combos = expand_grid(TOY, {"window": [1, 2, 2, "3"], "short": True})
    assert [(p.window, p.short) for p in combos] == [(1, True), (2, True), (3, True)], "deduplicated, scalar wrapped"
    assert [p.window for p in expand_grid(TOY, {"window": range(-1, 3)})] == [1, 2], "invalid ones skipped"
    with pytest.raises(ConfigError, match="grid must be a mapping name → values, not list"):
        expand_grid(TOY, [1, 2])
    with pytest.raises(ConfigError, match=r"empty grid for toy; pass grid=None .*\(its default parameters\)"):
        expand_grid(TOY, {})
    with pytest.raises(ConfigError, match="grid 'window' of toy has no values"):
        expand_grid(TOY, {"window": []})
    with pytest.raises(ConfigError, match="grid 'window' has 1,000,001 values"):
        expand_grid(TOY, {"window": range(MAX_COMBINATIONS + 1)})
    with pytest.raises(ConfigError, match="grid of toy has 1,002,001 combinations"):
        expand_grid(TOY, {"window": range(1, 1002), "scale": [float(x) for x in range(1001)]})
    with pytest.raises(ConfigError, match="no valid combination for toy: e.g. the combination"):
        expand_grid(TOY, {"window": [0, -5]})


@pytest.mark.parametrize(("value", "want"), [
    ("365D", pd.Timedelta(days=365)), ("12h", pd.Timedelta(hours=12)),
    (datetime.timedelta(days=2), pd.Timedelta(days=2)), (np.timedelta64(3, "h"), pd.Timedelta(hours=3)),
])
def test_durations_with_a_unit_are_accepted(value, want):
    assert as_duration(value, "train") == want


@pytest.mark.parametrize(("value", "why"), [
    ("365", "is not a duration with a unit"), (365, r"\(int\) is not a duration"), ("NaT", "is not a duration"),
    ("12 parsecs", r"is not a duration .*\("), (pd.NaT, r"\(NaTType\) is not"),
    ("-5D", "must be > 0 \\(a negative train would let the future leak"), ("0D", "must be > 0$"),
])
def test_durations_without_a_unit_or_not_positive_are_refused(value, why):
    with pytest.raises(ConfigError, match=f"^train=.*{why}"):
        as_duration(value, "train")


def test_zero_duration_only_where_allowed():
    assert as_duration("0D", "embargo", allow_zero=True) == pd.Timedelta(0)
    with pytest.raises(ConfigError, match="must be ≥ 0"):
        as_duration("-1h", "embargo", allow_zero=True)


def _rates(values, tz="UTC", index=None):
    index = index if index is not None else pd.date_range("2024-01-01", periods=len(values), freq="8h", tz=tz)
    return pd.Series(values, index=index)


def test_funding_accepts_none_names_series_and_dicts_of_them():
    for ok in (None, "binance:BTC/USDT:USDT:funding", _rates([0.0001, -0.0002]),
               {"BTC/USDT:USDT": _rates([0.0001]), "ETH/USDT:USDT": None, "SOL/USDT:USDT": "some:name"}):
        check_funding(ok)
    assert cs.Costs(funding=_rates([0.0001])).funding is not None


@pytest.mark.parametrize(("funding", "why"), [
    ({1: _rates([0.0])}, r"Costs.funding: keys must be symbol names, got 1"),
    ({"BTC": [0.1]}, r"Costs.funding\['BTC'\] must be a Series or a catalog name, got list"),
    ({"BTC": _rates([2.0])}, r"Costs.funding\['BTC'\]: rate (np\.float64\()?2\.0\)? at .* is not a finite fraction"),
    (0.0001, "Costs.funding must be a Series, a dict of them or a catalog name, got float"),
    (pd.Series([0.1, 0.2]), "needs a UTC DatetimeIndex"),
    (_rates([0.1], tz=None), "needs a UTC DatetimeIndex"),
    (_rates([0.1], tz="Europe/Paris"), "needs a UTC DatetimeIndex"),
    (_rates([0.1, 0.2], index=pd.DatetimeIndex(["2024-01-02", "2024-01-01"], tz="UTC")), "must be sorted ascending"),
    (_rates(["a", "b"]), "rates must be numbers, got dtype (object|str)"),
    (_rates([0.1, np.nan]), r"rate (np\.float64\()?nan\)? at 2024-01-01 08:00:00\+00:00 is not a finite fraction"),
])
def test_funding_refusals_say_what_and_where(funding, why):
    with pytest.raises(ConfigError, match=why):
        check_funding(funding)
    with pytest.raises(ConfigError, match=why):
        cs.Costs(funding=funding)
