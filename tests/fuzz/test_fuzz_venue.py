"""Duplicate and out-of-order fill reports from a venue (Hypothesis): whatever order, repetition
and batching the reports arrive in through the mass status (:func:`coinswarm.live.orders.reconcile`,
run by the venue runner every bar and at start-up), the ledger's position, cost, cash and PnL
equal the de-duplicated truth, each fill is booked once, and nothing halts."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.live.ledger import Ledger
from coinswarm.live.orders import reconcile
from coinswarm.live.protocols import Balance, Fill, OrderIntent, OrderStatus, Side, VenueOrder
from tests.fuzz.budget import DEADLINE_MS, examples, seen

SYMBOL = "BTC/USDT"
T0 = 1_709_251_200_000


class ReportingVenue:
    """A venue double that reports the fills delivered so far, repeated and shuffled as scripted;
    balances agree with the de-duplicated fills delivered (what a real venue's books would say)."""

    def __init__(self, orders: list[OrderIntent]) -> None:
        self.orders = {o.client_order_id: o for o in orders}
        self.reports: list[Fill] = []

    def deliver(self, reports: list[Fill]) -> None:
        self.reports = reports

    def _truth(self) -> dict[str, Fill]:
        return {f.fill_id: f for f in self.reports}

    async def open_orders(self, symbols):
        views = [await self.order_status(cid, SYMBOL) for cid in self.orders]
        return [o for o in views if o.status is OrderStatus.OPEN]

    async def order_status(self, cid: str, symbol: str) -> VenueOrder:
        intent = self.orders[cid]
        filled = sum(f.qty for f in self._truth().values() if f.client_order_id == cid)
        done = filled >= intent.qty - 1e-12
        return VenueOrder(cid, "v" + cid, SYMBOL, intent.side, intent.qty, filled, None,
                          OrderStatus.FILLED if done else OrderStatus.OPEN, T0)

    async def fills_since(self, symbols, since_ms: int) -> list[Fill]:
        return list(self.reports)

    async def balances(self) -> dict[str, Balance]:
        base = sum(f.qty if f.side is Side.BUY else -f.qty for f in self._truth().values())
        return {"BTC": Balance("BTC", base, base)}


@st.composite
def scenarios(draw):
    n_orders = draw(st.integers(1, 4))
    intents, fills = [], []
    for k in range(n_orders):
        side = draw(st.sampled_from([Side.BUY, Side.SELL]))
        parts = draw(st.lists(st.integers(1, 1000), min_size=1, max_size=3))
        qty = sum(parts) / 1000.0
        cid = f"cs{k:030d}"
        intents.append(OrderIntent(cid, SYMBOL, side, qty, T0 + k * 3_600_000, "trend"))
        for j, part in enumerate(parts):
            price = draw(st.floats(1_000.0, 100_000.0))
            fills.append(Fill(f"{k}-{j}", cid, SYMBOL, side, part / 1000.0, price, draw(st.floats(0.0, 5.0)), "USDT",
                              T0 + k * 3_600_000 + j * 1000))
    # the venue's reports: batches (cumulative, as fills_since may repeat), each with repeats, shuffled
    cuts = sorted(draw(st.lists(st.integers(0, len(fills)), max_size=3))) + [len(fills)]
    batches = []
    for cut in cuts:
        seen_so_far = draw(st.permutations(fills[:cut])) if cut else []
        repeats = draw(st.lists(st.sampled_from(fills[:cut]), max_size=6)) if cut else []
        batches.append(draw(st.permutations([*seen_so_far, *repeats])) if seen_so_far or repeats else [])
    return intents, fills, batches


@pytest.mark.timeout(600)
def test_fuzz_duplicate_and_out_of_order_fill_reports():
    root = Path(tempfile.mkdtemp(prefix="fuzz-venue-"))
    counter = iter(range(10**9))

    @settings(max_examples=examples(100), deadline=DEADLINE_MS * 4, suppress_health_check=list(HealthCheck))
    @given(scenarios(), st.floats(1_000.0, 100_000.0))
    def case(scenario, mark):
        seen("venue")
        intents, fills, batches = scenario
        ledger = Ledger(f"sqlite:///{root / f'{next(counter)}.db'}")
        try:
            ledger.migrate()
            for intent in intents:
                ledger.record_new(intent, T0)
                ledger.transition(intent.client_order_id, OrderStatus.SENT, T0)
            venue = ReportingVenue(intents)
            for batch in batches:
                venue.deliver(batch)
                report = asyncio.run(reconcile(ledger, venue, [SYMBOL], T0 + 10**8, grace_ms=0))
                assert not report.halted, report.unexplained
            sign = {Side.BUY: 1.0, Side.SELL: -1.0}
            qty = sum(sign[f.side] * f.qty for f in fills)
            cost = sum(sign[f.side] * f.qty * f.price + f.fee for f in fills)
            position = ledger.positions()[SYMBOL]
            assert abs(position.qty - qty) < 1e-9
            assert abs(position.cost - cost) < 1e-6 * max(1.0, abs(cost))
            assert abs(ledger.cash()["USDT"] + cost) < 1e-6 * max(1.0, abs(cost))
            assert abs(position.pnl(mark) - (qty * mark - cost)) < 1e-6 * max(1.0, abs(cost), abs(qty * mark))
            assert sorted(f.fill_id for f in ledger.fills()) == sorted(f.fill_id for f in fills)
            assert all(o.status is OrderStatus.FILLED for o in ledger.orders())
        finally:
            ledger.close()

    case()
