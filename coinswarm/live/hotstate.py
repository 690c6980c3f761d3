"""Hot state in Redis: what a dashboard or another process reads *now* — positions, regimes,
committee weights, the last bar, in-flight orders and a heartbeat — as a
:class:`~coinswarm.live.sinks.Sink` of the runner.

Keys (``<prefix>`` = ``coinswarm:live:<run>``; every value is text)::

    <prefix>:positions   hash  symbol -> units held
    <prefix>:regime      hash  symbol -> regime label
    <prefix>:weights     hash  symbol -> JSON {agent: weight}
    <prefix>:targets     hash  symbol -> target fraction of equity
    <prefix>:bar         hash  bar_time, cash, equity, drawdown, halted, bars_processed,
                               latency_us, feed_lag_ms, updated_ms
    <prefix>:orders      hash  client order id -> JSON of an order in flight (removed when final)
    <prefix>:heartbeat   string epoch ms of the last bar or event, expires after ``heartbeat_ttl_s``

Each bar rewrites the whole snapshot in one ``MULTI``/``EXEC`` transaction, so a reader never
sees half a bar, and after an outage the first bar restores everything.

Redis is not the book (the ledger is): a failure raises :class:`HotStateError`, which
:class:`~coinswarm.live.sinks.Sinks` counts while trading goes on. After a failure the sink
stays quiet for ``retry_s`` seconds (each call fails at once instead of waiting on a dead
socket), then tries again: the reconnection is redis-py's, on the next command.
The URL may carry an ACL user and password (``redis://user:password@host:6379/0``); neither
appears in an error message or the repr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import orjson

from coinswarm.errors import CoinswarmError, ConfigError
from coinswarm.live.config import mask_url
from coinswarm.live.orders import StoredOrder
from coinswarm.live.protocols import Fill
from coinswarm.live.sinks import Snapshot

KEY_PREFIX = "coinswarm:live"
_HASHES = ("positions", "regime", "weights", "targets")


class HotStateError(CoinswarmError, ConnectionError):
    """Redis could not store the hot state (down, refused, or the ACL forbids it)."""


def _text(x: object) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


class RedisHotState:
    """The runner's hot state in Redis (see the module docstring for the keys).

    Parameters
    ----------
    url : str
        ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS).
    run : str
        Names the run: keys live under ``coinswarm:live:<run>:``.
    heartbeat_ttl_s : float
        The heartbeat key expires this long after the last bar or event (a reader sees a dead
        runner as a missing key).
    retry_s : float
        After a failure, calls fail at once for this long before Redis is tried again.
    socket_timeout_s : float
        Longest wait on one Redis round trip (connect included).
    clock : callable
        Wall clock, epoch seconds (injected).
    min_interval_s : float
        Write a bar's snapshot at most this often (0: every bar). The hot state is "the latest":
        a replay at full speed (thousands of bars a second) sets e.g. 0.25 and pays one round
        trip per interval instead of one per bar; a skipped snapshot is kept and written by the
        next bar after the interval, or by :meth:`flush` / :meth:`close`.
    client : redis.Redis, optional
        A ready client (tests); ``url`` is then only used in messages.
    """

    def __init__(self, url: str, run: str = "default", *, heartbeat_ttl_s: float = 30.0, retry_s: float = 1.0,
                 socket_timeout_s: float = 0.5, clock: Callable[[], float] = time.time, min_interval_s: float = 0.0,
                 client=None) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if not isinstance(run, str) or not run or any(c in run for c in " :*?[]"):
            raise ConfigError(f"hot-state run name {run!r} must be non-empty text without spaces, ':' or wildcards")
        if heartbeat_ttl_s <= 0 or retry_s < 0 or socket_timeout_s <= 0:
            raise ConfigError("heartbeat_ttl_s and socket_timeout_s must be > 0 and retry_s >= 0, got "
                              f"{heartbeat_ttl_s!r}, {socket_timeout_s!r}, {retry_s!r}")
        self.safe_url = mask_url(url)
        if client is None:
            try:
                client = redis.Redis.from_url(url, socket_timeout=socket_timeout_s,
                                              socket_connect_timeout=socket_timeout_s, decode_responses=True,
                                              health_check_interval=30, retry=Retry(NoBackoff(), 0))
            except ValueError as exc:
                raise ConfigError(f"Redis URL {self.safe_url!r} is not valid: expected "
                                  f"redis://[user:password@]host:port/db ({exc})") from None
        self.client, self.run, self.prefix = client, run, f"{KEY_PREFIX}:{run}"
        self.heartbeat_ttl_ms = int(heartbeat_ttl_s * 1000)
        self.retry_s, self.clock = float(retry_s), clock
        self.failures = self.reconnects = self.skipped = 0
        self.min_interval_s = float(min_interval_s)
        self._last_bar_write: float | None = None
        self._pending: Snapshot | None = None
        self._down_until: float | None = None
        self._errors = (redis.RedisError, OSError)

    def __repr__(self) -> str:
        return f"RedisHotState(url={self.safe_url!r}, run={self.run!r})"

    def key(self, name: str) -> str:
        """The full key of ``name`` (``positions``, ``bar``, ``heartbeat`` …)."""
        return f"{self.prefix}:{name}"

    # -- the guard -----------------------------------------------------------------
    def _write(self, what: str, build: Callable) -> None:
        """Run ``build(pipeline)`` as one transaction; :class:`HotStateError` if Redis is down."""
        now = self.clock()
        if self._down_until is not None and now < self._down_until:
            raise HotStateError(f"Redis at {self.safe_url} is down (retrying after {self._down_until - now:.2f} s); "
                                f"{what} not stored")
        try:
            pipe = self.client.pipeline(transaction=True)
            build(pipe)
            pipe.set(self.key("heartbeat"), str(int(now * 1000)), px=self.heartbeat_ttl_ms)
            pipe.execute()
        except self._errors as exc:
            self.failures += 1
            self._down_until = now + self.retry_s
            raise HotStateError(f"Redis at {self.safe_url}: {what} not stored: {type(exc).__name__}: "
                                f"{mask_url(str(exc))}") from None
        if self._down_until is not None:
            self._down_until = None
            self.reconnects += 1

    # -- Sink ------------------------------------------------------------------------
    def on_order(self, order: StoredOrder) -> None:
        """An in-flight order is stored under ``orders``; a final one is removed."""
        def build(pipe) -> None:
            if order.status.final:
                pipe.hdel(self.key("orders"), order.client_order_id)
            else:
                body = {"symbol": order.symbol, "side": order.side.value, "qty": order.qty, "price": order.price,
                        "status": order.status.value, "filled_qty": order.filled_qty, "bar_time": order.bar_time,
                        "updated_ms": order.updated_ms}
                pipe.hset(self.key("orders"), order.client_order_id, orjson.dumps(body).decode())

        self._write(f"order {order.client_order_id}", build)

    def on_fill(self, fill: Fill) -> None:
        """Fills are the ledger's; here they only refresh the heartbeat (positions come with the bar)."""
        self._write(f"fill {fill.fill_id}", lambda pipe: None)

    def on_bar(self, snapshot: Snapshot) -> None:
        """Replace the snapshot (positions, regimes, weights, targets, the bar) in one transaction
        (or keep it for later, inside ``min_interval_s`` of the last write)."""
        now = self.clock()
        if self._last_bar_write is not None and now - self._last_bar_write < self.min_interval_s:
            self._pending = snapshot
            self.skipped += 1
            return
        self._pending = snapshot
        self._write_bar(snapshot)
        self._pending, self._last_bar_write = None, now

    def flush(self) -> None:
        """Write the snapshot kept back by ``min_interval_s``, if any."""
        if self._pending is not None:
            self._write_bar(self._pending)
            self._pending, self._last_bar_write = None, self.clock()

    def _write_bar(self, snapshot: Snapshot) -> None:
        tables: dict[str, Mapping[str, str]] = {
            "positions": {s: _text(float(q)) for s, q in snapshot.positions.items()},
            "regime": {s: str(r) for s, r in snapshot.regimes.items()},
            "weights": {s: orjson.dumps({a: float(w) for a, w in ws.items()}).decode()
                        for s, ws in snapshot.weights.items()},
            "targets": {s: _text(float(t)) for s, t in snapshot.targets.items()},
        }
        bar = {"bar_time": snapshot.bar_time, "cash": float(snapshot.cash), "equity": float(snapshot.equity),
               "drawdown": float(snapshot.drawdown), "halted": int(bool(snapshot.halted)),
               "bars_processed": snapshot.bars_processed, "latency_us": float(snapshot.latency_us),
               "feed_lag_ms": snapshot.feed_lag_ms, "updated_ms": int(self.clock() * 1000)}

        def build(pipe) -> None:
            for name in _HASHES:
                pipe.delete(self.key(name))
                if tables[name]:
                    pipe.hset(self.key(name), mapping=dict(tables[name]))
            pipe.hset(self.key("bar"), mapping={k: _text(v) for k, v in bar.items()})

        self._write(f"bar {snapshot.bar_time}", build)

    def on_event(self, name: str, fields: Mapping[str, object]) -> None:
        """``halt``/``resume`` set the ``halted`` field of ``bar`` at once; every event refreshes the heartbeat."""
        def build(pipe) -> None:
            if name in ("halt", "resume"):
                pipe.hset(self.key("bar"), "halted", str(int(name == "halt")))

        self._write(f"event {name}", build)

    def close(self) -> None:
        """Write a kept-back snapshot, then close the connection pool (idempotent; the keys stay,
        the heartbeat expires)."""
        try:
            self.flush()
        except HotStateError:
            pass
        try:
            self.client.close()
        except self._errors:
            pass

    # -- reading (status, tests) ----------------------------------------------------------
    def read(self) -> dict:
        """Everything stored for this run: ``{"positions": {...}, "regime": ..., "weights": {symbol:
        {agent: w}}, "targets": ..., "bar": {...}, "orders": {...}, "heartbeat_ms": int | None}``."""
        try:
            pipe = self.client.pipeline(transaction=True)
            for name in (*_HASHES, "bar", "orders"):
                pipe.hgetall(self.key(name))
            pipe.get(self.key("heartbeat"))
            *hashes, beat = pipe.execute()
        except self._errors as exc:
            raise HotStateError(f"Redis at {self.safe_url}: cannot read the hot state: {type(exc).__name__}") from None
        out = dict(zip((*_HASHES, "bar", "orders"), hashes, strict=True))
        out["positions"] = {s: float(q) for s, q in out["positions"].items()}
        out["targets"] = {s: float(q) for s, q in out["targets"].items()}
        out["weights"] = {s: orjson.loads(w) for s, w in out["weights"].items()}
        out["orders"] = {c: orjson.loads(o) for c, o in out["orders"].items()}
        out["heartbeat_ms"] = None if beat is None else int(beat)
        return out
