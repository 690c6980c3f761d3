"""The paper broker: orders filled by **the** portfolio kernel that :func:`coinswarm.simulate`
scans (:func:`coinswarm.kernels.portfolio.portfolio_step`): the same fees, slippage, funding,
next-open fills, leverage cap and bankruptcy, so a replay equals the backtest by construction.

The kernel trades towards target weights, one bar at a time: a bar's targets (decided at its
close) fill at the next bar's open, sized against the equity there. So the runner does, per
closed bar: :meth:`PaperBroker.preview` (the kernel's step on a copy of its state: this bar's
fills, which are the orders decided at the previous bar), one :class:`OrderIntent` per fill
(:func:`intents_of`), the write-ahead steps of the ledger, :meth:`submit` of each intent (the
venue's acknowledgement: it must be one of the previewed orders) and :meth:`execute`, which
adopts the stepped state and returns the fills. The runner books the fills together with the
kernel's state (:meth:`to_bytes`) in one ledger transaction, so the paper venue's memory and
the ledger can never disagree after a crash: an order without booked fills was never executed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coinswarm.errors import ConfigError, OrderRejectedError
from coinswarm.kernels.metrics import A_FUNDING
from coinswarm.kernels.portfolio import (
    P_ACC,
    P_BANKRUPT,
    P_BOOKS,
    P_BORROW,
    P_CASH,
    P_EQUITY,
    P_INTEREST,
    portfolio_from_bytes,
    portfolio_init,
    portfolio_step,
    portfolio_to_bytes,
)
from coinswarm.live.protocols import Balance, Fill, OrderIntent, OrderStatus, Side, VenueOrder, client_order_id


def split_pair(symbol: str) -> tuple[str, str]:
    """``("BTC", "USDT")`` of ``"BTC/USDT"``."""
    base, _, quote = symbol.partition("/")
    return base, quote.split(":", 1)[0]


def fill_id_of(cid: str) -> str:
    """The paper venue's trade id of an order's (single) fill."""
    return f"{cid}-1"


def intents_of(fills: np.ndarray, symbols: Sequence[str], strategy: str, decided_at: int) -> list[OrderIntent]:
    """One market order per kernel fill (``fill_dt`` records), ids from (strategy, symbol, the
    decision bar's time, the fill's rank among this bar's fills of that symbol)."""
    intents, seen = [], {}
    for row in fills:
        symbol = symbols[int(row["asset"])]
        seq = seen.get(symbol, 0)
        seen[symbol] = seq + 1
        qty = float(row["qty"])
        intents.append(OrderIntent(client_order_id(strategy, symbol, decided_at, seq), symbol,
                                   Side.BUY if qty > 0 else Side.SELL, abs(qty), int(decided_at), strategy))
    return intents


class PaperBroker:
    """A venue inside the process whose matching engine is the portfolio kernel.

    Parameters
    ----------
    symbols : sequence of str
        The traded symbols (one quote currency: they share one cash account).
    init_cash : float
        Starting cash of a fresh account.
    fee, slippage : float
        Fractions of notional / price (``Costs.fee``, ``Costs.slippage``).
    max_leverage, allow_short : float, bool
        As in :func:`coinswarm.simulate`.
    fills_of : callable
        ``fills_of(symbols, since_ms)``: the booked fills (the paper venue's trade history is
        the ledger's, booked atomically with its state).
    clock : callable
        Epoch ms (the replay clock in a replay).
    credit : float, default 0
        Daily rate idle cash earns at each UTC day's end (``Costs.cash_rate`` as
        :func:`coinswarm.stats.daily_rate`; the kernel's financing, see :func:`portfolio_step`).
    borrow : array of shape (m,), optional
        Daily borrow fee rates of short spot positions (0 for perpetuals, which pay funding).
    """

    name = "paper"

    def __init__(self, symbols: Sequence[str], *, init_cash: float = 10_000.0, fee: float = 0.001,
                 slippage: float = 0.0, max_leverage: float = 1.0, allow_short: bool = False,
                 fills_of: Callable[[Sequence[str], int], list[Fill]] | None = None,
                 clock: Callable[[], int] = lambda: 0, credit: float = 0.0,
                 borrow: np.ndarray | None = None) -> None:
        self.symbols = tuple(symbols)
        quotes = {split_pair(s)[1] for s in self.symbols}
        if len(quotes) != 1:
            raise ConfigError(f"the paper broker keeps one cash account: symbols {list(self.symbols)} have quote "
                              f"currencies {sorted(quotes)}; use symbols of one quote currency")
        self.quote = quotes.pop()
        self.fee, self.slippage = float(fee), float(slippage)
        self.max_leverage, self.allow_short = float(max_leverage), bool(allow_short)
        self.credit = float(credit)
        self.borrow = np.zeros(len(self.symbols)) if borrow is None else np.asarray(borrow, dtype=np.float64)
        if not (np.isfinite(self.credit) and self.credit >= 0) or self.borrow.shape != (len(self.symbols),) \
                or not (np.isfinite(self.borrow).all() and (self.borrow >= 0).all()):
            raise ConfigError(f"paper broker: credit {credit!r} and borrow {borrow!r} must be finite daily rates "
                              f"≥ 0 (borrow: one per symbol of {list(self.symbols)}); the ledger books interest "
                              "as a credit and borrow fees as debits (Costs.cash_rate, borrow_rate ≥ 0)")
        self.state = portfolio_init(len(self.symbols), init_cash)
        self._fills_of, self._clock = fills_of, clock
        self._next: np.ndarray | None = None
        self._pending: dict[str, OrderIntent] = {}
        self._accepted: dict[str, OrderIntent] = {}
        self._bar_time = 0

    # -- the kernel ---------------------------------------------------------------------
    def preview(self, bar_time: int, open_: np.ndarray, close: np.ndarray, target: np.ndarray, *,
                day_end: bool, funding: np.ndarray | None = None, days: int | None = None) -> np.ndarray:
        """Step the kernel on a copy of the state: the bar's fills (``fill_dt``), not yet adopted.
        ``days``: the UTC days financed at this close (:func:`~coinswarm.kernels.portfolio.days_financed`;
        default: 1 with ``day_end``)."""
        nxt = self.state.copy()
        fills = portfolio_step(nxt, open_, close, target, funding=funding, day_end=day_end, days=days, fee=self.fee,
                               slippage=self.slippage, next_open=True, max_leverage=self.max_leverage,
                               allow_short=self.allow_short, credit=self.credit, borrow=self.borrow)
        self._next, self._bar_time = nxt, int(bar_time)
        self._pending, self._accepted = {}, {}
        return fills

    def withdraw_pending(self, assets: Sequence[int]) -> None:
        """Drop the pending (previous bar's) targets of ``assets``: no order for them at this bar."""
        m = len(self.symbols)
        for j in assets:
            self.state[P_BOOKS + 6 * m + int(j)] = np.nan

    def expect(self, intents: Sequence[OrderIntent]) -> None:
        """The orders of the previewed bar (what :meth:`submit` will accept)."""
        self._pending = {i.client_order_id: i for i in intents}

    def adopt(self) -> None:
        """Adopt the previewed state of a bar without orders."""
        if self._next is not None:
            self.state, self._next = self._next, None

    def execute(self, intents: Sequence[OrderIntent], fills: np.ndarray) -> list[Fill]:
        """Adopt the previewed state: the bar's fills as :class:`Fill` records (one per intent)."""
        missing = [i.client_order_id for i in intents if i.client_order_id not in self._accepted]
        if missing:
            raise OrderRejectedError(f"paper: orders {missing} were not submitted before execution", venue="paper")
        out = [Fill(fill_id_of(i.client_order_id), i.client_order_id, i.symbol, i.side, abs(float(row["qty"])),
                    float(row["price"]), float(row["fee"]), self.quote, self._bar_time)
               for i, row in zip(intents, fills, strict=True)]
        self.adopt()
        self._accepted = {}
        return out

    @property
    def equity(self) -> float:
        """Equity at the last close of the adopted state."""
        return float(self.state[P_EQUITY])

    @property
    def cash(self) -> float:
        """Cash of the adopted state."""
        return float(self.state[P_CASH])

    @property
    def bankrupt(self) -> bool:
        """The account went bankrupt (adopted state): equity ≤ 0 at a close, every position closed
        out there, the deficit written off (cash 0); it never trades again."""
        return bool(self.state[P_BANKRUPT] >= 0)

    def financing(self) -> tuple[float, float, float]:
        """Totals since the account opened (adopted state): funding paid (negative: received),
        interest earned on idle cash, borrow fees paid — what moved cash besides fills."""
        return (float(self.state[P_ACC + A_FUNDING]), float(self.state[P_INTEREST]), float(self.state[P_BORROW]))

    def positions(self) -> np.ndarray:
        """Units held per symbol (adopted state)."""
        return self.state[P_BOOKS:P_BOOKS + len(self.symbols)].copy()

    def to_bytes(self) -> bytes:
        """The kernel's state, exactly."""
        return portfolio_to_bytes(self.state)

    def load(self, data: bytes) -> None:
        """Restore :meth:`to_bytes` (refuses a state of another number of symbols)."""
        state = portfolio_from_bytes(data)
        if state.size != self.state.size:
            raise ConfigError(f"stored paper portfolio holds another number of symbols than {list(self.symbols)}")
        self.state = state

    # -- the Broker protocol --------------------------------------------------------------
    async def submit(self, intent: OrderIntent) -> VenueOrder:
        """Accept one of the previewed orders (market, executed at the bar's open)."""
        expected = self._pending.get(intent.client_order_id)
        if expected is None or (expected.symbol, expected.side) != (intent.symbol, intent.side) \
                or abs(expected.qty - intent.qty) > 1e-12 * max(1.0, expected.qty):
            raise OrderRejectedError(f"paper: order {intent.client_order_id} ({intent.side.value} {intent.qty:g} "
                                     f"{intent.symbol}) is not what the kernel executes at this bar",
                                     venue="paper", client_order_id=intent.client_order_id)
        self._accepted[intent.client_order_id] = intent
        return VenueOrder(intent.client_order_id, intent.client_order_id, intent.symbol, intent.side, intent.qty,
                          0.0, None, OrderStatus.OPEN, self._clock())

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Market orders cannot be canceled once accepted (they fill at the bar's open)."""
        raise OrderRejectedError(f"paper: order {client_order_id} is a market order; nothing to cancel",
                                 venue="paper", client_order_id=client_order_id)

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """FILLED when its fill is booked, OPEN while accepted, else None (never executed)."""
        booked = [f for f in (self._fills_of([symbol], 0) if self._fills_of else [])
                  if f.client_order_id == client_order_id]
        if booked:
            f = booked[0]
            return VenueOrder(client_order_id, client_order_id, symbol, f.side, f.qty, f.qty, f.price,
                              OrderStatus.FILLED, f.time_ms)
        intent = self._accepted.get(client_order_id)
        if intent is None:
            return None
        return VenueOrder(client_order_id, client_order_id, symbol, intent.side, intent.qty, 0.0, None,
                          OrderStatus.OPEN, self._clock())

    async def open_orders(self, symbols: Sequence[str]) -> list[VenueOrder]:
        """Accepted orders not yet executed."""
        return [VenueOrder(i.client_order_id, i.client_order_id, i.symbol, i.side, i.qty, 0.0, None,
                           OrderStatus.OPEN, self._clock()) for i in self._accepted.values() if i.symbol in symbols]

    async def fills_since(self, symbols: Sequence[str], since_ms: int) -> list[Fill]:
        """The booked fills at or after ``since_ms``."""
        return self._fills_of(symbols, since_ms) if self._fills_of else []

    async def balances(self) -> dict[str, Balance]:
        """The kernel's cash and positions (base units) as balances."""
        out = {self.quote: Balance(self.quote, self.cash, self.cash)}
        for symbol, qty in zip(self.symbols, self.positions(), strict=True):
            base = split_pair(symbol)[0]
            out[base] = Balance(base, float(qty), float(qty))
        return out

    async def server_time_ms(self) -> int:
        """The injected clock."""
        return int(self._clock())
