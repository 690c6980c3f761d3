"""The committee: weighted agent votes with learned per-regime weights, then risk and execution."""

from coinswarm.committee.attribution import attribute, realised_pnl
from coinswarm.committee.committee import (
    Committee,
    CommitteeConfig,
    CommitteeOutput,
    CommitteeParams,
    CommitteeState,
)
from coinswarm.strategies.base import register

COMMITTEE = register(Committee.default())

__all__ = [
    "Committee",
    "CommitteeConfig",
    "CommitteeOutput",
    "CommitteeParams",
    "CommitteeState",
    "attribute",
    "realised_pnl",
]
