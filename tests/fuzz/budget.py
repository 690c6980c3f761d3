"""Sizes and counts of the fuzz suites.

Each fuzz test asks :func:`examples` for its Hypothesis ``max_examples`` and calls
:func:`seen` once per generated case; ``tests/fuzz/conftest.py`` prints the cases run per
area at the end of the session. The default run keeps the whole fuzz suite within a minute
or two (≥ 10,000 cases in all); ``COINSWARM_FUZZ=slow`` runs ten times as many (≥ 100,000).
Every case has a deadline (``DEADLINE_MS``): a hang is a failure, not a slow test.
"""

from __future__ import annotations

import os
from collections import Counter

SCALE = 10 if os.environ.get("COINSWARM_FUZZ", "").strip().lower() == "slow" else 1
DEADLINE_MS = 5_000
CASES: Counter[str] = Counter()


def examples(n: int) -> int:
    """``n`` cases in the default run, ``10 n`` with ``COINSWARM_FUZZ=slow``."""
    return n * SCALE


def seen(area: str) -> None:
    """Count one generated case of ``area`` (``"engine"``, ``"data"``, ``"quorum"``, …)."""
    CASES[area] += 1
