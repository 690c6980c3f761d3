"""Fixtures shared by the live daemon's unit tests."""

from __future__ import annotations

import pytest

from coinswarm.live.ledger import Ledger


@pytest.fixture
def ledger(tmp_path):
    """A migrated SQLite ledger in the test's own folder, closed afterwards."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'live.db'}")
    ledger.migrate()
    yield ledger
    ledger.close()
