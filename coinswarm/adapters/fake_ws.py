"""A fake Binance kline WebSocket stream on 127.0.0.1 (the ``websockets`` library), for ccxt
pro's ``watch_ohlcv`` pointed at it (``urls['api']['ws']['spot'] = stream.url``).

It speaks the subset ccxt uses: a client sends ``{"method": "SUBSCRIBE", "params":
["btcusdt@kline_1h"], "id": N}`` and is answered ``{"result": null, "id": N}``; then the test
pushes kline events (:meth:`FakeKlineStream.kline`) — forming (``"x": false``) and closed
(``"x": true``) candles, in any order, duplicated at will — and can drop every connection
abruptly (:meth:`FakeKlineStream.drop`) as a venue or a network does mid-stream.
Prices are whatever the test passes: real catalog candles (a forming candle is made of the real
bar's open, as the fake REST venue serves it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from coinswarm.errors import ConfigError


def _fmt(x: float) -> str:
    return f"{float(x):.8f}"


class FakeKlineStream:
    """The stream server (an async context manager).

    Parameters
    ----------
    port : int
        0: any free loopback port (read :attr:`url` after entering).

    Attributes
    ----------
    subscriptions : list of str
        Every stream name subscribed, in order (``"btcusdt@kline_1h"``), across connections.
    connections : int
        Connections accepted so far (a reconnect adds one).
    """

    def __init__(self, port: int = 0) -> None:
        self.port, self.url = int(port), ""
        self.subscriptions: list[str] = []
        self.connections = 0
        self._live: dict[Any, set[str]] = {}  # open connection -> its streams
        self._server = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> FakeKlineStream:
        from websockets.asyncio.server import serve

        self._server = await serve(self._session, "127.0.0.1", self.port, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1] if hasattr(self._server, "sockets") else self.port
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _session(self, ws) -> None:
        self.connections += 1
        self._live[ws] = set()
        try:
            async for raw in ws:
                try:
                    request = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid JSON"}, "id": None}))
                    continue
                if request.get("method") == "SUBSCRIBE":
                    streams = [str(s) for s in request.get("params", [])]
                    self._live[ws].update(streams)
                    self.subscriptions.extend(streams)
                    await ws.send(json.dumps({"result": None, "id": request.get("id")}))
                    self._changed.set()
        except Exception:  # noqa: BLE001 - a dropped client ends its session, nothing else
            pass
        finally:
            self._live.pop(ws, None)
            self._changed.set()

    async def wait_subscribed(self, stream: str, timeout: float = 10.0) -> None:
        """Until an open connection is subscribed to ``stream`` (``"btcusdt@kline_1h"``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(stream in streams for streams in self._live.values()):
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no client subscribed to {stream} within {timeout:g} s "
                                   f"(subscriptions so far: {self.subscriptions})")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    @staticmethod
    def kline_event(market_id: str, interval: str, step_ms: int, row: tuple, closed: bool,
                    event_ms: int | None = None) -> dict:
        """A Binance ``kline`` event of ``row = (open time ms, open, high, low, close, volume)``."""
        t, o, h, low, c, v = row
        t = int(t)
        return {"e": "kline", "E": int(event_ms if event_ms is not None else t + step_ms - 1), "s": market_id.upper(),
                "k": {"t": t, "T": t + step_ms - 1, "s": market_id.upper(), "i": interval, "f": 1, "L": 2,
                      "o": _fmt(o), "c": _fmt(c), "h": _fmt(h), "l": _fmt(low), "v": _fmt(v), "n": 2,
                      "x": bool(closed), "q": _fmt(float(v) * float(c)), "V": "0", "Q": "0", "B": "0"}}

    async def kline(self, market_id: str, interval: str, step_ms: int, row: tuple, closed: bool) -> int:
        """Send one kline event to every connection subscribed to ``<market_id>@kline_<interval>``;
        returns how many received it."""
        stream = f"{market_id.lower()}@kline_{interval}"
        message = json.dumps(self.kline_event(market_id, interval, step_ms, row, closed))
        sent = 0
        for ws, streams in list(self._live.items()):
            if stream in streams:
                with contextlib.suppress(Exception):
                    await ws.send(message)
                    sent += 1
        return sent

    async def drop(self) -> int:
        """Cut every open connection without a closing handshake (as a network failure does);
        returns how many were cut."""
        cut = 0
        for ws in list(self._live):
            transport = getattr(ws, "transport", None)
            if transport is None:
                raise ConfigError("this websockets version exposes no transport to cut")
            transport.abort()
            cut += 1
        self._live.clear()
        self._changed.set()
        return cut
