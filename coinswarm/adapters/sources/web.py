"""HTTP plumbing shared by the web sources (FRED, NewsAPI, RSS): a small transport, polite
rate-limit handling, API keys from the environment and health bookkeeping.

The default :class:`UrllibTransport` uses only the standard library (run in a worker thread so
the event loop never blocks); tests inject nothing and point the sources at a local server on
127.0.0.1, or inject any object with the :class:`Transport` shape.

Rate limits: a ``429 Too Many Requests`` (or ``503``) reply is retried after the server's
``Retry-After`` (seconds or an HTTP date), else after an exponential back-off, at most
``max_retries`` times and never longer than ``max_wait_s`` per wait; then :class:`SourceError`
with ``retry_after_s`` set, so the scheduler backs off instead of hammering.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from coinswarm.adapters.sources.base import Batch, Health, SourceError

RETRY_STATUSES = frozenset({429, 503})
"""Statuses that mean "slow down, then try again"."""
MAX_BODY = 16 * 1024 * 1024
"""The largest reply body read (a feed or an API page is far smaller); a larger one is an error."""


class NotConfiguredError(SourceError):
    """A source lacks what it needs to run (an API key in the environment, credentials)."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """One HTTP answer: status, headers (lower-case names) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """Anything that can GET a URL."""

    async def get(self, url: str, headers: Mapping[str, str], timeout_s: float) -> HttpReply:
        """The reply to ``GET url``; raise ``OSError`` when the host cannot be reached."""
        ...


class UrllibTransport:
    """:class:`Transport` over ``urllib`` in a worker thread (no third-party HTTP client)."""

    async def get(self, url: str, headers: Mapping[str, str], timeout_s: float) -> HttpReply:
        """GET ``url``; HTTP error statuses are returned as replies, not raised."""
        return await asyncio.to_thread(self._get, url, dict(headers), timeout_s)

    @staticmethod
    def _get(url: str, headers: dict[str, str], timeout_s: float) -> HttpReply:
        request = urllib.request.Request(url, headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (scheme checked)
                return HttpReply(response.status, _lower(response.headers.items()), _read(response))
        except urllib.error.HTTPError as err:
            return HttpReply(err.code, _lower(err.headers.items() if err.headers else []), _read(err))


def _read(response) -> bytes:
    body = response.read(MAX_BODY + 1) or b""
    if len(body) > MAX_BODY:
        raise OSError(f"reply body larger than {MAX_BODY:,} bytes")
    return body


def _lower(items) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date), or ``None``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_s)


def api_key(env: str, source: str) -> str:
    """The API key in environment variable ``env``, or :class:`NotConfiguredError`."""
    key = os.environ.get(env, "").strip()
    if not key:
        raise NotConfiguredError(f"no API key: set the environment variable {env}", source=source)
    return key


def with_query(url: str, params: Mapping[str, Any]) -> str:
    """``url`` with ``params`` url-encoded as its query string (``None`` values left out)."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}?{query}" if query else url


def check_url(url: str, source: str) -> str:
    """``url`` if it is an absolute http(s) URL, else :class:`NotConfiguredError`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotConfiguredError(f"URL must be absolute http(s)://host/..., got {url!r}", source=source)
    return url


@dataclass(slots=True)
class HttpClient:
    """GETs with 429/503 back-off (``Retry-After`` honoured) and a timeout on every request.

    Parameters
    ----------
    source : str
        The source's name, for error messages.
    transport : Transport
        How to GET (default: :class:`UrllibTransport`).
    timeout_s : float
        Per-request timeout.
    max_retries : int
        Retries after a 429/503 before giving up with :class:`SourceError`.
    max_wait_s : float
        The longest single wait; a longer ``Retry-After`` gives up at once (the scheduler waits).
    backoff_s : float
        First wait when the server gives no ``Retry-After`` (doubled each retry).
    sleep : callable
        ``await sleep(seconds)`` (tests inject a recorder).
    clock : callable
        Wall-clock seconds, for HTTP-date ``Retry-After`` values.
    """

    source: str
    transport: Transport = field(default_factory=UrllibTransport)
    timeout_s: float = 10.0
    max_retries: int = 3
    max_wait_s: float = 60.0
    backoff_s: float = 1.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> HttpReply:
        """The first reply that is not a 429/503; :class:`SourceError` when unreachable or throttled."""
        for attempt in range(self.max_retries + 1):
            reply = await self._once(url, headers or {})
            if reply.status not in RETRY_STATUSES:
                return reply
            wait = parse_retry_after(reply.headers.get("retry-after"), self.clock())
            if wait is None:
                wait = self.backoff_s * (2 ** attempt)
            if attempt == self.max_retries or wait > self.max_wait_s:
                raise SourceError(f"HTTP {reply.status} (rate limited) from {_redact(url)} after {attempt + 1} "
                                  f"attempt(s); retry in {wait:.1f} s", source=self.source, retry_after_s=wait)
            await self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, url: str, headers: Mapping[str, str]) -> HttpReply:
        try:
            return await asyncio.wait_for(self.transport.get(url, headers, self.timeout_s), self.timeout_s + 1.0)
        except (OSError, TimeoutError) as err:
            raise SourceError(f"GET {_redact(url)} failed: {err!r}", source=self.source) from err

    async def get_json(self, url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """``(status, decoded JSON)``; :class:`SourceError` if the body is not JSON."""
        reply = await self.get(url, headers)
        try:
            return reply.status, json.loads(reply.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SourceError(f"HTTP {reply.status} from {_redact(url)} is not JSON: {err}; "
                              f"body starts {reply.body[:80]!r}", source=self.source) from err

    async def get_json_object(self, url: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict]:
        """:meth:`get_json` for an API that answers a JSON object (its replies and its errors);
        :class:`SourceError` for any other JSON."""
        status, body = await self.get_json(url, headers)
        if not isinstance(body, dict):
            raise SourceError(f"HTTP {status}: expected a JSON object, got {type(body).__name__}", source=self.source)
        return status, body


def reply_count(body: dict, name: str, source: str) -> int:
    """The non-negative int ``body[name]`` (a paged reply's total); :class:`SourceError` otherwise."""
    count = body.get(name)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SourceError(f"reply {name!r} must be a non-negative int, got {count!r}", source=source)
    return count


def _redact(url: str) -> str:
    """``url`` without secrets in its query (``api_key=...`` → ``api_key=***``)."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    safe = [(k, "***" if "key" in k.lower() or "token" in k.lower() else v) for k, v in pairs]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(safe)))


@dataclass(slots=True)
class Tracker:
    """Keeps a source's :class:`Health` up to date around each fetch."""

    health: Health

    def succeeded(self, batch: Batch, now_ms: int, newest_ms: int | None) -> Batch:
        """Record a successful fetch (lag = now - newest record time, when there is one)."""
        h = self.health
        h.healthy, h.last_success_ms, h.last_error = True, now_ms, None
        h.rejected += len(batch.rejected)
        if newest_ms is not None:
            h.lag_ms = max(0, now_ms - newest_ms)
        return batch

    def failed(self, err: Exception) -> None:
        """Record a failed fetch."""
        h = self.health
        h.healthy, h.errors, h.last_error = False, h.errors + 1, str(err)

    def snapshot(self) -> Health:
        """A copy of the current health."""
        return self.health.copy()
