"""Fuzzing the macro/news/sentiment sources' reply parsing with malformed HTTP replies.

Each case feeds a FRED, NewsAPI or RSS source an arbitrary reply (status, headers, body: random
bytes, random JSON, or a near-valid document with fuzzed fields) through an injected transport,
and asserts: a :class:`Batch` whose records all pass the schema check and lie in the asked
window, or a ``CoinswarmError`` subclass — never another exception, never a hang. Sentiment,
embeddings and the tweet mapping get arbitrary values the same way.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinswarm.adapters.sources.base import Batch, Record, check_record
from coinswarm.adapters.sources.embeddings import HashingEmbedder
from coinswarm.adapters.sources.fred import FredSource
from coinswarm.adapters.sources.newsapi import NewsApiSource
from coinswarm.adapters.sources.rss import RssSource
from coinswarm.adapters.sources.sentiment import sentiment_batch
from coinswarm.adapters.sources.twitter import tweet_record
from coinswarm.adapters.sources.web import HttpClient, HttpReply
from coinswarm.errors import CoinswarmError
from tests.fuzz.budget import DEADLINE_MS, examples, seen

SINCE, UNTIL = 1_704_067_200_000, 1_704_067_200_000 + 30 * 86_400_000
SETTINGS = settings(max_examples=examples(200), deadline=DEADLINE_MS,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers(-10**12, 10**13) | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12)
dates = (st.sampled_from(["2024-01-02", "2024-13-01", "", "2024-01-02T00:00:00Z", "1970-01-01", "9999-12-31"])
         | st.text(max_size=12))
values = st.sampled_from([".", "3.95", "nan", "inf", "-0", "1e308", "1e999"]) | scalars
observation = st.fixed_dictionaries({"date": dates, "value": values}) | json_values
fred_body = st.fixed_dictionaries({"count": st.integers(-1, 5) | scalars, "units": scalars,
                                   "observations": st.lists(observation, max_size=6) | json_values}) | json_values
stamps = st.sampled_from(["2024-01-02T15:30:00Z", "2024-01-02T15:30:00", "yesterday", "2024-01-02T15:30:00+05:00"]
                         ) | st.text(max_size=25)
article = st.fixed_dictionaries({"title": st.sampled_from(["Bitcoin up", "[Removed]", ""]) | scalars,
                                 "url": st.sampled_from(["https://a.example/x", "ftp://x", "a"]) | scalars,
                                 "publishedAt": stamps, "source": json_values}) | json_values
news_body = st.fixed_dictionaries({"status": st.sampled_from(["ok", "error"]) | scalars,
                                   "code": st.sampled_from(["maximumResultsReached", "rateLimited"]) | scalars,
                                   "totalResults": st.integers(-1, 300) | scalars,
                                   "articles": st.lists(article, max_size=6) | json_values}) | json_values
statuses = st.sampled_from([200, 200, 200, 400, 401, 426, 429, 500, 503])
retry_after = st.none() | st.sampled_from(["0", "1", "-5", "abc", "Tue, 02 Jan 2024 10:00:30 GMT", "1e9", "nan"])


class Replies:
    """A transport that answers each GET with the next queued reply (the last repeats)."""

    def __init__(self, replies: list[HttpReply]) -> None:
        self.replies = replies

    async def get(self, url, headers, timeout_s):
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


async def _no_sleep(_seconds: float) -> None:
    return None


def _replies(data, body_strategy) -> list[HttpReply]:
    out = []
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            body = json.dumps(data.draw(body_strategy), allow_nan=True).encode()
        else:
            body = data.draw(st.binary(max_size=200))
        ra = data.draw(retry_after)
        out.append(HttpReply(data.draw(statuses), {} if ra is None else {"retry-after": ra}, body))
    return out


def _check(source, replies) -> None:
    source.client = HttpClient(source.name, transport=Replies(replies), sleep=_no_sleep, max_wait_s=5.0)
    before = source.health()
    try:
        batch = asyncio.run(source.fetch(SINCE, UNTIL, now_ms=UNTIL))
    except CoinswarmError:
        after = source.health()
        assert after.errors == before.errors + 1 and not after.healthy
        return
    assert isinstance(batch, Batch)
    for record in batch.records:
        assert check_record(record) is record and SINCE <= record.time_ms < UNTIL
    assert all(isinstance(e, CoinswarmError) for e in batch.rejected)


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("COINSWARM_FRED_API_KEY", "k")
    monkeypatch.setenv("COINSWARM_NEWSAPI_KEY", "k")


@SETTINGS
@given(data=st.data())
def test_fuzz_fred_replies(keys, data):
    seen("altdata")
    _check(FredSource("DGS10", page_size=data.draw(st.integers(1, 3)), max_pages=3), _replies(data, fred_body))


@SETTINGS
@given(data=st.data())
def test_fuzz_newsapi_replies(keys, data):
    seen("altdata")
    _check(NewsApiSource("bitcoin", page_size=data.draw(st.integers(1, 3)), max_pages=3), _replies(data, news_body))


rss_docs = st.builds(
    lambda title, link, date: (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>{title}'
                               f"</title><link>{link}</link><pubDate>{date}</pubDate></item></channel></rss>").encode(),
    st.text(max_size=20), st.sampled_from(["https://a.example/x", "", "a b", "javascript:x"]) | st.text(max_size=15),
    st.sampled_from(["Tue, 02 Jan 2024 15:30:00 +0000", "", "yesterday", "2024-01-02T00:00:00Z"])
    | st.text(max_size=20))


@SETTINGS
@given(status=statuses, body=rss_docs | st.binary(max_size=300))
def test_fuzz_rss_replies(status, body):
    seen("altdata")
    _check(RssSource("https://feed.example/rss"), [HttpReply(status, {}, body)])


@SETTINGS
@given(titles=st.lists(scalars, max_size=5))
def test_fuzz_sentiment_and_embeddings(titles):
    seen("altdata")
    news = [Record("news", "f", "k", 0, {"title": t, "url": "https://a.example/x"}) for t in titles]
    batch = sentiment_batch(news)
    assert len(batch.records) + len(batch.rejected) == len(news)
    assert all(-1.0 <= r.values["score"] <= 1.0 for r in batch.records)
    try:
        matrix = HashingEmbedder().embed(titles)
    except CoinswarmError:
        return
    assert matrix.shape == (len(titles), 384)


@SETTINGS
@given(tweet=st.fixed_dictionaries({"id": st.sampled_from(["17", "x"]) | scalars, "text": scalars,
                                    "created_at": stamps}) | json_values)
def test_fuzz_tweet_mapping(tweet):
    seen("altdata")
    try:
        record = tweet_record(tweet, "q", "x:q")
    except CoinswarmError:
        return
    assert check_record(record) is record
