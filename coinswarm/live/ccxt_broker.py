"""The exchange broker: the :class:`~coinswarm.live.protocols.Broker` protocol over
``ccxt.async_support`` for Binance and Coinbase (spot orders; with ``perpetuals=True`` also the
market data of Binance's USDT-M perpetuals — candles and settled funding — for the paper daemon).

Rules it keeps:

* ``submit`` sends the runner's deterministic client order id (``newClientOrderId`` on Binance,
  ``client_order_id`` on Coinbase) and is **never retried**: no reply after sending (timeout,
  dropped connection, 5xx) → :class:`~coinswarm.errors.OrderUnknownError`; 429/418 →
  :class:`~coinswarm.errors.RateLimitedError` with ``retry_after`` (the ``Retry-After`` header);
  a refusal the venue states (4xx with an error code) → :class:`~coinswarm.errors.OrderRejectedError`;
  a reply that does not parse → :class:`~coinswarm.errors.MalformedReplyError` naming the field
  (after a submit, the order may exist: the runner keeps it in flight).
* ``order_status`` returns None when the venue says the order does not exist.
* The venue's clock offset is measured with ``fetch_time`` (:meth:`CcxtBroker.sync_time`, again every
  ``time_sync_s`` and after a "timestamp outside recvWindow" refusal) and applied to every signed
  request's timestamp; ``recvWindow`` is set.
* Keys come only from ``COINSWARM_<EXCHANGE>_API_KEY`` / ``_SECRET`` or a JSON file readable by
  its owner alone (:func:`load_keys`); they never appear in a repr, an error message or a log line
  (ccxt's debug log of request headers is switched off for the exchange).
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinswarm.errors import (
    ConfigError,
    MalformedReplyError,
    OrderRejectedError,
    OrderUnknownError,
    RateLimitedError,
    VenueError,
)
from coinswarm.live.protocols import Balance, Fill, OrderIntent, OrderStatus, Side, VenueOrder

EXCHANGES = ("binance", "coinbase")
_CID_PARAM = {"binance": "newClientOrderId", "coinbase": "client_order_id"}
_OPTIONS = {  # spot only: no margin/futures/currency endpoints at start-up
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False},
    "coinbase": {"fetchMarkets": {"types": ["spot"]}},
}
_PERP_TYPES = {"binance": ["spot", "linear"]}  # + the USDT-M futures (GET /fapi/v1/exchangeInfo)
_STATUS = {"open": OrderStatus.OPEN, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
           "cancelled": OrderStatus.CANCELED, "rejected": OrderStatus.REJECTED, "expired": OrderStatus.EXPIRED}


class _QuietLogger:
    """What ccxt logs through: its debug lines carry request headers (the API key), so they are
    dropped; anything louder goes to the ``coinswarm.live.ccxt`` logger."""

    def __init__(self) -> None:
        self._log = logging.getLogger("coinswarm.live.ccxt")

    def debug(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


@dataclass(frozen=True)
class ApiKeys:
    """An exchange API key pair; its repr never shows the values."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str = "env"

    def __repr__(self) -> str:
        return f"ApiKeys(source={self.source!r}, api_key=***, secret=***)"

    __str__ = __repr__


PUBLIC = ApiKeys("", "", "public")  #: no keys: public endpoints only (feeds)


def load_keys(exchange: str, *, env: dict[str, str] | None = None, path: str | os.PathLike | None = None) -> ApiKeys:
    """The API keys of ``exchange``: from ``COINSWARM_<EXCHANGE>_API_KEY`` and ``_SECRET``, or
    a JSON file ``{"api_key": …, "secret": …}`` (``path``, or ``COINSWARM_<EXCHANGE>_KEY_FILE``)
    that only its owner may read or write (mode 0600 or stricter).

    Raises
    ------
    ConfigError
        Keys missing, the file wider than 0600, or not the expected JSON (values never quoted).
    """
    env = os.environ if env is None else env
    prefix = f"COINSWARM_{exchange.upper()}_"
    key, secret = env.get(prefix + "API_KEY"), env.get(prefix + "SECRET")
    path = path or env.get(prefix + "KEY_FILE")
    if key and secret and path is None:
        return ApiKeys(key, secret, "env")
    if path is None:
        raise ConfigError(f"no {exchange} keys: set {prefix}API_KEY and {prefix}SECRET, "
                          f"or {prefix}KEY_FILE to a 0600 JSON file {{\"api_key\": …, \"secret\": …}}")
    file = Path(path)
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"key file {file}: cannot read ({exc.strerror})") from None
    if mode & 0o077:
        raise ConfigError(f"key file {file} has mode {mode:04o}: refuse a key file others can read; "
                          f"chmod 600 {file}")
    try:
        data = json.loads(file.read_text())
        return ApiKeys(str(data["api_key"]), str(data["secret"]), str(file))
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"key file {file}: expected JSON with string fields 'api_key' and 'secret'") from None


