"""Golden numbers on the bundled real data (BTC, ETH, the BTC perp, 2021–2022): the engine,
a sweep, every agent, the regimes, the committee (alone and with the pair trade) and a
walk-forward give the same bytes as when ``golden.json`` was recorded."""

import json

import pytest

from tests.acceptance.golden import PATH, compute


@pytest.fixture(scope="module")
def found():
    return compute()


@pytest.mark.parametrize("name", sorted(json.loads(PATH.read_text())))
def test_golden(name, found):
    assert found[name] == json.loads(PATH.read_text())[name], f"{name} moved"
