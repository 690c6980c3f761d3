"""``coinswarm parity``: the daemon (replayed in-process, paper broker, a throw-away SQLite
ledger) against the backtester (``Committee.backtest`` for the committee, ``cs.simulate`` of
the strategy's ``targets`` otherwise) on the same data, compared order by order and fill by
fill — exactly (``==`` on every float), not within a tolerance.

Each backtest fill is one order of the daemon: the same symbol, side and quantity, decided at
the bar before the fill. The first divergence is reported with its cause: ``signal`` (a
different order: side, symbol or size), ``timing`` (the same order at another bar), ``price``
(the fill price) or ``cost`` (the fee). The money that moves without an order is compared
too, exactly: the paper kernel's final cash, funding paid, interest earned and borrow fees
(its last checkpoint) against the backtest's (cause ``financing``).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from coinswarm.costs import Costs
from coinswarm.live.replay import ReplaySpec, funding_sources, replay, sources_by_symbol


@dataclass
class ParityReport:
    """The comparison: counts, the number of differences and the first one (with its cause)."""

    orders: int
    fills: int
    backtest_fills: int
    differences: int
    first: str = ""
    cause: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Every order and fill equal."""
        return self.differences == 0

    def summary(self) -> str:
        """The last line of ``coinswarm parity``."""
        return f"parity: {self.orders} orders, {self.fills} fills compared, {self.differences} differences"


def backtest_fills(sources: Sequence[str], strategy: str, start: str | None, end: str | None,
                   costs: Costs, init_cash: float, funding: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The backtester's fills on the data the daemon replays (perpetuals charged the funding the
    replay reads: ``Costs(funding=…)``)."""
    return backtest_result(sources, strategy, start, end, costs, init_cash, funding).fills


def backtest_result(sources: Sequence[str], strategy: str, start: str | None, end: str | None,
                    costs: Costs, init_cash: float, funding: Mapping[str, str] | None = None):
    """The backtester's :class:`~coinswarm.backtest.engine.Result` on the data the daemon replays."""
    import coinswarm as cs
    from coinswarm.backtest.committee import Committee
    from coinswarm.live.stepper import Stepper

    pairs = sources_by_symbol(sources)
    frames = {s: cs.load_ohlcv(src, start=start, end=end) for s, src in pairs.items()}
    for symbol, frame in frames.items():  # a CSV's frame has no symbol: the backtest would call it 'asset'
        frame.attrs["symbol"] = symbol
    prices = frames if len(frames) > 1 else next(iter(frames.values()))
    rates = {s: cs.load_funding(src) for s, src in funding_sources(ReplaySpec(sources, strategy, "",
                                                                              funding=dict(funding or {}))).items()}
    costs = replace(costs, funding=rates) if rates else costs
    if strategy == "committee":
        return Committee.default().backtest(prices, costs=costs, init_cash=init_cash)
    stepper = Stepper(strategy, list(pairs))
    return cs.simulate(prices, stepper.targets_for_backtest(frames, rates), costs=costs, init_cash=init_cash,
                       max_leverage=stepper.max_leverage, allow_short=stepper.allow_short)


def money_of(result) -> tuple[float, float, float, float]:
    """``(final cash, funding paid, interest earned, borrow fees paid)`` of a backtest result."""
    m = result.metrics
    return (float(result.cash.iloc[-1]), float(m["funding_paid"]), float(m.get("interest_earned", 0.0)),
            float(m.get("borrow_paid", 0.0)))