# ---- parsing: ccxt's unified structures → the runner's records ------------------------------
def _number(raw: dict, name: str, venue: str, cid: str | None, *, minimum: float = 0.0,
            strict: bool = False, optional: bool = False) -> float | None:
    value = raw.get(name)
    if value is None and optional:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < minimum or (strict and x <= minimum):
        bound = f"> {minimum}" if strict else f"≥ {minimum}"
        raise MalformedReplyError(f"reply field '{name}' is {value!r}; expected a finite number {bound}",
                                  venue=venue, client_order_id=cid)
    return x


def _side(raw: dict, venue: str, cid: str | None) -> Side:
    try:
        return Side(str(raw.get("side")).lower())
    except ValueError:
        raise MalformedReplyError(f"reply field 'side' is {raw.get('side')!r}; expected 'buy' or 'sell'",
                                  venue=venue, client_order_id=cid) from None


def _time(raw: dict, names: Sequence[str], venue: str, cid: str | None, default: int | None = None) -> int:
    for name in names:
        value = raw.get(name)
        if value is not None:
            if isinstance(value, int | float) and math.isfinite(value) and value > 0:
                return int(value)
            raise MalformedReplyError(f"reply field '{name}' is {value!r}; expected epoch milliseconds",
                                      venue=venue, client_order_id=cid)
    if default is None:
        raise MalformedReplyError(f"reply has no time ({' / '.join(names)})", venue=venue, client_order_id=cid)
    return default


def order_from_ccxt(raw: Any, venue: str, *, intent: OrderIntent | None = None, client_order_id: str | None = None,
                    now_ms: int | None = None) -> VenueOrder:
    """A ccxt order structure → :class:`VenueOrder`.

    ``intent`` (a submit's reply) fills what a terse acknowledgement leaves out (Coinbase echoes only
    ids) and must agree with what it does say; ``client_order_id`` forces the id (a Binance cancel
    reply's ``clientOrderId`` is the cancel request's own). Raises MalformedReplyError naming the field.
    """
    cid = client_order_id or (intent.client_order_id if intent else None)
    if not isinstance(raw, dict):
        raise MalformedReplyError(f"order reply is {type(raw).__name__}, expected an object", venue=venue,
                                  client_order_id=cid)
    given = raw.get("clientOrderId")
    if intent is not None and given not in (None, "", intent.client_order_id):
        raise MalformedReplyError(f"reply field 'clientOrderId' is {given!r}, not the id sent", venue=venue,
                                  client_order_id=cid)
    cid = cid or given
    if not isinstance(cid, str) or not cid:
        raise MalformedReplyError(f"reply field 'clientOrderId' is {given!r}; expected the client order id",
                                  venue=venue)
    filled_raw = {**raw} if raw.get("filled") is not None else {**raw, "filled": 0.0}
    defaults = {"symbol": intent.symbol, "side": intent.side.value, "amount": intent.qty} if intent else {}
    merged = {**defaults, **{k: v for k, v in filled_raw.items() if v is not None}}
    status = raw.get("status")
    if status is None and intent is None:
        raise MalformedReplyError("reply field 'status' is missing", venue=venue, client_order_id=cid)
    if status is not None and str(status).lower() not in _STATUS:
        raise MalformedReplyError(f"reply field 'status' is {status!r}; expected one of {sorted(_STATUS)}",
                                  venue=venue, client_order_id=cid)
    qty = _number(merged, "amount", venue, cid, strict=True)
    filled = _number(merged, "filled", venue, cid)
    if filled > qty * (1 + 1e-9):
        raise MalformedReplyError(f"reply field 'filled' {filled} exceeds 'amount' {qty}", venue=venue,
                                  client_order_id=cid)
    symbol = merged.get("symbol")
    if not isinstance(symbol, str) or "/" not in symbol:
        raise MalformedReplyError(f"reply field 'symbol' is {symbol!r}; expected BASE/QUOTE", venue=venue,
                                  client_order_id=cid)
    avg = _number(merged, "average", venue, cid, strict=True, optional=True) if filled > 0 else None
    return VenueOrder(
        client_order_id=cid, venue_order_id=None if raw.get("id") is None else str(raw["id"]), symbol=symbol,
        side=_side(merged, venue, cid), qty=qty, filled_qty=filled, avg_price=avg,
        status=_STATUS[str(status).lower()] if status is not None else OrderStatus.OPEN,
        updated_ms=_time(raw, ("lastUpdateTimestamp", "lastTradeTimestamp", "timestamp"), venue, cid, now_ms))


