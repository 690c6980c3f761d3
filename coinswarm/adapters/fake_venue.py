"""A fake Binance spot venue on 127.0.0.1: the subset of the REST API that ccxt's ``binance``
uses, serving REAL candles from the catalog, with scriptable faults.

Reach it by pointing a ccxt exchange's ``urls['api']`` at it (:func:`binance_api_urls`) and
turning off the endpoints it does not serve (:data:`CCXT_OPTIONS`).

Served: ``GET /api/v3/ping``, ``/time``, ``/exchangeInfo``, ``/klines``; signed (HMAC-SHA256
over the query string and body, ``X-MBX-APIKEY``, ``timestamp`` within ``recvWindow`` of the
venue's clock) ``POST/GET/DELETE /api/v3/order`` (by ``orderId`` or ``origClientOrderId``),
``GET /api/v3/openOrders``, ``/myTrades``, ``/account``. Perpetuals (``BTC/USDT:USDT``): their
market data only (``/fapi/v1/exchangeInfo``, ``/klines``, ``/fundingRate``, ``/premiumIndex``:
:mod:`coinswarm.adapters.fake_perps`; ccxt with ``fetchMarkets.types = ["spot", "linear"]``).
Control (unsigned, loopback only):
``POST /_venue/faults`` (JSON merged into :class:`Faults`), ``POST /_venue/advance``
(``{"ms": N}``), ``GET /_venue/stats`` (request counts by ``"METHOD /path"``).

The clock is virtual (:class:`VenueClock`): it starts at a catalog time and runs at ``speed``
× real time plus whatever :meth:`FakeVenue.advance` adds. Klines are served up to the clock;
the last one may be the *forming* candle (open time ≤ now < close time), served as
``open = high = low = close = the real open, volume 0`` so a feed that yields it is caught.

Fills: a market order accepted at time ``t`` fills at the **open of the first bar that opens
after t**, once the clock has reached that bar; with ``Faults.partial_fills`` = (f1, f2, …)
it fills ``f_k`` of its quantity at the open of the k-th such bar. A limit order fills once a
bar after ``t`` has closed with its range through the limit, at ``min(open, limit)`` (buy) or
``max(open, limit)`` (sell). Commission: ``fee_rate`` of the quote value, in the quote asset.
Balances are checked and locked at acceptance (``-2010`` "insufficient balance" otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, urlparse

import numpy as np

from coinswarm.data.validate import timeframe_ms
from coinswarm.errors import ConfigError

#: ccxt ``binance`` options that keep it on the endpoints this venue serves.
CCXT_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchMargins": False,
    "fetchCurrencies": False,
}
DUMMY_KEY = "fake-venue-key"
DUMMY_SECRET = "fake-venue-secret"
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


def binance_api_urls(base_url: str, template: dict[str, str]) -> dict[str, str]:
    """ccxt ``urls['api']`` entries rewritten to ``base_url`` (path kept: ``/api/v3`` …)."""
    return {k: base_url.rstrip("/") + urlparse(v).path for k, v in template.items() if isinstance(v, str)}


@dataclass
class Faults:
    """What the venue does wrong, scripted per test (all off by default).

    rate_limit: the next N requests are answered ``rate_limit_status`` (429 or 418) with a
    ``Retry-After: retry_after_s`` header. lost_replies: the next N accepted orders never get
    their reply; lost_reply_rate: that fraction of accepted orders (seeded); the venue then
    drops the connection (``lost_reply="drop"``) or holds it ``hang_s`` seconds first
    (``"hang"``, bounded). not_found_ms: an order is answered ``-2013 Order does not exist``
    for this long (venue clock) after acceptance. partial_fills: fractions of the quantity
    filled at consecutive bars. reject_next: the next N orders are refused with
    ``reject_code``/``reject_msg``. duplicate_trades / shuffle_trades: ``myTrades`` repeats
    every trade / returns them out of order. klines_down: the next N kline requests get a 503.
    bad_kline: the last closed kline is served with high < low. bad_funding: the last funding
    rate served is not a number. funding_delay_ms: a settlement is published (``fundingRate``)
    this long after its time. bad_premium: ``premiumIndex`` serves a ``nextFundingTime`` that is
    not a time.
    """

    rate_limit: int = 0
    rate_limit_status: int = 429
    retry_after_s: float = 1.0
    lost_replies: int = 0
    lost_reply_rate: float = 0.0
    lost_reply: str = "drop"
    hang_s: float = 2.0
    not_found_ms: int = 0
    partial_fills: tuple[float, ...] = (1.0,)
    reject_next: int = 0
    reject_code: int = -2010
    reject_msg: str = "Account has insufficient balance for requested action."
    duplicate_trades: bool = False
    shuffle_trades: bool = False
    klines_down: int = 0
    bad_kline: bool = False
    bad_funding: bool = False
    funding_delay_ms: int = 0
    bad_premium: bool = False
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        """Merge ``changes`` (unknown names → ConfigError, nothing changed)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown fault(s) {unknown}; valid: {sorted(names)}")
        if "partial_fills" in changes:
            parts = tuple(float(x) for x in changes["partial_fills"])
            if not parts or min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-9:
                raise ConfigError(f"partial_fills must be positive fractions summing to 1, got {parts}")
            changes = {**changes, "partial_fills": parts}
        if changes.get("lost_reply", "drop") not in ("drop", "hang"):
            raise ConfigError(f"lost_reply must be 'drop' or 'hang', got {changes['lost_reply']!r}")
        for k, v in changes.items():
            setattr(self, k, v)


