"""Fixtures of the quorum integration tests."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from quorum_harness import seed_store  # noqa: E402

from coinswarm.memory import Store  # noqa: E402


@pytest.fixture
def store(postgres_url):
    """A migrated PostgreSQL store holding the patterns the proposal factory refers to."""
    s = Store(postgres_url)
    s.migrate()
    seed_store(s)
    yield s
    s.close()