def _daemon(sources: Sequence[str], strategy: str, start: str | None, end: str | None, costs: Costs,
            init_cash: float, funding: Mapping[str, str] | None = None) -> tuple[list[tuple], list[tuple], tuple]:
    import base64

    from coinswarm.live.ledger import Ledger
    from coinswarm.live.paper import PaperBroker
    from coinswarm.live.recovery import CHECKPOINT_KEY

    with tempfile.TemporaryDirectory(prefix="coinswarm-parity-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'parity.db'}"
        asyncio.run(replay(ReplaySpec(sources, strategy, db, start=start, end=end, costs=costs,
                                      init_cash=init_cash, funding=dict(funding or {}))))
        ledger = Ledger(db)
        try:
            fills = sorted((f.time_ms, f.symbol, f.side.value, f.qty, f.price, f.fee, f.client_order_id)
                           for f in ledger.fills())
            orders = {o.client_order_id: (o.symbol, o.side.value, o.qty, o.status.value) for o in ledger.orders()}
            kernel = PaperBroker(list(sources_by_symbol(sources)))
            kernel.load(base64.b64decode(ledger.get_meta(CHECKPOINT_KEY)["paper"]))
        finally:
            ledger.close()
    return fills, [orders.get(f[6]) for f in fills] + [o for cid, o in orders.items()
                                                       if cid not in {f[6] for f in fills}], \
        (kernel.cash, *kernel.financing())


def _cause(mine: tuple | None, theirs: tuple | None) -> str:
    if mine is None or theirs is None:
        return "signal"
    if (mine[1], mine[2]) != (theirs[1], theirs[2]):
        return "signal"
    if mine[0] != theirs[0]:
        return "timing"
    if mine[4] != theirs[4]:
        return "price"
    if mine[3] != theirs[3]:
        return "signal"
    return "cost"


def compare(sources: Sequence[str], strategy: str, start: str | None = None, end: str | None = None, *,
            costs: Costs | None = None, init_cash: float = 10_000.0,
            funding: Mapping[str, str] | None = None) -> ParityReport:
    """Replay through the daemon and compare with the backtest (see the module docstring);
    ``funding``: perpetual → funding source, as ``ReplaySpec.funding``."""
    costs = costs or Costs()
    fills, orders, money = _daemon(sources, strategy, start, end, costs, init_cash, funding)
    result = backtest_result(sources, strategy, start, end, costs, init_cash, funding)
    frame = result.fills
    theirs = sorted(zip((t.value // 1_000_000 for t in frame["time"]), frame["symbol"], frame["side"],
                        frame["qty"].astype(float), frame["price"].astype(float), frame["fee"].astype(float),
                        strict=True))
    report = ParityReport(len(orders), len(fills), len(theirs), 0)
    for k in range(max(len(fills), len(theirs))):
        mine = fills[k][:6] if k < len(fills) else None
        other = theirs[k] if k < len(theirs) else None
        order = orders[k] if k < len(orders) else None
        order_ok = mine is not None and order is not None and order[:3] == (mine[1], mine[2], mine[3]) \
            and order[3] == "filled"
        if mine == other and order_ok:
            continue
        report.differences += 1
        if not report.first:
            report.cause = _cause(mine, other) if mine != other else "signal"
            report.first = f"fill #{k}: daemon {mine}, backtest {other}" + ("" if order_ok else f", order {order}")
    _compare_money(report, money, money_of(result))
    report.lines = [f"data: {', '.join(sources)} ({start or 'first bar'} → {end or 'last bar'}), strategy {strategy}",
                    f"daemon: {len(orders)} orders, {len(fills)} fills; backtest: {len(theirs)} fills"]
    if report.first:
        report.lines.append(f"first divergence ({report.cause}): {report.first}")
    return report


def _compare_money(report: ParityReport, mine: tuple, theirs: tuple) -> None:
    """One difference when the final cash, funding, interest or borrow fees differ (exactly)."""
    names = ("cash", "funding paid", "interest earned", "borrow paid")
    if tuple(map(float, mine)) == tuple(map(float, theirs)):
        return
    report.differences += 1
    if not report.first:
        report.cause = "financing"
        report.first = "; ".join(f"{n}: daemon {a!r}, backtest {b!r}"
                                 for n, a, b in zip(names, mine, theirs, strict=True) if a != b)