class VenueClock:
    """Virtual venue time (epoch ms): ``start_ms`` + ``speed`` × elapsed real time + advances."""

    def __init__(self, start_ms: int, speed: float = 1.0, wall=time.monotonic) -> None:
        self.start_ms, self.speed, self._wall = int(start_ms), float(speed), wall
        self._w0 = wall()
        self.advanced_ms = 0

    def now_ms(self) -> int:
        """The venue's time now."""
        return self.start_ms + int((self._wall() - self._w0) * 1000.0 * self.speed) + self.advanced_ms


@dataclass
class _Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float | None
    accepted_ms: int
    parts: tuple[float, ...]
    lock_asset: str
    locked: float
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    updated_ms: int = 0
    next_part: int = 0
    next_bar: int = -1


@dataclass
class _Market:
    symbol: str  # venue id, BTCUSDT
    base: str
    quote: str
    step: int
    ts: np.ndarray
    ohlcv: np.ndarray  # (n, 5)


class BinanceError(Exception):
    """A Binance-style error reply ``{"code": …, "msg": …}`` with its HTTP status."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass
class VenueState:
    """Everything the venue knows (its books): markets, balances, orders, trades."""

    markets: dict[str, _Market]
    balances: dict[str, list[float]]  # asset -> [free, locked]
    orders: dict[int, _Order] = field(default_factory=dict)
    by_client: dict[tuple[str, str], int] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    next_order_id: int = 1000
    next_trade_id: int = 5000


def load_markets(symbols: dict[str, str], *, start: str | None = None, end: str | None = None) -> dict[str, _Market]:
    """Real candles from the catalog: ``{"BTC/USDT": "binance:BTC/USDT:1h"}`` → venue markets."""
    from coinswarm.data.load import load_ohlcv

    markets = {}
    for unified, source in symbols.items():
        if "/" not in unified:
            raise ConfigError(f"symbol {unified!r} must look like BASE/QUOTE (e.g. BTC/USDT)")
        base, quote = unified.split("/", 1)
        frame = load_ohlcv(source, start=start, end=end)
        if len(frame) < 2:
            raise ConfigError(f"{source}: fewer than 2 candles between {start} and {end}")
        ts = frame.index.as_unit("ms").asi8.astype(np.int64)
        step = int(np.min(np.diff(ts)))
        markets[base + quote] = _Market(base + quote, base, quote, step, ts,
                                        frame[["open", "high", "low", "close", "volume"]].to_numpy(np.float64))
    return markets


def _fmt(x: float) -> str:
    return f"{x:.8f}"


class FakeVenue:
    """The fake venue: an aiohttp server on 127.0.0.1 (async context manager).

    Parameters
    ----------
    symbols : dict
        Unified symbol → catalog name, e.g. ``{"BTC/USDT": "binance:BTC/USDT:1h"}``; a perpetual
        ``{"BTC/USDT:USDT": "binance-perp:BTC/USDT:1h"}`` (its funding: ``binance-perp:BTC/USDT:funding``).
    start : str
        Venue clock start (ISO, UTC); candles are served up to the clock.
    balances : dict
        Starting free balances by asset (default 10,000 USDT).
    speed : float
        Clock speed (× real time); above 1 the request timestamps are not checked against
        ``recvWindow`` (a client's clock offset goes stale within milliseconds).
    data_start, data_end : str, optional
        Range of candles loaded (default: 30 days before ``start`` to 60 days after).
    api_key, secret : str
        The only key the venue accepts (dummy values by default).
    fee_rate : float
        Commission, fraction of the quote value.
    """

    routes: dict[tuple[str, str], tuple[str, bool]]  # (method, path) → (handler name, signed); set below

    def __init__(self, symbols: dict[str, str], *, start: str = "2024-03-01", balances: dict[str, float] | None = None,
                 speed: float = 1.0, data_start: str | None = None, data_end: str | None = None,
                 api_key: str = DUMMY_KEY, secret: str = DUMMY_SECRET, fee_rate: float = 0.001,
                 port: int = 0) -> None:
        import pandas as pd

        t0 = pd.Timestamp(start, tz="UTC")
        data_start = data_start or str((t0 - pd.Timedelta(days=30)).date())
        data_end = data_end or str((t0 + pd.Timedelta(days=60)).date())
        from coinswarm.adapters.fake_perps import load_perps, perp_sources

        spot, perps = perp_sources(symbols)
        self.state = VenueState(load_markets(spot, start=data_start, end=data_end) if spot else {},
                                {a: [float(v), 0.0] for a, v in (balances or {"USDT": 10_000.0}).items()})
        self.perps = load_perps(perps, start=data_start, end=data_end, load_markets=load_markets)
        self.clock = VenueClock(int(t0.value // 1_000_000), speed)
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self.api_key, self.secret, self.fee_rate, self.port = api_key, secret.encode(), fee_rate, port
        self._rng = random.Random(0)
        self.check_time = speed <= 1.0  # a sped-up clock cannot be met within recvWindow: not checked then
        self._runner = None
        self.url = ""

    # ---- life -------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeVenue:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, **changes: Any) -> None:
        """Set faults (see :class:`Faults`); ``seed`` also reseeds the lost-reply dice."""
        self.faults.update(changes)
        if "seed" in changes:
            self._rng = random.Random(changes["seed"])

    def advance(self, ms: int) -> None:
        """Move the venue clock forward (and fill what became fillable)."""
        self.clock.advanced_ms += int(ms)
        self._match(self.clock.now_ms())

    def count(self, method: str, path: str) -> int:
        """Requests seen as ``METHOD /path`` (e.g. ``count("POST", "/api/v3/order")``)."""
        return self.requests[f"{method.upper()} {path}"]

    def ccxt_config(self) -> dict[str, Any]:
        """Keyword config for a ccxt ``binance`` pointed at this venue (dummy keys)."""
        return {"apiKey": self.api_key, "secret": self.secret.decode(), "options": dict(CCXT_OPTIONS)}

    # ---- HTTP -------------------------------------------------------------------------------
    async def _handle(self, request):
        from aiohttp import web

        path = request.path
        self.requests[f"{request.method} {path}"] += 1
        body = await request.text()
        if path.startswith("/_venue/"):
            return web.json_response(self._control(request.method, path, body))
        try:
            if self.faults.rate_limit > 0:
                self.faults.rate_limit -= 1
                raise BinanceError(self.faults.rate_limit_status, -1003, "Too many requests; current limit exceeded.")
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(dict(parse_qsl(body, keep_blank_values=True)))
            route = self.routes.get((request.method, path))
            if route is None:
                raise BinanceError(404, -1000, f"fake venue does not serve {request.method} {path}")
            name, signed = route
            if signed:
                self._check_signature(request, body)
            now = self.clock.now_ms()
            self._match(now)
            reply = getattr(self, name)(params, now)
        except BinanceError as exc:
            headers = {"Retry-After": str(self.faults.retry_after_s)} if exc.status in (418, 429) else {}
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status, headers=headers)
        if isinstance(reply, _LostReply):
            return await self._lose_reply(request)
        return web.json_response(reply)

    async def _lose_reply(self, request):
        from aiohttp import web

        if self.faults.lost_reply == "hang":
            await asyncio.sleep(min(self.faults.hang_s, 30.0))
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    def _control(self, method: str, path: str, body: str) -> dict[str, Any]:
        if method == "POST" and path == "/_venue/faults":
            self.script(**json.loads(body or "{}"))
        elif method == "POST" and path == "/_venue/advance":
            self.advance(int(json.loads(body or "{}").get("ms", 0)))
        return {"now_ms": self.clock.now_ms(), "requests": dict(self.requests), "faults": asdict(self.faults),
                "orders": len(self.state.orders), "trades": len(self.state.trades)}

    def _check_signature(self, request, body: str) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = request.query_string + body
        head, sep, sig = total.rpartition("signature=")
        payload = head[:-1] if head.endswith("&") else head
        expected = hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(sig, expected):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(total))
        now, stamp = self.clock.now_ms(), int(params.get("timestamp", "0") or 0)
        window = int(params.get("recvWindow", "5000"))
        if self.check_time and (stamp > now + 1000 or now - stamp > window):
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ---- public endpoints -------------------------------------------------------------------
    def ping(self, params: dict, now: int) -> dict:
        return {}

    def server_time(self, params: dict, now: int) -> dict:
        return {"serverTime": now}

    def exchange_info(self, params: dict, now: int) -> dict:
        return exchange_info([(m.base, m.quote) for m in self.state.markets.values()], now)

    def futures_info(self, params: dict, now: int) -> dict:
        from coinswarm.adapters.fake_perps import futures_exchange_info

        return futures_exchange_info(self.perps, now)

    def futures_klines(self, params: dict, now: int) -> list:
        return self.klines(params, now, self._perp(params).market)

    def funding_rate(self, params: dict, now: int) -> list:
        from coinswarm.adapters.fake_perps import funding_rows

        return funding_rows(self._perp(params), params["symbol"], params, now, bad=self.faults.bad_funding,
                            delay_ms=self.faults.funding_delay_ms)

    def premium_index(self, params: dict, now: int) -> dict:
        from coinswarm.adapters.fake_perps import premium_index

        return premium_index(self._perp(params), params["symbol"], now, bad=self.faults.bad_premium)

    def _perp(self, params: dict):
        perp = self.perps.get(params.get("symbol", ""))
        if perp is None:
            raise BinanceError(400, -1121, f"Invalid symbol {params.get('symbol')!r}.")
        return perp

    def klines(self, params: dict, now: int, market: _Market | None = None) -> list:
        if self.faults.klines_down > 0:
            self.faults.klines_down -= 1
            raise BinanceError(503, -1001, "Internal error; unable to process your request. Please try again.")
        market = market or self._market(params)
        interval = params.get("interval", "")
        if timeframe_ms(interval) != market.step or interval not in INTERVALS:
            raise BinanceError(400, -1120, f"Invalid interval {interval!r}; this venue serves the catalog's bars")
        limit = min(int(params.get("limit", 500)), 1000)
        lo = int(params.get("startTime", 0))
        hi = min(int(params.get("endTime", now)), now)
        i0 = int(np.searchsorted(market.ts, lo, "left"))
        i1 = int(np.searchsorted(market.ts, hi, "right"))
        if "startTime" not in params:
            i0 = max(i0, i1 - limit)
        rows = []
        for i in range(i0, min(i1, i0 + limit)):
            t = int(market.ts[i])
            o, h, low, c, v = market.ohlcv[i]
            if t + market.step > now:  # the forming candle: only its open is known
                h = low = c = o
                v = 0.0
            elif self.faults.bad_kline and t + 2 * market.step > now:
                h, low = low, h
            rows.append([t, _fmt(o), _fmt(h), _fmt(low), _fmt(c), _fmt(v), t + market.step - 1,
                         _fmt(v * c), 100, _fmt(v / 2), _fmt(v * c / 2), "0"])
        return rows

    # ---- signed endpoints ---------------------------------------------------------------------
    def new_order(self, params: dict, now: int) -> dict | _LostReply:
        order = self._accept(params, now)
        lose = self.faults.lost_replies > 0 or (self.faults.lost_reply_rate > 0
                                                  and self._rng.random() < self.faults.lost_reply_rate)
        if lose:
            self.faults.lost_replies = max(0, self.faults.lost_replies - 1)
            return _LostReply()
        return {**self._order_json(order), "transactTime": order.accepted_ms, "fills": []}

    def get_order(self, params: dict, now: int) -> dict:
        order = self._find(params, now)
        return self._order_json(order)

    def cancel_order(self, params: dict, now: int) -> dict:
        order = self._find(params, now, code=-2011, msg="Unknown order sent.")
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        order.status, order.updated_ms = "CANCELED", now
        self._release(order)
        return {**self._order_json(order), "origClientOrderId": order.client_id}

    def open_orders(self, params: dict, now: int) -> list:
        symbol = params.get("symbol")
        return [self._order_json(o) for o in self.state.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and (symbol is None or o.symbol == symbol)
                and now - o.accepted_ms >= self.faults.not_found_ms]  # the same lag as a lookup

    def my_trades(self, params: dict, now: int) -> list:
        market = self._market(params)
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = min(int(params.get("limit", 500)), 1000)
        rows = [t for t in self.state.trades if t["symbol"] == market.symbol and start <= t["time"] <= end]
        rows = [{**t, "time": t["time"]} for t in rows[:limit]]
        if self.faults.duplicate_trades:
            rows = [r for r in rows for _ in (0, 1)]
        if self.faults.shuffle_trades:
            random.Random(self.faults.seed).shuffle(rows)
        return rows

    def account(self, params: dict, now: int) -> dict:
        balances = [{"asset": a, "free": _fmt(f), "locked": _fmt(lk)} for a, (f, lk) in self.state.balances.items()]
        return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
                "updateTime": now, "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"],
                "uid": 1}

    # ---- the books ----------------------------------------------------------------------------
    def _market(self, params: dict) -> _Market:
        market = self.state.markets.get(params.get("symbol", ""))
        if market is None:
            raise BinanceError(400, -1121, f"Invalid symbol {params.get('symbol')!r}.")
        return market

    def _find(self, params: dict, now: int, code: int = -2013, msg: str = "Order does not exist.") -> _Order:
        market = self._market(params)
        if "orderId" in params:
            order = self.state.orders.get(int(params["orderId"]))
        else:
            oid = self.state.by_client.get((market.symbol, params.get("origClientOrderId", "")))
            order = self.state.orders.get(oid) if oid is not None else None
        if order is None or order.symbol != market.symbol or now - order.accepted_ms < self.faults.not_found_ms:
            raise BinanceError(400, code, msg)
        return order

    def _accept(self, params: dict, now: int) -> _Order:
        market = self._market(params)
        side, kind = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL") or kind not in ("MARKET", "LIMIT"):
            raise BinanceError(400, -1102, f"side {side!r}/type {kind!r} not supported (BUY|SELL, MARKET|LIMIT)")
        try:
            qty = float(params["quantity"])
            price = float(params["price"]) if kind == "LIMIT" else None
        except (KeyError, ValueError):
            raise BinanceError(400, -1102, "Mandatory parameter 'quantity' (and 'price' for LIMIT) missing.") from None
        if not qty > 0 or (price is not None and not price > 0):
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        cid = params.get("newClientOrderId") or f"venue{self.state.next_order_id}"
        if (market.symbol, cid) in self.state.by_client:
            existing = self.state.orders[self.state.by_client[(market.symbol, cid)]]
            if existing.status in ("NEW", "PARTIALLY_FILLED"):
                raise BinanceError(400, -2010, "Duplicate order sent.")
        if self.faults.reject_next > 0:
            self.faults.reject_next -= 1
            raise BinanceError(400, self.faults.reject_code, self.faults.reject_msg)
        lock_asset, locked = self._lock(market, side, qty, price, now)
        order = _Order(self.state.next_order_id, cid, market.symbol, side, kind, qty, price, now,
                       self.faults.partial_fills, lock_asset, locked, updated_ms=now)
        self.state.next_order_id += 1
        self.state.orders[order.order_id] = order
        self.state.by_client[(market.symbol, cid)] = order.order_id
        return order

    def _lock(self, market: _Market, side: str, qty: float, price: float | None, now: int) -> tuple[str, float]:
        if side == "SELL":
            asset, need = market.base, qty
        else:
            i = max(int(np.searchsorted(market.ts, now, "right")) - 1, 0)
            ref = price if price is not None else market.ohlcv[i, 0] * 1.05  # market buys lock 5 % headroom
            asset, need = market.quote, qty * ref * (1.0 + self.fee_rate)
        free, lk = self.state.balances.get(asset, [0.0, 0.0])
        if need > free + 1e-12:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        self.state.balances[asset] = [free - need, lk + need]
        return asset, need

    def _release(self, order: _Order) -> None:
        free, lk = self.state.balances[order.lock_asset]
        self.state.balances[order.lock_asset] = [free + order.locked, lk - order.locked]
        order.locked = 0.0

    def _match(self, now: int) -> None:
        for order in self.state.orders.values():
            while order.status in ("NEW", "PARTIALLY_FILLED") and self._fill_next(order, now):
                pass

    def _fill_next(self, order: _Order, now: int) -> bool:
        market = self.state.markets[order.symbol]
        if order.next_bar < 0:
            order.next_bar = int(np.searchsorted(market.ts, order.accepted_ms, "right"))
        i = order.next_bar
        if i >= len(market.ts):
            return False
        t = int(market.ts[i])
        o, h, low, _, _ = market.ohlcv[i]
        if order.type == "MARKET":
            if now < t:
                return False
            px = o
        else:
            if now < t + market.step:
                return False
            order.next_bar += 1
            touched = low <= order.price if order.side == "BUY" else h >= order.price
            if not touched:
                return True
            px = min(o, order.price) if order.side == "BUY" else max(o, order.price)
        self._execute(order, market, float(px), t)
        order.next_bar = i + 1
        return True

    def _execute(self, order: _Order, market: _Market, px: float, t: int) -> None:
        part = order.parts[order.next_part]
        order.next_part += 1
        last = order.next_part >= len(order.parts)
        qty = order.qty - order.executed if last else round(order.qty * part, 8)  # on the 1e-8 lot step
        value, fee = qty * px, qty * px * self.fee_rate
        self._settle(order, market, qty, value, fee, last)
        order.executed += qty
        order.quote += value
        order.status, order.updated_ms = ("FILLED" if last else "PARTIALLY_FILLED"), t
        self.state.trades.append({
            "symbol": market.symbol, "id": self.state.next_trade_id, "orderId": order.order_id, "orderListId": -1,
            "price": _fmt(px), "qty": _fmt(qty), "quoteQty": _fmt(value), "commission": _fmt(fee),
            "commissionAsset": market.quote, "time": t, "isBuyer": order.side == "BUY", "isMaker": False,
            "isBestMatch": True})
        self.state.next_trade_id += 1

    def _settle(self, order: _Order, market: _Market, qty: float, value: float, fee: float, last: bool) -> None:
        bal = self.state.balances
        for asset in (market.base, market.quote):
            bal.setdefault(asset, [0.0, 0.0])
        remaining = max(order.qty - order.executed, 1e-300)
        share = order.locked if last else min(order.locked, order.locked * qty / remaining)
        bal[order.lock_asset][1] -= share
        order.locked -= share
        if order.side == "BUY":
            bal[market.quote][0] += share - value - fee
            bal[market.base][0] += qty
        else:
            bal[market.base][0] += share - qty
            bal[market.quote][0] += value - fee
        if last and order.locked:
            self._release(order)

    def _order_json(self, order: _Order) -> dict[str, Any]:
        return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
                "clientOrderId": order.client_id, "price": _fmt(order.price or 0.0), "origQty": _fmt(order.qty),
                "executedQty": _fmt(order.executed), "cummulativeQuoteQty": _fmt(order.quote),
                "status": order.status, "timeInForce": "GTC", "type": order.type, "side": order.side,
                "stopPrice": _fmt(0.0), "icebergQty": _fmt(0.0), "time": order.accepted_ms,
                "updateTime": order.updated_ms, "isWorking": True, "workingTime": order.accepted_ms,
                "origQuoteOrderQty": _fmt(0.0), "selfTradePreventionMode": "NONE"}


class _LostReply:
    """Marker: the order was accepted, the reply is never delivered."""


_ROUTES: dict[tuple[str, str], tuple[str, bool]] = {
    ("GET", "/api/v3/ping"): ("ping", False),
    ("GET", "/api/v3/time"): ("server_time", False),
    ("GET", "/api/v3/exchangeInfo"): ("exchange_info", False),
    ("GET", "/api/v3/klines"): ("klines", False),
    ("POST", "/api/v3/order"): ("new_order", True),
    ("GET", "/api/v3/order"): ("get_order", True),
    ("DELETE", "/api/v3/order"): ("cancel_order", True),
    ("GET", "/api/v3/openOrders"): ("open_orders", True),
    ("GET", "/api/v3/myTrades"): ("my_trades", True),
    ("GET", "/api/v3/account"): ("account", True),
    ("GET", "/fapi/v1/exchangeInfo"): ("futures_info", False),
    ("GET", "/fapi/v1/klines"): ("futures_klines", False),
    ("GET", "/fapi/v1/fundingRate"): ("funding_rate", False),
    ("GET", "/fapi/v1/premiumIndex"): ("premium_index", False),
}


FakeVenue.routes = _ROUTES


def exchange_info(pairs: list[tuple[str, str]], now: int) -> dict[str, Any]:
    """A small Binance ``exchangeInfo`` for ``pairs`` of (base, quote) assets (spot, MARKET and LIMIT)."""
    symbols = []
    for base, quote in pairs:
        symbols.append({
            "symbol": base + quote, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False, "cancelReplaceAllowed": False, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "10000000.00000000",
                 "tickSize": "0.00000001"},
                {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "90000000.00000000",
                 "stepSize": "0.00000001"},
                {"filterType": "NOTIONAL", "minNotional": "1.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"]})
    return {"timezone": "UTC", "serverTime": now, "rateLimits": [], "exchangeFilters": [], "symbols": symbols}


# ---- as a subprocess -------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m coinswarm.adapters.fake_venue", description=__doc__.split("\n")[0])
    p.add_argument("--symbol", action="append", required=True, metavar="BTC/USDT=binance:BTC/USDT:1h")
    p.add_argument("--start", default="2024-03-01")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--balance", action="append", default=[], metavar="USDT=10000")
    p.add_argument("--faults", default="{}", help="JSON merged into Faults")
    p.add_argument("--max-seconds", type=float, default=600.0, help="exit after this long (always bounded)")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    symbols = dict(s.split("=", 1) for s in args.symbol)
    balances = {a: float(v) for a, v in (b.split("=", 1) for b in args.balance)} or None
    async with FakeVenue(symbols, start=args.start, balances=balances, speed=args.speed, port=args.port) as venue:
        venue.script(**json.loads(args.faults))
        print(f"FAKE_VENUE {venue.url}", flush=True)
        loop, parent_gone = asyncio.get_running_loop(), asyncio.Event()

        def watch_stdin() -> None:  # the parent holds our stdin: EOF means it is gone
            sys.stdin.read()
            loop.call_soon_threadsafe(parent_gone.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        try:
            await asyncio.wait_for(parent_gone.wait(), timeout=args.max_seconds)
        except TimeoutError:
            pass


class FakeVenueProcess:
    """The fake venue as a subprocess (context manager): ``with FakeVenueProcess({...}) as url``.

    The child exits when this process closes its stdin, after ``max_seconds``, or on exit of
    the ``with`` block (terminate, then kill after 5 s)."""

    def __init__(self, symbols: dict[str, str], *, start: str = "2024-03-01", faults: dict | None = None,
                 max_seconds: float = 120.0, startup_timeout: float = 60.0) -> None:
        self.argv = [sys.executable, "-m", "coinswarm.adapters.fake_venue", "--start", start,
                     "--faults", json.dumps(faults or {}), "--max-seconds", str(max_seconds)]
        for sym, src in symbols.items():
            self.argv += ["--symbol", f"{sym}={src}"]
        self.startup_timeout, self.proc, self.url = startup_timeout, None, ""

    def __enter__(self) -> str:
        import selectors
        import subprocess

        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and sel.select(timeout=max(deadline - time.monotonic(), 0.01)):
            line = self.proc.stdout.readline()
            if line.startswith("FAKE_VENUE "):
                self.url = line.split()[1]
                return self.url
            if not line:
                break
        self.__exit__()
        raise ConfigError(f"fake venue did not start within {self.startup_timeout} s: {' '.join(self.argv)}")

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.proc is None:
            return
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc = None


def main(argv: list[str] | None = None) -> None:
    """Run the venue until stdin closes or ``--max-seconds`` pass; prints ``FAKE_VENUE <url>``."""
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