def fill_from_ccxt(raw: Any, venue: str, client_order_id: str) -> Fill:
    """A ccxt trade structure → :class:`Fill` (``client_order_id`` resolved by the caller from the
    trade's ``order``). Raises MalformedReplyError naming the field."""
    cid = client_order_id
    if not isinstance(raw, dict) or raw.get("id") in (None, ""):
        raise MalformedReplyError("trade reply has no 'id' (the key that de-duplicates fills)", venue=venue,
                                  client_order_id=cid)
    fee = raw.get("fee") or {}
    if not isinstance(fee, dict):
        raise MalformedReplyError(f"trade field 'fee' is {fee!r}; expected an object", venue=venue,
                                  client_order_id=cid)
    cost = 0.0 if fee.get("cost") is None else _number(fee, "cost", venue, cid, minimum=-math.inf)
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or "/" not in symbol:
        raise MalformedReplyError(f"trade field 'symbol' is {symbol!r}; expected BASE/QUOTE", venue=venue,
                                  client_order_id=cid)
    return Fill(fill_id=str(raw["id"]), client_order_id=cid, symbol=symbol, side=_side(raw, venue, cid),
                qty=_number(raw, "amount", venue, cid, strict=True),
                price=_number(raw, "price", venue, cid, strict=True), fee=cost,
                fee_currency=str(fee.get("currency") or ""), time_ms=_time(raw, ("timestamp",), venue, cid))


