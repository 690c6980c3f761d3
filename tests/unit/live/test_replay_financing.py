"""The paper broker books fills, not interest: a replay (or a parity run) given financing costs
(``Costs(cash_rate=…)`` or ``borrow_rate``) is refused before any work, not silently run
unfinanced against a financed backtest."""

from __future__ import annotations

import asyncio

import pytest

import coinswarm as cs
from coinswarm.errors import ConfigError
from coinswarm.live.parity import compare
from coinswarm.live.replay import ReplaySpec, replay

DATA = ["binance:BTC/USDT:1h"]


@pytest.mark.parametrize("costs", [cs.Costs(cash_rate=0.04), cs.Costs(fee_bps=10, borrow_rate=0.1)])
def test_a_financed_replay_is_refused_before_the_ledger_is_opened(tmp_path, costs):
    db = tmp_path / "r.db"
    spec = ReplaySpec(DATA, "trend", f"sqlite:///{db}", start="2021-01-01", end="2021-01-10", costs=costs)
    with pytest.raises(ConfigError, match=r"paper broker does not finance the book"):
        asyncio.run(replay(spec))
    assert not db.exists()


def test_parity_with_financing_costs_is_refused():
    with pytest.raises(ConfigError, match=r"paper broker does not finance the book \(costs.cash_rate 0.04"):
        compare(DATA, "trend", "2021-01-01", "2021-01-10", costs=cs.Costs(cash_rate=0.04))


def test_an_unfinanced_replay_still_runs(tmp_path):
    summary = asyncio.run(replay(ReplaySpec(DATA, "trend", f"sqlite:///{tmp_path / 'r.db'}", start="2021-01-01",
                                            end="2021-01-05", costs=cs.Costs(fee_bps=10))))
    assert summary["bars"] > 0
