"""Orders placed through MCP, safe by construction.

Every order is checked — all of it, before anything is written — against:

1. the symbol allowlist (:attr:`OrderLimits.symbols`) and the order's own fields;
2. the kill switch stored in the ledger (while halted only reductions pass:
   :func:`coinswarm.live.killswitch.filter_intents`);
3. the risk limits (``max_order_notional`` and ``max_position``, reductions always pass:
   :func:`coinswarm.live.killswitch.limit_intents`), the notional judged at the order's limit
   price or else the last known close;
4. the day's budget: the notional of every MCP order created this UTC day plus this one at
   most ``max_daily_notional``.

A refused order raises :class:`OrderRefused` naming the limit, and the ledger is untouched.
Checks and writes run under one lock, so concurrent calls cannot together pass a limit each
passes alone (another process writing the same ledger, such as the daemon, is not covered by
the lock; its own risk checks apply to its own orders).

**Paper** (the default): the order is written ahead as ``NEW`` with a deterministic client
order id (:func:`coinswarm.live.protocols.client_order_id`), moved to ``SENT``, and — a market
order, or a limit order marketable at the last known close — filled at once at that close
(plus the adverse slippage) with the fee in the quote currency, through
:meth:`Ledger.apply_fill`, so positions, cash and ``coinswarm live report --db URL`` show it.
A paper limit order that is not marketable at that close is refused: nothing would ever match
it later, and an order left in flight would be a foreign row to the daemon's reconciliation.

**Live** (``--live`` with keys): the same write-ahead, then :meth:`Broker.submit`; the reply
moves the order (``UNKNOWN`` on a timeout: never resubmitted, reconciliation resolves it).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from coinswarm.errors import CoinswarmError, OrderUnknownError, VenueError
from coinswarm.live.killswitch import DAY_MS, filter_intents, limit_intents
from coinswarm.live.ledger import Ledger, split_symbol
from coinswarm.live.protocols import Fill, OrderIntent, OrderStatus, Side, client_order_id
from coinswarm.mcpserver.config import ServerConfig

STRATEGY = "mcp"  # the ledger's strategy field of every order placed through MCP
PAPER_VENUE = "paper"


class OrderRefused(CoinswarmError, ValueError):
    """An order the MCP desk refuses (the message names the limit and what would pass)."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a client asked for: ``price`` None means a market order; ``tag`` an idempotency key."""

    symbol: str
    side: str
    qty: float
    price: float | None = None
    tag: str | None = None


