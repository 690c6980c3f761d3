"""A recorded-reply HTTP server on 127.0.0.1 for the web sources' tests (no network).

``fixture_server.route(path, *replies)`` queues replies for a path: each request takes the next
one and the last repeats. A reply is ``(status, body)`` or ``(status, body, headers)``; a body is
bytes or the name of a file under ``tests/fixtures/``. Every request is kept in ``requests``.
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[2] / "fixtures"


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FixtureServer:
    url: str
    routes: dict[str, list[tuple[int, bytes, dict[str, str]]]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def route(self, path: str, *replies) -> None:
        queue = []
        for reply in replies:
            status, body, *rest = reply
            headers = rest[0] if rest else {}
            if isinstance(body, str):
                body = (FIXTURES / body).read_bytes()
            queue.append((status, body, headers))
        self.routes[path] = queue

    def answer(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        queue = self.routes.get(path)
        if not queue:
            return 404, b'{"error": "no such fixture route"}', {"Content-Type": "application/json"}
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def fixture_server():
    state = FixtureServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            parts = urllib.parse.urlsplit(self.path)
            state.requests.append(Seen(parts.path, dict(urllib.parse.parse_qsl(parts.query)),
                                       {k.lower(): v for k, v in self.headers.items()}))
            status, body, headers = state.answer(parts.path)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class SleepRecorder:
    """An ``await sleep(s)`` that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def no_sleep():
    return SleepRecorder()
