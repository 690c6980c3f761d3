"""Streamable HTTP for the MCP server: the SDK's Starlette app behind a bearer-token check,
served by uvicorn. Loopback by default; any other bind address needs a token
(:func:`coinswarm.mcpserver.config.check_bind`), and when a token is set every request must
carry ``Authorization: Bearer <token>`` (compared in constant time), loopback included.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from coinswarm.mcpserver.config import LOOPBACK, check_bind


class BearerAuth:
    """ASGI middleware: HTTP requests without the right bearer token get 401 (lifespan passes)."""

    def __init__(self, app, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": "unauthorized: send Authorization: Bearer <token>"}).encode()
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def principal(token: str | None) -> str:
    """Who an HTTP caller is in the audit: ``http:<first 12 hex of sha256(token)>`` (never the token)."""
    if not token:
        return "http:loopback"
    return "http:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def http_app(server, host: str, token: str | None):
    """The ASGI app of ``server`` (an ``MCPServer``) for ``host``, behind :class:`BearerAuth` when
    a token is given (required beyond loopback)."""
    check_bind(host, token)
    app = server.streamable_http_app(host=host if host in LOOPBACK else "0.0.0.0")
    return BearerAuth(app, token) if token else app


async def serve_http(server, host: str, port: int, token: str | None, ready=None) -> None:
    """Serve ``server`` over streamable HTTP at ``http://host:port/mcp`` until cancelled."""
    import uvicorn

    config = uvicorn.Config(http_app(server, host, token), host=host, port=port, log_level="warning",
                            lifespan="on")
    await uvicorn.Server(config).serve()
