"""Renamed public names keep working with a DeprecationWarning that names the new one; unknown
names are an AttributeError (the module's ``__getattr__`` hides nothing)."""

from __future__ import annotations

import importlib

import pytest

from coinswarm.agents import State


@pytest.mark.parametrize(("module", "old"), [("coinswarm.agents", "AgentState"),
                                             ("coinswarm.committee", "CommitteeState")])
def test_an_old_state_name_warns_and_is_the_new_state(module, old):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{module}.{old} is now coinswarm.agents.State"):
        assert getattr(mod, old) is State


@pytest.mark.parametrize("module", ["coinswarm.agents", "coinswarm.committee"])
def test_an_unknown_name_is_an_attribute_error(module):
    mod = importlib.import_module(module)
    with pytest.raises(AttributeError, match=f"module '{module}' has no attribute 'Nonesuch'"):
        mod.Nonesuch  # noqa: B018
