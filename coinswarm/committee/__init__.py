"""The committee: weighted agent votes with learned per-regime weights, then risk and execution.

Its state is the core's one :class:`~coinswarm.agents.state.State` (``Committee.init`` /
``Committee.step``); ``CommitteeState`` is the older name of it.
"""

import warnings

from coinswarm.agents.state import State
from coinswarm.committee.committee import (
    Committee,
    CommitteeConfig,
    CommitteeOutput,
    CommitteeParams,
)

__all__ = [
    "Committee",
    "CommitteeConfig",
    "CommitteeOutput",
    "CommitteeParams",
    "State",
]


def __getattr__(name: str):
    if name == "CommitteeState":
        warnings.warn("coinswarm.committee.CommitteeState is now coinswarm.agents.State", DeprecationWarning,
                      stacklevel=2)
        return State
    raise AttributeError(f"module 'coinswarm.committee' has no attribute {name!r}")
