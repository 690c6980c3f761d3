"""X/Twitter as a documented adapter interface only: no credentials, no network in this build.

What a configured adapter would do (X API v2 recent search)::

    GET https://api.x.com/2/tweets/search/recent
        ?query=<query>&start_time=<ISO 8601>&end_time=<ISO 8601>&max_results=10..100
        &tweet.fields=created_at,public_metrics,lang,author_id&next_token=<paging>
    Authorization: Bearer <token from COINSWARM_X_BEARER_TOKEN>

answering ``{"data": [{"id": "…", "text": "…", "created_at": "2024-01-02T15:30:00.000Z", …}],
"meta": {"result_count": n, "next_token": "…"}}``, rate-limited per 15-minute window (429 with
``x-rate-limit-reset``). Each tweet maps to a ``news`` record by :func:`tweet_record` (``title`` =
the text, ``url`` = ``https://x.com/i/web/status/<id>``), so sentiment and embeddings treat tweets
and headlines alike.

:class:`TwitterSource` keeps that shape for the scheduler, but its :meth:`~TwitterSource.fetch`
always raises :class:`~coinswarm.adapters.sources.web.NotConfiguredError`: X's API needs paid
credentials that this project does not hold, and the tests run without network.
"""

from __future__ import annotations

from typing import Any

from coinswarm.adapters.sources.base import Batch, Health, Record, RecordError, check_record, iso_time_ms
from coinswarm.adapters.sources.web import NotConfiguredError

TOKEN_ENV = "COINSWARM_X_BEARER_TOKEN"
STATUS_URL = "https://x.com/i/web/status/"
NOT_CONFIGURED = ("the X/Twitter adapter is an interface only and is not configured: this build has no X API "
                  "credentials or client (see coinswarm.adapters.sources.twitter for the intended API); "
                  "use the rss or newsapi sources for headlines")


class TwitterSource:
    """The X/Twitter source's interface; every fetch raises :class:`NotConfiguredError`.

    Parameters
    ----------
    query : str
        An X search query (``bitcoin lang:en -is:retweet``).
    """

    def __init__(self, query: str) -> None:
        self.query = query
        self.name = f"x:{query}"
        self._health = Health(self.name, healthy=False, last_error=NOT_CONFIGURED)

    async def fetch(self, since_ms: int, until_ms: int, now_ms: int) -> Batch:
        """Always :class:`NotConfiguredError` (no credentials, no network in this build)."""
        self._health.errors += 1
        raise NotConfiguredError(NOT_CONFIGURED, source=self.name)

    def health(self) -> Health:
        """Unhealthy, with the reason."""
        return self._health.copy()


def tweet_record(tweet: Any, query: str, source: str, received_ms: int = 0) -> Record:
    """One X API v2 tweet object as a ``news`` record (for a future configured adapter)."""
    if not isinstance(tweet, dict):
        raise RecordError(f"a tweet must be an object, got {type(tweet).__name__}", source=source, field="tweet")
    tweet_id, text = tweet.get("id"), tweet.get("text")
    if not isinstance(tweet_id, str) or not tweet_id.isdigit():
        raise RecordError(f"id must be a string of digits, got {tweet_id!r}", source=source, field="id",
                          value=tweet_id)
    if not isinstance(text, str) or not text.strip():
        raise RecordError("text must be a non-empty string", source=source, field="text", value=text)
    time_ms = iso_time_ms(tweet.get("created_at"), source=source, field="created_at")
    values = {"title": text.strip(), "url": STATUS_URL + tweet_id, "author": str(tweet.get("author_id") or ""),
              "lang": str(tweet.get("lang") or "")}
    return check_record(Record("news", source, query, time_ms, values, received_ms))
