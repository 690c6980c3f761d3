"""The daemon's ledger on a real PostgreSQL server: a replay stopped part-way and resumed books
exactly what the same replay books on SQLite (orders, fills, positions, cash, bars), and a crash
at a write-ahead point resumes exactly on PostgreSQL too."""

from __future__ import annotations

import asyncio

import pytest

from coinswarm.live import faults
from coinswarm.live.replay import ReplaySpec, replay
from tests.helpers.live import BOOK_KEYS
from tests.helpers.live import book as ledger_book

pytestmark = pytest.mark.integration
DATA = ["binance:BTC/USDT:1h", "binance:ETH/USDT:1h"]
START, END = "2021-01-01", "2021-02-28"


def book(db: str) -> tuple[list, list, dict]:
    return ledger_book(db, BOOK_KEYS)


class Crash(BaseException):
    pass


@pytest.mark.timeout(600)
def test_replay_on_postgres_equals_sqlite_after_a_crash(postgres_url, tmp_path, monkeypatch):
    lite = f"sqlite:///{tmp_path / 'lite.db'}"
    asyncio.run(replay(ReplaySpec(DATA, "trend", lite, start=START, end=END)))
    seen = {"n": 0}

    def boom(name):
        if name == "after_sent":
            seen["n"] += 1
            if seen["n"] == 25:
                raise Crash(name)

    monkeypatch.setattr(faults, "point", boom)
    with pytest.raises(Crash):
        asyncio.run(replay(ReplaySpec(DATA, "trend", postgres_url, start=START, end=END)))
    monkeypatch.undo()
    summary = asyncio.run(replay(ReplaySpec(DATA, "trend", postgres_url, start=START, end=END)))
    assert summary["resumed"] and not summary["halted"]
    a, b = book(lite), book(postgres_url)
    assert a[0] == b[0] and a[1] == b[1] and len(a[1]) > 50
    assert a[2] == b[2]
