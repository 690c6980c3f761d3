"""Macro and news ingestors for the scheduler: FRED series, NewsAPI queries, RSS/Atom feeds.

Each item of a ``[fred]`` / ``[newsapi]`` / ``[rss]`` config table becomes one poll ingestor
(:func:`build_alt_ingestors`) wrapping the web source in :class:`Polled`, which

* keeps one live :class:`~coinswarm.adapters.sources.base.Health` the scheduler updates (the web
  sources hand out copies) and sets its lag (now − newest record);
* scores every news headline with VADER into ``sentiment`` records (``[news] sentiment = true``),
  stored with the news in the same write;
* embeds the headlines and adds them to a pgvector table or a Redis vector set when
  ``[news] vectors_url`` is set (:class:`HeadlineIndex`, keyed by URL: a re-run adds nothing).

A source that cannot be built — no API key in the environment, above all — becomes an
:class:`Unavailable` ingestor: unhealthy from the start with the reason (``no API key: set the
environment variable COINSWARM_FRED_API_KEY``), retried with back-off, never stopping the others.
"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.parse
from typing import Any

from coinswarm.adapters.sources.base import Batch, Health, Record, SourceError
from coinswarm.ingest.config import FeedConfig, IngestConfig, NewsConfig

_KIND = {"fred": "macro", "newsapi": "news", "rss": "news"}


class Unavailable:
    """An ingestor whose source could not be built: unhealthy with the reason; each poll fails again.

    Parameters
    ----------
    name : str
        The source name it would have had (``fred:DGS10``).
    error : SourceError
        Why it cannot run (raised by every :meth:`fetch`).
    """

    def __init__(self, name: str, error: SourceError) -> None:
        self.name, self.error = name, error
        self._health = Health(name, healthy=False, last_error=str(error))

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Raise the construction error (the scheduler counts it and backs off)."""
        raise self.error

    def health(self) -> Health:
        """The live health (unhealthy, with the reason)."""
        return self._health


class HeadlineIndex:
    """Headline vectors (pgvector or a Redis vector set), opened on first use, shared by the news ingestors.

    Parameters
    ----------
    url : str
        ``postgresql://…`` (pgvector table ``headline_vectors``) or ``redis://…`` (vector set
        ``coinswarm:headlines``).
    embedder : str
        ``hashing`` (default, no dependency), ``minilm`` or ``auto`` (see
        :func:`~coinswarm.adapters.sources.embeddings.load_embedder`).
    """

    def __init__(self, url: str, embedder: str = "hashing") -> None:
        self.url, self.embedder_kind = url, embedder
        self.inserted = 0
        self._store: Any = None
        self._embedder: Any = None
        self._lock = threading.Lock()

    def _open(self) -> None:
        from coinswarm.adapters.sources.embeddings import load_embedder
        from coinswarm.ingest.vectors import PgVectorStore, RedisVectorStore

        self._embedder = self._embedder or load_embedder(self.embedder_kind)
        if self.url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=10)
            client.ping()
            self._store = RedisVectorStore(client)
        else:
            store = PgVectorStore(self.url)
            store.migrate()
            self._store = store

    def add(self, news: list[Record]) -> list:
        """Embed and store the headlines of ``news`` (known URLs are skipped); the rejected records.

        Raises
        ------
        SourceError
            The vector store is unreachable or refuses the write (the ingestor backs off and the
            headlines come again with the next poll).
        """
        from coinswarm.ingest.vectors import index_headlines

        with self._lock:
            try:
                if self._store is None:
                    self._open()
                report = index_headlines(news, self._embedder, self._store)
            except Exception as exc:  # any driver error: the index is down, the news ingestor backs off
                self._store = None
                parts = urllib.parse.urlsplit(self.url)
                safe = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"  # no password
                raise SourceError(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                                  source=f"headline index {safe}") from None
            self.inserted += report.inserted
            return list(report.rejected)

    async def close(self) -> None:
        """Close the vector store's connection."""
        store, self._store = self._store, None
        if store is not None:
            closer = getattr(store, "close", None) or getattr(store.client, "close", None)
            closer()


class Polled:
    """A web source under the scheduler (see the module docstring).

    Parameters
    ----------
    inner : Source
        A FRED, NewsAPI or RSS source.
    sentiment : bool
        Add a VADER ``sentiment`` record per news headline.
    index : HeadlineIndex, optional
        Where headline vectors go.
    """

    def __init__(self, inner: Any, *, sentiment: bool = False, index: HeadlineIndex | None = None) -> None:
        self.inner, self.name, self.sentiment, self.index = inner, inner.name, sentiment, index
        self._health = Health(inner.name)

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """The inner source's batch, plus the sentiment records of its news."""
        from coinswarm.adapters.sources.sentiment import sentiment_batch

        batch = await self.inner.fetch(since_ms, until_ms, now_ms)
        news = [r for r in batch.records if r.kind == "news"]
        if news and self.sentiment:
            scored = sentiment_batch(news, now_ms)
            batch.records.extend(scored.records)
            batch.rejected.extend(scored.rejected)
        if news and self.index is not None:
            batch.rejected.extend(await asyncio.to_thread(self.index.add, news))
        if batch.records:
            self._health.lag_ms = max(0, now_ms - max(r.time_ms for r in batch.records))
        return batch

    def health(self) -> Health:
        """The live health (the scheduler updates it)."""
        return self._health


def _source(feed: FeedConfig, item: str) -> tuple[str, Any]:
    """(name, source) of one item; the source raises NotConfiguredError without its key."""
    from coinswarm.adapters.sources import fred, newsapi, rss

    if feed.kind == "fred":
        return f"fred:{item}", lambda: fred.FredSource(item, base_url=feed.api_url or fred.BASE_URL)
    if feed.kind == "newsapi":
        return f"newsapi:{item}", lambda: newsapi.NewsApiSource(item, language=feed.language or None,
                                                                base_url=feed.api_url or newsapi.BASE_URL)
    name = "rss:" + item.split("://", 1)[-1]
    return name, lambda: rss.RssSource(item, name=name)


def _token(text: str) -> str:
    """A NATS-subject-safe token."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:80] or "_"


def build_alt_ingestors(config: IngestConfig) -> tuple[list[Any], list[Any]]:
    """The closables (a headline index) and one ingestor per FRED series, NewsAPI query and RSS feed."""
    from coinswarm.ingest.scheduler import Ingestor

    news: NewsConfig = config.news
    index = HeadlineIndex(news.vectors_url, news.embedder) if news.vectors_url else None
    closables: list[Any] = [index] if index is not None else []
    out = []
    for feed in config.feeds:
        kind = _KIND[feed.kind]
        for item in feed.items:
            name, make = _source(feed, item)
            try:
                source: Any = Polled(make(), sentiment=kind == "news" and news.sentiment,
                                     index=index if kind == "news" else None)
            except SourceError as err:  # NotConfiguredError: no key; that ingestor alone is unhealthy
                source = Unavailable(name, err)
            out.append(Ingestor(source, "poll", feed.every_s, int(feed.lookback_s * 1000), feed.kind, kind, item,
                                subject=f"ingest.{kind}.{feed.kind}.{_token(item.split('://', 1)[-1])}"))
    return closables, out
