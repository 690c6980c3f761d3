"""NewsAPI (``/v2/everything``) articles as ``news`` records.

``GET {base}/v2/everything?q=bitcoin&from=…&to=…&sortBy=publishedAt&pageSize=100&page=n`` with
the header ``X-Api-Key`` answers ``{"status": "ok", "totalResults": n, "articles": [{"source":
{"id": …, "name": …}, "author": …, "title": …, "description": …, "url": …, "urlToImage": …,
"publishedAt": "2024-01-02T15:30:00Z", "content": …}, …]}``; an error is ``{"status": "error",
"code": "apiKeyInvalid" | "rateLimited" | "maximumResultsReached" | …, "message": …}``.

Paging stops at ``totalResults``, at an empty page, or at ``maximumResultsReached`` (HTTP 426:
the plan's result cap; the articles so far are kept). Articles NewsAPI has withdrawn (title
``[Removed]``) are skipped; an article without a title, a URL or a parseable ``publishedAt`` is
rejected with a :class:`RecordError` naming the field; a URL seen twice is kept once.

The key comes only from the environment variable ``COINSWARM_NEWSAPI_KEY``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from typing import Any

from coinswarm.adapters.sources.base import (
    Batch,
    Health,
    Record,
    RecordError,
    SourceError,
    check_record,
    iso_time_ms,
)
from coinswarm.adapters.sources.web import (
    HttpClient,
    NotConfiguredError,
    Tracker,
    api_key,
    check_url,
    reply_count,
    with_query,
)

KEY_ENV = "COINSWARM_NEWSAPI_KEY"
BASE_URL = "https://newsapi.org"
REMOVED = "[Removed]"
RESULT_CAP_CODE = "maximumResultsReached"


class NewsApiSource:
    """Articles matching a query, newest first, paged.

    Parameters
    ----------
    query : str
        NewsAPI's ``q`` (``bitcoin OR ethereum``...).
    language : str or None
        Two-letter language filter.
    base_url : str
        The API root (tests point it at a local server).
    page_size : int
        Articles per request (NewsAPI allows 1..100).
    max_pages : int
        At most this many requests per fetch.
    client : HttpClient, optional
        HTTP client (back-off, timeout).

    Raises
    ------
    NotConfiguredError
        ``COINSWARM_NEWSAPI_KEY`` is unset, or a parameter is malformed.
    """

    def __init__(self, query: str, *, language: str | None = "en", base_url: str = BASE_URL,
                 page_size: int = 100, max_pages: int = 5, client: HttpClient | None = None) -> None:
        self.name = f"newsapi:{query}"
        if not isinstance(query, str) or not query.strip() or len(query) > 500:
            raise NotConfiguredError(f"query must be 1-500 characters, got {query!r}", source=self.name)
        if not 1 <= page_size <= 100 or max_pages < 1:
            raise NotConfiguredError(f"page_size must be in [1, 100] and max_pages >= 1, got {page_size}, "
                                     f"{max_pages}", source=self.name)
        self.query, self.language, self.page_size, self.max_pages = query, language, page_size, max_pages
        self.base_url = check_url(base_url, self.name).rstrip("/")
        self._key = api_key(KEY_ENV, self.name)
        self.client = dataclasses.replace(client, source=self.name) if client else HttpClient(self.name)
        self._tracker = Tracker(Health(self.name))

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Articles published in ``[since_ms, until_ms)``."""
        batch, seen = Batch(self.name), set()
        try:
            for page in range(1, self.max_pages + 1):
                body = await self._page(since_ms, until_ms, page)
                if body is None:
                    break
                articles = body["articles"]
                for index, article in enumerate(articles):
                    self._take(article, (page - 1) * self.page_size + index, batch, seen, since_ms, until_ms, now_ms)
                if page * self.page_size >= reply_count(body, "totalResults", self.name) or not articles:
                    break
        except SourceError as err:
            self._tracker.failed(err)
            raise
        newest = max((r.time_ms for r in batch.records), default=None)
        return self._tracker.succeeded(batch, now_ms, newest)

    def _take(self, article: Any, index: int, batch: Batch, seen: set, since_ms: int, until_ms: int,
              now_ms: int) -> None:
        try:
            record = article_record(article, index, self.query, self.name, now_ms)
        except RecordError as err:
            batch.rejected.append(err)
            return
        if record is not None and record.values["url"] not in seen and since_ms <= record.time_ms < until_ms:
            seen.add(record.values["url"])
            batch.records.append(record)

    async def _page(self, since_ms: int, until_ms: int, page: int) -> dict[str, Any] | None:
        """One page of the reply; ``None`` when the plan's result cap is reached."""
        url = with_query(f"{self.base_url}/v2/everything", {
            "q": self.query, "language": self.language, "from": _iso(since_ms), "to": _iso(max(since_ms, until_ms - 1)),
            "sortBy": "publishedAt", "pageSize": self.page_size, "page": page})
        status, body = await self.client.get_json_object(url, {"X-Api-Key": self._key})
        if body.get("status") == "error" and body.get("code") == RESULT_CAP_CODE and page > 1:
            return None
        if status != 200 or body.get("status") != "ok":
            raise SourceError(f"HTTP {status}: NewsAPI error {body.get('code')!r}: {body.get('message')}",
                              source=self.name)
        if not isinstance(body.get("articles"), list):
            raise SourceError(f"reply has no 'articles' list; keys {sorted(body)}", source=self.name)
        return body

    def health(self) -> Health:
        """Last success, lag, error and rejection counts."""
        return self._tracker.snapshot()


def article_record(article: Any, index: int, query: str, source: str, received_ms: int) -> Record | None:
    """One NewsAPI article as a ``news`` record; ``None`` for a withdrawn (``[Removed]``) article."""
    if not isinstance(article, dict):
        raise RecordError(f"article {index} is a {type(article).__name__}, expected an object", source=source,
                          field="article", value=article)
    title = article.get("title")
    if title == REMOVED:
        return None
    if not isinstance(title, str) or not title.strip():
        raise RecordError(f"article {index}: needs a non-empty title", source=source, field="title", value=title)
    url = article.get("url")
    parts = urllib.parse.urlsplit(url if isinstance(url, str) else "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RecordError(f"article {index}: url must be an absolute http(s) URL, got {url!r}", source=source,
                          field="url", value=url)
    time_ms = iso_time_ms(article.get("publishedAt"), source=source, field="publishedAt", where=f"article {index}: ")
    publisher = article.get("source") if isinstance(article.get("source"), dict) else {}
    values = {"title": title.strip(), "url": url, "description": article.get("description") or "",
              "author": article.get("author") or "", "publisher": publisher.get("name") or ""}
    return check_record(Record("news", source, query, time_ms, values, received_ms))


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
