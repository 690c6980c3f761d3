"""The committee: weighted agent votes with learned per-regime weights, then risk and execution."""

from coinswarm.committee.committee import (
    Committee,
    CommitteeConfig,
    CommitteeOutput,
    CommitteeParams,
    CommitteeState,
)

__all__ = [
    "Committee",
    "CommitteeConfig",
    "CommitteeOutput",
    "CommitteeParams",
    "CommitteeState",
]
