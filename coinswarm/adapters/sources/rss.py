"""RSS and Atom feeds as ``news`` records, parsed by feedparser.

One :class:`RssSource` polls one feed URL. Every entry becomes a ``news`` record (``title``,
``url`` = the entry's link, ``summary``, ``guid``, ``feed``) timed by its ``published`` date
(``updated`` when there is none). An entry without a title, a link or a date is rejected with a
:class:`~coinswarm.adapters.sources.base.RecordError` naming the field; the other entries are kept.
A body that is no feed at all (no entries and a parse error) is a
:class:`~coinswarm.adapters.sources.base.SourceError`.
"""

from __future__ import annotations

import calendar
import dataclasses
import urllib.parse
from typing import Any

import feedparser

from coinswarm.adapters.sources.base import Batch, Health, Record, RecordError, SourceError, check_record
from coinswarm.adapters.sources.web import HttpClient, Tracker, check_url

USER_AGENT = "coinswarm-rss/0.1 (+https://github.com/coinswarm)"


class RssSource:
    """A polled RSS/Atom feed.

    Parameters
    ----------
    url : str
        The feed's absolute http(s) URL.
    name : str, optional
        The source name (default ``rss:<host>``).
    client : HttpClient, optional
        HTTP client (rate-limit back-off, timeout); built for this source when absent.

    Examples
    --------
    >>> src = RssSource("https://www.coindesk.com/arc/outboundfeeds/rss/")
    >>> src.name
    'rss:www.coindesk.com'
    """

    def __init__(self, url: str, name: str | None = None, client: HttpClient | None = None) -> None:
        self.name = name or f"rss:{urllib.parse.urlsplit(url).netloc or url}"
        self.url = check_url(url, self.name)
        self.client = dataclasses.replace(client, source=self.name) if client else HttpClient(self.name)
        self._tracker = Tracker(Health(self.name))

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """The feed's entries with ``since_ms <= time < until_ms`` (a feed holds only its recent items)."""
        try:
            reply = await self.client.get(self.url, {"User-Agent": USER_AGENT,
                                                     "Accept": "application/rss+xml, application/atom+xml, */*"})
            if reply.status != 200:
                raise SourceError(f"HTTP {reply.status} from {self.url}", source=self.name)
            batch = parse_feed(reply.body, self.url, self.name, received_ms=now_ms)
        except SourceError as err:
            self._tracker.failed(err)
            raise
        batch.records = [r for r in batch.records if since_ms <= r.time_ms < until_ms]
        newest = max((r.time_ms for r in batch.records), default=None)
        return self._tracker.succeeded(batch, now_ms, newest)

    def health(self) -> Health:
        """Last success, lag, error and rejection counts."""
        return self._tracker.snapshot()


def parse_feed(body: bytes, url: str, source: str, received_ms: int = 0) -> Batch:
    """A :class:`Batch` of ``news`` records from an RSS/Atom document."""
    parsed = feedparser.parse(body)
    if parsed.bozo and not parsed.entries:
        raise SourceError(f"not an RSS/Atom feed: {parsed.get('bozo_exception')!r}; "
                          f"body starts {body[:60]!r}", source=source)
    feed_title = str(parsed.feed.get("title", "")) if parsed.get("feed") else ""
    batch = Batch(source)
    for index, entry in enumerate(parsed.entries):
        try:
            batch.records.append(entry_record(entry, index, url, source, feed_title, received_ms))
        except RecordError as err:
            batch.rejected.append(err)
    return batch


def entry_record(entry: Any, index: int, url: str, source: str, feed_title: str, received_ms: int) -> Record:
    """One feed entry as a ``news`` record, or :class:`RecordError` naming the bad field."""
    title = str(entry.get("title") or "").strip()
    if not title:
        raise RecordError(f"entry {index}: needs a non-empty title", source=source, field="title",
                          value=entry.get("title"))
    link = str(entry.get("link") or "").strip()
    parts = urllib.parse.urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RecordError(f"entry {index}: link must be an absolute http(s) URL, got {link!r}", source=source,
                          field="link", value=link)
    # dict.get: feedparser's own .get maps a missing "updated_parsed" to "published_parsed" with a warning
    stamp = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
    if stamp is None:
        raw = dict.get(entry, "published") or dict.get(entry, "updated")
        raise RecordError(f"entry {index}: no parseable published/updated date (got {raw!r}); expected RFC 822 "
                          "or ISO 8601", source=source, field="published", value=raw)
    values = {"title": title, "url": link, "summary": str(entry.get("summary") or ""),
              "guid": str(entry.get("id") or link), "feed": feed_title}
    return check_record(Record("news", source, url, calendar.timegm(stamp) * 1000, values, received_ms))
