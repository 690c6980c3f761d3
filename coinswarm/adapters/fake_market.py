"""The fake Binance venue (:mod:`coinswarm.adapters.fake_venue`) with market data: REST
``/api/v3/aggTrades`` and ``/api/v3/depth``, and a WebSocket stream (``websockets``, 127.0.0.1)
speaking Binance's ``SUBSCRIBE`` protocol for ``<symbol>@trade`` and ``<symbol>@kline_<tf>``,
which ccxt pro's ``watch_trades`` / ``watch_ohlcv`` consume unchanged.

Data are real: candles from the catalog (as the base venue), trades from a recorded trades file
of ``datasets/ticks`` (a :class:`TradeTape`: ids, prices, amounts and sides unchanged, times
shifted by one constant so the first trade falls at the venue's start; with ``loop`` the tape
replays in laps, ids continuing where the last lap ended so they stay contiguous), books from
the recorded best bid/offer file (one level a side).

WebSocket faults (:class:`StreamFaults`): drop every connection after N messages, send each
message twice, swap neighbouring messages (out of order).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from coinswarm.adapters.fake_venue import _ROUTES, BinanceError, FakeVenue, _fmt
from coinswarm.errors import ConfigError


class TradeTape:
    """Recorded trades replayed on the venue clock (see the module docstring).

    Parameters
    ----------
    path : str or Path
        A trades CSV with ``timestamp, trade_id, price, amount, side``.
    start_ms : int
        Venue time of the first trade.
    loop : bool
        Replay in laps (period = the tape's span + its mean spacing).
    """

    def __init__(self, path: str | Path, start_ms: int, *, loop: bool = True) -> None:
        import pandas as pd

        df = pd.read_csv(path)
        missing = {"timestamp", "trade_id", "price", "amount", "side"} - set(df.columns)
        if missing:
            raise ConfigError(f"{path}: a trade tape needs columns timestamp, trade_id, price, amount, side; "
                              f"missing {sorted(missing)}")
        t = df["timestamp"].to_numpy(np.int64)
        self.t = t - t[0] + int(start_ms)
        self.ids = df["trade_id"].to_numpy(np.int64)
        self.price, self.amount = df["price"].to_numpy(float), df["amount"].to_numpy(float)
        self.sell = (df["side"] == "sell").to_numpy()
        self.loop = loop
        self.period = int(self.t[-1] - self.t[0]) + max(int((self.t[-1] - self.t[0]) / max(len(t) - 1, 1)), 1)
        self.id_span = int(self.ids[-1] - self.ids[0]) + 1

    def between(self, lo: int, hi: int, limit: int = 1_000_000) -> list[tuple[int, int, float, float, bool]]:
        """Trades ``lo <= time <= hi`` as (id, time, price, amount, taker sold), at most ``limit``."""
        out: list[tuple[int, int, float, float, bool]] = []
        if hi < lo:
            return out
        first_lap = max((lo - int(self.t[0])) // self.period, 0) if self.loop else 0
        last_lap = max((hi - int(self.t[0])) // self.period, 0) if self.loop else 0
        for lap in range(first_lap, last_lap + 1):
            shift = lap * self.period
            i0 = int(np.searchsorted(self.t, lo - shift, "left"))
            i1 = int(np.searchsorted(self.t, hi - shift, "right"))
            for i in range(i0, i1):
                out.append((int(self.ids[i]) + lap * self.id_span, int(self.t[i]) + shift, float(self.price[i]),
                            float(self.amount[i]), bool(self.sell[i])))
                if len(out) >= limit:
                    return out
        return out


@dataclass
class StreamFaults:
    """WebSocket faults: ``drop_after`` messages per connection (0 = never), ``duplicate``
    every message, ``swap`` neighbouring messages."""

    drop_after: int = 0
    duplicate: bool = False
    swap: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        """Merge ``changes`` (unknown names → ConfigError)."""
        names = {f.name for f in fields(self)}
        if set(changes) - names:
            raise ConfigError(f"unknown stream fault(s) {sorted(set(changes) - names)}; valid: {sorted(names)}")
        for k, v in changes.items():
            setattr(self, k, v)


class _Dropped(Exception):
    """The fault-scripted end of a WebSocket connection."""


class FakeMarketVenue(FakeVenue):
    """:class:`FakeVenue` + trades, depth and a WebSocket stream (async context manager).

    Parameters
    ----------
    symbols : dict
        Unified symbol → catalog candles, as for :class:`FakeVenue`.
    trades : dict
        Unified symbol → trades file (:class:`TradeTape`).
    bbo : dict, optional
        Unified symbol → best bid/offer file (``timestamp, bid, bid_size, ask, ask_size``).
    ws_port : int
        WebSocket port (0: any free one). Other keywords go to :class:`FakeVenue`.
    """

    routes = {**_ROUTES, ("GET", "/api/v3/aggTrades"): ("agg_trades", False),
              ("GET", "/api/v3/depth"): ("depth", False)}

    def __init__(self, symbols: dict[str, str], *, trades: dict[str, str], bbo: dict[str, str] | None = None,
                 ws_port: int = 0, tick_s: float = 0.005, **kw: Any) -> None:
        super().__init__(symbols, **kw)
        start = self.clock.start_ms
        self.tapes = {s.replace("/", ""): TradeTape(p, start) for s, p in trades.items()}
        self.bbo = {s.replace("/", ""): _load_bbo(p, start) for s, p in (bbo or {}).items()}
        self.ws_port, self.tick_s, self.stream_faults = ws_port, tick_s, StreamFaults()
        self.ws_url, self._ws_server, self.ws_sent = "", None, 0
        self._kline_beat: dict[str, float] = {}
        self.sent_at: list[tuple[float, str]] | None = None  # set to [] to time each message sent (benchmarks)

    async def __aenter__(self) -> FakeMarketVenue:
        import websockets

        await super().__aenter__()
        self._ws_server = await websockets.serve(self._ws_handler, "127.0.0.1", self.ws_port)
        self.ws_port = self._ws_server.sockets[0].getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/stream/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
            self._ws_server = None
        await super().__aexit__(*exc)

    # ---- REST ---------------------------------------------------------------------------------
    def agg_trades(self, params: dict, now: int) -> list:
        tape = self._tape(params)
        limit = min(int(params.get("limit", 500)), 1000)
        lo = int(params.get("startTime", now - 3_600_000))
        hi = min(int(params.get("endTime", now)), now)
        if hi - lo > 3_600_000:
            raise BinanceError(400, -1127, "More than 1 hours between startTime and endTime.")
        return [{"a": i, "p": _fmt(p), "q": _fmt(q), "f": i, "l": i, "T": t, "m": sold, "M": True}
                for i, t, p, q, sold in tape.between(lo, hi, limit)]

    def depth(self, params: dict, now: int) -> dict:
        book = self.bbo.get(params.get("symbol", ""))
        if book is None:
            raise BinanceError(400, -1121, f"Invalid symbol {params.get('symbol')!r}.")
        t, rows = book
        i = int(np.searchsorted(t, now, "right")) - 1
        if i < 0:
            raise BinanceError(503, -1001, "no book yet")
        bid, bid_q, ask, ask_q = rows[i]
        return {"lastUpdateId": i + 1, "bids": [[_fmt(bid), _fmt(bid_q)]], "asks": [[_fmt(ask), _fmt(ask_q)]]}

    def _tape(self, params: dict) -> TradeTape:
        tape = self.tapes.get(params.get("symbol", ""))
        if tape is None:
            raise BinanceError(400, -1121, f"Invalid symbol {params.get('symbol')!r}.")
        return tape

    # ---- WebSocket ----------------------------------------------------------------------------
    async def _ws_handler(self, ws) -> None:
        import websockets

        subs: dict[str, int] = {}  # stream name → venue time sent up to (trades) or last bar (klines)
        sent = 0

        async def send(text: str) -> None:
            nonlocal sent
            if self.stream_faults.drop_after and sent >= self.stream_faults.drop_after:
                await ws.close(code=1011, reason="fake venue: drop")
                raise _Dropped
            for _ in range(2 if self.stream_faults.duplicate else 1):
                await ws.send(text)
                sent += 1
                self.ws_sent += 1
            if self.sent_at is not None:
                self.sent_at.append((time.perf_counter(), text))

        try:
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=self.tick_s)
                    self._subscribe(json.loads(raw), subs)
                    await ws.send(json.dumps({"result": None, "id": json.loads(raw).get("id")}))
                except TimeoutError:
                    pass
                out = self._events(subs, self.clock.now_ms())
                if self.stream_faults.swap:
                    for i in range(0, len(out) - 1, 2):
                        out[i], out[i + 1] = out[i + 1], out[i]
                for text in out:
                    await send(text)
        except (websockets.ConnectionClosed, _Dropped, OSError, ValueError):
            return

    def _subscribe(self, msg: dict, subs: dict[str, int]) -> None:
        if msg.get("method") != "SUBSCRIBE":
            return
        now = self.clock.now_ms()
        for name in msg.get("params", []):
            subs[str(name)] = now if "@trade" in name else -1

    def _events(self, subs: dict[str, int], now: int) -> list[str]:
        out = []
        for name, upto in list(subs.items()):
            sym, _, channel = name.partition("@")
            symbol = sym.upper()
            if channel == "trade" and symbol in self.tapes:
                for i, t, p, q, sold in self.tapes[symbol].between(upto + 1, now):
                    out.append(json.dumps({"e": "trade", "E": now, "s": symbol, "t": i, "p": _fmt(p), "q": _fmt(q),
                                           "T": t, "m": sold, "M": True}))
                subs[name] = now
            elif channel.startswith("kline_") and symbol in self.state.markets:
                out.extend(self._klines(symbol, name, subs, now))
        return out

    def _klines(self, symbol: str, name: str, subs: dict[str, int], now: int) -> list[str]:
        market = self.state.markets[symbol]
        i = int(np.searchsorted(market.ts, now, "right")) - 1
        beat = time.monotonic()
        if i < 0 or (i == subs[name] and beat - self._kline_beat.get(name, 0.0) < 1.0):
            return []  # like Binance: an update at least every second, and at each new bar
        self._kline_beat[name] = beat
        first = i if subs[name] < 0 or i == subs[name] else subs[name]
        subs[name] = i
        out = []
        for j in range(first, i + 1):  # the bar that just closed (final values) and the forming one
            t = int(market.ts[j])
            o, h, low, c, v = market.ohlcv[j]
            closed = t + market.step <= now
            if not closed:
                h = low = c = o
                v = 0.0
            k = {"t": t, "T": t + market.step - 1, "s": symbol, "i": name.split("_", 1)[1], "f": 0, "L": 0,
                 "o": _fmt(o), "c": _fmt(c), "h": _fmt(h), "l": _fmt(low), "v": _fmt(v), "n": 1, "x": closed,
                 "q": _fmt(v * c), "V": "0", "Q": "0", "B": "0"}
            out.append(json.dumps({"e": "kline", "E": now, "s": symbol, "k": k}))
        return out


def _load_bbo(path: str, start_ms: int) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    df = pd.read_csv(path)
    t = df["timestamp"].to_numpy(np.int64)
    return t - t[0] + start_ms, df[["bid", "bid_size", "ask", "ask_size"]].to_numpy(float)


# ---- as a subprocess (the end-to-end test kills and restarts it) -------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m coinswarm.adapters.fake_market")
    p.add_argument("--symbol", action="append", required=True, metavar="BTC/USDT=binance:BTC/USDT:1m")
    p.add_argument("--trades", action="append", default=[], metavar="BTC/USDT=PATH")
    p.add_argument("--bbo", action="append", default=[], metavar="BTC/USDT=PATH")
    p.add_argument("--start", default="2024-04-03")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--anchor-ms", type=int, default=None,
                   help="wall-clock epoch ms at which the venue clock read --start (keeps time across restarts)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ws-port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=600.0)
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    pairs = lambda items: dict(s.split("=", 1) for s in items)  # noqa: E731
    async with FakeMarketVenue(pairs(args.symbol), trades=pairs(args.trades), bbo=pairs(args.bbo), start=args.start,
                               speed=args.speed, port=args.port, ws_port=args.ws_port) as venue:
        if args.anchor_ms is not None:
            venue.clock.advanced_ms = int((time.time() * 1000 - args.anchor_ms) * args.speed)
        print(f"FAKE_MARKET {venue.url} {venue.ws_url}", flush=True)
        loop, gone = asyncio.get_running_loop(), asyncio.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(gone.set)), daemon=True).start()
        try:
            await asyncio.wait_for(gone.wait(), timeout=args.max_seconds)
        except TimeoutError:
            pass


def main(argv: list[str] | None = None) -> None:
    """Run until stdin closes or ``--max-seconds``; prints ``FAKE_MARKET <rest url> <ws url>``."""
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