def _number(name: str, value: object, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise OrderRefused(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


class OrderDesk:
    """Validates, books and cancels MCP orders against one ledger.

    Parameters
    ----------
    ledger : Ledger
        The paper or live run's ledger (migrated by the caller).
    config : ServerConfig
        Limits, the pricing market and the mode.
    mark : callable
        ``mark(symbol) -> (bar_time_ms, close)``: the last known close that prices paper fills.
    clock : callable
        Epoch milliseconds (injected: this layer never reads the wall clock).
    broker : Broker, optional
        Where live orders go (required when ``config.live``).
    run_async : callable, optional
        ``run_async(coroutine_function, *args)`` runs a broker call on the server's event loop
        from the worker thread a tool runs in (``anyio.from_thread.run``).
    """

    def __init__(self, ledger: Ledger, config: ServerConfig, mark: Callable[[str], tuple[int, float]],
                 clock: Callable[[], int], broker=None, run_async: Callable | None = None) -> None:
        if config.live and broker is None:
            raise OrderRefused("live orders need a broker (start with --live and exchange keys)")
        self.ledger, self.config, self.mark, self.clock = ledger, config, mark, clock
        self.broker, self.run_async = broker, run_async
        self.lock = threading.Lock()
        self._claim()

    def _claim(self) -> None:
        """Bind a fresh ledger to this mode; refuse a ledger of the other mode."""
        have = self.ledger.mode()
        want = "live" if self.config.live else "paper"
        if have is None:
            venue = self.broker.name if self.config.live else PAPER_VENUE
            self.ledger.claim(want, venue)
            if not self.config.live:  # a fresh paper account starts with init_cash of every quote currency
                for quote in sorted({split_symbol(s)[1] for s in self.config.limits.symbols}):
                    self.ledger.deposit(quote, self.config.limits.init_cash)
        elif have.get("mode") != want:
            raise OrderRefused(f"the ledger holds a {have.get('mode')} run on {have.get('venue')!r}; this server "
                               f"places {want} orders (paper and live never share a ledger)")

    # -- placing ------------------------------------------------------------------------
    def place(self, request: OrderRequest) -> dict:
        """Check ``request`` against every limit, then book it (see the module docstring).

        Returns the stored order as a dict (``accepted`` False with ``duplicate`` True when
        its ``tag`` was used before: the earlier order is returned, nothing new is written)."""
        intent_fields = self._check_fields(request)
        with self.lock:
            now = int(self.clock())
            intent = self._intent(request, intent_fields, now)
            existing = self.ledger.order(intent.client_order_id)
            if existing is not None:
                return {**_order_dict(existing), "accepted": False, "duplicate": True, "mode": self._mode()}
            bar_time, close = self.mark(intent.symbol)
            self._check_limits(intent, close, now)
            if not self.config.live:
                _check_marketable(intent, close)
            if not self.ledger.record_new(intent, now):
                raise OrderRefused(f"order {intent.client_order_id} already exists")
            if self.config.live:
                self._send_live(intent, now)
            else:
                self._paper(intent, close, now)
            stored = self.ledger.order(intent.client_order_id)
        return {**_order_dict(stored), "accepted": True, "duplicate": False, "mode": self._mode(),
                "mark": close, "mark_time_ms": bar_time}

    def _mode(self) -> str:
        return "live" if self.config.live else "paper"

    def _check_fields(self, request: OrderRequest) -> tuple[str, Side, float, float | None]:
        allowed = self.config.limits.symbols
        if isinstance(request.symbol, str):  # BTC-USDT and btc_usdt name BTC/USDT
            request = replace(request, symbol=request.symbol.upper().replace("-", "/").replace("_", "/"))
        if request.symbol not in allowed:
            raise OrderRefused(f"symbol {request.symbol!r} is not on the allowlist ({', '.join(allowed)})")
        try:
            side = Side(request.side)
        except ValueError:
            raise OrderRefused(f"side must be 'buy' or 'sell', got {request.side!r}") from None
        qty = _number("qty", request.qty)
        price = _number("price", request.price, optional=True)
        if request.tag is not None and not (0 < len(request.tag) <= 64 and request.tag.isprintable()):
            raise OrderRefused("tag must be 1-64 printable characters")
        return request.symbol, side, qty, price

    def _intent(self, request: OrderRequest, fields: tuple[str, Side, float, float | None], now: int) -> OrderIntent:
        symbol, side, qty, price = fields
        if request.tag is not None:
            cid = client_order_id(f"{STRATEGY}:{request.tag}", symbol, 0, 0)
        else:
            cid = client_order_id(STRATEGY, symbol, now, len(self.ledger.orders()))
        return OrderIntent(cid, symbol, side, qty, now, STRATEGY, price)

    def _check_limits(self, intent: OrderIntent, close: float, now: int) -> None:
        positions = {s: p.qty for s, p in self.ledger.positions().items()}
        kill = self.ledger.kill_state()
        _, blocked = filter_intents([intent], positions, kill)
        if blocked:
            raise OrderRefused(f"the kill switch is halted ({kill.reason}: {kill.detail}); only orders that reduce "
                               f"a position pass (position {positions.get(intent.symbol, 0.0):.8g} {intent.symbol})")
        _, limited = limit_intents([intent], positions, {intent.symbol: close}, self.config.limits.risk)
        if limited:
            raise OrderRefused(f"{intent.side.value} {intent.qty:.8g} {intent.symbol}: {limited[0][1]}")
        notional = intent.qty * (intent.price if intent.price is not None else close)
        if not self.config.live and intent.side is Side.BUY:
            self._check_cash(intent, close)
        spent = self.day_notional(now)
        budget = self.config.limits.max_daily_notional
        if spent + notional > budget:
            raise OrderRefused(f"notional {notional:.8g} would bring today's MCP orders to {spent + notional:.8g}, "
                               f"beyond max_daily_notional {budget:.8g} ({max(budget - spent, 0.0):.8g} left)")

    def _check_cash(self, intent: OrderIntent, close: float) -> None:
        """A paper buy must be paid for: its cost at the fill price, fee included, within the cash."""
        limits = self.config.limits
        price = close * (1 + limits.slippage_bps / 1e4)
        if intent.price is not None:
            price = min(price, intent.price)
        cost = intent.qty * price * (1 + limits.fee_bps / 1e4)
        quote = split_symbol(intent.symbol)[1]
        cash = self.ledger.cash().get(quote, 0.0)
        if cost > cash:
            raise OrderRefused(f"buy {intent.qty:.8g} {intent.symbol} costs {cost:.8g} {quote} with its fee; the paper "
                               f"account holds {cash:.8g} {quote}")

    def day_notional(self, now: int) -> float:
        """Quote notional of the MCP orders created in ``now``'s UTC day (filled part at its
        average price; the rest at the limit price, or the last close) — refused orders are
        never written, canceled orders count only their fills."""
        day_start = (int(now) // DAY_MS) * DAY_MS
        total = 0.0
        for order in self.ledger.orders():
            if not order.strategy.startswith(STRATEGY) or order.created_ms < day_start:
                continue
            total += order.filled_qty * (order.avg_price or 0.0)
            if not order.status.final:
                rest = order.qty - order.filled_qty
                total += rest * (order.price if order.price is not None else self.mark(order.symbol)[1])
        return total

    # -- booking ------------------------------------------------------------------------
    def _paper(self, intent: OrderIntent, close: float, now: int) -> None:
        """Fill at the last close (plus slippage, never worse than the limit), fee in quote."""
        limits = self.config.limits
        self.ledger.transition(intent.client_order_id, OrderStatus.SENT, now)
        buy = intent.side is Side.BUY
        slip = limits.slippage_bps / 1e4
        price = close * (1 + slip) if buy else close * (1 - slip)
        if intent.price is not None:
            price = min(price, intent.price) if buy else max(price, intent.price)
        fee = intent.qty * price * limits.fee_bps / 1e4
        quote = split_symbol(intent.symbol)[1]
        fill = Fill("pf" + intent.client_order_id[2:], intent.client_order_id, intent.symbol, intent.side,
                    intent.qty, price, fee, quote, now)
        self.ledger.apply_fill(fill, now)

    def _send_live(self, intent: OrderIntent, now: int) -> None:
        """SENT is committed before the request leaves; the venue's reply moves the order on."""
        self.ledger.transition(intent.client_order_id, OrderStatus.SENT, now)
        try:
            venue = self.run_async(self.broker.submit, intent)
        except OrderUnknownError as exc:
            self.ledger.transition(intent.client_order_id, OrderStatus.UNKNOWN, int(self.clock()), reason=str(exc))
            raise
        except VenueError as exc:
            self.ledger.transition(intent.client_order_id, OrderStatus.REJECTED, int(self.clock()), reason=str(exc))
            raise
        self.ledger.transition(intent.client_order_id, venue.status, int(self.clock()),
                               venue_order_id=venue.venue_order_id)

    # -- canceling ----------------------------------------------------------------------
    def cancel(self, client_order_id: str) -> dict:
        """Cancel an MCP order that is still in flight (paper: at once; live: at the venue first)."""
        with self.lock:
            order = self.ledger.order(client_order_id)
            if order is None or not order.strategy.startswith(STRATEGY):
                raise OrderRefused(f"no order {client_order_id!r:.80} placed through MCP in this ledger")
            if order.status.final:
                raise OrderRefused(f"order {client_order_id} is already {order.status.value}; nothing to cancel")
            if self.config.live and order.status is not OrderStatus.NEW:
                self.run_async(self.broker.cancel, client_order_id, order.symbol)
            stored = self.ledger.transition(client_order_id, OrderStatus.CANCELED, int(self.clock()),
                                            reason="canceled through MCP")
        return {**_order_dict(stored), "accepted": True, "duplicate": False, "mode": self._mode()}


def _check_marketable(intent: OrderIntent, close: float) -> None:
    """A paper limit order must cross the last close (it is filled now or not at all)."""
    if intent.price is None:
        return
    buy = intent.side is Side.BUY
    if (intent.price < close) if buy else (intent.price > close):
        raise OrderRefused(f"paper limit {intent.side.value} at {intent.price:.8g} is not marketable at the last "
                           f"close {close:.8g}: paper orders fill at once or not at all (use a market order, or a "
                           f"limit {'at or above' if buy else 'at or below'} the close)")


def _order_dict(order) -> dict:
    return {"client_order_id": order.client_order_id, "symbol": order.symbol, "side": order.side.value,
            "qty": order.qty, "price": order.price, "status": order.status.value, "filled_qty": order.filled_qty,
            "avg_price": order.avg_price, "created_ms": order.created_ms, "reason": order.reason}