def balances_from_ccxt(raw: Any, venue: str) -> dict[str, Balance]:
    """A ccxt balance structure → balances by asset (assets with no total are left out)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("total"), dict):
        raise MalformedReplyError("balance reply has no 'total' object", venue=venue)
    free = raw.get("free") if isinstance(raw.get("free"), dict) else {}
    out = {}
    for asset, total in raw["total"].items():
        if total is None:
            continue
        t = _number({f"total[{asset}]": total}, f"total[{asset}]", venue, None)
        f = _number({f"free[{asset}]": free.get(asset, t)}, f"free[{asset}]", venue, None)
        out[str(asset)] = Balance(str(asset), f, t)
    return out


_NUMERIC = ("origQty", "executedQty", "cummulativeQuoteQty", "price", "qty", "quoteQty", "commission", "free",
            "locked", "time", "updateTime", "transactTime", "orderId", "serverTime", "size", "filled_size",
            "average_filled_price", "total_fees", "base_size", "quote_size", "limit_price", "amount", "value")


def _bad_field(reply: Any, depth: int = 0) -> tuple[str, Any] | None:
    """The first field of a raw JSON reply that should be a number and is not (diagnosis only)."""
    if depth > 4:
        return None
    rows = reply if isinstance(reply, list) else [reply]
    for row in rows[:1000]:
        if not isinstance(row, dict):
            continue
        for key, value in row.items():
            if key in _NUMERIC and isinstance(value, str | int | float) and not isinstance(value, bool):
                try:
                    float(value)
                except ValueError:
                    return key, value
            elif isinstance(value, dict | list):
                found = _bad_field(value, depth + 1)
                if found:
                    return found
    return None


COINBASE_LIVE = "https://api.coinbase.com"
COINBASE_SANDBOX = "https://api-sandbox.coinbase.com"


def coinbase_sandbox(ex: Any) -> Any:
    """Point a ccxt ``coinbase`` at the Advanced Trade sandbox (ccxt has no switch for it).

    The sandbox (``api-sandbox.coinbase.com/api/v3/brokerage/…``) serves only the private
    accounts and orders endpoints, with static, mocked replies in the production format; market
    data (products, candles, the clock) stays on the public production API. So every signed
    ``v3`` request goes to the sandbox host, balances are read from v3 accounts (the v2
    accounts endpoint has no sandbox), and the rest is unchanged. A URL already pointed
    elsewhere (the fake venue's ``api_url``) is left alone."""
    sign = ex.sign

    def sandboxed(path: str, api: Any = (), method: str = "GET", params: dict | None = None, *rest: Any) -> dict:
        request = sign(path, list(api), method, {} if params is None else params, *rest)
        if list(api)[:2] == ["v3", "private"] and str(request.get("url", "")).startswith(COINBASE_LIVE + "/"):
            request["url"] = COINBASE_SANDBOX + request["url"][len(COINBASE_LIVE):]
        return request

    ex.sign = sandboxed
    ex.options["fetchBalance"] = "v3PrivateGetBrokerageAccounts"
    return ex


# ---- the broker --------------------------------------------------------------------------------
class CcxtBroker:
    """The :class:`~coinswarm.live.protocols.Broker` of one exchange account, over ccxt (async).

    Parameters
    ----------
    exchange : {"binance", "coinbase"}
    keys : ApiKeys, optional
        Default: :func:`load_keys` (environment or 0600 file).
    sandbox : bool
        The exchange's testnet/sandbox (ccxt ``set_sandbox_mode``).
    api_url : str, optional
        Base URL replacing every ``urls['api']`` host (the fake venue: ``http://127.0.0.1:PORT``).
    timeout_ms, recv_window_ms : int
        HTTP timeout; Binance's ``recvWindow``.
    time_sync_s : float
        Re-measure the clock offset when the last measurement is older than this.
    clock : callable
        Seconds since the epoch (injected; default ``time.time``), used for the re-sync schedule.
    min_interval_ms : int, optional
        ccxt's rate limiter spacing between requests (default: the exchange's own).
    client : ccxt exchange, optional
        A ready ccxt instance (tests); ``api_url``/``sandbox``/``perpetuals`` are then not applied.
    perpetuals : bool
        Also load the USDT-margined perpetuals (Binance's linear futures, ``BTC/USDT:USDT``): their
        candles and :meth:`funding`, for the paper daemon's market data. Off by default: the
        exchange daemon's start-up stays on spot endpoints.
    """

    def __init__(self, exchange: str = "binance", *, keys: ApiKeys | None = None, sandbox: bool = False,
                 api_url: str | None = None, timeout_ms: int = 10_000, recv_window_ms: int = 5_000,
                 time_sync_s: float = 300.0, clock: Callable[[], float] = time.time, min_interval_ms: int | None = None,
                 client: Any = None, perpetuals: bool = False) -> None:
        if exchange not in EXCHANGES:
            raise ConfigError(f"exchange {exchange!r} is not supported; expected one of {EXCHANGES}")
        if perpetuals and exchange not in _PERP_TYPES:
            raise ConfigError(f"perpetuals: {exchange} has none here; valid: {sorted(_PERP_TYPES)}")
        self.perpetuals = bool(perpetuals)
        self.exchange, self.sandbox = exchange, sandbox
        self.name = f"ccxt:{exchange}" + (":sandbox" if sandbox else "")
        self.time_sync_s, self._clock = float(time_sync_s), clock
        self.clock_offset_ms = 0  # venue time − local time
        self._last_sync: float | None = None
        self._venue_ids: dict[str, str] = {}  # client order id → venue order id
        self._client_ids: dict[str, str] = {}  # venue order id → client order id
        self._marks: dict[str, float] = {}
        self._ex = client if client is not None else self._make_client(keys, sandbox, api_url, timeout_ms)
        self._ex.logger = _QuietLogger()
        self._ex.enableLastResponseHeaders = True  # Retry-After
        self._ex.enableLastJsonResponse = True  # names the field of a reply ccxt cannot parse
        self._ex.options["recvWindow"] = int(recv_window_ms)
        if min_interval_ms is not None:
            self._ex.rateLimit = int(min_interval_ms)
        # scrubbed from every message (values under 8 characters are dummies: replacing them would garble text)
        self._secrets = [s for s in (getattr(self._ex, "apiKey", ""), getattr(self._ex, "secret", "")) if len(s) >= 8]

    def _make_client(self, keys: ApiKeys | None, sandbox: bool, api_url: str | None, timeout_ms: int) -> Any:
        from urllib.parse import urlparse

        import ccxt.async_support as ccxt_async

        keys = keys or load_keys(self.exchange)
        ex = getattr(ccxt_async, self.exchange)({
            "apiKey": keys.api_key, "secret": keys.secret, "enableRateLimit": True, "timeout": int(timeout_ms),
            "options": {**_OPTIONS[self.exchange],
                        **({"fetchMarkets": {"types": _PERP_TYPES[self.exchange]}} if self.perpetuals else {})}})
        if sandbox and self.exchange == "coinbase":
            coinbase_sandbox(ex)
        elif sandbox:
            try:
                ex.set_sandbox_mode(True)
            except (ccxt_async.NotSupported, TypeError, KeyError):
                raise ConfigError(f"{self.exchange} has no sandbox/testnet in ccxt; run without sandbox") from None
        if api_url:
            base = api_url.rstrip("/")
            ex.urls["api"] = {k: base + urlparse(v).path for k, v in ex.urls["api"].items() if isinstance(v, str)}
        return ex

    def __repr__(self) -> str:
        return f"CcxtBroker(name={self.name!r}, clock_offset_ms={self.clock_offset_ms})"

    async def __aenter__(self) -> CcxtBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Load the markets and measure the clock offset."""
        await self._call("load markets", self._ex.load_markets)
        await self.sync_time()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._ex.close()

    @property
    def markets(self) -> dict:
        """ccxt's markets (lot step, minimum amount and notional), loaded by :meth:`start`."""
        return self._ex.markets or {}

    def mark_price(self, symbol: str, price: float) -> None:
        """The last closed price of ``symbol``: Coinbase market buys are sized in quote currency
        (``qty × mark``)."""
        self._marks[symbol] = float(price)

    # ---- clock ----
    async def server_time_ms(self) -> int:
        """The venue's clock (ms)."""
        value = await self._call("fetch time", self._ex.fetch_time)
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise MalformedReplyError(f"server time is {value!r}; expected epoch milliseconds", venue=self.name)
        return int(value)

    async def sync_time(self) -> int:
        """Measure venue time − local time (half the round trip added) and apply it to signed requests."""
        before = self._ex.milliseconds()
        server = await self.server_time_ms()
        after = self._ex.milliseconds()
        self.clock_offset_ms = int(server + (after - before) / 2 - after)
        self._ex.options["timeDifference"] = -self.clock_offset_ms
        self._last_sync = self._clock()
        return self.clock_offset_ms

    async def _maybe_sync(self) -> None:
        if self._last_sync is None or self._clock() - self._last_sync > self.time_sync_s:
            await self.sync_time()

    # ---- calls and errors ----
    async def _call(self, what: str, fn: Callable, *args: Any, cid: str | None = None, submitting: bool = False,
                    not_found: Any = ..., retry_nonce: bool = True) -> Any:
        import ccxt

        try:
            return await fn(*args)
        except ccxt.OrderNotFound as exc:
            if not_found is not ...:
                return not_found
            raise self._translate(exc, what, cid, submitting) from None
        except ccxt.InvalidNonce as exc:
            self._last_sync = None
            if submitting or not retry_nonce:
                raise self._translate(exc, what, cid, submitting) from None
            await self.sync_time()
            return await self._call(what, fn, *args, cid=cid, not_found=not_found, retry_nonce=False)
        except (ccxt.BaseError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self._translate(exc, what, cid, submitting) from None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]

    def _retry_after(self) -> float | None:
        headers = getattr(self._ex, "last_response_headers", None) or {}
        for k, v in headers.items():
            if k.lower() == "retry-after":
                try:
                    return max(float(v), 0.0)
                except ValueError:
                    return None
        return None

    def _translate(self, exc: BaseException, what: str, cid: str | None, submitting: bool) -> VenueError:
        import ccxt

        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        kw = {"venue": self.name, "client_order_id": cid}
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            return RateLimitedError(f"{what}: rate limited ({detail})", retry_after=self._retry_after(), **kw)
        if isinstance(exc, ccxt.InvalidNonce):
            cls = OrderRejectedError if submitting else VenueError
            return cls(f"{what}: refused, request timestamp outside recvWindow; clock offset re-measured "
                       f"before the next request ({detail})", **kw)
        if isinstance(exc, ccxt.NetworkError):
            if submitting:
                return OrderUnknownError(f"{what}: no usable reply after sending ({detail}); the order may exist: "
                                         "query it by client order id, never resend", **kw)
            return VenueError(f"{what}: venue unreachable ({detail})", **kw)
        if isinstance(exc, ccxt.BadResponse | KeyError | TypeError | ValueError | AttributeError | IndexError):
            culprit = _bad_field(getattr(self._ex, "last_json_response", None))
            where = f"field '{culprit[0]}' is {culprit[1]!r}, not a number; " if culprit else ""
            return MalformedReplyError(f"{what}: reply does not parse ({where}{detail})", **kw)
        if isinstance(exc, ccxt.BaseError) and submitting:
            return OrderRejectedError(f"{what}: refused by the venue ({detail})", **kw)
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderRejectedError(f"{what}: the venue does not know the order ({detail})", **kw)
        return VenueError(f"{what}: {detail}", **kw)

    def _remember(self, order: VenueOrder) -> VenueOrder:
        if order.venue_order_id:
            self._venue_ids[order.client_order_id] = order.venue_order_id
            self._client_ids[order.venue_order_id] = order.client_order_id
        return order

    def _now_ms(self) -> int:
        return int(self._ex.milliseconds() + self.clock_offset_ms)

    async def candles(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list:
        """Raw ccxt OHLCV rows (public endpoint; errors translated like every call): the
        :class:`~coinswarm.live.feeds.CcxtFeed` source. Rows are validated by the feed."""
        rows = await self._call("candles", self._ex.fetch_ohlcv, symbol, timeframe, since_ms, limit)
        if not isinstance(rows, list):
            raise MalformedReplyError(f"candles reply is {type(rows).__name__}, expected a list", venue=self.name)
        return rows

    async def funding(self, symbol: str, since_ms: int, limit: int) -> list[tuple[int, float]]:
        """Settled funding rates ``(time_ms, rate)`` of perpetual ``symbol`` from ``since_ms`` on,
        oldest first, at most ``limit`` (public endpoint, ccxt ``fetch_funding_rate_history``; needs
        ``perpetuals=True``): the :class:`~coinswarm.live.funding.LiveFundingBook` source.

        Raises
        ------
        MalformedReplyError
            A reply that is not a list, a row without an epoch-ms ``timestamp`` or a finite
            ``fundingRate`` with ``|rate| < 1``, of another symbol, or out of time order.
        VenueError
            As every call (rate limits: :class:`~coinswarm.errors.RateLimitedError`).
        """
        rows = await self._call("funding", self._ex.fetch_funding_rate_history, symbol, int(since_ms), int(limit))
        if not isinstance(rows, list):
            raise MalformedReplyError(f"funding reply is {type(rows).__name__}, expected a list", venue=self.name)
        out: list[tuple[int, float]] = []
        for k, row in enumerate(rows):
            if not isinstance(row, dict) or row.get("symbol") not in (None, symbol):
                got = row.get("symbol") if isinstance(row, dict) else type(row).__name__
                raise MalformedReplyError(f"funding row {k} is of {got!r}, expected a {symbol} settlement",
                                          venue=self.name)
            when = _time(row, ("timestamp",), self.name, None)
            rate = row.get("fundingRate")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not abs(rate) < 1.0:
                raw = (row.get("info") or {}).get("fundingRate", rate) if isinstance(row.get("info"), dict) else rate
                raise MalformedReplyError(f"funding row {k} ({symbol} at {when}): 'fundingRate' is {raw!r}; "
                                          "expected a finite fraction with |rate| < 1", venue=self.name)
            if out and when <= out[-1][0]:
                raise MalformedReplyError(f"funding row {k} at {when} is not after the row before ({out[-1][0]})",
                                          venue=self.name)
            out.append((when, rate))
        return out

    async def next_funding(self, symbol: str) -> int:
        """The time (epoch ms) of perpetual ``symbol``'s next funding settlement as the venue
        announces it now (ccxt ``fetch_funding_rate``: Binance's ``premiumIndex``
        ``nextFundingTime``, parsed by ccxt as ``fundingTimestamp``; needs ``perpetuals=True``):
        how :class:`~coinswarm.live.funding.LiveFundingBook` knows a settlement is due before the
        venue publishes it.

        Raises
        ------
        MalformedReplyError
            A reply that is not a dict, of another symbol, or whose ``fundingTimestamp`` (and
            ``info.nextFundingTime``) is not epoch milliseconds.
        VenueError
            As every call.
        """
        reply = await self._call("next funding", self._ex.fetch_funding_rate, symbol)
        if not isinstance(reply, dict) or reply.get("symbol") not in (None, symbol):
            got = reply.get("symbol") if isinstance(reply, dict) else type(reply).__name__
            raise MalformedReplyError(f"funding-rate reply is of {got!r}, expected {symbol}'s "
                                      "(with its next settlement time 'fundingTimestamp')", venue=self.name)
        info = reply.get("info") if isinstance(reply.get("info"), dict) else {}
        if reply.get("fundingTimestamp") is None and info.get("nextFundingTime") is not None:
            raw = info["nextFundingTime"]  # ccxt left it out: Binance's own field, a string of digits
            if not (isinstance(raw, str) and raw.isdigit()):
                raise MalformedReplyError(f"funding-rate reply of {symbol}: 'nextFundingTime' is {raw!r}; expected "
                                          "epoch milliseconds", venue=self.name)
            return int(raw)
        return _time(reply, ("fundingTimestamp",), self.name, None)

    # ---- the Broker protocol ----
    async def submit(self, intent: OrderIntent) -> VenueOrder:
        """Send one order, once (see the module docstring for what each failure raises)."""
        cid = intent.client_order_id
        if not (isinstance(intent.qty, int | float) and math.isfinite(intent.qty) and intent.qty > 0):
            raise OrderRejectedError(f"not sent: qty {intent.qty!r} must be a finite number > 0", venue=self.name,
                                     client_order_id=cid)
        if intent.price is not None and not (math.isfinite(intent.price) and intent.price > 0):
            raise OrderRejectedError(f"not sent: limit price {intent.price!r} must be > 0", venue=self.name,
                                     client_order_id=cid)
        if intent.symbol not in (self._ex.markets or {}):
            raise OrderRejectedError(f"not sent: {intent.symbol!r} is not a market of {self.name}",
                                     venue=self.name, client_order_id=cid)
        args = self._order_args(intent)
        await self._maybe_sync()
        raw = await self._call("submit", self._ex.create_order, *args, cid=cid, submitting=True)
        return self._remember(order_from_ccxt(raw, self.name, intent=intent, now_ms=self._now_ms()))

    def _order_args(self, intent: OrderIntent) -> tuple:
        params: dict[str, Any] = {_CID_PARAM[self.exchange]: intent.client_order_id}
        kind = "market" if intent.price is None else "limit"
        price = intent.price
        if self.exchange == "coinbase" and kind == "market" and intent.side is Side.BUY:
            mark = self._marks.get(intent.symbol)
            if mark is None:
                raise OrderRejectedError(f"not sent: a Coinbase market buy is sized in quote currency; call "
                                         f"mark_price({intent.symbol!r}, last close) first", venue=self.name,
                                         client_order_id=intent.client_order_id)
            price = mark
        if intent.reduce_only and (self._ex.markets[intent.symbol].get("contract")):
            params["reduceOnly"] = True
        return intent.symbol, kind, intent.side.value, intent.qty, price, params

    async def order_status(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        """The venue's view of the order, or None when it says the order does not exist."""
        await self._maybe_sync()
        if self.exchange == "binance":
            raw = await self._call("order status", self._ex.fetch_order, None, symbol,
                                   {"origClientOrderId": client_order_id}, cid=client_order_id, not_found=None)
        elif client_order_id in self._venue_ids:
            raw = await self._call("order status", self._ex.fetch_order, self._venue_ids[client_order_id], symbol,
                                   cid=client_order_id, not_found=None)
        else:  # Coinbase looks orders up by venue id only: search the recent ones
            rows = await self._call("order status", self._ex.fetch_orders, symbol, None, 250, cid=client_order_id)
            raw = next((r for r in rows or [] if isinstance(r, dict) and r.get("clientOrderId") == client_order_id),
                       None)
        if raw is None:
            return None
        return self._remember(order_from_ccxt(raw, self.name, client_order_id=client_order_id))

    async def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        """Cancel an open order (a venue that does not know it → OrderRejectedError)."""
        await self._maybe_sync()
        if self.exchange == "binance":
            args = (None, symbol, {"origClientOrderId": client_order_id})
        else:
            venue_id = self._venue_ids.get(client_order_id)
            if venue_id is None:
                found = await self.order_status(client_order_id, symbol)
                venue_id = found.venue_order_id if found else None
            if not venue_id:
                raise OrderRejectedError("cancel: the venue does not know the order", venue=self.name,
                                         client_order_id=client_order_id)
            args = (venue_id, symbol)
        raw = await self._call("cancel", self._ex.cancel_order, *args, cid=client_order_id)
        if self.exchange == "coinbase":  # the reply is only an acknowledgement: read the order back
            order = await self.order_status(client_order_id, symbol)
            if order is None:
                raise MalformedReplyError("cancel acknowledged but the order cannot be read back",
                                          venue=self.name, client_order_id=client_order_id)
            return order
        return self._remember(order_from_ccxt(raw, self.name, client_order_id=client_order_id, now_ms=self._now_ms()))

    async def open_orders(self, symbols: Sequence[str]) -> list[VenueOrder]:
        """Every open order on ``symbols`` (one request per symbol)."""
        await self._maybe_sync()
        out = []
        for symbol in symbols:
            rows = await self._call("open orders", self._ex.fetch_open_orders, symbol)
            if not isinstance(rows, list):
                raise MalformedReplyError(f"open orders reply is {type(rows).__name__}, expected a list",
                                          venue=self.name)
            out.extend(self._remember(order_from_ccxt(r, self.name)) for r in rows)
        return out

    async def fills_since(self, symbols: Sequence[str], since_ms: int, *, page: int = 1000) -> list[Fill]:
        """Every fill on ``symbols`` at or after ``since_ms``, de-duplicated by fill id and sorted by
        (time, id). A fill of an order this broker never saw is looked up by venue order id; one the
        venue cannot name gets the client order id ``venue-<order id>`` (a foreign order)."""
        await self._maybe_sync()
        fills: dict[str, Fill] = {}
        for symbol in symbols:
            cursor = int(since_ms)
            for _ in range(10_000):
                rows = await self._call("fills", self._ex.fetch_my_trades, symbol, cursor, page)
                if not isinstance(rows, list):
                    raise MalformedReplyError(f"trades reply is {type(rows).__name__}, expected a list",
                                              venue=self.name)
                new = 0
                for row in rows:
                    cid = await self._client_id_of(row, symbol)
                    fill = fill_from_ccxt(row, self.name, cid)
                    new += fill.fill_id not in fills
                    fills[fill.fill_id] = fill
                if len(rows) < page or not new:
                    break
                cursor = max(f.time_ms for f in fills.values() if f.symbol == symbol)
        return sorted(fills.values(), key=lambda f: (f.time_ms, f.fill_id))

    async def _client_id_of(self, row: Any, symbol: str) -> str:
        order_id = str(row.get("order")) if isinstance(row, dict) and row.get("order") is not None else None
        if order_id is None:
            raise MalformedReplyError("trade field 'order' is missing (cannot tell which order filled)",
                                      venue=self.name)
        if order_id not in self._client_ids:
            raw = await self._call("order of a fill", self._ex.fetch_order, order_id, symbol, not_found=None)
            cid = raw.get("clientOrderId") if isinstance(raw, dict) else None
            if not cid:  # not remembered: "does not exist" may be the venue's lag right after a submit
                return f"venue-{order_id}"
            self._client_ids[order_id] = str(cid)
        return self._client_ids[order_id]

    async def balances(self) -> dict[str, Balance]:
        """Balances by asset."""
        await self._maybe_sync()
        return balances_from_ccxt(await self._call("balances", self._ex.fetch_balance), self.name)
